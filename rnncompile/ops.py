"""The one table of operations.

Each entry gives an op's name, how many tensor arguments it takes, its
compile-time attributes, its shape rule, its FLOP count and its reference
meaning in NumPy on ONE example (no batch axis). The checker, the renderer,
`inspect` and every backend read this table; a backend keeps its own kernel
table keyed by the same names, and a test fails when one misses an op.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

Shape = tuple  # a tuple of ints, without the batch axis


class ShapeError(Exception):
    """An op's arguments do not fit its shape rule (message says why)."""


@dataclass(frozen=True)
class OpDef:
    name: str
    arity: tuple[int, int | None]  # (min, max) tensor arguments; max None = variadic
    shape: Callable[[list[Shape], dict], Shape]
    meaning: Callable | None  # reference NumPy meaning: meaning(*arrays, **attrs)
    attrs: dict = field(default_factory=dict)  # name -> default (REQUIRED = must be given)
    kind: str = "math"  # source | sink | elementwise | activation | linear | shape | reduce | memory
    flops_per_elem: float = 1.0  # for elementwise-style ops; others define flops()
    flops: Callable[[list[Shape], Shape, dict], int] | None = None
    symbol: str = ""  # infix symbol for diagrams and printers
    doc: str = ""


REQUIRED = object()
OPS: dict[str, OpDef] = {}


class _NumPy:
    """Stands in for numpy until a meaning is first computed, then puts numpy itself in its place:
    checking a spec reads only the shape rules, so `rnncompile validate` never loads NumPy."""

    def __getattr__(self, name):
        global np
        import numpy

        np = numpy
        return getattr(numpy, name)


np = _NumPy()


def _numpy(name: str) -> Callable:
    """The meaning `numpy.<name>`, looked up when first called."""

    def meaning(*args, **kwargs):
        return getattr(np, name)(*args, **kwargs)
    meaning.__name__ = meaning.__qualname__ = f"numpy.{name}"
    return meaning


def _size(shape: Shape) -> int:
    return int(math.prod(shape))


def _register(op: OpDef) -> OpDef:
    OPS[op.name] = op
    return op


CHILDREN = 0  # the size of a tree cell's children axis, which varies per node (printed K)


def fmt_shape(shape: Shape) -> str:
    return "[" + ", ".join("K" if d == CHILDREN else str(d) for d in shape) + "]"


# ---- shape rules ---------------------------------------------------------

def _broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy's broadcasting rule (shapes aligned on the right; a 1 stretches); ValueError when they clash."""
    out = []
    for sizes in itertools.zip_longest(*(reversed(s) for s in shapes), fillvalue=1):
        other = {n for n in sizes if n != 1}
        if len(other) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        out.append(other.pop() if other else 1)
    return tuple(reversed(out))


def _broadcast(shapes, attrs):
    """The arguments broadcast (NumPy's rule: shapes aligned on the right, a 1 stretches); the result has the
    broadcast shape."""
    try:
        return _broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError("shapes " + " and ".join(fmt_shape(s) for s in shapes) + " do not broadcast") from None


def _same(shapes, attrs):
    """The result has the argument's shape."""
    return shapes[0]


def _matmul(shapes, attrs):
    """[m, k] @ [k, n] -> [m, n]; a vector on the right is a column ([m, k] @ [k] -> [m]), on the left a row
    ([k] @ [k, n] -> [n]); two vectors give a scalar; leading axes broadcast."""
    a, b = shapes
    if not a or not b:
        raise ShapeError(f"@ needs vectors or matrices, got {fmt_shape(a)} @ {fmt_shape(b)}")
    ka = a[-1]
    kb = b[0] if len(b) == 1 else b[-2]
    if ka != kb:
        raise ShapeError(f"inner sizes differ: {fmt_shape(a)} @ {fmt_shape(b)} ({ka} != {kb})")
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return tuple(b[:-2]) + (b[-1],)
    if len(b) == 1:
        return tuple(a[:-1])
    try:
        batch = _broadcast_shapes(a[:-2], b[:-2])
    except ValueError:
        raise ShapeError(f"leading axes do not broadcast: {fmt_shape(a)} @ {fmt_shape(b)}") from None
    return batch + (a[-2], b[-1])


def _matmul_flops(shapes, out, attrs):
    a = shapes[0]
    return 2 * _size(out) * a[-1]


