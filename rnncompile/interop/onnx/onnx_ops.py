"""The ONNX exporter's op table: one emitter per op, keyed by the op table's names (rnncompile.ops.OPS).

An emitter gets a :class:`Site` (the graph it writes into, the argument values, which of them carry a
leading batch axis, their unbatched shapes, the node's attributes and shape) and adds the ONNX nodes that
compute what the NumPy backend's kernel computes (backends/numpy/kernels.py), batching rules included; it
returns the name of the result. The sources (input, state, param, const, the step index and length) are
not in this table: the cell writer (onnx_cell.py) binds them to the body's inputs, the initializers and
Constant nodes. tests/test_onnx_export.py runs every emitter in onnxruntime against the op's meaning.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .onnx_graph import Graph


@dataclass
class Site:
    g: Graph
    args: list[str]
    flags: tuple  # which arguments have a leading batch axis
    shapes: list[tuple]  # the arguments' unbatched shapes
    attrs: dict
    out_shape: tuple
    batch: str  # a [1] int64 value holding the batch size (for repeating an unbatched value)
    hint: str = ""  # the node's name in the spec, for readable value names

    @property
    def batched(self) -> bool:
        return any(self.flags)

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        return self.g.op(op_type, inputs, self.hint or op_type.lower(), **attrs)

    def scalar(self, value) -> str:
        return self.g.const(value)


def _axis(axis, batched: bool, rank: int):
    """An axis of the unbatched value, as an axis of the (maybe batched) tensor (None: every axis)."""
    if axis is None:
        return list(range(1, rank + 1)) if batched else None
    if axis < 0:
        return axis
    return axis + 1 if batched else axis


def _aligned(s: Site) -> list[str]:
    """Arguments, a batched one of lower rank than the result given unit axes after its batch axis (an
    unbatched one lines up from the right by itself, as NumPy's broadcasting does)."""
    out = []
    for a, batched, shape in zip(s.args, s.flags, s.shapes):
        missing = len(s.out_shape) - len(shape)
        out.append(s.g.unsqueeze(a, list(range(1, missing + 1))) if batched and missing > 0 else a)
    return out


def _broadcasting(op_type: str):
    def emit(s: Site) -> str:
        return s.op(op_type, _aligned(s))
    return emit


def _unary(op_type: str, **attrs):
    def emit(s: Site) -> str:
        return s.op(op_type, s.args, **attrs)
    return emit


def _mod(s: Site) -> str:
    """x - floor(x / y) * y: Python's floor remainder (ONNX's Mod on floats is C's fmod)."""
    a, b = _aligned(s)
    return s.op("Sub", [a, s.g.op("Mul", [s.g.op("Floor", [s.g.op("Div", [a, b])]), b])])


def _floordiv(s: Site) -> str:
    return s.op("Floor", [s.g.op("Div", _aligned(s))])


def _compare(op_type: str, negate: bool = False):
    def emit(s: Site) -> str:
        test = s.g.op(op_type, _aligned(s))
        if negate:
            test = s.g.op("Not", [test])
        return s.op("Cast", [test], to=_float(s))
    return emit


def _float(s: Site) -> int:
    from .onnx_graph import elem_type

    return elem_type(s.g.dtype)


def _where(s: Site) -> str:
    cond, a, b = _aligned(s)
    return s.op("Where", [s.g.op("Not", [s.g.op("Equal", [cond, s.scalar(0)])]), a, b])


def _matmul(s: Site) -> str:
    (a, b), (ba, bb), (sa, sb) = s.args, s.flags, s.shapes
    g = s.g
    if not ba and not bb:
        return s.op("MatMul", [a, b])
    if not ba and len(sa) == 2 and len(sb) == 1:  # W @ x, x batched: x @ W^T for every row at once
        return s.op("MatMul", [b, g.op("Transpose", [a], "w_t", perm=[1, 0])])
    if ba and not bb and len(sa) == 1:  # x @ M, x batched
        return s.op("MatMul", [a, b])
    if ba and bb and len(sa) == 1 and len(sb) == 1:  # a dot product per example
        return s.op("ReduceSum", [g.op("Mul", [a, b]), g.ints([-1])], keepdims=0)
    left_vec, right_vec = len(sa) == 1, len(sb) == 1
    ra, rb = max(len(sa), 2), max(len(sb), 2)
    rank = max(ra, rb)

    def lift(x, batched, vec, is_left, r):
        if vec:
            x = g.unsqueeze(x, [-2] if is_left else [-1])
        if batched and r < rank:
            x = g.unsqueeze(x, list(range(1, rank - r + 1)))
        return x

    out = g.op("MatMul", [lift(a, ba, left_vec, True, ra), lift(b, bb, right_vec, False, rb)])
    axes = ([-1] if right_vec else []) + ([-2] if left_vec else [])
    if right_vec and left_vec:
        axes = [-2, -1]
    return s.op("Squeeze", [out, g.ints(axes)]) if axes else out


def _softmax(s: Site) -> str:
    return s.op("Softmax", s.args, axis=_axis(s.attrs["axis"], s.flags[0], len(s.shapes[0])))


def _masked_softmax(s: Site) -> str:
    """softmax over the last axis of the entries where mask != 0; masked entries exactly 0, a row with every
    entry masked all zeros, the max subtracted taken over the unmasked entries (the kernel's steps)."""
    g = s.g
    x, mask = _aligned(s)
    keep = g.op("Not", [g.op("Equal", [mask, s.scalar(0)])])
    keep = g.op("Expand", [keep, g.op("Shape", [x])])  # a mask of lower rank than x broadcasts to x's shape
    neg_inf = s.scalar(-np.inf)
    top = g.op("ReduceMax", [g.op("Where", [keep, x, neg_inf]), g.ints([-1])], keepdims=1)
    top = g.op("Where", [g.op("IsInf", [top]), s.scalar(0), top])  # every entry masked: subtract nothing
    e = g.op("Exp", [g.op("Where", [keep, g.op("Sub", [x, top]), neg_inf])])
    total = g.op("ReduceSum", [e, g.ints([-1])], keepdims=1)
    total = g.op("Where", [g.op("Greater", [total, s.scalar(0)]), total, s.scalar(1)])
    return s.op("Div", [e, total])


def _concat(s: Site) -> str:
    args = s.args
    if s.batched and not all(s.flags):  # an unbatched argument is repeated for every example
        args = [a if f else s.g.expand_to_batch(a, s.batch, shape) for a, f, shape in zip(s.args, s.flags, s.shapes)]
    return s.op("Concat", args, axis=_axis(s.attrs["axis"], s.batched, len(s.out_shape)))


def _reduce(op_type: str):
    def emit(s: Site) -> str:
        axes = _axis(s.attrs["axis"], s.flags[0], len(s.shapes[0]))
        if axes is None or axes == []:  # every element (an unbatched value), or a batched scalar's none
            if axes == []:
                return s.op("Identity", s.args)
            return s.op(op_type, s.args, keepdims=0)
        return s.op(op_type, [s.args[0], s.g.ints(axes if isinstance(axes, list) else [axes])], keepdims=0)
    return emit


def _outer(s: Site) -> str:
    a, b = s.args
    return s.op("Mul", [s.g.unsqueeze(a, [-1]), s.g.unsqueeze(b, [-2])])


def _transpose(s: Site) -> str:
    rank = len(s.shapes[0]) + (1 if s.flags[0] else 0)
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return s.op("Transpose", s.args, perm=perm)


def _slice_on(s: Site, x: str, axis: int, start: int, stop: int) -> str:
    ax = axis % len(s.shapes[0]) + (1 if s.flags[0] else 0)
    g = s.g
    return s.op("Slice", [x, g.ints([start]), g.ints([stop]), g.ints([ax])])


def _slice(s: Site) -> str:
    shape, a = s.shapes[0], s.attrs
    axis = a.get("axis", 0)
    n = shape[axis % len(shape)]
    return _slice_on(s, s.args[0], axis, 0 if a["start"] is None else a["start"], n if a["stop"] is None else a["stop"])


def _index(s: Site) -> str:
    return s.op("Gather", [s.args[0], s.g.const(s.attrs["i"], np.int64)], axis=1 if s.flags[0] else 0)


def _chunk(s: Site) -> str:
    n, i = s.attrs["n"], s.attrs["i"]
    w = s.shapes[0][-1] // n
    return _slice_on(s, s.args[0], -1, i * w, (i + 1) * w)


def _flatten(s: Site) -> str:
    shape = ([0] if s.flags[0] else []) + [int(np.prod(s.out_shape))]  # Reshape's 0 keeps the batch axis
    return s.op("Reshape", [s.args[0], s.g.ints(shape)])


def _expand(s: Site) -> str:
    rank = len(s.shapes[0]) + 1 + (1 if s.flags[0] else 0)
    ax = s.attrs["axis"] % (len(s.shapes[0]) + 1) + (1 if s.flags[0] else 0)
    repeats = [s.attrs["n"] if d == ax else 1 for d in range(rank)]
    return s.op("Tile", [s.g.unsqueeze(s.args[0], [ax]), s.g.ints(repeats)])


def _one_hot(s: Site) -> str:
    g = s.g
    ids = g.op("Cast", [s.args[0]], to=_int64())
    classes = g.const(np.arange(s.attrs["n"]), np.int64)
    return s.op("Cast", [g.op("Equal", [g.unsqueeze(ids, [-1]), classes])], to=_float(s))  # exact 0s and 1s


def _int64() -> int:
    from onnx import TensorProto

    return TensorProto.INT64


def _embed(s: Site) -> str:
    (ids, table), (bi, bt) = s.args, s.flags
    if not bt:
        return s.op("Gather", [table, ids], axis=0)
    g = s.g  # each example its own table [B, V, E]: gather row ids[b] of table b
    if not bi:
        ids = g.expand_to_batch(ids, s.batch, s.shapes[0])
    ids = g.unsqueeze(g.op("Cast", [ids], to=_int64()), [-1])
    return s.op("GatherND", [table, ids], batch_dims=1)


def _cosine(s: Site) -> str:
    """(M k) / (|M_i| |k| + eps), slot by slot: M [(B,) N, W], k [(B,) W]."""
    g = s.g
    m, k = s.args
    k_row = g.unsqueeze(k, [-2])  # [(B,) 1, W]: lines up with every slot
    last = g.ints([-1])
    dots = g.op("ReduceSum", [g.op("Mul", [m, k_row]), last], keepdims=0)
    m_norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [m, m]), last], keepdims=0)])
    k_norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [k, k]), last], keepdims=1)])
    return s.op("Div", [dots, g.op("Add", [g.op("Mul", [m_norm, k_norm]), s.scalar(s.attrs["eps"])])])


