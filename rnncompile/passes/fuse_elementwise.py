"""Elementwise fusion over slices.

Preserves: values, exactly (every element is computed by the same operation
on the same operands). Gate fusion leaves a fused value `F` cut into row
slices `F[0:H], F[H:2H], ...`, and each slice often meets the same
elementwise op: its own bias (`F[a:b] + b_k`), the matching slice of another
fused value (`F[a:b] + S[a:b]`), or an activation (`sigmoid(F[a:b])`). When
adjacent slices meet the same op, it runs once on the rows they cover
(`F + concat(b_k)`, `F + S`, `sigmoid(F[0:2H])`) and the slices are taken
after it. For an LSTM this adds the four biases into the hoisted input
projection before the loop, and leaves one add per step instead of four and
one sigmoid for the input and forget gates together, as cuDNN does.
"""
from __future__ import annotations

import networkx as nx

from ..graph import CellGraph, Node, make_attrs, stages
from ..ops import OPS

BINARY = {name for name, op in OPS.items() if op.kind == "elementwise" and op.arity == (2, 2)}
# one value in, one out, element by element (an op with an axis, like softmax, mixes elements)
UNARY = {name for name, op in OPS.items()
         if op.kind in ("elementwise", "activation") and op.arity == (1, 1) and "axis" not in op.attrs}
COMMUTATIVE = {"add", "mul", "maximum", "minimum"}


def _row_slice(cell: CellGraph, nid: int):
    """(source, start, stop) when `nid` slices its argument along the first axis, else None."""
    node = cell.node(nid)
    if node.op != "slice":
        return None
    (src,) = cell.args(nid)
    shape = cell.node(src).shape
    if not shape or node.attr("axis", 0) % len(shape) != 0:
        return None
    start, stop, _ = slice(node.attr("start"), node.attr("stop")).indices(shape[0])
    return src, start, stop


def _other(args: list, part: int) -> int:
    return args[1 - args.index(part)]


def _uses(cell: CellGraph, part: int, start: int, stop: int, stage: dict):
    """Each elementwise use of one slice as (key, use); uses of adjacent slices with the same key can run
    as one op. key: (op, attrs, the slice's position, and for a binary op "rows" with the other value's
    source when it is the same rows of another value, or "const")."""
    shape = cell.node(part).shape
    for use in cell.users(part):
        node = cell.node(use)
        if node.shape != shape or node.dtype != "float":
            continue
        if node.op in UNARY:
            yield (node.op, node.attrs, 0, "unary", None), use
        elif node.op in BINARY:
            args = cell.args(use)
            other = _other(args, part)
            pos = 0 if node.op in COMMUTATIVE else args.index(part)
            r = _row_slice(cell, other)
            if r and (r[1], r[2]) == (start, stop) and cell.node(r[0]).shape[1:] == cell.node(part).shape[1:]:
                yield (node.op, node.attrs, pos, "rows", r[0]), use
            elif stage[other] == "const" and cell.node(other).shape == shape:
                yield (node.op, node.attrs, pos, "const", None), use


def _runs(cuts: list, options: list):
    """(key, [(start, stop, part, use), ...]) for each run of two or more adjacent slices sharing a key."""
    for key in {k for o in options for k in o}:
        run = []
        for (start, stop, part), o in zip(cuts, options):
            if key in o and run and run[-1][1] == start:
                run.append((start, stop, part, o[key]))
                continue
            if len(run) > 1:
                yield key, run
            run = [(start, stop, part, o[key])] if key in o else []
        if len(run) > 1:
            yield key, run


def _rows(cell: CellGraph, nid: int, start: int, stop: int, origin: str) -> int:
    """`nid` itself when [start, stop) is all of its rows, else a new row slice of it."""
    if (start, stop) == (0, cell.node(nid).shape[0]):
        return nid
    shape = (stop - start,) + cell.node(nid).shape[1:]
    return cell.add(Node("slice", shape, make_attrs({"start": start, "stop": stop, "axis": 0}), "float", origin), [nid])


def _fuse_run(cell: CellGraph, nid: int, key, run: list) -> bool:
    op, attrs, pos, mode, src = key
    uses = [use for *_, use in run]
    others = [src] if mode == "rows" else [] if mode == "unary" else \
        [_other(cell.args(use), part) for _, _, part, use in run]
    dag = cell.step_dag()
    if any(v in nx.descendants(dag, u) for u in uses for v in others):  # it would read its own result
        return False
    lo, hi = run[0][0], run[-1][1]
    first = cell.node(uses[0])
    base = _rows(cell, nid, lo, hi, first.origin)
    shape = cell.node(base).shape
    args = [base]
    if mode == "rows":
        args.append(_rows(cell, src, lo, hi, first.origin))
    elif mode == "const":
        args.append(cell.add(Node("concat", shape, make_attrs({"axis": 0}), "float", first.origin), others))
    if pos == 1:
        args.reverse()
    whole = cell.add(Node(op, shape, attrs, "float", first.origin), args)
    for start, stop, part, use in run:
        old = cell.node(use)
        piece = cell.add(Node("slice", old.shape, make_attrs({"start": start - lo, "stop": stop - lo, "axis": 0}),
                              "float", old.origin, old.label), [whole])
        dropped = [a for a in cell.args(use) if cell.node(a).op == "slice"]
        cell.redirect(use, piece)
        cell.g.remove_node(use)
        for a in dropped:  # slices nothing reads any more
            if a in cell.g and cell.g.out_degree(a) == 0:
                cell.g.remove_node(a)
    return True


def _fuse_at(cell: CellGraph, nid: int, stage: dict) -> bool:
    cuts = sorted((r[1], r[2], s) for s in cell.users(nid) if (r := _row_slice(cell, s)) and r[0] == nid)
    options = [dict(_uses(cell, part, start, stop, stage)) for start, stop, part in cuts]
    for key, run in sorted(_runs(cuts, options), key=lambda kr: (kr[1][0][0], repr(kr[0]))):
        if _fuse_run(cell, nid, key, run):
            return True
    return False


def fuse_elementwise(cell: CellGraph) -> CellGraph:
    cell = cell.copy()
    changed = True
    while changed:  # each rewrite leaves fewer elementwise nodes, so this ends
        changed = False
        stage = stages(cell)
        for nid in cell.order():
            if nid in cell.g and _fuse_at(cell, nid, stage):
                changed = True
                break
    return cell
