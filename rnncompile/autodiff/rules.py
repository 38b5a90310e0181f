"""Vector–Jacobian rules, one per op of the op table, keyed by the same names.

A rule gets the node, its arguments' and its own value (node ids in the
backward graph, which recomputes the forward step), the adjoint `g` of its
value, and which arguments need an adjoint; it returns one adjoint per
argument (a node id, a `Piece` of one, or None: no adjoint), written as
graph nodes of existing ops through a `Builder`. `NO_RULE` names each op
without a rule and says why; tests/test_autodiff.py fails when an op of the
table is in neither.

Stable forms: sigmoid and tanh use their outputs (y(1-y), 1-y^2); softmax
uses its output; cross-entropy is taken through log-softmax in the loss graph
(losses.py), so no rule divides by a probability; sharpen and cosine guard
their divisions with `where` (a zero slot or weight gives 0, never NaN).
"""
from __future__ import annotations

from dataclasses import dataclass

from .build import Builder, NoRule


@dataclass(frozen=True)
class Piece:
    """The adjoint `g` of the rows start:stop (along `axis`) of an argument: slices of one value usually
    cover it, so their pieces are joined with one concat instead of each padded with zeros and summed."""
    g: int
    axis: int
    start: int
    stop: int


def _attr(b, node, name):
    from ..ops import OPS

    return node.attr(name, OPS[node.op].attrs.get(name))


def _binary_out(b: Builder, node, args, grads):
    """Each argument's adjoint summed back over the axes its broadcast stretched."""
    return [None if d is None else b.sum_to(d, b.shape(a)) for a, d in zip(args, grads)]


# -- elementwise ------------------------------------------------------------------------------------
def _add(b, node, args, out, g, want):
    return _binary_out(b, node, args, [g if want[0] else None, g if want[1] else None])


def _sub(b, node, args, out, g, want):
    return _binary_out(b, node, args, [g if want[0] else None, b.op("neg", g) if want[1] else None])


def _mul(b, node, args, out, g, want):
    x, y = args
    return _binary_out(b, node, args, [b.op("mul", g, y) if want[0] else None,
                                       b.op("mul", g, x) if want[1] else None])


def _div(b, node, args, out, g, want):
    x, y = args
    da = b.op("div", g, y) if want[0] else None
    db = b.op("neg", b.op("div", b.op("mul", g, out), y)) if want[1] else None
    return _binary_out(b, node, args, [da, db])


def _pow(b, node, args, out, g, want):
    x, y = args
    da = db = None
    if want[0]:  # y * x^(y-1)
        da = b.op("mul", g, b.op("mul", y, b.op("pow", x, b.op("sub", y, b.const(1.0)))))
    if want[1]:  # x^y log x, for x > 0 (0 where x <= 0: the real power is not differentiable in y there)
        pos = b.op("gt", x, b.const(0.0))
        safe = b.op("where", pos, x, b.const(1.0))
        db = b.op("mul", g, b.op("mul", out, b.op("where", pos, b.op("log", safe), b.const(0.0))))
    return _binary_out(b, node, args, [da, db])


def _pick(b, node, args, out, g, want):
    """maximum / minimum: the adjoint goes to the chosen argument, split evenly on a tie (as PyTorch does)."""
    x, y = args
    first = "gt" if node.op == "maximum" else "lt"
    half = b.op("mul", b.const(0.5), b.op("eq", x, y))
    wx = b.op("add", b.op(first, x, y), half)
    wy = b.op("sub", b.ones_like(wx), wx)
    return _binary_out(b, node, args, [b.op("mul", g, wx) if want[0] else None,
                                       b.op("mul", g, wy) if want[1] else None])


def _mod(b, node, args, out, g, want):
    x, y = args  # x - floor(x / y) * y: the floor is piecewise constant
    db = b.op("neg", b.op("mul", g, b.op("floordiv", x, y))) if want[1] else None
    return _binary_out(b, node, args, [g if want[0] else None, db])


def _zero(b, node, args, out, g, want):
    """Piecewise constant (comparisons, floor division): a zero adjoint everywhere it is defined."""
    return [None] * len(args)


def _where(b, node, args, out, g, want):
    cond, x, y = args
    zero = b.const(0.0)
    return [None] + _binary_out(b, node, [x, y], [b.op("where", cond, g, zero) if want[1] else None,
                                                  b.op("where", cond, zero, g) if want[2] else None])


