"""Names for a cell's values in generated code, shared by every code generator.

Inputs, states and params are called what the spec calls them; a node the
spec names (a gate `f`, a let `c_next`) keeps that name; the node computing a
state's next value is `<state>_next` when its name is taken; every other node
is `v<i>`, where `%i` is its number in `rnncompile inspect`'s listing of the
same graph. Each target says which names it reserves (keywords, macros, its
own scaffolding); a reserved name gets a trailing `_`.
"""
from __future__ import annotations

import re
from typing import Callable

from .graph import CellGraph


def identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text) or "_"
    return "_" + name if name[0].isdigit() else name


class Namer:
    """Hands out unique identifiers that the target does not reserve."""

    def __init__(self, reserved: Callable[[str], bool], taken=()):
        self.reserved = reserved
        self.taken = set(taken)

    def fresh(self, want: str, fallback: str | None = None) -> str:
        """`want` if free, else `fallback` if free, else the first free `<fallback or want>_<n>`."""
        for cand in (want, fallback):
            if cand is None:
                continue
            name = identifier(cand)
            while self.reserved(name):
                name += "_"
            if name not in self.taken:
                self.taken.add(name)
                return name
        base, n = identifier(fallback or want), 2
        while f"{base}_{n}" in self.taken or self.reserved(f"{base}_{n}"):
            n += 1
        self.taken.add(f"{base}_{n}")
        return f"{base}_{n}"


def value_names(cell: CellGraph, namer: Namer, literal: Callable[[object], str | None] = lambda value: None
                ) -> dict[int, str]:
    """node id -> the name that holds its value; `literal` may write a constant in place instead."""
    order = cell.order()
    number = {nid: i for i, nid in enumerate(order)}
    next_of = {nid: name for name, nid in cell.updates().items()}
    names: dict[int, str] = {}
    for op in ("input", "state", "param"):  # the cell's interface keeps its names
        for name, nid in cell.by_name(op).items():
            names[nid] = namer.fresh(name)
    for nid in order:
        if nid in names:
            continue
        node = cell.node(nid)
        if node.op == "const":
            names[nid] = literal(node.attr("value")) or namer.fresh(f"v{number[nid]}")
        elif node.op == "output":
            names[nid] = namer.fresh(node.attr("name"), f"{node.attr('name')}_out")
        elif node.label:
            after = f"{next_of[nid]}_next" if nid in next_of else f"{node.label}_{number[nid]}"
            names[nid] = namer.fresh(node.label, after)
        else:
            names[nid] = namer.fresh(f"v{number[nid]}")
    return names
