"""The level schedule of a batch of trees: which nodes can be computed together.

A node's height is 0 for a leaf and 1 + its highest child's otherwise; all
nodes of one height, across every tree of the batch, depend only on lower
ones, so they run as one batch (TensorFlow Fold's dynamic batching). Within
a height, nodes are grouped by their number of children, so every group is
a plain [n, k, ...] gather of its children's states.

The groups also lay the nodes out in rows: each group's nodes take the next
block of rows, so the fold writes a group's results as one contiguous block
and reads its children from rows of earlier blocks (`Group.child_rows`).

Everything is computed with NumPy over the parent-pointer array, without
recursion and without a Python loop per node: heights come from peeling
the forest bottom up (Kahn's algorithm, one vectorised round per height),
children lists from one stable sort of the nodes by parent.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class Group:
    height: int
    nodes: np.ndarray  # [n] node ids
    rows: slice  # the block of rows its nodes take
    child_rows: np.ndarray  # [n, k] the rows of their children, in child order (k = 0 for leaves)

    @property
    def arity(self) -> int:
        return self.child_rows.shape[1]


@dataclass
class Schedule:
    nchildren: np.ndarray  # [N]
    groups: list[Group]  # lowest first; their blocks of rows tile 0..N
    order: np.ndarray  # [N] the node at each row: every node once, children before parents
    row: np.ndarray  # [N] each node's row (the inverse of `order`)
    row_height: np.ndarray  # [N] the height of the node at each row (ascending)
    kid_rows: np.ndarray  # every non-root node's row, grouped by its parent's row, in child order
    first_kid: np.ndarray  # [N + 1]: the children of the node at row r are kid_rows[first_kid[r]:first_kid[r + 1]]

    @cached_property
    def height(self) -> np.ndarray:
        """[N] each node's height."""
        return self.row_height[self.row]

    @property
    def levels(self) -> int:
        return int(self.row_height[-1]) + 1 if self.row_height.size else 0

    def children_of(self, node: int) -> np.ndarray:
        """A node's children (node ids), in order."""
        r = self.row[node]
        return self.order[self.kid_rows[self.first_kid[r]:self.first_kid[r + 1]]]

    def children(self, group: Group) -> np.ndarray:
        """[n, k] the node ids of a group's children."""
        return self.order[group.child_rows]


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
    """The nodes of each height, lowest first (None when the pointers have a cycle). One round per
    height, touching only that height's nodes and their parents, so a chain 10,000 deep costs
    10,000 small rounds rather than 10,000 passes over the forest."""
    n = len(parent)
    pending = nchildren.copy()  # children not yet computed
    owner = np.empty(n, np.int64)
    frontier = np.flatnonzero(pending == 0)
    levels, done = [], 0
    while frontier.size:
        levels.append(frontier)
        done += frontier.size
        ps = parent[frontier]
        if ps.min() < 0:  # roots hand nothing on
            keep = ps >= 0
            frontier, ps = frontier[keep], ps[keep]
            if not ps.size:
                break
        np.subtract.at(pending, ps, 1)
        owner[ps] = frontier  # siblings race to one slot: exactly one of them wins, so each parent is
        ready = owner[ps] == frontier  # taken once below, whichever child it was
        ready &= pending[ps] == 0
        frontier = ps[ready]
    return levels if done == n else None


def make_schedule(parent: np.ndarray) -> Schedule:
    """Groups of nodes of one height and one number of children, lowest first."""
    parent = np.asarray(parent, np.int64)
    n = len(parent)
    nchildren = _nchildren(parent)
    levels = _levels(parent, nchildren)
    if levels is None:
        raise DataError("the trees' parent pointers form a cycle")
    order = np.concatenate(levels) if levels else np.zeros(0, np.int64)
    level = np.repeat(np.arange(len(levels)), np.fromiter(map(len, levels), np.int64, len(levels)))
    k = nchildren[order]
    same_level = level[1:] == level[:-1]
    if (same_level & (k[1:] < k[:-1])).any():  # a height mixes numbers of children: sort it by them
        by = np.lexsort((k, level))  # stable
        order, k = order[by], k[by]
    row = np.empty(n, np.int64)
    row[order] = np.arange(n)
    # each row's children: the nodes sorted by parent (stable, so in child order; nearly sorted
    # already when the trees are numbered in preorder), read in the rows' order
    roots = int((parent < 0).sum())
    by_parent = np.argsort(parent, kind="stable")[roots:]
    first_kid = np.zeros(n + 1, np.int64)
    np.cumsum(k, out=first_kid[1:])
    first_by_node = np.cumsum(nchildren) - nchildren  # where each node's children start in by_parent
    offset = np.repeat(first_by_node[order] - first_kid[:-1], k)
    kid_rows = row[by_parent[offset + np.arange(first_kid[-1])]]
    cut = np.flatnonzero(~same_level | (k[1:] != k[:-1])) + 1
    bounds = [0, *cut.tolist(), n] if n else [0]
    groups = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        child_rows = kid_rows[first_kid[a]:first_kid[b]].reshape(b - a, int(k[a]))
        groups.append(Group(int(level[a]), order[a:b], slice(a, b), child_rows))
    return Schedule(nchildren, groups, order, row, level, kid_rows, first_kid)
