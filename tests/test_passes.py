"""Every pass of the pipeline on every shipped spec: the verifier holds after each, values never change."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile.graph import stages, to_text, verify
from rnncompile.passes import PIPELINE, optimise
from rnncompile.program import Program

SPECS = sorted((Path(__file__).resolve().parents[1] / "specs").glob("*.yaml"))
SPEC_IDS = [p.stem for p in SPECS]
PASS_NAMES = [name for name, _ in PIPELINE]


def _plain(path):
    return rnncompile.compile(path, optimize=False)


def _with(prog, prefix, cell):
    """The program with `cell` run in place of the graph of the cell use at `prefix`."""
    return Program(prog.checked, {**prog.optimised, prefix: cell})


def _run(prog, seed=0):
    """Random params (biases too), seeded random inputs, float64."""
    rng = np.random.default_rng(seed)
    params = {k: rng.uniform(-0.5, 0.5, info.shape) for k, info in prog.params.items()}
    return rnncompile.run(prog, params=params, batch=2, steps=4, seed=seed, dtype="float64")


def _assert_same_run(a, b):
    assert a.outputs.keys() == b.outputs.keys()
    for k in a.outputs:
        np.testing.assert_allclose(a.outputs[k], b.outputs[k], rtol=1e-12, atol=1e-12, err_msg=k)
    assert a.final_state.keys() == b.final_state.keys()
    for k in a.final_state:
        np.testing.assert_allclose(a.final_state[k], b.final_state[k], rtol=1e-12, atol=1e-12, err_msg=k)
    if a.tokens is not None or b.tokens is not None:
        np.testing.assert_array_equal(a.tokens, b.tokens)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_every_pass_keeps_the_graph_valid_and_the_values(spec):
    prog = _plain(spec)
    want = _run(prog)
    for use in prog.plan.uses():
        cell = prog.optimised[use.prefix]
        verify(cell)
        before = to_text(cell)
        for pass_name, fn in PIPELINE:
            cell = fn(cell)
            try:
                verify(cell)
            except ValueError as e:
                pytest.fail(f"{spec.name}: {use.prefix or 'main'} cell {cell.name}: after {pass_name}: {e}")
            _assert_same_run(_run(_with(prog, use.prefix, cell)), want)
        assert to_text(prog.optimised[use.prefix]) == before, "a pass changed its input graph in place"


@pytest.mark.parametrize("pass_name", sorted(set(PASS_NAMES)))
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_each_pass_alone(spec, pass_name):
    """Each pass on the unoptimised graphs, not only after the ones before it in the pipeline."""
    prog = _plain(spec)
    fn = dict(PIPELINE)[pass_name]
    changed = dict(prog.optimised)
    for prefix, cell in prog.optimised.items():
        changed[prefix] = fn(cell)
        verify(changed[prefix])
    _assert_same_run(_run(Program(prog.checked, changed)), _run(prog))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_optimised_program_equals_unoptimised(spec):
    _assert_same_run(_run(rnncompile.compile(spec), seed=3), _run(_plain(spec), seed=3))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_pipeline_is_idempotent(spec):
    """Optimising an optimised graph changes nothing more."""
    prog = rnncompile.compile(spec)
    for cell in prog.optimised.values():
        again, _ = optimise(cell)
        assert to_text(again) == to_text(cell)


def _matmuls_by_stage(cell):
    st = stages(cell)
    out = {"const": 0, "seq": 0, "loop": 0}
    for n in cell.nodes_of("matmul"):
        out[st[n]] += 1
    return out


def _lstm(dims=None):
    spec = next(p for p in SPECS if p.stem == "lstm")
    return rnncompile.compile(spec, dims=dims), rnncompile.compile(spec, dims=dims, optimize=False)


def test_lstm_hoisting_and_fusion_leave_one_loop_matmul():
    prog, plain = _lstm()
    assert _matmuls_by_stage(plain.scan_cell) == {"const": 0, "seq": 0, "loop": 4}
    assert _matmuls_by_stage(prog.scan_cell) == {"const": 0, "seq": 1, "loop": 1}
    h = prog.dims["H"]
    (loop_mm,) = [n for n in prog.scan_cell.nodes_of("matmul") if stages(prog.scan_cell)[n] == "loop"]
    assert prog.scan_cell.node(loop_mm).shape == (4 * h,)


def test_lstm_hoisting_alone_splits_but_does_not_fuse():
    _, plain = _lstm()
    hoist = dict(PIPELINE)["hoist-inputs"]
    assert _matmuls_by_stage(hoist(plain.scan_cell)) == {"const": 0, "seq": 4, "loop": 4}


def test_gru_fuses_recurrent_matmuls_including_the_candidate():
    spec = next(p for p in SPECS if p.stem == "gru")
    prog = rnncompile.compile(spec)
    assert _matmuls_by_stage(prog.scan_cell) == {"const": 0, "seq": 1, "loop": 1}


@pytest.mark.parametrize("dims", [{"I": 1, "H": 1}, {"I": 3, "H": 5}, {"I": 8, "H": 16}])
def test_lstm_optimised_equals_unoptimised(dims):
    prog, plain = _lstm(dims)
    _assert_same_run(_run(prog, seed=4), _run(plain, seed=4))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_pass_log_counts_nodes(spec):
    prog = rnncompile.compile(spec)
    for name, log in prog.pass_log.items():
        assert [entry[0] for entry in log] == PASS_NAMES
        assert all(after == before_next for (_, _, after), (_, before_next, _) in zip(log, log[1:]))
        assert log[-1][2] == prog.optimised[name].g.number_of_nodes()
