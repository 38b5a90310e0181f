"""The c backend's fast kernels: sigmoid and tanh (their stated error bounds, over a dense grid, against
NumPy in float32 and float64), the register-tiled matrix product (the same numbers as the one-example sum,
for every tile shape, tail, group and host tiling; its weights in panels on cache lines; a whole scan
under each tiling), and params bound once per content of the weights. Everything here skips without a
C compiler."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.c import CellRunner, build
from rnncompile.backends.c.emitters import CTYPES, prelude
from rnncompile.backends.c.gemm import (ALIGN, AVX2, AVX512, GENERIC, gemm_kernel, host_tiling, panel_length, panels,
                                        vector_types)
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


def _gemm(dtype: str, k: int, m: int, xs: int, os_: int, tiling):
    """The kernel under test, and beside it the plain loop of the one-example code (each sum from 0, in
    index order), built together with the simulation's flags."""
    c = CTYPES[dtype]
    T = c.name
    lines = gemm_kernel("rc_test_gemm", c, k, m, xs, os_, tiling, "/* under test */")
    lines[1] = lines[1].replace("static void", "void")
    plain = f"""
void rc_plain_gemm(int n, const {T} *x, {T} *o, const {T} *wt)
{{
    for (int r = 0; r < n; ++r) {{
        for (int j = 0; j < {m}; ++j) o[(long)r * {os_} + j] = 0;
        for (int p = 0; p < {k}; ++p) {{
            const {T} xp = x[(long)r * {xs} + p];
            for (int j = 0; j < {m}; ++j) o[(long)r * {os_} + j] += wt[p * {m} + j] * xp;
        }}
    }}
}}
"""
    lib = build.load("#include <string.h>\n\n" + vector_types(c, tiling) + "\n\n" + "\n".join(lines) + "\n" + plain)
    for fn in (lib.rc_test_gemm, lib.rc_plain_gemm):
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.rc_test_gemm.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long] + [ctypes.c_void_p] * 3
    return lib.rc_test_gemm, lib.rc_plain_gemm


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tiling", [AVX512, AVX2, GENERIC], ids=["avx512", "avx2", "generic"])
@pytest.mark.parametrize("k, m", [(1, 5), (7, 32), (19, 76), (64, 100), (3, 420), (2, 800)])  # tails, blocks of panels
def test_blocked_product_gives_the_sums_in_index_order(dtype, tiling, k, m):
    """o = x @ W^T for every number of rows (each tile height and the tails) in one or more groups, W^T in
    panels (tails, one and several blocks of them), rows of x and o further apart than they are long: bit
    for bit the plain loop the one-example code is (each sum from 0, in index order), and within its
    rounding of NumPy's. Every tiling builds on any host (its vectors are GCC's generic ones); only its
    speed is the host's."""
    xs, os_ = k + 3, m + 2
    fn, plain = _gemm(dtype, k, m, xs, os_, tiling)
    rng = np.random.default_rng(k * m)
    wt = rng.standard_normal((k, m)).astype(dtype)
    w = panels(wt, tiling.width(CTYPES[dtype]), panel_length(k, m, CTYPES[dtype], tiling))
    for n, groups in ((0, 1), (1, 1), (2, 1), (3, 2), (4, 1), (5, 1), (7, 3), (8, 1), (12, 2), (13, 1), (17, 1),
                      (24, 1), (29, 2)):
        gap = 5  # groups further apart than their rows reach (as an example's steps in `pre` are)
        x = rng.standard_normal((groups, n + gap, xs)).astype(dtype)
        o, want = np.full((groups, n + gap, os_), 7.0, dtype), np.full((groups, n + gap, os_), 7.0, dtype)
        fn(n, groups, (n + gap) * xs, (n + gap) * os_, x.ctypes.data, o.ctypes.data, w.ctypes.data)
        for g in range(groups):
            plain(n, x[g].ctypes.data, want[g].ctypes.data, wt.ctypes.data)
        np.testing.assert_array_equal(o, want)
        assert (o[:, n:] == 7.0).all() and (o[:, :, m:] == 7.0).all()  # nothing written between rows or groups
        rows = x[:, :n, :k]
        scale = np.abs(rows) @ np.abs(wt)  # the size of the sum's terms: what its rounding is relative to
        assert (np.abs(o[:, :n, :m] - rows @ wt) <= 2 * k * np.finfo(dtype).eps * scale).all()


