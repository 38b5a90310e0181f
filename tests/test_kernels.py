"""Every NumPy kernel against the op table's one-example `meaning`, for every batching pattern.

A kernel gets flags saying which arguments carry a leading batch axis; the
expected result applies `meaning` to example b of each batched argument (and
the whole of each unbatched one) and stacks the results over b.
"""
from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from rnncompile.backends.numpy import NumpyBackend
from rnncompile.backends.numpy.kernels import KERNELS, kernel
from rnncompile.ops import OPS, REQUIRED

B = 3

# op -> cases of (unbatched arg shapes, attrs, arg kind); kind: "real", "positive" (log, sqrt,
# pow's base, div's denominator) or "token" (integer ids below the table size / class count)
CASES: dict[str, list] = {}


def case(op, shapes, attrs=None, kinds=None):
    CASES.setdefault(op, []).append((tuple(map(tuple, shapes)), attrs or {}, kinds or ("real",) * len(shapes)))


for _op in ("add", "sub", "mul", "maximum", "minimum"):
    for _shapes in (((4,), (4,)), ((), (4,)), ((4,), ()), ((2, 4), (4,)), ((4,), (2, 4)), ((2, 1), (3,))):
        case(_op, _shapes)
case("div", ((4,), (4,)), kinds=("real", "positive"))
case("div", ((), (2, 4)), kinds=("real", "positive"))
case("pow", ((4,), (4,)), kinds=("positive", "real"))
case("pow", ((2, 4), ()), kinds=("positive", "real"))
case("matmul", ((3, 4), (4,)))  # matrix @ vector (W @ x)
case("matmul", ((4,), (4, 3)))  # vector @ matrix (x @ M)
case("matmul", ((2, 4), (4, 3)))  # matrix @ matrix
case("matmul", ((3, 5), (5, 5)))  # [K, H] @ [H, H] (children.h @ U.T)
case("matmul", ((4,), (4,)))  # vector . vector
case("matmul", ((2, 3, 4), (4,)))  # a stack of matrices @ vector
for _op in ("neg", "sigmoid", "tanh", "relu", "softplus", "exp", "abs", "transpose"):
    case(_op, ((2, 3),) if _op == "transpose" else ((5,),))
    case(_op, ((2, 3, 4),) if _op == "transpose" else ((2, 3),))
for _op in ("log", "sqrt"):
    case(_op, ((5,),), kinds=("positive",))
    case(_op, ((2, 3),), kinds=("positive",))
case("hard_sigmoid", ((6,),))
case("hard_sigmoid", ((2, 3),), {"alpha": 0.5, "beta": 0.25})
for _axis in (-1, 0):
    case("softmax", ((5,),), {"axis": _axis})
    case("softmax", ((3, 4),), {"axis": _axis})
case("concat", ((3,), (2,)), {"axis": -1})
case("concat", ((3,), (2,), (1,)), {"axis": 0})
case("concat", ((2, 3), (1, 3)), {"axis": 0})
case("concat", ((2, 3), (2, 4)), {"axis": 1})
case("concat", ((2, 3), (2, 1)), {"axis": -1})
for _op in ("sum", "mean", "max"):
    for _axis in (None, 0, 1, -1):
        case(_op, ((3, 4),), {"axis": _axis})
    case(_op, ((5,),), {"axis": None})
    case(_op, ((5,),), {"axis": 0})
case("outer", ((3,), (4,)))
case("slice", ((6,),), {"start": 1, "stop": 4, "axis": 0})
case("slice", ((6,),), {"start": None, "stop": 2})
case("slice", ((4, 5),), {"start": 1, "stop": 3, "axis": 0})
case("slice", ((4, 5),), {"start": 2, "stop": 5, "axis": 1})
case("slice", ((4, 5),), {"start": 0, "stop": 2, "axis": -1})
case("index", ((4, 3),), {"i": 1})
case("index", ((4, 3),), {"i": -1})
case("index", ((5,),), {"i": 2})
case("chunk", ((8,),), {"n": 4, "i": 2})
case("chunk", ((2, 6),), {"n": 3, "i": 0})
case("flatten", ((2, 3),))
case("flatten", ((4,),))
case("flatten", ((2, 3, 2),))
case("expand", ((3, 4),), {"axis": 1, "n": 2})  # the adjoint of a sum over a middle axis, spread back
case("expand", ((4,),), {"axis": 0, "n": 3})
case("expand", ((2, 3),), {"axis": -1, "n": 2})
case("one_hot", ((),), {"n": 5}, ("token",))
case("one_hot", ((3,),), {"n": 5}, ("token",))
case("embed", ((), (5, 3)), kinds=("token", "real"))
case("embed", ((4,), (5, 3)), kinds=("token", "real"))
case("cosine", ((5, 3), (3,)))
case("cosine", ((4, 6), (6,)), {"eps": 1e-3})
case("shift", ((5,), (3,)))
case("shift", ((6,), (5,)))
case("shift", ((3,), (1,)))
case("sharpen", ((5,), ()), kinds=("positive", "positive"))
case("sharpen", ((4,), ()), kinds=("real", "positive"))  # negative entries count as 0
for _op in ("mod", "floordiv"):  # floor semantics for every sign: the reals' signs are mixed
    for _shapes in (((4,), (4,)), ((), (4,)), ((4,), ()), ((2, 4), (4,))):
        case(_op, _shapes)
    case(_op, ((6,), (6,)), kinds=("whole", "whole"))  # -3..3 by -3..3 without 0: exact remainders and quotients