def _neg(b, node, args, out, g, want):
    return [b.op("neg", g)]


def _sigmoid(b, node, args, out, g, want):
    return [b.op("mul", g, b.op("mul", out, b.op("sub", b.const(1.0), out)))]


def _tanh(b, node, args, out, g, want):
    return [b.op("mul", g, b.op("sub", b.const(1.0), b.op("mul", out, out)))]


def _relu(b, node, args, out, g, want):
    return [b.op("mul", g, b.op("gt", args[0], b.const(0.0)))]


def _hard_sigmoid(b, node, args, out, g, want):
    alpha, beta = _attr(b, node, "alpha"), _attr(b, node, "beta")
    z = b.op("add", b.op("mul", b.const(alpha), args[0]), b.const(beta))
    inside = b.op("mul", b.op("gt", z, b.const(0.0)), b.op("lt", z, b.const(1.0)))
    return [b.op("mul", g, b.op("mul", b.const(alpha), inside))]


def _softplus(b, node, args, out, g, want):
    return [b.op("mul", g, b.op("sigmoid", args[0]))]


def _exp(b, node, args, out, g, want):
    return [b.op("mul", g, out)]


def _log(b, node, args, out, g, want):
    return [b.op("div", g, args[0])]


def _sqrt(b, node, args, out, g, want):
    return [b.op("div", g, b.op("mul", b.const(2.0), out))]


def _abs(b, node, args, out, g, want):
    x = args[0]
    sign = b.op("sub", b.op("gt", x, b.const(0.0)), b.op("lt", x, b.const(0.0)))
    return [b.op("mul", g, sign)]


# -- softmax ----------------------------------------------------------------------------------------
def _softmax_along(b, out, g, axis):
    s = b.op("sum", b.op("mul", g, out), axis=axis)
    return b.op("mul", out, b.op("sub", g, b.expand(s, out, axis)))


def _softmax(b, node, args, out, g, want):
    return [_softmax_along(b, out, g, _attr(b, node, "axis"))]


def _masked_softmax(b, node, args, out, g, want):
    return [_softmax_along(b, out, g, -1), None]  # masked entries are 0 in out, so their adjoint is 0


# -- linear algebra ---------------------------------------------------------------------------------
def _matmul(b, node, args, out, g, want):
    x, y = args
    sx, sy = b.shape(x), b.shape(y)
    dx = dy = None
    if len(sx) == 1 and len(sy) == 1:  # dot product: g is a scalar
        dx = b.op("mul", g, y) if want[0] else None
        dy = b.op("mul", g, x) if want[1] else None
    elif len(sx) == 2 and len(sy) == 1:  # W @ v
        dx = b.op("outer", g, y) if want[0] else None
        dy = b.op("matmul", g, x) if want[1] else None
    elif len(sx) == 1 and len(sy) == 2:  # v @ M
        dx = b.op("matmul", y, g) if want[0] else None
        dy = b.op("outer", x, g) if want[1] else None
    elif len(sx) >= 2 and len(sy) >= 2:
        dx = b.sum_to(b.op("matmul", g, b.op("transpose", y)), sx) if want[0] else None
        dy = b.sum_to(b.op("matmul", b.op("transpose", x), g), sy) if want[1] else None
    else:
        raise NoRule(f"no matmul rule for shapes {list(sx)} @ {list(sy)} (a stack of matrices times a vector)")
    return [dx, dy]


def _outer(b, node, args, out, g, want):
    x, y = args
    return [b.op("matmul", g, y) if want[0] else None, b.op("matmul", x, g) if want[1] else None]


def _transpose(b, node, args, out, g, want):
    return [b.op("transpose", g)]


def _expand(b, node, args, out, g, want):
    return [b.op("sum", g, axis=_attr(b, node, "axis") % len(node.shape))]


# -- shapes -----------------------------------------------------------------------------------------
def _concat(b, node, args, out, g, want):
    axis = _attr(b, node, "axis") % len(node.shape)
    res, start = [], 0
    for a, w in zip(args, want):
        n = b.shape(a)[axis]
        res.append(b.op("slice", g, start=start, stop=start + n, axis=axis) if w else None)
        start += n
    return res


