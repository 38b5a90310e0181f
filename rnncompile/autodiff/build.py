"""Adding nodes to a cell graph with their shapes worked out by the op table.

The derivative rules (rules.py) write their results as ordinary graph nodes;
`Builder.op("mul", a, b)` adds one, its shape given by the op's shape rule,
so a rule cannot build a node `graph.verify` would refuse. The helpers here
are the shape plumbing every rule needs, made of existing ops only: ones and
zeros shaped like a value (`where(x, 1, 1)`: no NaN leaks in from x), a
reduced adjoint spread back over the reduced axis, and a broadcast adjoint
summed back to its argument's shape.
"""
from __future__ import annotations

from ..graph import CellGraph, Node, make_attrs
from ..ops import CHILDREN, OPS, fmt_shape


class NoRule(Exception):
    """An op (or an op at these shapes) has no derivative rule; the message says which and why."""


class Builder:
    def __init__(self, cell: CellGraph, origin: str = ""):
        self.cell, self.origin = cell, origin

    def shape(self, nid: int) -> tuple:
        return self.cell.node(nid).shape

    def op(self, name: str, *args: int, label: str = "", **attrs) -> int:
        opdef = OPS[name]
        full = {**opdef.attrs, **attrs}
        shape = tuple(opdef.shape([self.shape(a) for a in args], full))
        return self.cell.add(Node(name, shape, make_attrs(attrs), "float", self.origin, label), list(args))

    def const(self, value: float) -> int:
        return self.cell.add(Node("const", (), make_attrs({"value": float(value), "shape": ()}), "float", self.origin))

    # -- shaped constants ---------------------------------------------------------------------------
    def ones_like(self, x: int) -> int:
        one = self.const(1.0)
        return self.op("where", x, one, one)

    def zeros_like(self, x: int) -> int:
        zero = self.const(0.0)
        return self.op("where", x, zero, zero)

    def scale(self, x: int, value: float) -> int:
        return x if value == 1 else self.op("mul", x, self.const(value))

    # -- axes -----------------------------------------------------------------------------------------
    def expand(self, g: int, like: int, axis) -> int:
        """`g`, the adjoint of a reduction of `like` over `axis` (None: every axis), spread back to `like`'s
        shape (each element of the reduced axis gets its row's value)."""
        shape = self.shape(like)
        rank = len(shape)
        ax = None if axis is None else axis % rank
        if ax is None or ax == 0:  # broadcasting puts g's axes on the right: they line up
            return self.op("where", like, g, g)
        if rank == 2 and ax == 1:  # [m] over [m, n]: broadcast over the transpose, then back
            return self.op("transpose", self.op("where", self.op("transpose", like), g, g))
        if shape[ax] == CHILDREN:
            raise NoRule(f"no rule spreads an adjoint back over the children axis K of a {fmt_shape(shape)} value "
                         f"when it is not the first axis")
        return self.op("expand", g, axis=ax, n=shape[ax])  # a middle axis: copies along a new one

    def sum_to(self, g: int, shape: tuple) -> int:
        """The adjoint `g` of a broadcast result summed back to an argument of `shape`."""
        gs = self.shape(g)
        while len(gs) > len(shape):
            g = self.op("sum", g, axis=0)
            gs = self.shape(g)
        if gs == tuple(shape):
            return g
        ones_axes = [i for i, (a, b) in enumerate(zip(shape, gs)) if a == 1 and b != 1]
        if len(gs) == 1 and ones_axes == [0]:  # [n] -> [1]
            return self.op("mul", self.ones_like(self.op("slice", g, start=0, stop=1, axis=0)),
                           self.op("sum", g))
        if len(gs) == 2:
            m, n = gs
            for ax in ones_axes:
                if ax == 0:  # [m, n] -> [1, n]: ones [1, m] @ g
                    ones = self.ones_like(self.op("transpose", self.op("slice", g, start=0, stop=1, axis=1)))
                    g = self.op("matmul", ones, g)
                else:  # [m, n] -> [m, 1]: g @ ones [n, 1]
                    ones = self.ones_like(self.op("transpose", self.op("slice", g, start=0, stop=1, axis=0)))
                    g = self.op("matmul", g, ones)
            if self.shape(g) == tuple(shape):
                return g
        raise NoRule(f"no rule sums a {fmt_shape(gs)} adjoint back to a broadcast {fmt_shape(shape)} argument")

    def pad(self, g: int, like: int, axis: int, start: int, stop: int) -> int:
        """`g`, the adjoint of `like[start:stop]` along `axis`, as an adjoint of all of `like` (zeros elsewhere)."""
        n = self.shape(like)[axis]
        parts = []
        if start > 0:
            parts.append(self.zeros_like(self.op("slice", like, start=0, stop=start, axis=axis)))
        parts.append(g)
        if stop < n:
            parts.append(self.zeros_like(self.op("slice", like, start=stop, stop=n, axis=axis)))
        return parts[0] if len(parts) == 1 else self.op("concat", *parts, axis=axis)
