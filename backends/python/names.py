"""Local names for a cell's nodes: the spec's names where a node has one.

Inputs, states, params and outputs are called what the spec calls them; a
node the spec names (a gate `f`, a let `c_next`) keeps that name, and the
node computing a state's next value is `<state>_next` when its name is taken;
every other node is `v<i>`, where `%i` is its number in `rnncompile inspect`'s
listing of the same graph. A scalar literal is written in place, not named.
"""
from __future__ import annotations

import builtins
import keyword
import re

from rnncompile.graph import CellGraph

from .prelude import HELPERS

# names the generated functions use for their own purposes; a spec name equal to one gets a trailing `_`
SCAFFOLD = {"np", "k", "params", "prefix", "dtype", "inputs", "state", "lengths", "reverse", "batch", "steps",
            "B", "T", "t", "live", "traced", "seen", "context"}
RESERVED = set(keyword.kwlist) | set(dir(builtins)) | set(HELPERS) | SCAFFOLD


def identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text) or "_"
    return "_" + name if name[0].isdigit() else name


class Namer:
    """Hands out unique identifiers, avoiding Python's and the generated code's own names."""

    def __init__(self, taken=()):
        self.taken = set(RESERVED) | set(taken)

    def fresh(self, want: str, fallback: str | None = None) -> str:
        """`want` if free, else `fallback` if free, else the first free `<fallback or want>_<n>`."""
        for cand in (want, fallback):
            if cand is None:
                continue
            name = identifier(cand)
            name = name + "_" if name in RESERVED else name
            if name not in self.taken:
                self.taken.add(name)
                return name
        base, n = identifier(fallback or want), 2
        while f"{base}_{n}" in self.taken:
            n += 1
        self.taken.add(f"{base}_{n}")
        return f"{base}_{n}"


def cell_prefix(cell_name: str, taken=()) -> str:
    """The prefix of a cell's functions (<prefix>_step, ...): its name, unless that clashes with a helper
    (a cell named `by` would define `by_step`) or another cell's."""
    base = identifier(cell_name)
    while base in taken or any(h.startswith(base + "_") for h in HELPERS):
        base += "_cell"
    return base


def literal(value) -> str | None:
    """A scalar constant as Python source (None for an array)."""
    if isinstance(value, (tuple, list)):
        return None
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        return f"float({text!r})"
    return f"({text})" if text.startswith("-") else text


def local_names(cell: CellGraph, namer: Namer) -> dict[int, str]:
    """node id -> the local that holds its value (or the literal that is its value)."""
    order = cell.order()
    index = {nid: i for i, nid in enumerate(order)}
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
            names[nid] = literal(node.attr("value")) or namer.fresh(f"v{index[nid]}")
        elif node.op == "output":
            names[nid] = namer.fresh(node.attr("name"), f"{node.attr('name')}_out")
        elif node.label:
            after = f"{next_of[nid]}_next" if nid in next_of else f"{node.label}_{index[nid]}"
            names[nid] = namer.fresh(node.label, after)
        else:
            names[nid] = namer.fresh(f"v{index[nid]}")
    return names
