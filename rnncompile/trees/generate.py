"""Seeded random trees: the default input of `rnncompile run` for a tree model, and the benchmark's."""
from __future__ import annotations

import numpy as np

from .tree import NO_TOKEN, Tree


def random_trees(count: int, leaves=(3, 8), arity: int | None = 2, vocab_size: int = 10, seed: int = 0,
                 labels: bool = False, words_everywhere: bool = False) -> list[Tree]:
    """Seeded random trees, built bottom up by merging `arity` neighbours at random (2 or 3 with
    arity None) until one root is left; nodes renumbered in preorder. Words are token ids."""
    rng = np.random.default_rng(seed)
    lo, hi = leaves
    out = []
    for b in range(count):
        m = int(rng.integers(lo, hi + 1))
        if arity is not None and arity > 1:
            m += (-(m - 1)) % (arity - 1)  # a full arity-ary tree has 1 + (arity - 1) * inner leaves
        parent = [-1] * m
        row = list(range(m))
        while len(row) > 1:
            k = arity if arity is not None else int(rng.integers(2, 4))
            k = min(k, len(row)) if arity is None else k
            i = int(rng.integers(0, len(row) - k + 1))
            node = len(parent)
            parent.append(-1)
            for child in row[i:i + k]:
                parent[child] = node
            row[i:i + k] = [node]
        tree = _preorder(np.asarray(parent, np.int64))
        n = tree.size
        leaf = np.ones(n, bool)
        leaf[tree[tree >= 0]] = False
        words = rng.integers(0, vocab_size, n)
        if not words_everywhere:
            words = np.where(leaf, words, NO_TOKEN)
        labs = rng.integers(0, vocab_size, n) if labels else np.full(n, NO_TOKEN)
        out.append(Tree(tree, words.astype(np.int64), labs.astype(np.int64), where=f"random tree {b}"))
    return out


def _preorder(parent: np.ndarray) -> np.ndarray:
    """The same tree with nodes numbered in preorder (children in their old order)."""
    n = len(parent)
    kids: list[list[int]] = [[] for _ in range(n)]
    for i, p in enumerate(parent.tolist()):
        if p >= 0:
            kids[p].append(i)
    root = int(np.flatnonzero(parent < 0)[0])
    order, stack = [], [root]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(reversed(kids[i]))
    new = np.empty(n, np.int64)
    new[order] = np.arange(n)
    out = np.full(n, -1, np.int64)
    has = parent >= 0
    out[new[has]] = new[parent[has]]
    return out
