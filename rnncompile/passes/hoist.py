"""Input hoisting.

An affine map over a concatenation that mixes state and input,
`W @ concat(h, x)`, is split by columns into `W[:, :H] @ h + W[:, H:] @ x`;
and `(loop + seq) + const` is reassociated to `loop + (seq + const)`.
Afterwards the input half and the bias are "seq" nodes, which backends
compute for every step in one matrix multiply before the loop, as cuDNN does.

Preserves: values (up to float rounding from reassociation), and the spec's
names (labels) of the values still computed: the add that now computes a
split product, and the outer add of a reassociation, keep their node's name
(a let's, say). The inner sum `loop + seq` of a reassociation is no longer
computed, so a name of its own goes with it.
"""
from __future__ import annotations

from ..graph import CellGraph, Node, make_attrs, stages


def _split_affine(cell: CellGraph, nid: int, stage: dict) -> bool:
    node = cell.node(nid)
    if node.op != "matmul":
        return False
    w, x = cell.args(nid)
    wn, xn = cell.node(w), cell.node(x)
    if stage[w] != "const" or len(wn.shape) != 2 or xn.op != "concat" or len(xn.shape) != 1:
        return False
    parts = cell.args(x)
    kinds = [stage[p] for p in parts]
    if len(set(kinds)) < 2 or "loop" not in kinds:
        return False
    # contiguous runs of parts that share a stage
    runs, col = [], 0
    for p, k in zip(parts, kinds):
        width = cell.node(p).shape[0]
        if runs and runs[-1][0] == k:
            runs[-1][1].append(p)
            runs[-1][3] = col + width
        else:
            runs.append([k, [p], col, col + width])
        col += width
    terms = []
    for kind, ps, start, stop in runs:
        cols = cell.add(Node("slice", (wn.shape[0], stop - start),
                             make_attrs({"start": start, "stop": stop, "axis": 1}), "float", wn.origin), [w])
        arg = ps[0] if len(ps) == 1 else cell.add(
            Node("concat", (stop - start,), make_attrs({"axis": -1}), "float", xn.origin), ps)
        terms.append((kind, cell.add(Node("matmul", node.shape, (), "float", node.origin), [cols, arg])))
    # loop terms first, so a following bias add can be reassociated onto the seq part
    terms.sort(key=lambda t: t[0] != "loop")
    total = terms[0][1]
    for i, (_, t) in enumerate(terms[1:], 2):  # the last add computes the product: it keeps its name (a let's)
        total = cell.add(Node("add", node.shape, (), "float", node.origin, node.label if i == len(terms) else ""),
                         [total, t])
    cell.redirect(nid, total)
    cell.g.remove_node(nid)
    return True


def _reassociate(cell: CellGraph, nid: int, stage: dict) -> bool:
    """add(add(L, S), C) (or S + L) with L loop, S seq, C const  ->  add(L, add(S, C))."""
    node = cell.node(nid)
    if node.op != "add":
        return False
    inner, c = cell.args(nid)
    if stage[c] != "const" or cell.node(inner).op != "add" or len(cell.users(inner)) != 1:
        return False
    lhs, rhs = cell.args(inner)
    if stage[lhs] == "seq" and stage[rhs] == "loop":
        lhs, rhs = rhs, lhs  # addition commutes
    if stage[lhs] != "loop" or stage[rhs] != "seq" or cell.node(rhs).shape != node.shape:
        return False
    if cell.node(inner).shape != node.shape:
        return False
    seq = cell.add(Node("add", node.shape, (), "float", node.origin), [rhs, c])
    new = cell.add(Node("add", node.shape, (), "float", node.origin, node.label), [lhs, seq])
    cell.redirect(nid, new)
    cell.g.remove_node(nid)
    cell.g.remove_node(inner)
    return True


def hoist_inputs(cell: CellGraph) -> CellGraph:
    cell = cell.copy()
    for rewrite in (_split_affine, _reassociate):
        stage = stages(cell)
        for nid in cell.order():
            if nid in cell.g and rewrite(cell, nid, stage):
                stage = stages(cell)
    return cell
