"""One tree as data: parent pointers plus what each node holds, and the errors that point into its text.

A :class:`Tree` is parent pointers (-1 at the root) plus what each node
holds: a word (a leaf's token; every node's, in a dependency tree) and a
label. Nodes read from text are in preorder. Errors say where:
``trees.txt:3:12: error: ...`` with the line and a caret (:class:`TreeError`).
The readers are in parse.py; a batch of trees is a forest (forest.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .schedule import heights

NO_TOKEN = -1  # an integer token array's "this node holds none"
NO_LABEL = "_"  # in bracketed text, a node without a label: (_ (_ the cat) sat)
MAX_TREE_FILE_BYTES = 256 * 1024 * 1024


class TreeError(DataError):
    """A tree that cannot be read, or does not fit the cell: located in its text when it has one."""

    def __init__(self, message: str, where: str = "", text: str = "", col: int = 0, hint: str = "", width: int = 1):
        self.message, self.where, self.text, self.col, self.hint, self.width = message, where, text, col, hint, width
        super().__init__(self.format())

    def format(self) -> str:
        head = self.where
        if self.col:
            head = f"{head}:{self.col}" if re.search(r":\d+$", head) else f"{head or 'tree'}, column {self.col}"
        lines = [f"{head}: error: {self.message}" if head else f"error: {self.message}"]
        if self.col and self.text:
            lines.append(f"    {self.text.rstrip()}")
            lines.append("    " + " " * (self.col - 1) + "^" * max(1, self.width))
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


@dataclass
class Tree:
    """One tree. Nodes read from text are in preorder (a parent before its children, children
    left to right); children of a node are ordered by index."""

    parent: np.ndarray  # [n] int64, -1 at the root
    words: np.ndarray  # [n] object (str or None) or int64 (NO_TOKEN for none)
    labels: np.ndarray  # [n] as words
    text: str = ""  # the text it was read from, if any
    where: str = ""  # e.g. trees.txt:3, --tree, tree 2
    columns: np.ndarray | None = None  # [n] 1-based column of each node in `text` (0: unknown)

    @property
    def size(self) -> int:
        return len(self.parent)

    @classmethod
    def from_parents(cls, parents, words=None, labels=None, where: str = "") -> "Tree":
        """Parent pointers: 0-based with -1 at the root, or 1-based with 0 at the root (Tai et al.'s
        files). `words`/`labels` may be shorter than the tree (the rest hold none)."""
        p = np.asarray(parents)
        if p.ndim != 1 or p.size == 0 or not np.issubdtype(p.dtype, np.integer):
            raise TreeError("parent pointers must be a non-empty list of whole numbers", where)
        p = p.astype(np.int64)
        one_based = not (p == -1).any() and (p == 0).sum() == 1 and p.max() <= p.size
        if one_based:
            p = p - 1  # 1-based, 0 = root
            where = f"{where} (1-based pointers, 0 = root)" if where else "1-based pointers (0 = root)"
        roots = np.flatnonzero(p == -1)
        bad = np.flatnonzero((p < -1) | (p >= p.size) | (p == np.arange(p.size)))
        if bad.size:
            raise TreeError(f"node {bad[0]} has parent {p[bad[0]]}, which is not another node of the tree "
                            f"(0..{p.size - 1}, or -1 for the root)", where)
        if roots.size != 1:
            raise TreeError(f"a tree has one root (parent -1); these pointers have {roots.size}"
                            + (f": nodes {', '.join(map(str, roots[:6]))}" if roots.size else ""), where,
                            hint="1-based pointers mark the root with 0" if roots.size == 0 else "")
        if heights(p) is None:
            raise TreeError("the parent pointers form a cycle: some nodes never reach the root", where)
        return cls(p, _token_array(words, p.size, where, "words"), _token_array(labels, p.size, where, "labels"),
                   where=where)

    def children(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in range(self.size)]
        for i, p in enumerate(self.parent.tolist()):
            if p >= 0:
                kids[p].append(i)
        return kids

    @property
    def root(self) -> int:
        return int(np.flatnonzero(self.parent < 0)[0])

    def to_text(self, limit: int | None = None, tokens: list[str] | None = None) -> str:
        """Bracketed text (written without recursion; `_` for no label); `limit` cuts it with …;
        `tokens` spells integer token ids."""
        kids = self.children()
        def spell(v) -> str:
            if tokens and isinstance(v, (int, np.integer)) and 0 <= v < len(tokens):
                return tokens[v]
            return token_text(v)

        out, stack = [], [(self.root, False)]
        while stack:
            i, closing = stack.pop()
            if closing:
                out.append(")")
                continue
            word, label = spell(self.words[i]), spell(self.labels[i])
            if out and not out[-1].endswith("("):
                out.append(" ")
            if not kids[i]:
                out.append(f"({label} {word})" if label and word else (word or f"({label})"))
                continue
            out.append("(" + (label or NO_LABEL) + (f":{word}" if word else ""))
            stack.append((i, True))
            stack.extend((k, False) for k in reversed(kids[i]))
            if limit and sum(map(len, out)) > limit:
                break
        text = "".join(out)
        return text if not limit or len(text) <= limit else text[:limit - 1] + "…"


def token_text(v) -> str:
    """A word or label as text (empty for none)."""
    if v is None or (isinstance(v, (int, np.integer)) and v == NO_TOKEN):
        return ""
    return str(v)


def _token_array(values, n: int, where: str, what: str) -> np.ndarray:
    if values is None:
        return np.full(n, None, object)
    values = list(values)
    if len(values) > n:
        raise TreeError(f"{len(values)} {what} for a tree of {n} nodes", where)
    if all(v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool)) for v in values) \
            and any(v is not None for v in values):  # token ids (None or -1: none)
        out = np.full(n, NO_TOKEN, np.int64)
        out[:len(values)] = [NO_TOKEN if v is None else v for v in values]
        return out
    out = np.full(n, None, object)
    out[:len(values)] = [None if v is None else str(v) for v in values]
    return out