def _axis(shape, axis):
    n = len(shape)
    if not -n <= axis < n:
        raise ShapeError(f"axis {axis} is out of range for shape {fmt_shape(shape)}")
    return axis % n


def _concat(shapes, attrs):
    """Arguments of one rank (at least 1) that agree off the joined axis; the joined axis' lengths add up."""
    axis = attrs["axis"]
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1 or 0 in ranks:
        raise ShapeError("concat needs arguments of the same rank ≥ 1, got " + ", ".join(fmt_shape(s) for s in shapes))
    ax = _axis(shapes[0], axis)
    for s in shapes[1:]:
        if s[:ax] + s[ax + 1:] != shapes[0][:ax] + shapes[0][ax + 1:]:
            raise ShapeError("concat arguments differ off the joined axis: " + ", ".join(fmt_shape(s) for s in shapes))
    return shapes[0][:ax] + (sum(s[ax] for s in shapes),) + shapes[0][ax + 1:]


def _reduce(shapes, attrs):
    """The axis reduced over is dropped; without an axis, every element: a scalar."""
    s, axis = shapes[0], attrs["axis"]
    if axis is None:
        return ()
    ax = _axis(s, axis)
    return s[:ax] + s[ax + 1:]


def _softmax_shape(shapes, attrs):
    """The argument's shape (a vector or more, not a scalar)."""
    if not shapes[0]:
        raise ShapeError("softmax of a scalar is always 1; it needs a vector")
    _axis(shapes[0], attrs["axis"])
    return shapes[0]


def _masked_softmax_shape(shapes, attrs):
    """x [..., N] (a vector or more) and a mask that broadcasts to x's shape; the result has x's shape."""
    x, mask = shapes
    if not x:
        raise ShapeError("masked_softmax of a scalar is always 1 or 0; it needs a vector")
    try:
        fits = _broadcast_shapes(x, mask) == tuple(x)
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"the mask {fmt_shape(mask)} does not broadcast to x's shape {fmt_shape(x)}")
    return x


def _outer(shapes, attrs):
    """Two vectors [m] and [n] -> [m, n]."""
    a, b = shapes
    if len(a) != 1 or len(b) != 1:
        raise ShapeError(f"outer needs two vectors, got {fmt_shape(a)} and {fmt_shape(b)}")
    return (a[0], b[0])


def _transpose(shapes, attrs):
    """The last two axes swapped (a matrix or more)."""
    s = shapes[0]
    if len(s) < 2:
        raise ShapeError(f"transpose needs a matrix, got {fmt_shape(s)}")
    return s[:-2] + (s[-1], s[-2])


def _slice(shapes, attrs):
    """The sliced axis becomes stop - start long (0 <= start < stop <= its length; an omitted start is 0, an
    omitted stop the length)."""
    s = shapes[0]
    if not s:
        raise ShapeError("cannot slice a scalar")
    start, stop, ax = attrs["start"], attrs["stop"], _axis(s, attrs.get("axis", 0))
    n = s[ax]
    start = 0 if start is None else start
    stop = n if stop is None else stop
    if not (0 <= start < stop <= n):
        raise ShapeError(f"slice {start}:{stop} is empty or out of range for length {n}")
    return s[:ax] + (stop - start,) + s[ax + 1:]


def _index(shapes, attrs):
    """The first axis dropped (-n <= i < n for an axis of length n)."""
    s = shapes[0]
    if not s:
        raise ShapeError("cannot index a scalar")
    if not -s[0] <= attrs["i"] < s[0]:
        raise ShapeError(f"index {attrs['i']} is out of range for length {s[0]}")
    return s[1:]


