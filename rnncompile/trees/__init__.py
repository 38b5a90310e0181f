"""Tree recursion: a tree cell folded over parse trees, leaves to root, level-batched.

The stages, in the order a tree model goes through them:

    tree.py      one tree as data (parent pointers, words, labels) and TreeError
    parse.py     reading trees: bracketed text, JSON, parent pointers, files
    generate.py  seeded random trees (the CLI's default input, the benchmark's)
    lower.py     a tree cell (kind: tree) to two cell graphs, its leaf and node rules
    model.py     the plan of a `model: {fold: ...}` spec: the rules and the head
    forest.py    a batch of trees as flat arrays; words and labels as token ids
    schedule.py  heights and groups of nodes that run together, vectorised
    run.py       the fold driver: level-batched, or one node at a time
    api.py       `rnncompile.run(program, trees=...)`
    show.py      terminal views of a run (summary, --trace)
    cli.py       `rnncompile run` for tree models

The diagrams are rnncompile/render/tree.py. Only the data side is imported
here, on first use (PEP 562): checking a spec imports lower.py and model.py,
which must not load NumPy with the data side.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_PUBLIC = {"Tree": "tree", "TreeError": "tree", "NO_TOKEN": "tree", "Forest": "forest", "parse_tree": "parse",
           "read_tree": "parse", "read_trees": "parse", "tree_from_json": "parse", "random_trees": "generate"}
__all__ = list(_PUBLIC)

if TYPE_CHECKING:
    from .forest import Forest
    from .generate import random_trees
    from .parse import parse_tree, read_tree, read_trees, tree_from_json
    from .tree import NO_TOKEN, Tree, TreeError


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
