"""Constant folding.

Preserves: values, to float64 rounding. An op whose arguments are all
literal numbers is replaced by its scalar result (`1 - 0.5` -> `0.5`);
params are runtime values and are not folded (backends compute param-only
subgraphs once per run instead).
"""
from __future__ import annotations

import numpy as np

from ..graph import CellGraph, Node, make_attrs
from ..ops import OPS


def fold_constants(cell: CellGraph) -> CellGraph:
    cell = cell.copy()
    for nid in cell.order():
        node = cell.node(nid)
        op = OPS[node.op]
        args = cell.args(nid)
        if op.kind in ("source", "sink") or not args or node.shape != ():
            continue
        if not all(cell.node(a).op == "const" and cell.node(a).shape == () for a in args):  # scalars only
            continue
        values = [np.float64(cell.node(a).attr("value")) for a in args]
        attrs = {**{k: v for k, v in op.attrs.items()}, **node.attr_dict}
        with np.errstate(all="ignore"):
            value = float(op.meaning(*values, **{k: v for k, v in attrs.items() if k in op.attrs}))
        cell.replace(nid, Node("const", (), make_attrs({"value": value, "shape": ()}), "float", node.origin,
                               node.label))
        for src, dst, key, data in list(cell.g.in_edges(nid, keys=True, data=True)):
            if data["delay"] == 0:
                cell.g.remove_edge(src, dst, key)
    return cell
