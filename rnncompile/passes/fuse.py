"""Gate fusion.

Preserves: values. Affine maps that share their right-hand side,
`W_i @ v, W_f @ v, W_g @ v, W_o @ v`, become one `concat(W_i, W_f, W_g,
W_o) @ v` followed by row slices, as cuDNN fuses an LSTM's four gates into one
matrix multiply. The stacked matrix depends on params only, so backends build
it once per run.
"""
from __future__ import annotations

from collections import defaultdict

from ..graph import CellGraph, Node, make_attrs, stages


def fuse_gates(cell: CellGraph) -> CellGraph:
    cell = cell.copy()
    stage = stages(cell)
    groups = defaultdict(list)
    for nid in cell.order():
        node = cell.node(nid)
        if node.op != "matmul":
            continue
        w, v = cell.args(nid)
        wn = cell.node(w)
        if stage[w] == "const" and stage[v] != "const" and len(wn.shape) == 2:
            groups[v].append(nid)
    for v, mms in groups.items():
        if len(mms) < 2:
            continue
        ws = [cell.args(m)[0] for m in mms]
        rows = [cell.node(w).shape[0] for w in ws]
        cols = cell.node(ws[0]).shape[1]
        origin = cell.node(mms[0]).origin
        stacked = cell.add(Node("concat", (sum(rows), cols), make_attrs({"axis": 0}), "float", origin), ws)
        out_shape = (sum(rows),) + cell.node(mms[0]).shape[1:]
        fused = cell.add(Node("matmul", out_shape, (), "float", origin, "fused"), [stacked, v])
        start = 0
        for m, r in zip(mms, rows):
            old = cell.node(m)
            part = cell.add(Node("slice", old.shape, make_attrs({"start": start, "stop": start + r, "axis": 0}),
                                 "float", old.origin, old.label), [fused])
            cell.redirect(m, part)
            cell.g.remove_node(m)
            start += r
    return cell
