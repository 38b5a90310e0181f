"""C names for a cell's values: the spec's names where a node has one.

A value lives in a struct (`v->c_next`, `k->W_i`), so its name only has to be
a C identifier that no header turns into something else. Inputs, states and
params are called what the spec calls them; a node the spec names (a gate `f`,
a let `c_next`) keeps that name, the node computing a state's next value is
`<state>_next` when its name is taken, and every other node is `v<i>`, where
`%i` is its number in `rnncompile inspect`'s listing of the same graph.
"""
from __future__ import annotations

import re

from rnncompile.graph import CellGraph

KEYWORDS = set("""auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile
while _Bool _Complex _Imaginary""".split())
# object-like macros of the headers generated files include (a member named NAN would not survive them)
MACROS = {"NAN", "INFINITY", "HUGE_VAL", "HUGE_VALF", "HUGE_VALL", "NULL", "FP_NAN", "FP_INFINITE", "FP_ZERO",
          "FP_SUBNORMAL", "FP_NORMAL", "MATH_ERRNO", "MATH_ERREXCEPT", "math_errhandling", "FP_ILOGB0",
          "FP_ILOGBNAN", "FP_FAST_FMA", "FP_FAST_FMAF", "FP_FAST_FMAL", "SIZE_MAX", "PTRDIFF_MIN", "PTRDIFF_MAX"}
_STDINT = re.compile(r"^U?INT(8|16|32|64|PTR|MAX)?_(MIN|MAX|C)$|^U?INT_(LEAST|FAST)\d+_(MIN|MAX)$")


def identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text) or "_"
    return "_" + name if name[0].isdigit() else name


def reserved(name: str) -> bool:
    return name in KEYWORDS or name in MACROS or bool(_STDINT.match(name)) or name.startswith("__") \
        or bool(re.match(r"_[A-Z]", name))


class Namer:
    """Hands out unique C identifiers, renaming a keyword or a header's macro with a trailing `_`."""

    def __init__(self, taken=()):
        self.taken = set(taken)

    def fresh(self, want: str, fallback: str | None = None) -> str:
        """`want` if free, else `fallback` if free, else the first free `<fallback or want>_<n>`."""
        for cand in (want, fallback):
            if cand is None:
                continue
            name = identifier(cand)
            while reserved(name):
                name += "_"
            if name not in self.taken:
                self.taken.add(name)
                return name
        base, n = identifier(fallback or want), 2
        while f"{base}_{n}" in self.taken or reserved(f"{base}_{n}"):
            n += 1
        self.taken.add(f"{base}_{n}")
        return f"{base}_{n}"


def value_names(cell: CellGraph, namer: Namer) -> dict[int, str]:
    """node id -> the name of its value (a struct member)."""
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
        if node.op == "output":
            names[nid] = namer.fresh(node.attr("name"), f"{node.attr('name')}_out")
        elif node.label and node.op != "const":
            after = f"{next_of[nid]}_next" if nid in next_of else f"{node.label}_{number[nid]}"
            names[nid] = namer.fresh(node.label, after)
        else:
            names[nid] = namer.fresh(f"v{number[nid]}")
    return names
