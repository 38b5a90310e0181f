"""The NumPy backend's fast paths change no value: results written into dying temporaries, weights
prepared once per bind, the program's Executable kept between runs."""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from conftest import SPECS
from rnncompile.graph import stages

SEQUENCE_SPECS = [p for p in sorted(SPECS.glob("*.yaml"))
                  if rnncompile.compile(p).plan.kind == "sequence"]


def _random(prog, seed):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-0.5, 0.5, info.shape) for k, info in prog.params.items()}


@pytest.mark.parametrize("spec", SEQUENCE_SPECS, ids=[p.stem for p in SEQUENCE_SPECS])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_in_place_run_equals_the_run_that_keeps_every_value(spec, dtype):
    """A traced run writes into no argument (every node keeps its value); the plain run does: bit for bit
    the same outputs and final states."""
    prog = rnncompile.compile(spec)
    params = _random(prog, 1)
    fast = rnncompile.run(prog, params=params, batch=2, steps=4, seed=2, dtype=dtype)
    kept = rnncompile.run(prog, params=params, batch=2, steps=4, seed=2, dtype=dtype, trace=True)
    for k in fast.outputs:
        np.testing.assert_array_equal(fast.outputs[k], kept.outputs[k], err_msg=k)
    for k in fast.final_state:
        np.testing.assert_array_equal(fast.final_state[k], kept.final_state[k], err_msg=k)


def test_run_leaves_the_callers_arrays_alone():
    prog = rnncompile.compile(SPECS / "lstm.yaml", dims={"I": 3, "H": 4})
    rng = np.random.default_rng(3)
    params = {k: v.astype(np.float32) for k, v in _random(prog, 3).items()}
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    state = {"h": rng.standard_normal((2, 4)).astype(np.float32), "c": rng.standard_normal((2, 4)).astype(np.float32)}
    before = [a.copy() for a in (x, *params.values(), *state.values())]
    rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state)
    for a, b in zip((x, *params.values(), *state.values()), before):
        np.testing.assert_array_equal(a, b)


def test_lstm_writes_in_place_only_into_temporaries():
    """The bias add into the input projection, the per-step add into the recurrent GEMM's result,
    i * g into g, f*c + i*g into f*c, and o * tanh(c) into o; never into a state's
    next value, nor into a slice (a view of a value other nodes read)."""
    prog = rnncompile.compile(SPECS / "lstm.yaml")
    runner = rnncompile.Executable(prog).runners[prog.main_use.prefix]
    cell = runner.cell
    into = sorted((runner.stage[s.nid], cell.node(s.nid).op, cell.node(s.args[s.into]).op)
                  for plan in runner.plan.values() for s in plan if s.into is not None)
    assert into == [("loop", "add", "matmul"), ("loop", "add", "mul"), ("loop", "mul", "sigmoid"),
                    ("loop", "mul", "tanh"), ("seq", "add", "matmul")]
    written = {s.args[s.into] for plan in runner.plan.values() for s in plan if s.into is not None}
    assert not written & (set(runner.updates.values()) | set(runner.states.values()))


def test_trace_keeps_the_value_a_later_node_overwrites_in_a_plain_run():
    prog = rnncompile.compile(SPECS / "lstm.yaml", dims={"I": 3, "H": 4})
    params = _random(prog, 4)
    x = np.random.default_rng(4).standard_normal((2, 5, 3))
    res = rnncompile.run(prog, inputs={"x": x}, params=params, dtype="float64", trace=True)
    cell = prog.scan_cell
    (mm,) = [n for n in cell.nodes_of("matmul") if stages(cell)[n] == "seq"]
    w_x = np.concatenate([params[f"W_{g}"][:, 4:] for g in "ifgo"])
    np.testing.assert_allclose(res.trace[""][mm], x @ w_x.T, rtol=1e-12, atol=1e-12)


def test_run_plans_a_program_once_per_backend_and_dtype():
    prog = rnncompile.compile(SPECS / "gru.yaml")
    a = rnncompile.run(prog, batch=2, steps=3)
    b = rnncompile.run(prog, batch=2, steps=3)
    assert list(prog.executables) == [("numpy", "float32")]
    np.testing.assert_array_equal(a.outputs["y"], b.outputs["y"])
    rnncompile.run(prog, batch=2, steps=3, dtype="float64")
    assert sorted(prog.executables) == [("numpy", "float32"), ("numpy", "float64")]
    assert rnncompile.Executable.cached(prog) is prog.executables[("numpy", "float32")]


def test_a_float32_value_is_never_overwritten_with_float64_results():
    """one_hot is float32 by definition; in a float64 run, `-one_hot(t) + x` (all before the loop) must not
    be written into the float32 negation: that would round the float64 sum to float32."""
    text = """rnncompile: 1
name: narrow
vocab: {tokens: [a, b, c]}
dims: {T: 3}
cells:
  c:
    inputs: {t: token, x: 3}
    state: {h: 3}
    update:
      h: -one_hot(t, 3) + x + h
    outputs: {y: h}
model: {scan: c, input: {t: [T], x: [T, 3]}}
"""
    prog = rnncompile.compile_text(text, "narrow.yaml")
    ids = np.array([[0, 1, 2]])
    x = np.full((1, 3, 3), 0.1 + 1e-12)
    got = rnncompile.run(prog, inputs={"t": ids, "x": x}, dtype="float64").outputs["y"][0]
    want = np.cumsum(-np.eye(3)[ids[0]] + x[0], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)
