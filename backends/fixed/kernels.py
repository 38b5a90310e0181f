"""Integer kernels of the fixed-point interpreter, keyed by the op table's names.

Values are int64 arrays holding each node's integers (rnncompile.quant.formats: a node's format says what
they stand for); a batched argument has a leading batch axis. Every kernel computes its exact result in
int64 and brings it into the node's format once (requantize: rounding half away from zero, saturation).
backends/fixed/csource.py renders the same arithmetic as C, op by op.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncompile.quant.formats import QFormat, requantize, saturate, shift
from rnncompile.quant.tables import IN_FRAC, TABLES


@dataclass(frozen=True)
class Ctx:
    fmts: tuple  # each argument's QFormat (None for token ids)
    shapes: tuple  # each argument's shape without the batch axis
    flags: tuple  # whether each argument has a batch axis
    attrs: dict
    shape: tuple  # the result's shape
    out: QFormat | None
    narrow: tuple = ()  # matmul: per argument, the 16-bit format a wider one is first brought into (or None)


def _aligned(ctx: Ctx):
    """Reshapers that line a batched argument's axes up with the result's (a batched [B, n] against [m, n])."""
    rank = len(ctx.shape)
    out = []
    for batched, shape in zip(ctx.flags, ctx.shapes):
        missing = rank - len(shape)
        out.append((lambda a, m=missing: a.reshape((a.shape[0],) + (1,) * m + a.shape[1:]))
                   if batched and missing > 0 else (lambda a: a))
    return out


def _common(ctx: Ctx) -> int:
    return max(f.n for f in ctx.fmts)


def _add(sign: int):
    def factory(ctx: Ctx):
        (fa, fb), f, fix = ctx.fmts, _common(ctx), _aligned(ctx)

        def fn(a, b):
            a, b = fix[0](a), fix[1](b)
            total = (a << (f - fa.n)) + sign * (b << (f - fb.n))
            return requantize(total, f, ctx.out)
        return fn
    return factory


def _mul(ctx: Ctx):
    (fa, fb), fix = ctx.fmts, _aligned(ctx)
    return lambda a, b: requantize(fix[0](a) * fix[1](b), fa.n + fb.n, ctx.out)


def _outer(ctx: Ctx):
    fa, fb = ctx.fmts
    return lambda a, b: requantize(a[..., :, None] * b[..., None, :], fa.n + fb.n, ctx.out)


def _extreme(pick):
    def factory(ctx: Ctx):
        (fa, fb), f, fix = ctx.fmts, _common(ctx), _aligned(ctx)
        return lambda a, b: requantize(pick(fix[0](a) << (f - fa.n), fix[1](b) << (f - fb.n)), f, ctx.out)
    return factory


def _mod(ctx: Ctx):
    """Python's floor remainder (the sign of the divisor) of the aligned integers; a zero divisor gives 0."""
    (fa, fb), f, fix = ctx.fmts, _common(ctx), _aligned(ctx)

    def fn(a, b):
        a, b = fix[0](a) << (f - fa.n), fix[1](b) << (f - fb.n)
        a, b = np.broadcast_arrays(a, b)
        return requantize(np.where(b == 0, 0, np.mod(a, np.where(b == 0, 1, b))), f, ctx.out)
    return fn


def _compare(test):
    def factory(ctx: Ctx):
        (fa, fb), f, fix = ctx.fmts, _common(ctx), _aligned(ctx)
        return lambda a, b: test(fix[0](a) << (f - fa.n), fix[1](b) << (f - fb.n)).astype(np.int64)
    return factory


def _where(ctx: Ctx):
    (_, fa, fb), fix = ctx.fmts, _aligned(ctx)

    def fn(c, a, b):
        c, a, b = fix[0](c), fix[1](a), fix[2](b)
        return np.where(c != 0, requantize(a, fa.n, ctx.out), requantize(b, fb.n, ctx.out))
    return fn


def _neg(ctx: Ctx):
    return lambda a: requantize(-a, ctx.fmts[0].n, ctx.out)


def _relu(ctx: Ctx):
    return lambda a: requantize(np.maximum(a, 0), ctx.fmts[0].n, ctx.out)


def _matmul(ctx: Ctx):
    (ba, bb), (sa, sb) = ctx.flags, ctx.shapes
    narrow = ctx.narrow or (None, None)
    (fa, fb) = (to or f for to, f in zip(narrow, ctx.fmts))
    frac = fa.n + fb.n
    prep = [(lambda v, src=f, to=to: requantize(v, src.n, to)) if to else (lambda v: v)
            for f, to in zip(ctx.fmts, narrow)]
    if not ba and len(sa) == 2 and len(sb) == 1:  # W @ x: one integer GEMM over the batch
        return lambda w, x: requantize(np.dot(prep[1](x), prep[0](w).T), frac, ctx.out)
    rank = max(len(sa), len(sb), 2)

    def lift(x, batched, shape, left):
        if len(shape) == 1:
            x = x[..., None, :] if left else x[..., :, None]
        r = max(len(shape), 2)
        if batched and r < rank:
            x = x.reshape((x.shape[0],) + (1,) * (rank - r) + x.shape[1:])
        return x

    def fn(a, b):
        out = np.matmul(lift(prep[0](a), ba, sa, True), lift(prep[1](b), bb, sb, False))
        if len(sb) == 1:
            out = out[..., 0]
        if len(sa) == 1:
            out = out[..., 0, :] if len(sb) != 1 else out[..., 0]
        return requantize(out, frac, ctx.out)
    return fn


