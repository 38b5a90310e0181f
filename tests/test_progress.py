"""Progress bars: the chunked scan behind them gives the very same numbers, and every step ticks once."""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from rnncompile import drivers
from rnncompile.drivers import Executable, progress_total
from rnncompile.backends.c.build import find_compiler
from conftest import SPECS

BACKENDS = ["numpy", "python"] + (["c"] if find_compiler() else [])


class Ticks:
    def __init__(self):
        self.n = 0

    def update(self, n):
        self.n += n


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", ["lstm", "bigru", "deep_lstm", "seq2seq"])
def test_scans_in_chunks_agree_with_one_call_and_a_bar_changes_nothing(monkeypatch, spec, backend):
    from rnncompile.api import input_infos
    from rnncompile.data import random_inputs

    program = rnncompile.compile(SPECS / f"{spec}.yaml")
    x = random_inputs(input_infos(program), 2, 30, 0, vocab_size=len(program.vocab.tokens) if program.vocab else None)
    params = rnncompile.make_params(program)
    exe = Executable.cached(program, backend)
    monkeypatch.setattr(drivers, "SCAN_CHUNK", 1000)
    whole = exe.run(x, params)
    monkeypatch.setattr(drivers, "SCAN_CHUNK", 7)  # 7 does not divide 30: a short last chunk, both directions
    chunked = exe.run(x, params)
    ticks = Ticks()
    shown = exe.run(x, params, progress=ticks)
    for got, want in [(chunked.outputs, whole.outputs), (chunked.final_state, whole.final_state)]:
        for k in want:  # a matrix product over fewer rows may round differently in the last bit
            np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
    for k in chunked.outputs:
        np.testing.assert_array_equal(shown.outputs[k], chunked.outputs[k])
    for k in chunked.final_state:
        np.testing.assert_array_equal(shown.final_state[k], chunked.final_state[k])
    if program.plan.decoder is None:
        assert ticks.n == progress_total(program, 30)
    else:  # a decoder may stop at its end token before its last step
        assert progress_total(program, 30) - program.plan.decoder.steps <= ticks.n <= progress_total(program, 30)


def test_progress_total_counts_each_direction_and_layer():
    assert progress_total(rnncompile.compile(SPECS / "bigru.yaml"), 10) == 40  # 2 layers, 2 directions
    assert progress_total(rnncompile.compile(SPECS / "deep_lstm.yaml"), 10) == 20
    assert progress_total(rnncompile.compile(SPECS / "captioner.yaml"), 12, 12) == 12


def test_the_cli_shows_a_bar_only_when_asked_off_a_terminal(cli):
    code, out, err = cli("run", SPECS / "lstm.yaml", "--steps", "2000", "--progress")
    assert code == 0
    assert "lstm:" in err and "/2000" in err
    code, out, err = cli("run", SPECS / "lstm.yaml", "--steps", "2000")  # stderr is not a terminal here
    assert code == 0 and err == ""


def test_complete_shows_a_bar_when_asked(cli):
    code, out, err = cli("complete", SPECS / "char_predictor.yaml", "-p", "he", "-n", "5", "--progress")
    assert code == 0
    assert "completing" in err


def test_a_tree_fold_ticks_once_per_node(cli):
    program = rnncompile.compile(SPECS / "treelstm_childsum.yaml")
    from rnncompile.trees.api import default_trees
    from rnncompile.trees.forest import Forest
    from rnncompile.trees.run import FoldRunner, check_forest
    from rnncompile.trees.schedule import make_schedule

    forest = Forest.of(default_trees(program, 6, 0))
    schedule = make_schedule(forest.parent)
    tokens = check_forest(forest, program.plan.fold, program.vocab, schedule.nchildren)
    runner = FoldRunner(Executable.cached(program, "numpy"), rnncompile.make_params(program))
    for mode in ("level", "node"):
        ticks = Ticks()
        runner.run(forest, tokens, mode, False, schedule, ticks)
        assert ticks.n == forest.size
    code, out, err = cli("run", SPECS / "treelstm_childsum.yaml", "--batch", "6", "--progress")
    assert code == 0 and "folding" in err
