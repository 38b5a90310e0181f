"""Batched NumPy kernels, keyed by the op table's names.

A kernel factory gets which arguments carry a leading batch axis, the
arguments' unbatched shapes and the node's attributes, and returns a
function of the argument arrays. The op table's `meaning` is the one-example
definition; tests check each kernel against it example by example.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import numpy as np

from rnncompile.ops import OPS


class Prepared(NamedTuple):
    """A faster form of a kernel, for when argument `arg` has no batch axis and so is computed once per
    bind: `fast(*args)` with args[arg] replaced by `prepare(args[arg])` equals `kernel(*args)`. A kernel
    offers one as its `prepared` attribute; the backend calls `prepare` once per bind, not at every step."""
    arg: int
    prepare: Callable
    fast: Callable


def _align(flags, shapes, out_rank):
    """Reshapers that line a batched argument's axes up with the output's."""
    fns = []
    for batched, shape in zip(flags, shapes):
        missing = out_rank - len(shape)
        if batched and missing > 0:
            fns.append(lambda a, m=missing: a.reshape((a.shape[0],) + (1,) * m + a.shape[1:]))
        else:
            fns.append(None)
    return fns


def _elementwise(fn):
    def factory(flags, shapes, attrs, out_shape):
        fixes = _align(flags, shapes, len(out_shape))
        if not any(fixes):
            return fn
        return lambda *xs: fn(*(f(x) if f else x for f, x in zip(fixes, xs)))
    return factory


def _unary(fn):
    return lambda flags, shapes, attrs, out_shape: fn


def _axis(axis, batched, rank):
    """An axis of the unbatched value, as an axis of the (maybe batched) array."""
    if axis is None:
        return tuple(range(1, rank + 1)) if batched else None
    if axis < 0:
        return axis
    return axis + 1 if batched else axis


def _matmul(flags, shapes, attrs, out_shape):
    (ba, bb), (sa, sb) = flags, shapes
    if not ba and not bb:
        return np.matmul
    if not ba and len(sa) == 2 and len(sb) == 1:  # W @ x, x batched: one GEMM, x @ W^T
        def w_x(w, x):
            return np.dot(x, w.T)
        # W^T laid out row-major once per bind: the GEMM then runs without a transposed operand (~10% faster
        # at H=256) and np.dot skips matmul's ufunc dispatch (~0.5 us a call at small sizes)
        w_x.prepared = Prepared(0, lambda w: np.ascontiguousarray(w.T), lambda wt, x: np.dot(x, wt))
        return w_x
    if ba and not bb and len(sa) == 1:  # x @ M, x batched
        return np.matmul
    if ba and bb and len(sa) == 1 and len(sb) == 1:
        return lambda a, b: np.einsum("bk,bk->b", a, b)
    left_vec, right_vec = len(sa) == 1, len(sb) == 1
    ra, rb = max(len(sa), 2), max(len(sb), 2)
    rank = max(ra, rb)

    def lift(x, batched, vec, is_left, r):
        if vec:
            x = x[..., None, :] if is_left else x[..., :, None]
        if batched and r < rank:
            x = x.reshape((x.shape[0],) + (1,) * (rank - r) + x.shape[1:])
        return x

    def fn(a, b):
        out = np.matmul(lift(a, ba, left_vec, True, ra), lift(b, bb, right_vec, False, rb))
        if right_vec:
            out = out[..., 0]
        if left_vec:
            out = out[..., 0, :] if not right_vec else out[..., 0]
        return out
    return fn


def _softmax(flags, shapes, attrs, out_shape):
    axis = _axis(attrs["axis"], flags[0], len(shapes[0]))
    n = shapes[0][attrs["axis"]] if shapes[0] else 0
    if flags[0] and axis in (-1, len(shapes[0])) and 1 < n <= 8:
        # a few classes for many rows (a head at every tree node): NumPy reduces a short last axis row by
        # row, slowly; adding its columns is the same sum in the same order (sequential below 8), far faster
        def short(x):
            cols = [x[..., i] for i in range(n)]
            z = x - functools.reduce(np.maximum, cols)[..., None]
            e = np.exp(z)
            return e / functools.reduce(np.add, [e[..., i] for i in range(n)])[..., None]
        return short

    def fn(x):
        z = x - x.max(axis=axis, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=axis, keepdims=True)
    return fn


def _masked_softmax(flags, shapes, attrs, out_shape):
    """softmax over the last axis of the entries where mask != 0 (the op table's meaning, batched): a
    batched mask of lower rank than x gets unit axes after its batch axis, then both broadcast."""
    fixes = _align(flags, shapes, len(out_shape))

    def fn(x, mask):
        x, mask = (f(v) if f else v for f, v in zip(fixes, (x, mask)))
        keep = mask != 0
        if keep.shape != x.shape:
            shape = np.broadcast_shapes(x.shape, keep.shape)
            x, keep = np.broadcast_to(x, shape), np.broadcast_to(keep, shape)
        top = np.max(np.where(keep, x, -np.inf), axis=-1, keepdims=True)
        e = np.exp(np.where(keep, x - np.where(np.isfinite(top), top, 0), -np.inf))
        total = e.sum(axis=-1, keepdims=True)
        return (e / np.where(total > 0, total, 1)).astype(x.dtype, copy=False)
    return fn


def _concat(flags, shapes, attrs, out_shape):
    axis = _axis(attrs["axis"], any(flags), len(out_shape))
    if all(flags) or not any(flags):
        def joined(*xs, out=None):
            return np.concatenate(xs, axis=axis, out=out)
        joined.fills_out = True  # takes `out=` of its result's shape (an output's row), never an argument's
        return joined

    def fn(*xs):
        b = next(x.shape[0] for x, f in zip(xs, flags) if f)
        return np.concatenate([x if f else np.broadcast_to(x, (b,) + x.shape) for x, f in zip(xs, flags)], axis=axis)
    return fn


def _reduce(fn):
    def factory(flags, shapes, attrs, out_shape):
        axis = _axis(attrs["axis"], flags[0], len(shapes[0]))
        return lambda x: fn(x, axis=axis)
    return factory


def _slice(flags, shapes, attrs, out_shape):
    ax = attrs["axis"] % len(shapes[0])
    index = (slice(None),) * (ax + (1 if flags[0] else 0)) + (slice(attrs["start"], attrs["stop"]),)
    return lambda x: x[index]


def _index(flags, shapes, attrs, out_shape):
    i = attrs["i"]
    return (lambda x: x[:, i]) if flags[0] else (lambda x: x[i])


def _chunk(flags, shapes, attrs, out_shape):
    n, i = attrs["n"], attrs["i"]
    w = shapes[0][-1] // n
    return lambda x: x[..., i * w:(i + 1) * w]


def _flatten(flags, shapes, attrs, out_shape):  # a view when the rows are contiguous (a gather's are)
    if flags[0]:
        return lambda x: x.reshape((x.shape[0],) + out_shape)
    return lambda x: x.reshape(out_shape)


def _expand(flags, shapes, attrs, out_shape):
    ax = attrs["axis"] % (len(shapes[0]) + 1) + (1 if flags[0] else 0)
    n = attrs["n"]
    return lambda x: np.repeat(np.expand_dims(x, ax), n, axis=ax)


def _one_hot(flags, shapes, attrs, out_shape):
    classes = np.arange(attrs["n"])
    return lambda ids: (ids[..., None] == classes).astype(np.float32)  # exact; promotes under float64


def _embed(flags, shapes, attrs, out_shape):
    if not flags[1]:
        return lambda ids, table: table[ids]
    id_rank = len(shapes[0])  # the ids' own rank, without the batch axis

    def batched_table(ids, table):  # table [B, V, E]; ids [(B,) ...]: each example its own table
        rows = np.arange(table.shape[0]).reshape((-1,) + (1,) * id_rank)
        return table[rows, ids]
    return batched_table


def _outer(flags, shapes, attrs, out_shape):
    return lambda a, b: a[..., :, None] * b[..., None, :]


def _cosine(flags, shapes, attrs, out_shape):
    eps = attrs["eps"]

    def fn(m, k):  # m [(B,) N, W], k [(B,) W]
        dots = (m @ k[..., None])[..., 0]
        norms = np.sqrt((m * m).sum(axis=-1)) * np.sqrt((k * k).sum(axis=-1))[..., None]
        return dots / (norms + np.asarray(eps, dots.dtype))
    return fn


def _shift(flags, shapes, attrs, out_shape):
    k = (shapes[1][0] - 1) // 2

    def fn(w, s):  # w [(B,) N], s [(B,) 2k+1]
        return sum(s[..., j + k:j + k + 1] * np.roll(w, j, axis=-1) for j in range(-k, k + 1))
    return fn


def _sharpen(flags, shapes, attrs, out_shape):
    def fn(w, gamma):  # w [(B,) N], gamma [(B,)]
        w = np.maximum(w, 0)
        top = w.max(axis=-1, keepdims=True)
        u = (w / np.where(top > 0, top, 1)) ** (gamma[..., None] if flags[1] else gamma)
        return u / np.where(top > 0, u.sum(axis=-1, keepdims=True), 1)
    return fn


_HALF = {np.dtype(t): np.array(0.5, t) for t in ("float16", "float32", "float64")}  # 0-d: the cheapest operand


def _sigmoid(flags, shapes, attrs, out_shape):
    """1 / (1 + exp(-x)) computed as 0.5 * tanh(0.5 * x) + 0.5, in place on one new array: a third of the
    time of the overflow-safe exp form, and it never overflows (tanh saturates to +-1). It differs from the
    op table's meaning by a few ulps of 1 at most (float32: ~1e-7 absolute), so a gate far below 0 comes
    out as 0 or a few ulps instead of its tiny value."""
    if not flags[0] and not shapes[0]:  # a 0-d value: NumPy gives a scalar, which has no `out`
        return lambda x: np.asarray(0.5 * np.tanh(0.5 * x) + 0.5, x.dtype)

    def fn(x, out=None):
        half = _HALF.get(x.dtype, 0.5)
        y = np.multiply(x, half, out=out)
        np.tanh(y, out=y)
        np.multiply(y, half, out=y)
        np.add(y, half, out=y)
        return y
    fn.takes_out = True
    return fn


def _hard_sigmoid(flags, shapes, attrs, out_shape):
    alpha, beta = attrs["alpha"], attrs["beta"]
    return lambda x: np.clip(alpha * x + beta, 0, 1).astype(x.dtype, copy=False)


def _compare(ufunc):
    """A comparison as a number: 0 or 1 in the arguments' float type (NumPy's gives booleans)."""
    def factory(flags, shapes, attrs, out_shape):
        cmp = _elementwise(ufunc)(flags, shapes, attrs, out_shape)
        return lambda a, b: cmp(a, b).astype(np.result_type(a, b))
    return factory


def _where(flags, shapes, attrs, out_shape):
    pick = _elementwise(lambda c, a, b: np.where(c != 0, a, b))(flags, shapes, attrs, out_shape)
    return lambda c, a, b: pick(c, a, b).astype(np.result_type(a, b), copy=False)


def _softplus(x):
    return np.logaddexp(0, x).astype(x.dtype, copy=False)


KERNELS = {
    "add": _elementwise(np.add),
    "sub": _elementwise(np.subtract),
    "mul": _elementwise(np.multiply),
    "div": _elementwise(np.divide),
    "pow": _elementwise(np.power),
    "maximum": _elementwise(np.maximum),
    "minimum": _elementwise(np.minimum),
    "mod": _elementwise(np.mod),
    "floordiv": _elementwise(np.floor_divide),
    "lt": _compare(np.less),
    "le": _compare(np.less_equal),
    "gt": _compare(np.greater),
    "ge": _compare(np.greater_equal),
    "eq": _compare(np.equal),
    "ne": _compare(np.not_equal),
    "where": _where,
    "matmul": _matmul,
    "neg": _unary(np.negative),
    "sigmoid": _sigmoid,
    "tanh": _unary(np.tanh),
    "relu": _unary(lambda x: np.maximum(x, 0, dtype=x.dtype)),
    "hard_sigmoid": _hard_sigmoid,
    "softplus": _unary(_softplus),
    "exp": _unary(np.exp),
    "log": _unary(np.log),
    "sqrt": _unary(np.sqrt),
    "abs": _unary(np.abs),
    "softmax": _softmax,
    "masked_softmax": _masked_softmax,
    "concat": _concat,
    "sum": _reduce(np.sum),
    "mean": _reduce(np.mean),
    "max": _reduce(np.max),
    "outer": _outer,
    "transpose": _unary(lambda x: np.swapaxes(x, -1, -2)),
    "slice": _slice,
    "index": _index,
    "chunk": _chunk,
    "flatten": _flatten,
    "expand": _expand,
    "one_hot": _one_hot,
    "embed": _embed,
    "cosine": _cosine,
    "shift": _shift,
    "sharpen": _sharpen,
    "output": _unary(lambda x: x),
}

SOURCES = {n for n, op in OPS.items() if op.kind == "source"}


def kernel(op: str, flags, shapes, attrs: dict, out_shape):
    return KERNELS[op](tuple(flags), [tuple(s) for s in shapes], attrs, tuple(out_shape))