for _op in ("lt", "le", "gt", "ge", "eq", "ne"):
    case(_op, ((4,), (4,)), kinds=("whole", "whole"))  # small integers: ties, so == and <= are exercised
    case(_op, ((2, 4), ()), kinds=("whole", "whole"))
    case(_op, ((), (4,)))
case("where", ((4,), (4,), (4,)), kinds=("bit", "real", "real"))
case("where", ((2, 4), (4,), ()), kinds=("bit", "real", "real"))
case("where", ((), (3,), (2, 3)), kinds=("bit", "real", "real"))
case("masked_softmax", ((5,), (5,)), kinds=("real", "mask"))  # attention over source steps: scores [S], mask [S]
case("masked_softmax", ((3, 4), (3, 4)), kinds=("real", "mask"))  # row 0 has every entry masked: zeros
case("masked_softmax", ((3, 4), (4,)), kinds=("real", "mask"))  # one mask for every row
case("masked_softmax", ((2, 3, 4), (3, 4)), kinds=("real", "mask"))
case("masked_softmax", ((4,), ()), kinds=("real", "mask"))  # a scalar mask of 1: plain softmax

# known kernel bugs: (op, case index, flags) -> reason; strict, so a fix shows up as XPASS
KNOWN_BUGS = {}  # (op, case, batch flags) -> reason, as strict xfails

KERNEL_OPS = sorted(n for n, op in OPS.items() if op.kind not in ("source", "sink"))
TOKENS = 5  # class count / table rows used by every token case


def _full_attrs(op, attrs):
    full = {**OPS[op].attrs, **attrs}
    assert not any(v is REQUIRED for v in full.values()), f"{op}: case misses a required attr"
    return full


def _array(rng, shape, kind, dtype):
    if kind == "token":
        return rng.integers(0, TOKENS, shape)
    if kind == "positive":
        return rng.uniform(0.5, 2.0, shape).astype(dtype)
    if kind in ("whole", "bit"):
        return _whole_or_bit(rng, shape, kind, dtype)
    if kind == "mask":
        return _mask(rng, shape, dtype)
    return rng.standard_normal(shape).astype(dtype)


def _mask(rng, shape, dtype):
    """`mask`: 0 or 1; every row along the last axis keeps an entry but the first of several rows, which has
    every entry masked (for a batched [B, N] mask: all of example 0)."""
    if not shape:
        return np.ones((), dtype)
    m = (rng.uniform(size=shape) < 0.6).reshape(-1, shape[-1])
    m[np.arange(len(m)), rng.integers(0, shape[-1], len(m))] = True
    if len(m) > 1:
        m[0] = False
    return m.reshape(shape).astype(dtype)


def _whole_or_bit(rng, shape, kind, dtype):
    """`whole`: integers in -3..3 but 0 (a divisor never is 0); `bit`: 0 or 1 (a condition)."""
    if kind == "bit":
        return rng.integers(0, 2, shape).astype(dtype)
    return rng.choice(np.array([-3, -2, -1, 1, 2, 3]), shape).astype(dtype)


def _meaning(op, args, attrs):
    return OPS[op].meaning(*args, **{k: v for k, v in attrs.items() if k in OPS[op].attrs})


def _params():
    for op in KERNEL_OPS:
        for n, (shapes, attrs, kinds) in enumerate(CASES.get(op, [])):
            for flags in itertools.product((False, True), repeat=len(shapes)):
                fl = "".join("B" if f else "-" for f in flags)
                bug = KNOWN_BUGS.get((op, n, flags))
                marks = [pytest.mark.xfail(reason=bug, strict=True, raises=IndexError)] if bug else []
                yield pytest.param(op, shapes, attrs, kinds, flags, id=f"{op}-{n}-{fl}", marks=marks)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op,shapes,attrs,kinds,flags", list(_params()))