def _shift(s: Site) -> str:
    """Circular convolution: sum over j = -k..k of s[j + k] * roll(w, j) along the last axis."""
    g = s.g
    w, sh = s.args
    n, k = s.shapes[0][-1], (s.shapes[1][0] - 1) // 2
    axis = -1
    total = None
    for j in range(-k, k + 1):
        r = j % n
        rolled = w if r == 0 else g.op("Concat", [g.op("Slice", [w, g.ints([n - r]), g.ints([n]), g.ints([axis])]),
                                                  g.op("Slice", [w, g.ints([0]), g.ints([n - r]), g.ints([axis])])],
                                       axis=axis)
        weight = g.op("Slice", [sh, g.ints([j + k]), g.ints([j + k + 1]), g.ints([axis])])
        term = g.op("Mul", [weight, rolled])
        total = term if total is None else g.op("Add", [total, term])
    return s.op("Identity", [total])


def _sharpen(s: Site) -> str:
    """w^gamma / sum(w^gamma) on max(w, 0) / max(w) (the kernel's steps: nothing overflows, zeros stay zero)."""
    g = s.g
    w, gamma = s.args
    w = g.op("Max", [w, s.scalar(0)])
    top = g.op("ReduceMax", [w, g.ints([-1])], keepdims=1)
    positive = g.op("Greater", [top, s.scalar(0)])
    if s.flags[1]:
        gamma = g.unsqueeze(gamma, [-1])
    u = g.op("Pow", [g.op("Div", [w, g.op("Where", [positive, top, s.scalar(1)])]), gamma])
    total = g.op("ReduceSum", [u, g.ints([-1])], keepdims=1)
    return s.op("Div", [u, g.op("Where", [positive, total, s.scalar(1)])])