def _chunk(shapes, attrs):
    """The last axis divided by n, which must divide it evenly (0 <= i < n)."""
    s, n, i = shapes[0], attrs["n"], attrs["i"]
    if not s:
        raise ShapeError("cannot split a scalar")
    if n < 1 or s[-1] % n:
        raise ShapeError(f"cannot split length {s[-1]} into {n} equal parts")
    if not 0 <= i < n:
        raise ShapeError(f"part {i} does not exist: there are {n} parts (0..{n - 1})")
    return s[:-1] + (s[-1] // n,)


def _flatten(shapes, attrs):
    """One axis holding every element (fixed sizes only, not the children axis K)."""
    s = shapes[0]
    if CHILDREN in s:
        raise ShapeError(f"flatten needs fixed sizes, got {fmt_shape(s)}: the children axis K varies from node "
                         f"to node")
    return (_size(s),)


def _expand(shapes, attrs):
    """A new axis of length n at position `axis` (0 <= axis <= rank; negative counts from the end of the
    result), n >= 1."""
    s, n, axis = shapes[0], attrs["n"], attrs["axis"]
    if not -(len(s) + 1) <= axis <= len(s):
        raise ShapeError(f"axis {axis} is out of range for a new axis of shape {fmt_shape(s)}")
    if n < 1:
        raise ShapeError(f"expand needs a positive length, got {n}")
    ax = axis % (len(s) + 1)
    return s[:ax] + (n,) + s[ax:]


def _one_hot(shapes, attrs):
    """The ids' shape with an axis of length n added last."""
    if attrs["n"] < 1:
        raise ShapeError("one_hot needs a positive number of classes")
    return shapes[0] + (attrs["n"],)


def _embed(shapes, attrs):
    """The ids' shape with the table's width E added last (the table is [V, E])."""
    ids, table = shapes
    if len(table) != 2:
        raise ShapeError(f"embed needs a [vocab, width] table, got {fmt_shape(table)}")
    return ids + (table[1],)


def _cosine(shapes, attrs):
    """A memory [N, W] and a key [W] -> [N] (eps > 0)."""
    m, k = shapes
    if len(m) != 2 or len(k) != 1:
        raise ShapeError(f"cosine needs a memory matrix [N, W] and a key vector [W], "
                         f"got {fmt_shape(m)} and {fmt_shape(k)}")
    if m[1] != k[0]:
        raise ShapeError(f"the key has {k[0]} entries but each memory slot has {m[1]}")
    if attrs["eps"] <= 0:
        raise ShapeError(f"eps must be positive, got {attrs['eps']}")
    return (m[0],)


def _shift(shapes, attrs):
    """A weighting [N] and a shift weighting of odd length 2k+1 <= N -> [N]."""
    w, s = shapes
    if len(w) != 1 or len(s) != 1:
        raise ShapeError(f"shift needs a weighting [N] and a shift weighting [2k+1], "
                         f"got {fmt_shape(w)} and {fmt_shape(s)}")
    if s[0] % 2 == 0:
        raise ShapeError(f"the shift weighting needs an odd length (shifts -k..k, centred), got {s[0]}")
    if s[0] > w[0]:
        raise ShapeError(f"{s[0]} shifts do not fit a weighting over {w[0]} slots (at most {w[0]})")
    return w


def _sharpen(shapes, attrs):
    """A weighting [N] and a scalar exponent -> [N]."""
    w, gamma = shapes
    if len(w) != 1:
        raise ShapeError(f"sharpen needs a weighting vector [N], got {fmt_shape(w)}")
    if gamma != ():
        raise ShapeError(f"the sharpening exponent must be a scalar, got {fmt_shape(gamma)}")
    return w


def _cosine_flops(shapes, out, attrs):
    n, w = shapes[0]
    return 4 * n * w + 2 * w + 3 * n  # dot products, slot norms, key norm, divide


def _shift_flops(shapes, out, attrs):
    return 2 * shapes[0][0] * shapes[1][0]


def _source(shapes, attrs):
    """The declared shape."""
    return tuple(attrs["shape"])


# ---- reference meanings (one example, no batch axis) ---------------------

def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _softmax(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _masked_softmax(x, mask):
    """softmax over the last axis of the entries where mask != 0; masked entries are exactly 0. The max
    subtracted is over the unmasked entries only (so a large masked entry cannot underflow the rest), and a
    row with every entry masked is all zeros, not 0/0."""
    keep = np.broadcast_to(np.asarray(mask) != 0, x.shape)
    top = np.max(np.where(keep, x, -np.inf), axis=-1, keepdims=True)
    z = np.where(keep, x - np.where(np.isfinite(top), top, 0), -np.inf)  # exp(-inf) = 0 at masked entries
    e = np.exp(z)
    total = e.sum(axis=-1, keepdims=True)
    return (e / np.where(total > 0, total, 1)).astype(x.dtype, copy=False)


def _slice_meaning(x, start=None, stop=None, axis=0):
    return np.moveaxis(np.moveaxis(x, axis, 0)[start:stop], 0, axis)


def _chunk_meaning(x, n, i):
    w = x.shape[-1] // n
    return x[..., i * w:(i + 1) * w]


def _expand_meaning(x, axis=0, n=1):
    """n copies of x stacked along a new axis."""
    ax = axis % (np.ndim(x) + 1)
    return np.repeat(np.expand_dims(x, ax), n, axis=ax)


def _one_hot_meaning(ids, n):
    return (np.asarray(ids)[..., None] == np.arange(n)).astype(np.float32)


def _embed_meaning(ids, table):
    return table[np.asarray(ids)]


def _cosine_meaning(m, k, eps=1e-8):
    """Slot-wise cosine similarity; a zero slot or key gives 0, never NaN."""
    norms = np.sqrt((m * m).sum(axis=-1)) * np.sqrt((k * k).sum())
    return (m @ k) / (norms + np.asarray(eps, m.dtype))


def _shift_meaning(w, s):
    """Circular convolution: out[i] = sum_j w[(i - j) mod N] s[j + k], j = -k..k (s[k]: no shift)."""
    k = (s.shape[0] - 1) // 2
    return sum(s[j + k] * np.roll(w, j) for j in range(-k, k + 1))


def _sharpen_meaning(w, gamma):
    """w^gamma / sum(w^gamma) for gamma > 0, computed on w / max(w): the largest term is exactly 1, so
    nothing overflows or underflows to 0/0. Negative entries count as 0; an all-zero w stays zero."""
    w = np.maximum(w, 0)
    top = w.max()
    u = (w / (top if top > 0 else 1)) ** gamma
    return u / (u.sum() if top > 0 else 1)


def _unary(name, meaning, kind="activation", flops=1.0, doc=""):
    _register(OpDef(name, (1, 1), _same, meaning, kind=kind, flops_per_elem=flops, doc=doc))


def _binary(name, symbol, meaning, doc=""):
    _register(OpDef(name, (2, 2), _broadcast, meaning, kind="elementwise", symbol=symbol, doc=doc))


# sources and sinks: the leaves of a cell graph
for _name, _doc in (("input", "the current step's input"), ("state", "the previous step's state"),
                    ("param", "a learned parameter"), ("const", "a literal number")):
    _register(OpDef(_name, (0, 0), _source, None, attrs={"shape": REQUIRED, "name": ""}, kind="source", doc=_doc))
_register(OpDef("output", (1, 1), _same, lambda x: x, attrs={"name": REQUIRED}, kind="sink",
                doc="a named result of the step"))

_binary("add", "+", _numpy("add"), "a + b, elementwise")
_binary("sub", "−", _numpy("subtract"), "a - b, elementwise")
_binary("mul", "×", _numpy("multiply"), "elementwise (Hadamard) product")
_binary("div", "÷", _numpy("divide"), "a / b, elementwise; at run time a zero divisor gives ±inf "
                                   "(NaN for 0 / 0), as NumPy's float division does")
_binary("pow", "^", _numpy("power"), "a ** b, elementwise (NumPy's power: a negative base with a "
                                  "fractional exponent gives NaN)")
_binary("maximum", "max", _numpy("maximum"), "the larger of a and b, elementwise (NaN if either is NaN)")
_binary("minimum", "min", _numpy("minimum"), "the smaller of a and b, elementwise (NaN if either is NaN)")
_register(OpDef("matmul", (2, 2), _matmul, _numpy("matmul"), kind="linear", flops=_matmul_flops, symbol="@",
                doc="matrix product; a vector on the right is a column, on the left a row"))
_unary("neg", _numpy("negative"), kind="elementwise", doc="-x")
_unary("sigmoid", _sigmoid, flops=4, doc="1 / (1 + exp(-x)), computed from exp(-|x|) so it never overflows")
_unary("tanh", _numpy("tanh"), flops=4, doc="the hyperbolic tangent, (exp(x) - exp(-x)) / (exp(x) + exp(-x))")
_unary("relu", lambda x: np.maximum(x, 0).astype(x.dtype), doc="max(x, 0)")
_register(OpDef("hard_sigmoid", (1, 1), _same,
                lambda x, alpha=0.2, beta=0.5: np.clip(alpha * x + beta, 0, 1).astype(x.dtype),
                attrs={"alpha": 0.2, "beta": 0.5}, kind="activation", flops_per_elem=3,
                doc="max(0, min(1, alpha*x + beta)), ONNX's HardSigmoid"))
_unary("softplus", lambda x: np.logaddexp(0, x).astype(x.dtype), flops=4,
       doc="log(1 + exp(x)), computed as logaddexp(0, x) so it never overflows")
_unary("exp", _numpy("exp"), kind="elementwise", flops=4, doc="e to the power x")
_unary("log", _numpy("log"), kind="elementwise", flops=4,
       doc="the natural logarithm (-inf at 0, NaN below 0)")
_unary("sqrt", _numpy("sqrt"), kind="elementwise", flops=2, doc="the square root (NaN below 0)")
_unary("abs", _numpy("abs"), kind="elementwise", doc="|x|")
_register(OpDef("softmax", (1, 1), _softmax_shape, _softmax, attrs={"axis": -1}, kind="activation",
                flops_per_elem=5, doc="exp(x) / sum(exp(x)) along an axis, computed stably"))
_register(OpDef("masked_softmax", (2, 2), _masked_softmax_shape, _masked_softmax, kind="activation",
                flops_per_elem=6,
                doc="masked_softmax(x, mask): softmax over x's last axis taken over the entries where mask is "
                    "not 0 (attention over the real source steps); masked entries get exactly 0, and a row with "
                    "every entry masked is all zeros. Stable: the max subtracted is the unmasked entries' max"))
_register(OpDef("concat", (1, None), _concat, lambda *xs, axis=-1: np.concatenate(xs, axis=axis),
                attrs={"axis": -1}, kind="shape", flops_per_elem=0, doc="join along an axis (the last by default)"))
_register(OpDef("sum", (1, 1), _reduce, lambda x, axis=None: np.sum(x, axis=axis), attrs={"axis": None},
                kind="reduce", doc="sum over one axis, or all"))
_register(OpDef("mean", (1, 1), _reduce, lambda x, axis=None: np.mean(x, axis=axis), attrs={"axis": None},
                kind="reduce", doc="mean over one axis, or all"))
_register(OpDef("max", (1, 1), _reduce, lambda x, axis=None: np.max(x, axis=axis), attrs={"axis": None},
                kind="reduce", doc="max over one axis, or all"))
_register(OpDef("outer", (2, 2), _outer, _numpy("outer"), kind="linear", doc="outer product of two vectors"))
_register(OpDef("transpose", (1, 1), _transpose, lambda x: np.swapaxes(x, -1, -2), kind="shape",
                flops_per_elem=0, symbol="ᵀ", doc="swap the last two axes (also written x.T)"))
_register(OpDef("slice", (1, 1), _slice, _slice_meaning, attrs={"start": None, "stop": None, "axis": 0},
                kind="shape", flops_per_elem=0, doc="x[a:b] along an axis (the first when written x[a:b])"))
_register(OpDef("index", (1, 1), _index, lambda x, i: x[i], attrs={"i": REQUIRED}, kind="shape",
                flops_per_elem=0, doc="x[i] along the first axis"))
_register(OpDef("chunk", (1, 1), _chunk, _chunk_meaning, attrs={"n": REQUIRED, "i": REQUIRED}, kind="shape",
                flops_per_elem=0, doc="chunk(x, n, i): part i of n equal parts along the last axis"))
_register(OpDef("flatten", (1, 1), _flatten, lambda x: np.reshape(x, -1), kind="shape", flops_per_elem=0,
                doc="all of x's numbers as one vector, row after row: flatten(children.h) is the children's "
                    "states side by side"))
_register(OpDef("expand", (1, 1), _expand, _expand_meaning, attrs={"axis": 0, "n": REQUIRED}, kind="shape",
                flops_per_elem=0, doc="expand(x, axis=a, n=k): k copies of x along a new axis a (the adjoint of "
                                      "a sum over that axis spread back over it)"))
_register(OpDef("one_hot", (1, 1), _one_hot, _one_hot_meaning, attrs={"n": REQUIRED}, kind="shape",
                flops_per_elem=0, doc="one_hot(token, n): a length-n indicator vector"))
_register(OpDef("embed", (2, 2), _embed, _embed_meaning, kind="shape", flops_per_elem=0,
                doc="embed(token, E): row `token` of the table E"))

# memory addressing (Graves et al. 2014); reads, writes, interpolation and key strength are
# plain arithmetic: w @ M, M * (1 - outer(w, e)) + outer(w, a), g * w_c + (1 - g) * w, softmax(beta * ...)
_register(OpDef("cosine", (2, 2), _cosine, _cosine_meaning, attrs={"eps": 1e-8}, kind="memory",
                flops=_cosine_flops,
                doc="cosine(M, k): cosine similarity of key k [W] with every row of M [N, W] -> [N]; "
                    "0 for a zero row or key (M k / (|M_i| |k| + eps))"))
_register(OpDef("shift", (2, 2), _shift, _shift_meaning, kind="memory", flops=_shift_flops,
                doc="shift(w, s): circular convolution of a weighting w [N] with a shift weighting s [2k+1] "
                    "(s[k]: stay, s[k+1]: one slot forward)"))
_register(OpDef("sharpen", (2, 2), _sharpen, _sharpen_meaning, kind="memory",
                flops_per_elem=6, doc="sharpen(w, gamma): w^gamma / sum(w^gamma) for a weighting w [N] "
                                      "and a scalar gamma > 0 (the NTM's is >= 1)"))

# the step and integers. Values are the run's floats; a whole number (the step index, a count) is exact in
# float32 up to 2**24 = 16,777,216 and in float64 up to 2**53. `%` and `//` have Python's floor semantics for
# any sign (x % y takes the sign of y, x // y rounds down, x == (x // y) * y + x % y); at run time a zero
# divisor gives NaN for `%` and ±inf (or NaN for 0 // 0) for `//`, as NumPy's float ops do (a literal zero
# divisor is a compile-time error). Comparisons give exactly 0.0 or 1.0 (NaN compares false, except !=).
_register(OpDef("step_index", (0, 0), _source, None, attrs={"shape": REQUIRED, "name": ""}, kind="source",
                doc="`t`: the step's 0-based position in its sequence, a scalar; also in a reverse scan, where the "
                    "steps run seq_len - 1 down to 0 and step t reads x[t], and in a long scan run in chunks"))
_register(OpDef("seq_length", (0, 0), _source, None, attrs={"shape": REQUIRED, "name": ""}, kind="source",
                doc="`seq_len`: the number of real steps of this step's sequence (its entry of `lengths`; "
                    "the whole time axis when every sequence is full)"))
STEP_SOURCES = {"step_index": "t", "seq_length": "seq_len"}  # op -> the name expressions use


def _compare(fn):
    def meaning(a, b):
        return getattr(np, fn)(a, b).astype(np.result_type(a, b))
    meaning.__name__ = meaning.__qualname__ = f"{fn}_as_number"
    return meaning


def _where_shape(shapes, attrs):
    """The condition and the two choices broadcast; the result has the broadcast shape."""
    try:
        return _broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError("the condition and the two choices " + ", ".join(fmt_shape(s) for s in shapes)
                         + " do not broadcast") from None


def _where_meaning(cond, a, b):
    return np.where(cond != 0, a, b).astype(np.result_type(a, b), copy=False)


_binary("mod", "%", _numpy("mod"), "x % y: the remainder with Python's floor semantics (the sign of y; "
                                    "x - floor(x / y) * y)")
_binary("floordiv", "//", _numpy("floor_divide"), "x // y: floor(x / y), as Python and NumPy compute it")
for _name, _sym, _fn in (("lt", "<", "less"), ("le", "<=", "less_equal"), ("gt", ">", "greater"),
                         ("ge", ">=", "greater_equal"), ("eq", "==", "equal"), ("ne", "!=", "not_equal")):
    _binary(_name, _sym, _compare(_fn), f"1 where `{_sym}` holds, else 0 (elementwise, broadcasting)")
_register(OpDef("where", (3, 3), _where_shape, _where_meaning, kind="elementwise",
                doc="where(cond, a, b): a where cond is not 0, else b (elementwise, broadcasting all three)"))
COMPARISONS = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}

ACTIVATIONS = {n for n, op in OPS.items() if op.kind == "activation"}
INT_ARGS = {"one_hot": (0,), "embed": (0,)}  # argument positions that take token indices


def flops(op: OpDef, arg_shapes: list[Shape], out: Shape, attrs: dict) -> int:
    if op.flops is not None:
        return int(op.flops(arg_shapes, out, attrs))
    if op.kind == "reduce":
        return _size(arg_shapes[0])
    return int(op.flops_per_elem * _size(out))
