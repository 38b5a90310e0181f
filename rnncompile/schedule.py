"""The level schedule of a batch of trees: which nodes can be computed together.

A node's height is 0 for a leaf and 1 + its highest child's otherwise; all
nodes of one height, across every tree of the batch, depend only on lower
ones, so they run as one batch (TensorFlow Fold's dynamic batching). Within
a height, nodes are grouped by their number of children, so every group is
a plain [n, k, ...] gather of its children's states.

Everything is computed with NumPy over the parent-pointer array, without
recursion and without a Python loop per node: heights come from peeling
the forest bottom up (Kahn's algorithm, one vectorised round per height),
children lists from one stable sort by parent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Group:
    height: int
    nodes: np.ndarray  # [n] node ids
    children: np.ndarray  # [n, k] their children's ids, in order (k = 0 for leaves)

    @property
    def arity(self) -> int:
        return self.children.shape[1]


@dataclass
class Schedule:
    height: np.ndarray  # [N]
    nchildren: np.ndarray  # [N]
    kids: np.ndarray  # every non-root node, grouped by parent, in child order
    start: np.ndarray  # [N + 1]: node i's children are kids[start[i]:start[i + 1]]
    groups: list[Group]

    @property
    def levels(self) -> int:
        return int(self.height.max()) + 1 if self.height.size else 0

    def children_of(self, node: int) -> np.ndarray:
        return self.kids[self.start[node]:self.start[node + 1]]

    @property
    def order(self) -> np.ndarray:
        """Every node once, children before parents (the groups' order)."""
        return np.concatenate([g.nodes for g in self.groups]) if self.groups else np.zeros(0, np.int64)


def heights(parent: np.ndarray) -> np.ndarray | None:
    """Each node's height, or None when the pointers have a cycle (some node is never ready)."""
    levels = _levels(parent, _nchildren(parent))
    if levels is None:
        return None
    out = np.empty(len(parent), np.int64)
    for h, nodes in enumerate(levels):
        out[nodes] = h
    return out


def _nchildren(parent: np.ndarray) -> np.ndarray:
    return np.bincount(parent[parent >= 0], minlength=len(parent))


def _levels(parent: np.ndarray, nchildren: np.ndarray) -> list[np.ndarray] | None:
    n = len(parent)
    pending = nchildren.copy()  # children not yet computed
    frontier = np.flatnonzero(pending == 0)
    levels, done = [], 0
    while frontier.size:
        levels.append(frontier)
        done += frontier.size
        ps = parent[frontier]
        ps = ps[ps >= 0]
        if not ps.size:
            break
        if ps.size * 16 > n:  # a wide level: counting over all nodes beats sorting the parents
            counts = np.bincount(ps, minlength=n)
            uniq = np.flatnonzero(counts)
            counts = counts[uniq]
        elif ps.size > 1:  # a narrow one (deep trees have thousands): sort just these
            ps.sort()
            first = np.ones(ps.size, bool)
            first[1:] = ps[1:] != ps[:-1]
            starts = np.flatnonzero(first)
            uniq, counts = ps[starts], np.diff(np.append(starts, ps.size))
        else:
            uniq, counts = ps, np.ones(1, np.int64)
        pending[uniq] -= counts
        frontier = uniq[pending[uniq] == 0]
    return levels if done == n else None


def make_schedule(parent: np.ndarray) -> Schedule:
    """Groups of nodes of one height and one number of children, lowest first."""
    parent = np.asarray(parent, np.int64)
    n = len(parent)
    nchildren = _nchildren(parent)
    levels = _levels(parent, nchildren)
    if levels is None:
        from .errors import DataError

        raise DataError("the trees' parent pointers form a cycle")
    by_parent = np.argsort(parent, kind="stable")  # roots (-1) first, then children by parent, in index order
    kids = by_parent[n - int((parent >= 0).sum()):]
    start = np.zeros(n + 1, np.int64)
    np.cumsum(nchildren, out=start[1:])
    height = np.empty(n, np.int64)
    groups = []
    for h, nodes in enumerate(levels):
        height[nodes] = h
        k = nchildren[nodes]
        if k.size and k.min() == k.max():
            parts = [nodes]
        else:
            order = np.argsort(k, kind="stable")
            nodes, k = nodes[order], k[order]
            cut = np.flatnonzero(k[1:] != k[:-1]) + 1
            parts = np.split(nodes, cut)
        for part in parts:
            arity = int(nchildren[part[0]])
            children = kids[start[part][:, None] + np.arange(arity)] if arity else np.zeros((part.size, 0), np.int64)
            groups.append(Group(h, part, children))
    return Schedule(height, nchildren, kids, start, groups)
