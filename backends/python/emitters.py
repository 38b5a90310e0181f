"""The python backend's op table: one emitter per op, keyed by the op table's names.

An emitter gets a :class:`Site` (the argument expressions, which of them carry
a leading batch axis, their unbatched shapes, the node's attributes and shape)
and returns one NumPy expression for the node's value. Arguments are always
names or literals (every node gets its own local), so no emitter needs to
think about operator precedence. The expressions compute what the NumPy
backend's kernels compute, batching rules included; ops that need more than an
expression call a helper from `prelude.py`, registered with ``site.use``.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Site:
    args: list[str]
    flags: tuple  # which arguments have a leading batch axis
    shapes: list[tuple]  # the arguments' unbatched shapes
    attrs: dict
    out_shape: tuple
    needs: set = field(default_factory=set)  # prelude helpers the expression calls

    def use(self, helper: str) -> str:
        self.needs.add(helper)
        return helper

    @property
    def batched(self) -> bool:
        return any(self.flags)


def _axis(axis, batched: bool, rank: int):
    """An axis of the unbatched value, as an axis of the (maybe batched) array."""
    if axis is None:
        return tuple(range(1, rank + 1)) if batched else None
    if axis < 0:
        return axis
    return axis + 1 if batched else axis


def _aligned(s: Site) -> list[str]:
    """Arguments, a batched one of lower rank than the result given unit axes after its batch axis."""
    out = []
    for a, batched, shape in zip(s.args, s.flags, s.shapes):
        missing = len(s.out_shape) - len(shape)
        out.append(f"{a}[:{', None' * missing}]" if batched and missing > 0 else a)
    return out


def _infix(symbol):
    def emit(s: Site) -> str:
        a, b = _aligned(s)
        return f"{a} {symbol} {b}"
    return emit


def _call(fn):
    def emit(s: Site) -> str:
        return f"{fn}({', '.join(_aligned(s))})"
    return emit


def _helper(name):
    def emit(s: Site) -> str:
        return f"{s.use(name)}({', '.join(s.args)})"
    return emit


def _matmul(s: Site) -> str:
    (a, b), (ba, bb), (sa, sb) = s.args, s.flags, s.shapes
    if not ba and not bb:
        return f"{a} @ {b}"
    if not ba and len(sa) == 2 and len(sb) == 1:  # W @ x with x batched: one matrix multiply for all rows
        return f"{b} @ {a}.T"
    if ba and not bb and len(sa) == 1:  # x @ M with x batched
        return f"{a} @ {b}"
    if not ba and len(sa) == 1 and len(sb) == 1:  # u . x with x batched: a matrix-vector product
        return f"{b} @ {a}"
    if ba and bb and len(sa) == 1 and len(sb) == 1:
        return f'np.einsum("bk,bk->b", {a}, {b})'
    # the general case: vectors become one-row / one-column matrices, batch axes line up, then undo
    left_vec, right_vec = len(sa) == 1, len(sb) == 1
    ra, rb = max(len(sa), 2), max(len(sb), 2)
    rank = max(ra, rb)

    def lift(x, batched, vec, left, r):
        if vec:
            x = f"{x}[..., None, :]" if left else f"{x}[..., :, None]"
        if batched and r < rank:
            x = f"np.expand_dims({x}, {tuple(range(1, rank - r + 1))})"
        return x

    out = f"({lift(a, ba, left_vec, True, ra)} @ {lift(b, bb, right_vec, False, rb)})"
    if right_vec:
        out += "[..., 0]"
    if left_vec:
        out += "[..., 0, :]" if not right_vec else "[..., 0]"
    return out


def _softmax(s: Site) -> str:
    return f"{s.use('softmax')}({s.args[0]}, axis={_axis(s.attrs['axis'], s.flags[0], len(s.shapes[0]))})"


def _masked_softmax(s: Site) -> str:
    return f"{s.use('masked_softmax')}({', '.join(_aligned(s))})"


def _concat(s: Site) -> str:
    axis = _axis(s.attrs["axis"], s.batched, len(s.out_shape))
    args = s.args
    if s.batched and not all(s.flags):  # a param-only part joins every row
        rows = next(a for a, f in zip(s.args, s.flags) if f)
        args = [a if f else f"np.broadcast_to({a}, ({rows}.shape[0],) + {a}.shape)" for a, f in zip(s.args, s.flags)]
    return f"np.concatenate([{', '.join(args)}], axis={axis})"


def _reduce(fn):
    def emit(s: Site) -> str:
        return f"np.{fn}({s.args[0]}, axis={_axis(s.attrs['axis'], s.flags[0], len(s.shapes[0]))})"
    return emit


def _bound(v) -> str:
    return "" if v is None else str(v)


def _slice(s: Site) -> str:
    ax = s.attrs["axis"] % len(s.shapes[0])
    lead = ":, " * (ax + (1 if s.flags[0] else 0))
    return f"{s.args[0]}[{lead}{_bound(s.attrs['start'])}:{_bound(s.attrs['stop'])}]"


def _index(s: Site) -> str:
    return f"{s.args[0]}[{':, ' if s.flags[0] else ''}{s.attrs['i']}]"


def _chunk(s: Site) -> str:
    n, i = s.attrs["n"], s.attrs["i"]
    w = s.shapes[0][-1] // n
    return f"{s.args[0]}[..., {i * w}:{(i + 1) * w}]"


def _flatten(s: Site) -> str:
    lead = f"{s.args[0]}.shape[0], " if s.flags[0] else ""
    return f"{s.args[0]}.reshape(({lead}{', '.join(map(str, s.out_shape))},))"


def _expand(s: Site) -> str:
    ax = s.attrs["axis"] % (len(s.shapes[0]) + 1) + (1 if s.flags[0] else 0)
    return f"np.repeat(np.expand_dims({s.args[0]}, {ax}), {s.attrs['n']}, axis={ax})"


def _one_hot(s: Site) -> str:
    # float32 by definition (exact); it promotes under float64 as the NumPy backend's does
    ids = s.args[0]
    if ids.replace(".", "", 1).lstrip("-").isdigit():  # a folded constant id (the NTM's shift one-hots)
        ids = f"np.asarray({ids})"
    return f"({ids}[..., None] == np.arange({s.attrs['n']})).astype(np.float32)"


def _embed(s: Site) -> str:
    ids, table = s.args
    if not s.flags[1]:
        return f"{table}[{ids}]"
    units = ", 1" * len(s.shapes[0])  # each example looks up its own table
    return f"{table}[np.arange({table}.shape[0]).reshape(-1{units}), {ids}]"


def _sharpen(s: Site) -> str:
    w, gamma = s.args
    return f"{s.use('sharpen')}({w}, {gamma}[..., None])" if s.flags[1] else f"{s.use('sharpen')}({w}, {gamma})"


def _cosine(s: Site) -> str:
    return f"{s.use('cosine')}({s.args[0]}, {s.args[1]}, eps={s.attrs['eps']!r})"


def _compare(fn):
    """A comparison as a number: 0 or 1 in the arguments' float type (NumPy's gives booleans)."""
    def emit(s: Site) -> str:
        a, b = _aligned(s)
        return f"np.{fn}({a}, {b}).astype(np.result_type({a}, {b}))"
    return emit


def _where(s: Site) -> str:
    c, a, b = _aligned(s)
    return f"np.where({c} != 0, {a}, {b}).astype(np.result_type({a}, {b}), copy=False)"


def _hard_sigmoid(s: Site) -> str:
    x = s.args[0]
    return f"np.clip({s.attrs['alpha']!r} * {x} + {s.attrs['beta']!r}, 0, 1).astype({x}.dtype, copy=False)"


EMITTERS = {
    "add": _infix("+"),
    "sub": _infix("-"),
    "mul": _infix("*"),
    "div": _infix("/"),
    "pow": _infix("**"),
    "maximum": _call("np.maximum"),
    "minimum": _call("np.minimum"),
    "mod": _call("np.mod"),
    "floordiv": _call("np.floor_divide"),
    "lt": _compare("less"),
    "le": _compare("less_equal"),
    "gt": _compare("greater"),
    "ge": _compare("greater_equal"),
    "eq": _compare("equal"),
    "ne": _compare("not_equal"),
    "where": _where,
    "matmul": _matmul,
    "neg": lambda s: f"-{s.args[0]}",
    "sigmoid": _helper("sigmoid"),
    "tanh": lambda s: f"np.tanh({s.args[0]})",
    "relu": lambda s: f"np.maximum({s.args[0]}, 0, dtype={s.args[0]}.dtype)",
    "hard_sigmoid": _hard_sigmoid,
    "softplus": lambda s: f"np.logaddexp(0, {s.args[0]}).astype({s.args[0]}.dtype, copy=False)",
    "exp": lambda s: f"np.exp({s.args[0]})",
    "log": lambda s: f"np.log({s.args[0]})",
    "sqrt": lambda s: f"np.sqrt({s.args[0]})",
    "abs": lambda s: f"np.abs({s.args[0]})",
    "softmax": _softmax,
    "masked_softmax": _masked_softmax,
    "concat": _concat,
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "max": _reduce("max"),
    "outer": lambda s: f"{s.args[0]}[..., :, None] * {s.args[1]}[..., None, :]",
    "transpose": lambda s: f"np.swapaxes({s.args[0]}, -1, -2)",
    "slice": _slice,
    "index": _index,
    "chunk": _chunk,
    "flatten": _flatten,
    "expand": _expand,
    "one_hot": _one_hot,
    "embed": _embed,
    "cosine": _cosine,
    "shift": _helper("shift"),
    "sharpen": _sharpen,
    "output": lambda s: s.args[0],
}


def emit(op: str, site: Site) -> str:
    return EMITTERS[op](site)