def _slice(b, node, args, out, g, want):
    (x,) = args
    shape = b.shape(x)
    axis = _attr(b, node, "axis") % len(shape)
    start, stop, _ = slice(node.attr("start"), node.attr("stop")).indices(shape[axis])
    return [Piece(g, axis, start, stop)]


def _chunk(b, node, args, out, g, want):
    (x,) = args
    n, i = node.attr("n"), node.attr("i")
    axis = len(b.shape(x)) - 1
    w = b.shape(x)[-1] // n
    return [Piece(g, axis, i * w, (i + 1) * w)]


def _index(b, node, args, out, g, want):
    (x,) = args
    shape = b.shape(x)
    i = node.attr("i") % shape[0]
    if len(shape) > 2:
        raise NoRule(f"no rule for indexing a {list(shape)} value (vectors and matrices only)")
    if len(shape) == 1:  # a scalar g at entry i
        return [b.op("mul", g, b.op("one_hot", b.const(float(i)), n=shape[0]))]
    return [_row(b, g, x, i)]


def _row(b, g, x, i):
    """g [n] as row i of a [K, n] adjoint: outer(e_i, g), e_i = one_hot(i, K)."""
    e = b.op("one_hot", b.const(float(i)), n=b.shape(x)[0])
    return b.op("outer", e, g)


def _flatten(b, node, args, out, g, want):
    (x,) = args
    shape = b.shape(x)
    if len(shape) == 1:
        return [g]
    if len(shape) != 2:
        raise NoRule(f"no rule for flattening a {list(shape)} value (vectors and matrices only)")
    rows, n = shape
    total = None
    for r in range(rows):  # each row of the adjoint is its slice of g
        part = _row(b, b.op("slice", g, start=r * n, stop=(r + 1) * n, axis=0), x, r)
        total = part if total is None else b.op("add", total, part)
    return [total]


def _embed(b, node, args, out, g, want):
    ids, table = args
    if not want[1]:
        return [None, None]
    hot = b.op("one_hot", ids, n=b.shape(table)[0])  # embed(ids, T) = one_hot(ids) @ T: a scatter-add of g
    if len(b.shape(ids)) == 0:
        return [None, b.op("outer", hot, g)]
    if len(b.shape(ids)) == 1:
        return [None, b.op("matmul", b.op("transpose", hot), g)]
    # ids [A, ..., L]: a stack of [V, L] @ [L, E] products, one per leading position, summed over them
    d = b.op("matmul", b.op("transpose", hot), g)
    while len(b.shape(d)) > 2:
        d = b.op("sum", d, axis=0)
    return [None, d]


# -- reductions -------------------------------------------------------------------------------------
def _sum(b, node, args, out, g, want):
    return [b.expand(g, args[0], _attr(b, node, "axis"))]


def _mean(b, node, args, out, g, want):
    (x,) = args
    axis = _attr(b, node, "axis")
    shape = b.shape(x)
    count = 1
    for i, n in enumerate(shape):
        if axis is None or i == axis % len(shape):
            count *= n
    return [b.scale(b.expand(g, x, axis), 1.0 / count)]


def _max(b, node, args, out, g, want):
    (x,) = args  # the adjoint goes to the largest entries, split evenly on a tie
    axis = _attr(b, node, "axis")
    hit = b.op("eq", x, b.expand(out, x, axis))
    share = b.op("div", g, b.op("sum", hit, axis=axis))
    return [b.op("mul", hit, b.expand(share, x, axis))]


# -- memory addressing --------------------------------------------------------------------------------
def _safe_inverse(b, v):
    """1 / v where v > 0, else 0."""
    pos = b.op("gt", v, b.const(0.0))
    return b.op("where", pos, b.op("div", b.const(1.0), b.op("where", pos, v, b.const(1.0))), b.const(0.0))