EMITTERS = {
    "add": _broadcasting("Add"),
    "sub": _broadcasting("Sub"),
    "mul": _broadcasting("Mul"),
    "div": _broadcasting("Div"),
    "pow": _broadcasting("Pow"),
    "maximum": _broadcasting("Max"),
    "minimum": _broadcasting("Min"),
    "mod": _mod,
    "floordiv": _floordiv,
    "lt": _compare("Less"),
    "le": _compare("LessOrEqual"),
    "gt": _compare("Greater"),
    "ge": _compare("GreaterOrEqual"),
    "eq": _compare("Equal"),
    "ne": _compare("Equal", negate=True),
    "where": _where,
    "matmul": _matmul,
    "neg": _unary("Neg"),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "relu": _unary("Relu"),
    "softplus": _unary("Softplus"),
    "exp": _unary("Exp"),
    "log": _unary("Log"),
    "sqrt": _unary("Sqrt"),
    "abs": _unary("Abs"),
    "softmax": _softmax,
    "masked_softmax": _masked_softmax,
    "concat": _concat,
    "sum": _reduce("ReduceSum"),
    "mean": _reduce("ReduceMean"),
    "max": _reduce("ReduceMax"),
    "outer": _outer,
    "transpose": _transpose,
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
    "output": _unary("Identity"),
}


def _hard_sigmoid(s: Site) -> str:
    return s.op("HardSigmoid", s.args, alpha=float(s.attrs["alpha"]), beta=float(s.attrs["beta"]))


EMITTERS["hard_sigmoid"] = _hard_sigmoid

# ops that are not nodes of this table, and why (a test fails when an op has neither an emitter nor a reason)
BOUND_BY_THE_CELL_WRITER = {
    "input": "a Scan body input: the step's slice of the sequence (or the row, for a head applied once)",
    "state": "a Scan body state input: the previous step's value",
    "param": "an initializer of the model, named by its weight-file key",
    "const": "a Constant node",
    "step_index": "a Scan input of the step indices 0..T-1, scanned in the cell's direction",
    "seq_length": "the sequence lengths (or T) as floats, read from the main graph",
}
UNSUPPORTED: dict[str, str] = {}  # op -> why it has no ONNX form (none today)