def _axis(axis, batched: bool, rank: int):
    if axis is None:
        return tuple(range(1, rank + 1)) if batched else None
    return axis if axis < 0 else axis + int(batched)


def _sum(ctx: Ctx):
    axis = _axis(ctx.attrs["axis"], ctx.flags[0], len(ctx.shapes[0]))
    return lambda a: requantize(np.sum(a, axis=axis), ctx.fmts[0].n, ctx.out)


def _table(name):
    table = TABLES[name]

    def factory(ctx: Ctx):
        return lambda a: requantize(table.lookup(a, ctx.fmts[0].n), table.out.n, ctx.out)
    return factory


def _softmax(ctx: Ctx):
    """exp(x - max x) from the exp table (q1.14, 1 at the max), then each entry times 2**N over their sum,
    rounded half up (the sum is positive: the max's entry is 2**14), saturated."""
    axis = _axis(ctx.attrs["axis"], ctx.flags[0], len(ctx.shapes[0]))
    table, n = TABLES["exp"], ctx.out.n

    def fn(a):
        x = shift(a, ctx.fmts[0].n - IN_FRAC)
        e = table.lookup(x - x.max(axis=axis, keepdims=True), IN_FRAC)
        s = e.sum(axis=axis, keepdims=True)
        return saturate(((e << n) + (s >> 1)) // s, ctx.out)
    return fn


_LOWEST = np.iinfo(np.int64).min


def _masked_softmax(ctx: Ctx):
    """softmax over the last axis of the entries whose mask is not 0, as _softmax computes it; masked entries
    are exactly 0, and a row with every entry masked is all zeros."""
    table, n, fix = TABLES["exp"], ctx.out.n, _aligned(ctx)

    def fn(a, mask):
        a, mask = fix[0](a), fix[1](mask)
        keep = np.broadcast_to(mask != 0, np.broadcast_shapes(a.shape, mask.shape))
        x = np.broadcast_to(shift(a, ctx.fmts[0].n - IN_FRAC), keep.shape)
        top = np.max(np.where(keep, x, _LOWEST), axis=-1, keepdims=True)
        top = np.where(top == _LOWEST, 0, top)  # every entry masked: any top will do, all give 0
        e = np.where(keep, table.lookup(x - top, IN_FRAC), 0)
        s = e.sum(axis=-1, keepdims=True)
        return saturate(np.where(s > 0, ((e << n) + (s >> 1)) // np.maximum(s, 1), 0), ctx.out)
    return fn


def _concat(ctx: Ctx):
    axis = _axis(ctx.attrs["axis"], any(ctx.flags), len(ctx.shape))

    def fn(*xs):
        b = next((x.shape[0] for x, f in zip(xs, ctx.flags) if f), None)
        parts = [requantize(x, f.n, ctx.out) if f != ctx.out else x for x, f in zip(xs, ctx.fmts)]
        if b is not None:
            parts = [p if f else np.broadcast_to(p, (b,) + p.shape) for p, f in zip(parts, ctx.flags)]
        return np.concatenate(parts, axis=axis)
    return fn


def _slice(ctx: Ctx):
    ax = ctx.attrs["axis"] % len(ctx.shapes[0])
    index = (slice(None),) * (ax + int(ctx.flags[0])) + (slice(ctx.attrs["start"], ctx.attrs["stop"]),)
    return lambda x: x[index]


def _chunk(ctx: Ctx):
    n, i = ctx.attrs["n"], ctx.attrs["i"]
    w = ctx.shapes[0][-1] // n
    return lambda x: x[..., i * w:(i + 1) * w]


def _index(ctx: Ctx):
    i = ctx.attrs["i"]
    return (lambda x: x[:, i]) if ctx.flags[0] else (lambda x: x[i])


def _flatten(ctx: Ctx):
    shape = ctx.shape
    return (lambda x: x.reshape((x.shape[0],) + shape)) if ctx.flags[0] else (lambda x: x.reshape(shape))


def _transpose(ctx: Ctx):
    return lambda x: np.swapaxes(x, -1, -2)


def _one_hot(ctx: Ctx):
    classes = np.arange(ctx.attrs["n"])
    return lambda ids: (np.asarray(ids)[..., None] == classes).astype(np.int64)


def _embed(ctx: Ctx):
    if ctx.flags[1]:
        raise NotImplementedError("a batched embedding table")
    return lambda ids, table: table[np.asarray(ids)]


KERNELS = {
    "add": _add(1),
    "sub": _add(-1),
    "mul": _mul,
    "outer": _outer,
    "maximum": _extreme(np.maximum),
    "minimum": _extreme(np.minimum),
    "neg": _neg,
    "mod": _mod,
    "lt": _compare(np.less),
    "le": _compare(np.less_equal),
    "gt": _compare(np.greater),
    "ge": _compare(np.greater_equal),
    "eq": _compare(np.equal),
    "ne": _compare(np.not_equal),
    "where": _where,
    "relu": _relu,
    "matmul": _matmul,
    "sum": _sum,
    "sigmoid": _table("sigmoid"),
    "tanh": _table("tanh"),
    "softmax": _softmax,
    "masked_softmax": _masked_softmax,
    "concat": _concat,
    "slice": _slice,
    "chunk": _chunk,
    "index": _index,
    "flatten": _flatten,
    "transpose": _transpose,
    "one_hot": _one_hot,
    "embed": _embed,
    "output": lambda ctx: (lambda x: x),
}
