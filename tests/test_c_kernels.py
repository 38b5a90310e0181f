"""The c backend's fast kernels: sigmoid and tanh (their stated error bounds, over a dense grid, against
NumPy in float32 and float64), the blocked matrix product (the same numbers as the one-example sum, for
every block shape and tail), and params bound once per content of the weights. Everything here skips
without a C compiler."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.c import CellRunner, build
from rnncompile.backends.c.emitters import CTYPES, gemm_kernel, prelude
from conftest import SPECS

pytestmark = pytest.mark.skipif(build.find_compiler() is None, reason="no C compiler on PATH")

BOUND_ULP = {"exp_neg": 2.0, "sigmoid": 3.5, "tanh": 3.5}  # as stated in backends/c/emitters.py
FLUSHED = {"float32": 2e-38, "float64": 1e-307}  # exp below e^-87 (e^-708) is 0: absolute error under this


def _activations(dtype: str):
    c = CTYPES[dtype]
    source = "#include <math.h>\n#include <stdint.h>\n\n" + prelude({"sigmoid", "tanh"}, c) + "".join(f"""

void apply_{f}(const {c.name} *x, {c.name} *y, long n)
{{
    for (long i = 0; i < n; ++i) y[i] = rc_{f}(x[i]);
}}""" for f in BOUND_ULP) + "\n"
    lib = build.load(source)

    def apply(f: str, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype)
        y = np.empty_like(x)
        getattr(lib, f"apply_{f}")(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(y.ctypes.data),
                                    ctypes.c_long(x.size))
        return y
    return apply


def _grid(dtype: str) -> np.ndarray:
    """Dense near 0 and around the switch of tanh's two forms, even out to +-30, geometric out to +-800."""
    parts = [np.linspace(-30, 30, 600_001), np.linspace(-1, 1, 400_001), np.linspace(-0.4, 0.4, 200_001),
             np.geomspace(1e-30, 800, 100_001), -np.geomspace(1e-30, 800, 100_001)]
    return np.concatenate(parts).astype(dtype)


def _exact(f: str, x: np.ndarray) -> np.ndarray:
    """The function in more precision than `x` has (long double where the platform has it)."""
    wide = np.longdouble if x.dtype == np.float64 else np.float64
    xw = x.astype(wide)
    with np.errstate(over="ignore"):
        return {"exp_neg": lambda: np.exp(xw), "sigmoid": lambda: 1 / (1 + np.exp(-xw)),
                "tanh": lambda: np.tanh(xw)}[f]()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("f", sorted(BOUND_ULP))
def test_activation_error_is_within_its_stated_bound(f, dtype):
    apply, x = _activations(dtype), _grid(dtype)
    if f == "exp_neg":
        x = -np.abs(x)
    got, exact = apply(f, x), _exact(f, x)
    tiny = np.finfo(dtype).tiny
    ulp = np.spacing(np.maximum(np.abs(exact.astype(dtype)), tiny)).astype(exact.dtype)
    err = np.abs(got.astype(exact.dtype) - exact)
    normal = np.abs(exact) >= FLUSHED[dtype]
    worst = float(np.max(err[normal] / ulp[normal]))
    assert worst <= BOUND_ULP[f], f"rc_{f} ({dtype}): {worst:.2f} ulp"
    assert float(np.max(err[~normal], initial=0)) < FLUSHED[dtype]
    # and within the conformance tolerance of NumPy's own (what the numpy backend computes)
    with np.errstate(over="ignore"):
        ref = {"exp_neg": np.exp, "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[f](x)
    np.testing.assert_allclose(got, ref, rtol=4 * np.finfo(dtype).eps, atol=FLUSHED[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations_keep_special_values(dtype):
    apply = _activations(dtype)
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 800, -800], dtype)
    tanh, sigmoid = apply("tanh", x), apply("sigmoid", x)
    np.testing.assert_array_equal(tanh, np.array([np.nan, 1, -1, 0, -0.0, 1e-30, -1e-30, 1, -1], dtype))
    assert np.signbit(tanh[4]) and not np.signbit(tanh[3])  # tanh(-0) is -0, as in NumPy
    np.testing.assert_array_equal(sigmoid, np.array([np.nan, 1, 0, 0.5, 0.5, 0.5, 0.5, 1, 0], dtype))
    assert np.isnan(apply("exp_neg", np.array([np.nan], dtype))[0])


def _gemm(dtype: str, k: int, m: int):
    c = CTYPES[dtype]
    lines = gemm_kernel("rc_test_gemm", c, k, m, "/* under test */")
    lines[1] = lines[1].replace("static void", "void")
    lib = build.load("\n".join(lines) + "\n")
    fn = lib.rc_test_gemm
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p]
    return fn


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k, m", [(1, 5), (7, 32), (19, 76), (64, 100)])  # a tile, tails, one sum term
def test_blocked_product_gives_the_sums_in_index_order(dtype, k, m):
    """o = x @ W^T for every number of rows (blocks of 12, 4 and 1), rows apart by a stride, summed from 0
    in index order (bit for bit the one-example code: test_backend_c.py checks that on a whole scan; here,
    against NumPy's sum in the same order, within the rounding a fused multiply-add may save)."""
    fn, rng = _gemm(dtype, k, m), np.random.default_rng(k * m)
    wt = rng.standard_normal((k, m)).astype(dtype)
    for n in (0, 1, 3, 4, 5, 12, 13, 17, 29):
        xs, os_ = k + 3, m + 2  # rows further apart than they are long
        x = rng.standard_normal((n, xs)).astype(dtype)
        o = np.full((n, os_), 7.0, dtype)
        fn(n, x.ctypes.data, xs, o.ctypes.data, os_, wt.ctypes.data)
        want = np.zeros((n, m), dtype)
        for p in range(k):
            want = want + x[:, p:p + 1] * wt[p]
        scale = np.abs(x[:, :k]) @ np.abs(wt)  # the size of the sum's terms: what its rounding is relative to
        assert (np.abs(o[:, :m] - want) <= 2 * k * np.finfo(dtype).eps * scale).all()
        assert (o[:, m:] == 7.0).all()  # nothing written between rows


def test_params_are_bound_once_per_content_of_the_weights():
    program = rnncompile.compile(SPECS / "lstm.yaml", dims={"I": 3, "H": 5})
    runner = CellRunner(program.scan_cell)
    params = rnncompile.make_params(program, seed=1)
    first = runner.bind(params)
    assert runner.bind({k: v.copy() for k, v in params.items()}) is first  # equal values: the same binding
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    before = first.scan({"x": x}).outputs["y"]
    kept = params["W_i"][0, 0]
    params["W_i"][0, 0] += 1.0  # changed in place: bound anew, and the run sees the change
    second = runner.bind(params)
    assert second is not first
    assert not np.array_equal(second.scan({"x": x}).outputs["y"], before)
    params["W_i"][0, 0] = kept
    assert runner.bind(params) is first  # an earlier set is still kept
    np.testing.assert_array_equal(runner.bind(params).scan({"x": x}).outputs["y"], before)
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    negative_zero = {k: -z for k, z in zero.items()}
    assert runner.bind(zero) is not runner.bind(negative_zero)  # -0.0 is not 0.0 to a param-only 1 / x
