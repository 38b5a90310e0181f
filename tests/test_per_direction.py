"""A bidirectional layer whose directions run different cells (specs/bilstm_gru.yaml: an LSTM forward, a
smaller GRU in reverse, concatenated), against per-sequence NumPy from the equations; and the errors."""
from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile.errors import SpecError
from composition_reference import close, gru_cell, lstm_cell, per_sequence, random_params, softmax, sub

SPEC = Path(__file__).resolve().parents[1] / "specs" / "bilstm_gru.yaml"


@pytest.mark.parametrize("backend", ["numpy", "python", "c"])
def test_a_cell_per_direction_matches_numpy(backend):
    from rnncompile import registry

    if getattr(registry.get(backend), "unsupported", lambda p: None)(None):
        pytest.skip("no C compiler")
    prog = rnncompile.compile(str(SPEC))
    params = random_params(prog, 5, 0.8)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 10, 8))
    lengths = np.array([10, 4, 7])
    res = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64", backend=backend)
    fwd, ffin = per_sequence(lstm_cell, sub(params, "forward."), x, lengths, hidden=16, states=("h", "c"))
    rev, rfin = per_sequence(gru_cell, sub(params, "reverse."), x, lengths, reverse=True, hidden=8)
    h = np.concatenate([fwd, rev], axis=-1)
    y = softmax(h @ params["head.W_y"].T + params["head.b_y"])
    for i, n in enumerate(lengths):
        close(res.outputs["y"][i, :n], y[i, :n], f"sequence {i}")
    close(res.final_state["forward.c"], ffin["c"])
    close(res.final_state["reverse.h"], rfin["h"])
    assert set(res.final_state) == {"forward.h", "forward.c", "reverse.h"}


def test_the_flow_names_both_cells():
    text = rnncompile.compile(str(SPEC)).flow
    scans = [(op.use.cell.name, op.reverse) for op in text.of("scan")]
    assert scans == [("lstm", False), ("gru", True)]


def _spec(scan: str, direction: str = "bidirectional", merge: str = "concat", gru_out: str = "h") -> str:
    text = SPEC.read_text()
    text = text.replace("scan: {forward: lstm, reverse: gru}", f"scan: {scan}")
    text = text.replace("  direction: bidirectional\n", f"  direction: {direction}\n")
    text = text.replace("  merge: concat ", f"  merge: {merge} ")
    return text.replace("    outputs: {h: h}\nmodel:", f"    outputs: {{{gru_out}: h}}\nmodel:")


def _error(text: str) -> str:
    with pytest.raises(SpecError) as e:
        rnncompile.compile_text(text, file="bi.yaml")
    return str(e.value)


def test_a_cell_per_direction_needs_bidirectional():
    msg = _error(_spec("{forward: lstm, reverse: gru}", direction="forward"))
    assert "needs `direction: bidirectional`" in msg and "[model.scan]" in msg


def test_an_unknown_reverse_cell_is_located():
    msg = _error(_spec("{forward: lstm, reverse: gur}"))
    assert "no cell named `gur`" in msg and "model.scan.reverse" in msg and "did you mean `gru`" in msg


def test_directions_with_other_outputs_cannot_merge():
    msg = _error(_spec("{forward: lstm, reverse: gru}", gru_out="g"))
    assert "cells `lstm` and `gru` give different outputs (h and g)" in msg


def test_sum_needs_one_width():
    msg = _error(_spec("{forward: lstm, reverse: gru}", merge="sum"))
    assert "output `h` is [16] forward (`lstm`) and [8] reverse (`gru`); merge: sum needs one shape" in msg