def _cosine(b, node, args, out, g, want):
    """y_i = M_i.k / (|M_i| |k| + eps): with den_i = |M_i||k| + eps, a_i = g_i / den_i and c_i = g_i y_i / den_i,
    dM_i = a_i k - c_i |k| M_i / |M_i| and dk = sum_i a_i M_i - (sum_i c_i |M_i|) k / |k| (a zero norm: 0)."""
    m, k = args
    eps = _attr(b, node, "eps")
    slot = b.op("sqrt", b.op("sum", b.op("mul", m, m), axis=1))  # [N]
    key = b.op("sqrt", b.op("sum", b.op("mul", k, k)))  # []
    den = b.op("add", b.op("mul", slot, key), b.const(eps))
    a = b.op("div", g, den)
    c = b.op("div", b.op("mul", g, out), den)
    dm = dk = None
    if want[0]:
        rows = b.op("mul", b.op("mul", c, key), _safe_inverse(b, slot))  # [N], one factor per slot
        scaled = b.op("transpose", b.op("mul", b.op("transpose", m), rows))
        dm = b.op("sub", b.op("outer", a, k), scaled)
    if want[1]:
        along = b.op("mul", b.op("sum", b.op("mul", c, slot)), _safe_inverse(b, key))
        dk = b.op("sub", b.op("matmul", a, m), b.op("mul", along, k))
    return [dm, dk]


def _shift(b, node, args, out, g, want):
    """out[i] = sum_j s[j+k] w[i-j]: dw is g shifted the other way (s reversed), ds[j+k] = g . roll(w, j)."""
    w, s = args
    n = b.shape(s)[0]
    basis = [b.op("one_hot", b.const(float(j)), n=n) for j in range(n)]
    dw = ds = None
    if want[0]:
        flipped = None
        for j in range(n):
            term = b.op("mul", b.op("index", s, i=n - 1 - j), basis[j])
            flipped = term if flipped is None else b.op("add", flipped, term)
        dw = b.op("shift", g, flipped)
    if want[1]:
        for j in range(n):
            term = b.op("mul", b.op("sum", b.op("mul", g, b.op("shift", w, basis[j]))), basis[j])
            ds = term if ds is None else b.op("add", ds, term)
    return [dw, ds]


def _sharpen(b, node, args, out, g, want):
    """y = softmax(gamma log w) over w > 0: dz = y (g - sum(g y)); dw = gamma dz / w, dgamma = sum(dz log w),
    both 0 where w <= 0 (where y is 0 and w^gamma is flat)."""
    w, gamma = args
    dz = _softmax_along(b, out, g, -1)
    pos = b.op("gt", w, b.const(0.0))
    safe = b.op("where", pos, w, b.const(1.0))
    zero = b.const(0.0)
    dw = b.op("where", pos, b.op("div", b.op("mul", gamma, dz), safe), zero) if want[0] else None
    dgamma = b.op("sum", b.op("mul", dz, b.op("where", pos, b.op("log", safe), zero))) if want[1] else None
    return [dw, dgamma]


VJP = {
    "add": _add, "sub": _sub, "mul": _mul, "div": _div, "pow": _pow, "maximum": _pick, "minimum": _pick,
    "matmul": _matmul, "neg": _neg, "sigmoid": _sigmoid, "tanh": _tanh, "relu": _relu,
    "hard_sigmoid": _hard_sigmoid, "softplus": _softplus, "exp": _exp, "log": _log, "sqrt": _sqrt, "abs": _abs,
    "softmax": _softmax, "masked_softmax": _masked_softmax, "concat": _concat, "sum": _sum, "mean": _mean,
    "max": _max, "outer": _outer, "transpose": _transpose, "expand": _expand, "slice": _slice, "index": _index, "chunk": _chunk,
    "flatten": _flatten, "embed": _embed, "cosine": _cosine, "shift": _shift, "sharpen": _sharpen,
    "mod": _mod, "floordiv": _zero, "lt": _zero, "le": _zero, "gt": _zero, "ge": _zero, "eq": _zero, "ne": _zero,
    "where": _where,
}

NO_RULE = {
    "input": "a leaf: its adjoint is an output of the backward step (d.in.<name>)",
    "state": "a leaf: its adjoint is the backward step's next state (d.<name>)",
    "param": "a leaf: its adjoint accumulates in the backward step's state grad.<name>",
    "const": "a literal: nothing to differentiate",
    "output": "a sink: its adjoint is an input of the backward step (d.out.<name>)",
    "step_index": "the step's position, a whole number: not differentiable",
    "seq_length": "a sequence's length, a whole number: not differentiable",
    "one_hot": "its argument is a token id: not differentiable",
}
