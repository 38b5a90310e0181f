"""The level schedule of a batch of trees: which nodes can be computed together.

A node's height is 0 for a leaf and 1 + its highest child's otherwise; all
nodes of one height, across every tree of the batch, depend only on lower
ones, so they run as one batch (TensorFlow Fold's dynamic batching). Within
a height, nodes are grouped by their number of children, so every group is
a plain [n, k, ...] gather of its children's states.

The groups also lay the nodes out in rows: each group's nodes take the next
block of rows, so the fold writes a group's results as one contiguous block
and reads its children from rows of earlier blocks (`Group.child_rows`). The
leaves come first, in the order their parents read them, so the nodes of
height 1 (a third of a binary tree's inner nodes) read their children as one
block of rows (`Group.child_block`) where the others gather theirs.

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
    child_block: slice | None = None  # when child_rows are these rows in order (height 1: leaves)

    @property
    def arity(self) -> int:
        return self.child_rows.shape[1]


@dataclass
class Schedule:
    nchildren: np.ndarray  # [N]
    groups: list[Group]  # lowest first; their blocks of rows tile 0..N
    order: np.ndarray  # [N] the node at each row: every node once, children before parents
    row: np.ndarray  # [N] each node's row (the inverse of `order`)
    leaves: int  # rows 0..leaves-1 hold the leaves, the inner nodes follow
    kid_rows: np.ndarray  # the inner rows' children's rows, row after row, in child order
    first_kid: np.ndarray  # [inner + 1]: inner row leaves + i reads kid_rows[first_kid[i]:first_kid[i + 1]]

    @cached_property
    def row_height(self) -> np.ndarray:
        """[N] the height of the node at each row (ascending)."""
        return np.repeat([g.height for g in self.groups], [len(g.nodes) for g in self.groups]).astype(np.int64)

    @cached_property
    def height(self) -> np.ndarray:
        """[N] each node's height."""
        return self.row_height[self.row]

    @property
    def levels(self) -> int:
        return self.groups[-1].height + 1 if self.groups else 0

    def children_of(self, node: int) -> np.ndarray:
        """A node's children (node ids), in order."""
        i = self.row[node] - self.leaves
        return self.order[self.kid_rows[self.first_kid[i]:self.first_kid[i + 1]]] if i >= 0 else self.order[:0]

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
    return np.bincount(parent + 1, minlength=len(parent) + 1)[1:]  # (count 0: the roots)


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
    if not n:
        empty = np.zeros(0, np.int64)
        return Schedule(nchildren, [], empty, empty, 0, empty, np.zeros(1, np.int64))
    # the inner nodes' rows follow the leaves', height after height, by number of children within one
    leaves = levels[0]  # height 0: exactly the nodes without children
    inner = np.concatenate(levels[1:]) if len(levels) > 1 else np.zeros(0, np.int64)
    sizes = np.fromiter(map(len, levels[1:]), np.int64, len(levels) - 1)
    starts = np.cumsum(sizes) - sizes  # each height's first inner row
    k = nchildren[inner]
    mixed = inner.size and (np.minimum.reduceat(k, starts) != np.maximum.reduceat(k, starts)).any()
    if mixed:  # a height mixes numbers of children: sort each height by them (stable)
        by = np.lexsort((k, np.repeat(np.arange(len(sizes)), sizes)))
        inner, k = inner[by], k[by]
    # the inner rows' children, row after row: the nodes sorted by parent (stable, so in child order;
    # nearly sorted already when the trees are numbered in preorder), read parent by parent
    by_parent = np.argsort(parent, kind="stable")[n - int(nchildren.sum()):]  # roots (-1) first: dropped
    by_node = np.cumsum(nchildren) - nchildren  # node i's children start at by_parent[by_node[i]]
    first_kid = np.zeros(len(inner) + 1, np.int64)
    np.cumsum(k, out=first_kid[1:])
    if k.size and k.min() == k.max():  # one number of children throughout (a binary treebank)
        kids = by_parent[(by_node[inner][:, None] + np.arange(k[0])).ravel()]
    else:
        kids = by_parent[np.repeat(by_node[inner] - first_kid[:-1], k) + np.arange(first_kid[-1])]
    # the leaves in the order their parents read them (then those that are whole trees): the children
    # of the lowest inner height are then one block of rows, read as it is, without a gather
    leaf_kids = kids[nchildren[kids] == 0]
    order = np.concatenate([leaf_kids, leaves[parent[leaves] < 0], inner])
    row = np.empty(n, np.int64)
    row[order] = np.arange(n)
    kid_rows = row[kids]
    # the groups: the leaves, then each height's runs of one number of children
    groups = [Group(0, order[:len(leaves)], slice(0, len(leaves)), np.zeros((len(leaves), 0), np.int64))]
    cuts = sorted(set(starts.tolist()) | (set((np.flatnonzero(k[1:] != k[:-1]) + 1).tolist()) if mixed else set()))
    for a, b in zip(cuts, cuts[1:] + [len(inner)]):
        height = int(np.searchsorted(starts, a, side="right"))  # 1 for the first height's rows
        child_rows = kid_rows[first_kid[a]:first_kid[b]].reshape(b - a, int(k[a]))
        block = slice(int(first_kid[a]), int(first_kid[b])) if height == 1 else None
        rows = slice(len(leaves) + a, len(leaves) + b)
        groups.append(Group(height, order[rows], rows, child_rows, block))
    return Schedule(nchildren, groups, order, row, len(leaves), kid_rows, first_kid)
