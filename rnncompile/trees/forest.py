"""A batch of trees as flat arrays over all their nodes (what the schedule and the fold work on),
and the trees' words and labels as token ids."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .tree import NO_TOKEN, Tree, TreeError, token_text


@dataclass
class Forest:
    """Trees side by side: tree b's node i is node offsets[b] + i of the flat arrays."""

    parent: np.ndarray  # [N] int64, -1 at roots
    tree: np.ndarray  # [N] int64: which tree each node belongs to
    offsets: np.ndarray  # [B + 1]
    roots: np.ndarray  # [B]
    trees: list[Tree] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # words `encode` read as the vocabulary's unknown token

    @cached_property
    def words(self) -> np.ndarray:
        """[N] every node's word: str or None (object), or token ids (int64, NO_TOKEN for none)."""
        return _join([t.words for t in self.trees])

    @cached_property
    def labels(self) -> np.ndarray:
        """[N] every node's label, as words."""
        return _join([t.labels for t in self.trees])

    @classmethod
    def of(cls, trees: list[Tree]) -> "Forest":
        trees = list(trees)
        parents = [t.parent for t in trees]
        sizes = np.fromiter(map(len, parents), np.int64, len(trees))
        offsets = np.zeros(len(trees) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        parent = np.concatenate(parents) if trees else np.zeros(0, np.int64)
        is_root = parent < 0
        parent += np.repeat(offsets[:-1], sizes)  # each tree's pointers, shifted to its place
        parent[is_root] = -1
        return cls(parent, np.repeat(np.arange(len(trees)), sizes), offsets, np.flatnonzero(is_root), trees)

    @property
    def size(self) -> int:
        return len(self.parent)

    @property
    def batch(self) -> int:
        return len(self.roots)

    def describe(self, node: int) -> tuple[str, str, int, str]:
        """(where, text, column, what) for an error about one node."""
        b = int(self.tree[node])
        t = self.trees[b] if b < len(self.trees) else None
        local = node - int(self.offsets[b])
        label = token_text(self.labels[node])
        word = token_text(self.words[node])
        what = f"node `{label}`" if label else (f"leaf `{word}`" if word else f"node {local}")
        if t is None:
            return f"tree {b}", "", 0, what
        col = int(t.columns[local]) if t.columns is not None else 0
        where = t.where or f"tree {b}"
        return where, t.text, col, what if col else f"{what} (node {local})"


def _join(arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        return np.zeros(0, np.int64)
    if {a.dtype for a in arrays} == {np.dtype(np.int64)}:
        return np.concatenate(arrays)
    parts = [a if a.dtype == object else np.where(a == NO_TOKEN, None, a.astype(object)) for a in arrays]
    return np.concatenate(parts)


def encode(values: np.ndarray, vocab, what: str, forest: Forest) -> np.ndarray:
    """Token ids [N] for the words or labels of a forest (NO_TOKEN where a node holds none); `vocab`:
    the spec's VocabSpec. Ids are checked against its size; words are looked up (case-folded when
    it says so)."""
    n = len(vocab.tokens)
    if values.dtype == np.int64:
        bad = np.flatnonzero((values >= n) | (values < NO_TOKEN))
        if bad.size:
            where, text, col, node = forest.describe(int(bad[0]))
            raise TreeError(f"{what} id {values[bad[0]]} of {node} is not a token id (the vocabulary has {n})",
                            where, text, col)
        return values
    from ..vocab import Vocab

    vocab = Vocab(vocab)
    out = np.full(len(values), NO_TOKEN, np.int64)
    present = np.flatnonzero(values != None)  # noqa: E711  (elementwise on an object array)
    if not present.size:
        return out
    unique, inverse = np.unique(values[present].astype(str), return_inverse=True)
    ids = np.empty(len(unique), np.int64)
    for j, tok in enumerate(unique.tolist()):
        key = tok.lower() if vocab.lowercase else tok
        if key in vocab.index:
            ids[j] = vocab.index[key]
        elif vocab.unknown is not None:
            ids[j] = vocab.index[vocab.unknown]
            forest.unknown.append(tok)
        else:
            first = present[np.flatnonzero(inverse == j)[0]]
            where, text, col, _ = forest.describe(int(first))
            shown = " ".join(repr(t) for t in vocab.tokens[:20]) + (" …" if n > 20 else "")
            raise TreeError(f"{what} {tok!r} is not in the vocabulary: {shown}", where, text, col,
                            "add it to the vocabulary, or set `unknown:` in vocab", max(1, len(tok)))
    out[present] = ids[inverse]
    return out