def test_panels_lay_out_the_transpose_column_blocks_side_by_side():
    wt = np.arange(3 * 5, dtype=np.float32).reshape(3, 5)
    got = panels(wt, 2, 20)  # 3 panels of [3][2], the last half zeros, then 2 zeros of padding
    want = np.concatenate([np.pad(wt, ((0, 0), (0, 1)))[:, j:j + 2].ravel() for j in (0, 2, 4)] + [np.zeros(2)])
    np.testing.assert_array_equal(got, want)
    assert panel_length(3, 5, CTYPES["float32"], AVX512) == 96  # one panel of 3 x 32, a whole number of lines
    assert panel_length(256, 1024, CTYPES["float32"], AVX512) == 256 * 1024


def test_the_simulation_packs_its_weights_on_cache_lines():
    program = rnncompile.compile(SPECS / "lstm.yaml", dims={"I": 3, "H": 5})
    bound = CellRunner(program.scan_cell).bind(rnncompile.make_params(program, seed=1))
    x = np.ones((2, 4, 3), np.float32)
    bound.scan({"x": x})
    packed = next(iter(bound._k.values()))
    assert packed.ctypes.data % ALIGN == 0
    code = bound.r.compiled(None).code
    tiling = host_tiling(build.cpu_flags())
    assert [f.panel for f in code.consts][:2] == [tiling.width(CTYPES["float32"])] * 2
    assert all(f.offset * 4 % ALIGN == 0 for f in code.consts if f.panel)


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


@pytest.mark.parametrize("tiling", [AVX512, AVX2, GENERIC], ids=["avx512", "avx2", "generic"])
def test_every_tiling_scans_the_numbers_of_one_example_at_a_time(tiling):
    """A whole blocked scan written for each host's tiling (GRU: three products, two hoisted; 3H = 57, panels
    with a tail; 29 examples: every tile height) gives the one-example scan's outputs and state bit for bit."""
    from rnncompile.backends.c import Compiled, assemble
    from rnncompile.backends.c.cell import CellWriter
    from rnncompile.backends.c.consts import const_values, pack

    program = rnncompile.compile(SPECS / "gru.yaml", dims={"I": 5, "H": 19})
    cell, f32 = program.scan_cell, CTYPES["float32"]
    rng = np.random.default_rng(7)
    params = {k: rng.uniform(-0.5, 0.5, info.shape).astype(np.float32) for k, info in program.params.items()}
    batch, steps = 29, 37
    x = rng.standard_normal((batch, steps, 5)).astype(np.float32)
    got = []
    for rows in (1, 24):
        code = CellWriter(cell, "gru", f32, rows=rows, tiling=tiling).write()
        comp = Compiled(code, assemble("/* test */", [code], f32))
        k = pack(code, const_values(cell, params, np.float32), np.float32)
        h, y = np.zeros((batch, 19), np.float32), np.empty((batch, steps, 19), np.float32)
        work = np.empty(rows * code.v_size, np.float32)
        pre = np.empty(max(1, code.pre_size), np.float32)
        extra = [pre.ctypes.data] if rows > 1 else []
        assert comp.scan(k.ctypes.data, batch, steps, x.ctypes.data, h.ctypes.data, None, 0, y.ctypes.data,
                         work.ctypes.data, None, *extra) == 0
        got.append((y, h))
    for one, blocked in zip(*got):
        np.testing.assert_array_equal(one, blocked)
    assert np.abs(got[0][0]).max() > 0.01
