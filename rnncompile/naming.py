"""Names for a cell's values in generated code, shared by every code generator.

Inputs, states and params are called what the spec calls them; a node the
spec names (a gate `f`, a let `c_next`) keeps that name; the node computing a
state's next value is `<state>_next` when its name is taken; every other node
is `v<i>`, where `%i` is its number in `rnncompile inspect`'s listing of the
same graph. Each target says which names it reserves (keywords, macros, its
own scaffolding); a reserved name gets a trailing `_`.

A name in a spec is ASCII (`[A-Za-z_][A-Za-z0-9_]*`, see `is_name`): it is
the same name in C, in Python (which folds `ｙ` into `y`) and in a file name.
Text that is not a name (a description, a file name, a vocabulary token)
reaches generated code only through its target's escaping functions
(backends/c/names.py, backends/python/names.py).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable

from .graph import CellGraph


NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_name(text) -> bool:
    """A name a spec may give anything: ASCII letters, digits and _, not starting with a digit."""
    return isinstance(text, str) and NAME.fullmatch(text) is not None


def ascii_spelling(text: str) -> str | None:
    """The name NFKC folds `text` into (fullwidth `ｙ` -> `y`), when it folds into one."""
    folded = unicodedata.normalize("NFKC", text)
    return folded if folded != text and is_name(folded) else None


def identifier(text: str) -> str:
    """`text` as an identifier of every target: anything but ASCII letters, digits and _ becomes _."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text) or "_"
    return "_" + name if name[0].isdigit() else name


def file_stem(name: str) -> str:
    """The file name (without suffix) generated code made from `name` gets: an identifier, so it never holds
    a separator, `..` or anything a shell or a file system reads specially, and stays in its folder."""
    return identifier(name)


def escape_char(ch: str) -> str:
    """One character as Python escapes it (`\\n`, `\\x00`, `\\u2028`): in a Python literal it reads back as the
    character, in a comment of any target it shows which character it was."""
    short = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in short:
        return short[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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
            names[nid] = literal(node.attr("value")) or namer.fresh(node.label or f"v{number[nid]}", f"v{number[nid]}")
        elif node.op == "output":
            names[nid] = namer.fresh(node.attr("name"), f"{node.attr('name')}_out")
        elif node.label:
            after = f"{next_of[nid]}_next" if nid in next_of else f"{node.label}_{number[nid]}"
            names[nid] = namer.fresh(node.label, after)
        else:
            names[nid] = namer.fresh(f"v{number[nid]}")
    return names
