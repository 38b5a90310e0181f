"""Embedding projection: a fixed matrix times an embedded token becomes an embedding of the projected table.

`W @ embed(ids, T)` is the row `ids` of `T @ W^T`, so it is rewritten to
`embed(ids, T @ W^T)`: the product of the table with the matrix is made once
per batch (the table has V rows) instead of once per token (B x T rows), and
looking a token up is a copy of one row. For a character model (V = 32 tokens,
B x T = 3,200 tokens a batch) the input projection of an LSTM becomes 100
times cheaper; differentiated, the table's and the matrix's gradients come
from one [V, B x T] x [B x T, 4H] product instead of two per-token ones
(`W^T dz` at every step and `dz^T x`), as a one-hot input times a matrix
would. A bias added to the lookup alone is added to the table's rows
instead. Only tables of at most `max_rows` rows are projected (a word table
of 10,000 rows times 4H columns costs more than the tokens of a batch).

Preserves: values, up to float rounding (each output is the same dot product
of the same numbers, summed in BLAS's order for a different matrix shape);
an embedding other nodes also read stays for them.
"""
from __future__ import annotations

from ..graph import CellGraph, Node, make_attrs, stages

MAX_ROWS = 1024


def project_embeddings(cell: CellGraph, max_rows: int = MAX_ROWS) -> CellGraph:
    """The cell with every `W @ embed(ids, T)` (W and T made once per bind, T at most `max_rows` rows, one id a
    step) looked up in `T @ W^T` instead (plus a bias added to the lookup alone)."""
    cell = cell.copy()
    stage = stages(cell)
    for nid in cell.order():
        if nid not in cell.g:  # a bias add folded away
            continue
        node = cell.node(nid)
        if node.op != "matmul":
            continue
        w, x = cell.args(nid)
        wn, xn = cell.node(w), cell.node(x)
        if stage[w] != "const" or len(wn.shape) != 2 or xn.op != "embed" or len(xn.shape) != 1:
            continue
        ids, table = cell.args(x)
        tn = cell.node(table)
        if stage[table] != "const" or len(tn.shape) != 2 or tn.shape[0] > max_rows or cell.node(ids).shape != ():
            continue
        wt = cell.add(Node("transpose", (wn.shape[1], wn.shape[0]), (), "float", wn.origin), [w])
        projected = cell.add(Node("matmul", (tn.shape[0], wn.shape[0]), (), "float", node.origin), [table, wt])
        new = cell.add(Node("embed", node.shape, make_attrs({}), "float", node.origin, node.label), [ids, projected])
        cell.redirect(nid, new)
        cell.g.remove_node(nid)
        if not cell.g.out_edges(x):
            cell.g.remove_node(x)
        _fold_bias(cell, new, projected, stage)
    return cell


def _fold_bias(cell: CellGraph, looked_up: int, projected: int, stage: dict) -> None:
    """embed(ids, P) + b, the lookup read by nothing else  ->  embed(ids, P + b): the bias added to V rows, not
    to every token's."""
    users = cell.users(looked_up)
    if len(users) != 1 or len(cell.g.out_edges(looked_up)) != 1 or cell.node(users[0]).op != "add":
        return
    add = users[0]
    (bias,) = [a for a in cell.args(add) if a != looked_up] or [None]
    node = cell.node(add)
    if bias is None or stage.get(bias) != "const" or cell.node(bias).shape != node.shape:
        return
    shape = cell.node(projected).shape
    table = cell.add(Node("add", shape, (), "float", node.origin), [projected, bias])
    ids = cell.args(looked_up)[0]
    new = cell.add(Node("embed", node.shape, make_attrs({}), "float", node.origin, node.label), [ids, table])
    cell.redirect(add, new)
    cell.g.remove_node(add)
    cell.g.remove_node(looked_up)
