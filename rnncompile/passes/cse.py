"""Common-subexpression elimination.

Preserves: every output and state update computes the same values. Two nodes
with the same op, attributes, shape and arguments become one (the first in
topological order keeps its spec path and label).
"""
from __future__ import annotations

from ..graph import CellGraph, Node


def _key(cell: CellGraph, nid: int, node: Node):
    if node.op in ("input", "state", "param", "output"):
        return None  # named leaves and sinks are unique by construction
    return (node.op, node.shape, node.attrs, node.dtype, tuple(cell.args(nid)))


def eliminate_common_subexpressions(cell: CellGraph) -> CellGraph:
    cell = cell.copy()
    seen: dict = {}
    for nid in cell.order():
        node = cell.node(nid)
        key = _key(cell, nid, node)
        if key is None:
            continue
        if key in seen:
            keep = seen[key]
            kept = cell.node(keep)
            if not kept.label and node.label:
                cell.replace(keep, Node(kept.op, kept.shape, kept.attrs, kept.dtype, kept.origin, node.label))
            cell.redirect(nid, keep)
            cell.g.remove_node(nid)
        else:
            seen[key] = nid
    return cell
