"""Rows joined in order become one flatten.

Preserves: values, exactly (the same numbers in the same order). A binary
tree cell reads its children side by side, `concat(children[0].h,
children[1].h)`: every row of one [A, H] value, taken one by one and joined
end to end. That is `flatten(children.h)` [A * H]. The concat copies every
number; the flatten of rows that lie one after another (as the fold gathers
the children) is a reshape, so the node rule's matrix multiply reads the
gathered children as they are.
"""
from __future__ import annotations

from ..graph import CellGraph, Node
from ..ops import CHILDREN


def flatten_joined_rows(cell: CellGraph) -> CellGraph:
    cell = cell.copy()
    for nid in cell.order():
        node = cell.node(nid)
        if node.op != "concat":
            continue
        source = _rows_in_order(cell, cell.args(nid))
        if source is None:
            continue
        flat = cell.add(Node("flatten", node.shape, (), node.dtype, node.origin, node.label), [source])
        cell.redirect(nid, flat)
        cell.g.remove_node(nid)  # the row picks die with it unless something else reads them (dce)
    return cell


def _rows_in_order(cell: CellGraph, parts: list[int]) -> int | None:
    """x when `parts` are x[0], x[1], ..., x[A-1] of one [A, n] value x (so joining them flattens x)."""
    if not parts or any(cell.node(p).op != "index" for p in parts):
        return None
    sources = {cell.args(p)[0] for p in parts}
    if len(sources) != 1:
        return None
    (source,) = sources
    shape = cell.node(source).shape
    if len(shape) != 2 or shape[0] != len(parts) or CHILDREN in shape:
        return None
    if [cell.node(p).attr("i") % shape[0] for p in parts] != list(range(shape[0])):
        return None
    return source
