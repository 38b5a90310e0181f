"""Literal tensors: `[1, 0, -1]` and `[[1, 0], [0, 1]]` in expressions, and the values of `consts:`.

Both become const nodes whose `value` attribute is nested tuples of floats
(hashable, as node attributes must be); every backend reads such a node as
the array it spells. A literal's entries must be known before running
(numbers, dims and arithmetic on them) and its rows agree in length; both
walks here use loops, never recursion, so no literal can exhaust the stack.
"""
from __future__ import annotations

from . import expr as E
from .dims import MAX_RANK


def vector_value(node: E.Vector, const, fail, dims: dict, declared) -> tuple[tuple, list]:
    """The shape and nested values (lists of floats) of a literal vector. `const(node, float)` evaluates an
    entry; `fail(message, pos, width, hint)` reports a problem and raises; `declared`: the cell's names, which
    hide dims of the same name."""
    out: list = []
    stack = [(node, out, 0)]
    counts: dict[int, int] = {}  # depth -> how many entries each list there holds (the first one's count)
    leaf_depth = None  # the depth of the lists that hold numbers
    while stack:
        vec, into, depth = stack.pop()
        nested = [isinstance(i, E.Vector) for i in vec.items]
        if any(nested) and not all(nested):
            bad = vec.items[nested.index(not nested[0])]
            fail("a literal mixes numbers and lists at one level", getattr(bad, "pos", vec.pos), 1,
                 "every row of a matrix is a list of the same length, e.g. [[1, 0], [0, 1]]")
        if leaf_depth is not None and (depth > leaf_depth or (depth == leaf_depth and nested[0])
                                       or (depth < leaf_depth and not nested[0])):
            fail("the rows of a literal nest to different depths", vec.pos, 1,
                 "a matrix literal needs rows of one length, e.g. [[1, 0], [0, 1]]")
        want = counts.setdefault(depth, len(vec.items))
        if len(vec.items) != want:
            fail(f"the rows of a literal differ in length: {len(vec.items)} entr{'y' if len(vec.items) == 1 else 'ies'}"
                 f" here, {want} in the first row", vec.pos, 1, "a matrix literal needs rows of one length")
        if nested[0]:
            rows = [[] for _ in vec.items]
            into.extend(rows)
            stack.extend((v, r, depth + 1) for v, r in reversed(list(zip(vec.items, rows))))
            continue
        leaf_depth = depth
        for item in vec.items:
            names = [n for n in E.names_in(item) if n.id not in dims or n.id in declared]
            if names or not isinstance(item, (E.Num, E.Neg, E.BinOp, E.Name)):
                fail(f"the entries of a literal must be known before running (numbers, dims and arithmetic on "
                     f"them); `{E.to_text(item)}` is not", names[0].pos if names else getattr(item, "pos", vec.pos),
                     len(names[0].id) if names else 1, "to build a vector from values, use concat, e.g. concat(a, b)")
        into.extend(const(i, float) for i in vec.items)
    shape = tuple(counts[d] for d in sorted(counts))
    if len(shape) > MAX_RANK:
        fail(f"a literal of {len(shape)} axes; shapes have at most {MAX_RANK}", node.pos)
    return shape, out


def literal_shape(values) -> tuple[str, tuple]:
    """The shape of a number or of nested lists of numbers; or what is wrong with them ("" when nothing)."""
    shape, level = [], [values]
    while True:
        lists = [isinstance(v, list) for v in level]
        if not any(lists):
            bad = next((v for v in level if not is_number(v)), None)
            if bad is not None or any(v is None for v in level):
                return f"holds `{short(bad)}` where a number belongs", ()
            return "", tuple(shape)
        if not all(lists):
            return "mixes numbers and lists at one level", ()
        lengths = {len(v) for v in level}
        if len(lengths) != 1:
            return "has rows of different lengths", ()
        n = lengths.pop()
        if n == 0:
            return "holds an empty list", ()
        if len(shape) >= MAX_RANK:
            return f"has more than {MAX_RANK} axes", ()
        shape.append(n)
        level = [x for v in level for x in v]


def as_tuples(values):
    """Nested lists as nested tuples of floats (a loop over the levels, as deep as the shape)."""
    if not isinstance(values, (list, tuple)):
        return float(values)
    shape, level = [], values
    while isinstance(level, (list, tuple)):
        shape.append(len(level))
        level = level[0]
    flat = [values]
    for _ in shape:
        flat = [x for v in flat for x in v]
    return filled_from([float(v) for v in flat], tuple(shape))


def filled(value: float, shape: tuple):
    """Nested lists of `shape` holding `value` everywhere."""
    out = float(value)
    for n in reversed(shape):
        out = [out] * n
    return out


def filled_from(flat: list, shape: tuple):
    """Nested tuples of `shape` from its entries in row order."""
    level = list(flat)
    for n in reversed(shape[1:]):
        level = [tuple(level[i:i + n]) for i in range(0, len(level), n)]
    return tuple(level)


def is_number(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return abs(v) < 2**1023  # what a float64 holds
    return isinstance(v, float)


def short(v) -> str:
    text = str(v) if not isinstance(v, dict) else "{...}"
    return text if len(text) <= 20 else text[:17] + "..."