def test_kernel_matches_meaning(op, shapes, attrs, kinds, flags, dtype):
    rng = np.random.default_rng(zlib.crc32(repr((op, shapes, attrs, flags)).encode()))
    attrs = _full_attrs(op, attrs)
    out_shape = OPS[op].shape(list(shapes), attrs)
    args = [_array(rng, ((B,) if f else ()) + s, k, dtype) for s, f, k in zip(shapes, flags, kinds)]
    fn = kernel(op, flags, shapes, attrs, out_shape)
    got = np.asarray(fn(*args))
    if any(flags):
        want = np.stack([np.asarray(_meaning(op, [a[b] if f else a for a, f in zip(args, flags)], attrs))
                         for b in range(B)])
        assert got.shape == (B,) + tuple(out_shape)
    else:  # nothing batched: the run-once (param-only) case
        want = np.asarray(_meaning(op, args, attrs))
        assert got.shape == tuple(out_shape)
    tol = 1e-12 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    if op not in ("one_hot",):  # one_hot is float32 by definition
        assert got.dtype == want.dtype, f"{op} returns {got.dtype}, meaning gives {want.dtype}"


def test_backend_has_a_kernel_for_every_op():
    missing = [n for n, op in OPS.items() if op.kind != "source" and n not in KERNELS]
    assert not missing, f"the NumPy backend has no kernel for: {', '.join(missing)}"
    assert NumpyBackend.kernels is KERNELS


def test_every_op_has_a_kernel_case_here():
    """A new op in the table fails here until this file tests its kernel."""
    untested = [n for n in KERNEL_OPS if n not in CASES]
    assert not untested, f"add cases to tests/test_kernels.py for: {', '.join(untested)}"
    assert set(CASES) <= set(OPS), f"cases for unknown ops: {set(CASES) - set(OPS)}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_is_the_meaning_and_never_overflows(dtype):
    """The kernel computes 0.5 * tanh(0.5 x) + 0.5: within a few ulps of 1 of the table's meaning on
    ordinary and huge arguments, no warning (overflow, invalid) anywhere, 0 and 1 at -inf and +inf."""
    big = np.finfo(dtype).max
    x = np.concatenate([np.linspace(-40, 40, 801), [-1e4, 1e4, -1e30, 1e30, -big, big, -np.inf, np.inf, 0.0]])
    x = x.astype(dtype)
    fn = kernel("sigmoid", (True,), [(x.size,)], {}, (x.size,))
    with np.errstate(all="raise"):
        got = fn(x[None])[0]
    with np.errstate(under="ignore"):  # the meaning's exp(-|x|) underflows to 0, as it should
        want = _meaning("sigmoid", [x], {})
    assert got.dtype == np.dtype(dtype)
    assert np.all((got >= 0) & (got <= 1)) and not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * np.finfo(dtype).eps)
    assert got[-3] == 0 and got[-2] == 1 and got[-1] == 0.5
    assert np.isnan(fn(np.array([[np.nan]], dtype))[0, 0])  # NaN in, NaN out, like the meaning


def _kernel_cases(attr):
    for case in _params():
        op, shapes, attrs, kinds, flags = case.values
        fn = kernel(op, flags, shapes, _full_attrs(op, attrs), OPS[op].shape(list(shapes), _full_attrs(op, attrs)))
        if getattr(fn, attr, None):
            yield case


@pytest.mark.parametrize("op,shapes,attrs,kinds,flags", list(_kernel_cases("prepared")))
def test_prepared_form_equals_the_kernel(op, shapes, attrs, kinds, flags):
    """A kernel's prepared form (its run-once argument laid out once per bind) gives the kernel's values."""
    rng = np.random.default_rng(7)
    attrs = _full_attrs(op, attrs)
    fn = kernel(op, flags, shapes, attrs, OPS[op].shape(list(shapes), attrs))
    args = [_array(rng, ((B,) if f else ()) + s, k, "float64") for s, f, k in zip(shapes, flags, kinds)]
    i, prepare, fast = fn.prepared
    assert not flags[i], "only an argument without a batch axis is computed once per bind"
    ready = list(args)
    ready[i] = prepare(args[i])
    np.testing.assert_allclose(fast(*ready), fn(*args), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("op,shapes,attrs,kinds,flags", list(_kernel_cases("takes_out")))
def test_kernel_writing_into_its_argument_gives_the_same_values(op, shapes, attrs, kinds, flags):
    rng = np.random.default_rng(8)
    attrs = _full_attrs(op, attrs)
    fn = kernel(op, flags, shapes, attrs, OPS[op].shape(list(shapes), attrs))
    (x,) = [_array(rng, ((B,) if f else ()) + s, k, "float32") for s, f, k in zip(shapes, flags, kinds)]
    want = fn(x)
    got = fn(x, out=x)
    assert got is x
    np.testing.assert_array_equal(got, want)
