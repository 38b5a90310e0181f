"""The NumPy backend against textbook equations (tests/reference.py) on the shipped specs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import reference
import rnncompile

SPECS = Path(__file__).resolve().parents[1] / "specs"
CELLS = ("elman", "lstm", "gru")
SIZES = ((1, 1), (3, 5), (8, 16))  # (I, H)
STEPS = (1, 7)
BATCH = 3
# float32 runs are measured against the float64 reference on the same (float32-rounded) weights
TOL = {"float64": dict(rtol=1e-9, atol=1e-9), "float32": dict(rtol=1e-5, atol=1e-5)}


def _compile(cell, i, h, optimize=True):
    return rnncompile.compile(SPECS / f"{cell}.yaml", dims={"I": i, "H": h, "O": 3} if cell == "elman"
                              else {"I": i, "H": h}, optimize=optimize)


def _case(cell, i, h, steps, dtype, seed=0):
    """A program, random params (biases too), input and non-zero initial state, all in `dtype`."""
    prog = _compile(cell, i, h)
    rng = np.random.default_rng([seed, i, h, steps])
    params = {k: v.astype(dtype) for k, v in reference.random_params(prog.params, rng).items()}
    x = rng.standard_normal((BATCH, steps, i)).astype(dtype)
    state = {k: v.astype(dtype) for k, v in reference.random_state(prog.scan_cell.states, BATCH, rng).items()}
    return prog, params, x, state


def _as64(d):
    return {k: np.asarray(v, np.float64) for k, v in d.items()}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("i,h", SIZES)
@pytest.mark.parametrize("cell", CELLS)
def test_matches_textbook_equations(cell, i, h, steps, dtype):
    prog, params, x, state = _case(cell, i, h, steps, dtype)
    res = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, dtype=dtype)
    want_y, want_state = reference.run(cell, _as64(params), x.astype(np.float64), _as64(state))

    assert res.outputs["y"].dtype == np.dtype(dtype)
    assert res.outputs["y"].shape == want_y.shape
    np.testing.assert_allclose(res.outputs["y"], want_y, **TOL[dtype])
    assert set(res.final_state) == set(want_state)
    for name, want in want_state.items():
        assert res.final_state[name].shape == (BATCH, h)
        np.testing.assert_allclose(res.final_state[name], want, **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_error_is_well_inside_tolerance(cell):
    """Measures the largest float32 deviation at the largest size and a long-ish run."""
    prog, params, x, state = _case(cell, 8, 16, 50, "float32", seed=1)
    res = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, dtype="float32")
    want_y, _ = reference.run(cell, _as64(params), x.astype(np.float64), _as64(state))
    err = np.max(np.abs(res.outputs["y"].astype(np.float64) - want_y))
    assert err < 1e-5, f"{cell}: float32 max abs error {err:.3g}"


@pytest.mark.parametrize("cell", CELLS)
def test_seeded_params_and_default_state(cell):
    """make_params' own values and the zero initial state, through the public defaults."""
    prog = _compile(cell, 4, 6)
    params = rnncompile.make_params(prog, seed=3, dtype="float64")
    x = np.random.default_rng(3).standard_normal((2, 5, 4))
    res = rnncompile.run(prog, inputs={"x": x}, params=params, dtype="float64")
    zeros = {k: np.zeros((2, 6)) for k in prog.scan_cell.states}
    want_y, want_state = reference.run(cell, params, x, zeros)
    np.testing.assert_allclose(res.outputs["y"], want_y, rtol=1e-9, atol=1e-9)
    for name, want in want_state.items():
        np.testing.assert_allclose(res.final_state[name], want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("i,h", SIZES)
@pytest.mark.parametrize("cell", CELLS)
def test_optimisation_does_not_change_results(cell, i, h, dtype):
    prog, params, x, state = _case(cell, i, h, 7, dtype, seed=2)
    plain = _compile(cell, i, h, optimize=False)
    a = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, dtype=dtype)
    b = rnncompile.run(plain, inputs={"x": x}, params=params, init_state=state, dtype=dtype)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.outputs["y"], b.outputs["y"], **tol)
    for name in a.final_state:
        np.testing.assert_allclose(a.final_state[name], b.final_state[name], **tol, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_one_sequence_without_batch_axis(cell):
    """An input given as [T, I] runs as a batch of one."""
    prog, params, x, _ = _case(cell, 3, 5, 4, "float64")
    res = rnncompile.run(prog, inputs={"x": x[0]}, params=params, dtype="float64")
    full = rnncompile.run(prog, inputs={"x": x[:1]}, params=params, dtype="float64")
    np.testing.assert_array_equal(res.outputs["y"], full.outputs["y"])
