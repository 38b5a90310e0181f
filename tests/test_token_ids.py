"""Token ids outside their table: one clear error on every backend (numpy would read a negative id from the end)."""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from rnncompile import api
from rnncompile.errors import DataError
from rnncompile.backends.c.build import find_compiler
from conftest import SPECS

BACKENDS = ["numpy", "python"] + (["c"] if find_compiler() else [])

NO_VOCAB = """
rnncompile: 1
name: ids
dims: {V: 7, E: 3, H: 4, T: 5}
cells:
  rnn:
    inputs: {tok: token, cls: token}
    state: {h: H}
    params:
      E_t: {shape: [V, E]}
      W: {shape: [H, H + E + 5]}
    update:
      h: tanh(W @ concat(h, embed(tok, E_t), one_hot(cls, 5)))
    outputs: {h: h}
model:
  input: {tok: [T], cls: [T]}
  scan: rnn
"""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [32, 999, -1])
def test_vocabulary_bounds_every_backend(backend, bad):
    program = rnncompile.compile(SPECS / "char_predictor.yaml")
    ids = np.array([[1, 2, bad, 3]])
    with pytest.raises(DataError) as e:
        api.run(program, inputs={"ch": ids}, backend=backend)
    assert str(e.value) == (f"input `ch` holds token id {bad} at sequence 0, step 2; the vocabulary has 32 "
                            f"entries, so ids go from 0 to 31 (1 id(s) out of range)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_embedding_table_and_one_hot_bound_without_a_vocabulary(backend):
    program = rnncompile.compile_text(NO_VOCAB)
    tok = np.zeros((2, 5), np.int64)
    cls = np.zeros((2, 5), np.int64)
    ok = api.run(program, inputs={"tok": tok + 6, "cls": cls + 4}, backend=backend)  # the largest valid ids
    assert ok.outputs["h"].shape == (2, 5, 4)
    tok[1, 3] = 7
    with pytest.raises(DataError, match=r"input `tok` holds token id 7 at sequence 1, step 3; the embedding table "
                                        r"of cell `rnn` has 7 entries, so ids go from 0 to 6"):
        api.run(program, inputs={"tok": tok, "cls": cls}, backend=backend)
    cls[0, 0] = -2
    with pytest.raises(DataError, match=r"input `cls` holds token id -2 at sequence 0, step 0; one_hot in cell "
                                        r"`rnn` has 5 entries"):
        api.run(program, inputs={"tok": tok * 0, "cls": cls}, backend=backend)


def test_the_cli_reports_a_bad_id_in_an_input_file(cli, tmp_path):
    path = tmp_path / "ids.json"
    path.write_text('{"ch": [[0, 1, 40]]}')
    code, out, err = cli("run", SPECS / "char_predictor.yaml", "--input", path)
    assert code == 1
    assert "internal error" not in err
    assert "input `ch` holds token id 40 at sequence 0, step 2; the vocabulary has 32 entries" in err
