"""Differentiation as a compiler pass: a cell graph -> its backward cell graph.

The backward step of a cell recomputes the forward step from what it read,
then runs the vector–Jacobian rules (rules.py) from its outputs back to its
leaves. It is an ordinary cell graph, so `graph.verify` checks it, the same
passes optimise it and every backend runs it as a scan, backwards in time:

    inputs   <x>          each forward input at this step
             <s>          each forward state before this step
             d.out.<y>    the adjoint of each forward output at this step
    states   d.<s>        the adjoint of state s: it enters as the adjoint of s
                          after this step and leaves as the adjoint of s before it
    outputs  d.in.<x>     the adjoint of each float input at this step
             d.state.<s>  the adjoint of each state after this step (`state_adjoints`)
             sum.<k>...   this step's part of the adjoint of each param-only value
                          k (a param, its slice, a stacked gate matrix): an outer
                          product as its two factors (.a, .b), the rest whole
             <y>          the forward outputs too, when asked (`keep_outputs`)

Recomputing reads no state (the forward states are inputs), so a backend
computes the whole forward step for every step before its loop; the loop
carries only the adjoints. With `saved`, the forward values the rules read
that depend on a state (a gate's activation, the new cell state) are not
recomputed but read as inputs fwd.<j>, which the forward scan outputs at
every step (`Backward.saved` says which forward node each one is): the
state-to-state matrix products then run once, in the forward loop (PyTorch
and cuDNN keep their gates the same way). The param-only part is
differentiated once per batch, not per step: the driver sums the sum.<k>
outputs over steps and batch (an outer product's as one matrix product,
A^T B, as cuDNN does) and a second graph (`param_graph`: inputs d.sum.<k>,
outputs grad.<param>) takes the sums back through the slices and stacks to
the params.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import networkx as nx

from ..errors import RnnCompileError
from ..graph import CellGraph, InputInfo, Node, StateInfo, make_attrs, stages
from .build import Builder, NoRule
from .rules import NO_RULE, VJP, Piece

OUT, IN, STATE, GRAD, SUM, STATE_ADJ, SAVED = "d.out.", "d.in.", "d.", "grad.", "sum.", "d.state.", "fwd."
VIEWS = {"slice", "index", "chunk", "transpose"}  # one-argument ops NumPy answers with a view: never saved


class GradError(RnnCompileError):
    """A cell cannot be differentiated: names the node, its op and its spec path, and why."""


@dataclass
class Sum:
    """Outputs of the backward step whose sum over steps and batch is the adjoint of one param-only value k:
    `factors` sum.<k>.<j>.a (with .b: summed as outer products, one matrix product), `whole` sum.<k>."""

    k: int
    shape: tuple
    factors: list[str]
    whole: str | None

    def total(self, outputs: dict):
        """The sum over batch and steps ([B, T, ...] outputs) of this value's adjoint."""
        import numpy as np

        used = [outputs[a] for a in self.factors] + [outputs[a[:-1] + "b"] for a in self.factors] + \
            ([outputs[self.whole]] if self.whole is not None else [])
        acc = np.zeros(self.shape, np.result_type(*used))  # one_hot factors are float32 in a float64 run
        for a in self.factors:
            left, right = _rows(outputs[a], outputs[a[:-1] + "b"])
            acc += left.T @ right
        if self.whole is not None:
            (w,) = _rows(outputs[self.whole])
            acc += w.sum(axis=0)
        return acc


def _rows(*xs):
    """[B, T, ...] values as [B * T, ...] rows, all in the same order of (b, t), time-major when that needs no
    copy: a scan's outputs are time-major arrays seen batch-first, and a sum over rows does not depend on their
    order."""
    if all(x.ndim >= 2 and x.swapaxes(0, 1).flags.c_contiguous for x in xs):
        xs = [x.swapaxes(0, 1) for x in xs]
    return [x.reshape((-1,) + x.shape[2:]) for x in xs]


@dataclass
class Backward:
    """A backward cell graph, the graph that takes its sums to the params, and what their names mean."""

    cell: CellGraph
    outputs: list[str]  # forward outputs whose adjoints it reads (inputs d.out.<y>)
    states: list[str]  # forward states it carries adjoints of (states d.<s>)
    inputs: list[str]  # forward float inputs it gives adjoints of (outputs d.in.<x>)
    params: list[str]  # params that get a gradient (outputs grad.<p> of param_graph)
    kept: list[str] = field(default_factory=list)  # forward outputs it also computes
    sums: list[Sum] = field(default_factory=list)  # what the driver sums over steps and batch
    param_graph: CellGraph | None = None  # inputs d.sum.<k> (each Sum's total), params -> outputs grad.<p>
    saved: dict[str, int] = field(default_factory=dict)  # input fwd.<j> -> the forward node whose value it is


def grad(cell: CellGraph, outputs=None, states=None, keep_outputs: bool = False, name: str | None = None,
         state_adjoints: bool = False, saved: bool = False) -> Backward:
    """The backward step of `cell`. `outputs`: the forward outputs with an adjoint (default: every float one);
    `states`: the states whose adjoints cross steps (default: all); `state_adjoints`: also output d.state.<s>,
    the adjoint of each state after the step (through this step's outputs and every later step); `saved`: read
    the forward values the rules need that depend on a state as inputs fwd.<j> (`Backward.saved`) instead of
    recomputing them. The result is not yet optimised (passes.optimise it as any cell)."""
    fwd_outputs = cell.outputs()
    outputs = [n for n in fwd_outputs if cell.node(fwd_outputs[n]).dtype == "float"] if outputs is None else list(outputs)
    states = list(cell.states) if states is None else list(states)
    bw = CellGraph(name or f"{cell.name}.grad")
    b = Builder(bw)
    copy = _copy_forward(cell, bw)
    float_inputs = [n for n, info in cell.inputs.items() if info.dtype == "float"]
    leaves = {copy[nid] for nid in cell.by_name("param").values()}
    leaves |= {copy[cell.by_name("input")[n]] for n in float_inputs}
    leaves |= {copy[nid] for nid in cell.by_name("state").values()}
    dag = bw.step_dag()
    needs = set(leaves)
    for leaf in leaves:
        needs |= nx.descendants(dag, leaf)

    adj = defaultdict(list)  # backward node -> adjoint contributions (node ids or Pieces)
    for oname in outputs:
        out = fwd_outputs[oname]
        (arg,) = cell.args(out)
        seed = bw.add(Node("input", cell.node(arg).shape, make_attrs({"name": OUT + oname, "shape": cell.node(arg).shape}),
                           "float", cell.node(out).origin))
        bw.inputs[OUT + oname] = InputInfo(OUT + oname, cell.node(arg).shape, "float", cell.node(out).origin)
        adj[copy[arg]].append(seed)
    carried = {}
    for sname in states:
        sid = cell.by_name("state")[sname]
        info = cell.states[sname]
        node = bw.add(Node("state", info.shape, make_attrs({"name": STATE + sname, "shape": info.shape}), "float",
                           info.origin))
        bw.states[STATE + sname] = StateInfo(STATE + sname, info.shape, 0.0, info.origin)
        carried[sname] = node
        adj[copy[cell.update_of(sid)]].append(node)

    # the step's own work: every node that reads an input or a state; what reaches a param-only value (a param,
    # its slices, a stacked gate matrix) leaves the step as outputs, summed over steps and batch by the driver
    stage = stages(bw)
    order = [copy[n] for n in cell.order() if cell.node(n).op != "output"]
    updates = {sname: copy[cell.update_of(cell.by_name("state")[sname])] for sname in states}
    totals = {}
    _sweep(b, bw, [n for n in order if stage[n] != "const"], adj, needs, cell.name,
           set(updates.values()) if state_adjoints else set(), totals)
    if state_adjoints:
        for sname, upd in updates.items():
            d = totals.get(upd)
            if d is None:  # an update the sweep passed over (a leaf, or a param-only value): its contributions
                d = _total(b, upd, list(adj[upd])) if adj.get(upd) else b.zeros_like(upd)
            bw.add(Node("output", bw.node(upd).shape, make_attrs({"name": f"{STATE_ADJ}{sname}"}), "float",
                        cell.states[sname].origin), [d])

    b.origin = ""
    result = Backward(bw, outputs, states, [], [])
    for sname in states:  # the adjoint of the state before the step is the carried state's next value
        src = copy[cell.by_name("state")[sname]]
        bw.connect_update(_total(b, src, adj.pop(src, [])) if src in adj else b.zeros_like(src), carried[sname])
    for iname in float_inputs:
        src = copy[cell.by_name("input")[iname]]
        d = _total(b, src, adj.pop(src)) if src in adj else b.zeros_like(src)
        bw.add(Node("output", bw.node(src).shape, make_attrs({"name": IN + iname}), "float",
                    cell.inputs[iname].origin), [d])
        result.inputs.append(iname)
    frontier = [n for n in order if n in adj and stage[n] == "const"]
    for k, nid in enumerate(frontier):
        result.sums.append(_sum_outputs(b, bw, k, nid, adj.pop(nid)))
    result.param_graph, result.params = _param_graph(cell, copy, frontier, needs)
    if keep_outputs:
        for oname, out in fwd_outputs.items():
            (arg,) = cell.args(out)
            bw.add(Node("output", cell.node(out).shape, make_attrs({"name": oname}), cell.node(out).dtype,
                        cell.node(out).origin), [copy[arg]])
            result.kept.append(oname)
    if saved:
        result.saved = _read_saved(cell, bw, copy)
    return result


def _read_saved(cell: CellGraph, bw: CellGraph, copy: dict) -> dict[str, int]:
    """Each recomputed forward value that depends on a state and that a backward node (or an output) reads
    becomes an input fwd.<j>, except a view (a slice of the gates): that is taken again from its saved
    argument, which costs nothing. The recomputation left unread is dead (passes.optimise drops it)."""
    stage = stages(cell)
    recomputed = {copy[n]: n for n in copy if stage[n] == "loop" and cell.node(n).op != "state"}
    read_again = set()  # recomputed views that something outside the recomputation reads
    kept = []
    for n in reversed(cell.order()):  # every user before its arguments
        c = copy.get(n)
        if c not in recomputed:
            continue
        moved = [e for e in bw.g.out_edges(c, keys=True, data=True)
                 if e[1] not in recomputed or e[1] in read_again]
        if not moved:
            continue
        if cell.node(n).op in VIEWS:
            read_again.add(c)
        else:
            kept.append((n, c, moved))
    saved = {}
    for n, c, moved in reversed(kept):  # numbered in the forward's order
        node, name = cell.node(n), f"{SAVED}{len(saved)}"
        inp = bw.add(Node("input", node.shape, make_attrs({"name": name, "shape": node.shape}), node.dtype,
                          node.origin))
        bw.inputs[name] = InputInfo(name, node.shape, node.dtype, node.origin)
        for _, dst, key, data in moved:
            bw.g.remove_edge(c, dst, key)
            bw.g.add_edge(inp, dst, key=key, **data)
        saved[name] = n
    return saved


def _sweep(b: Builder, g: CellGraph, order: list[int], adj: dict, needs: set, name: str, record=(),
           totals=None) -> None:
    """The rules from the last node of `order` to the first: each node's adjoint (the sum of its contributions)
    becomes contributions to its arguments'; the adjoints of the nodes in `record` are kept in `totals`."""
    for nid in reversed(order):
        if nid not in adj or nid not in needs:
            continue
        node = g.node(nid)
        if node.op in ("input", "state", "param"):
            continue
        rule = VJP.get(node.op)
        args = g.args(nid)
        want = [a in needs for a in args]
        if not any(want):
            continue
        if rule is None:
            raise GradError(f"{node.origin or name}: op `{node.op}` has no derivative rule"
                            + (f" ({NO_RULE[node.op]})" if node.op in NO_RULE else ""))
        b.origin = node.origin
        gradient = _total(b, nid, adj.pop(nid))
        if nid in record:
            totals[nid] = gradient
        try:
            parts = rule(b, node, args, nid, gradient, want)
        except NoRule as e:
            raise GradError(f"{node.origin or name}: {node.op}: {e}") from None
        for a, w, d in zip(args, want, parts):
            if w and d is not None:
                adj[a].append(d)


def _sum_outputs(b: Builder, bw: CellGraph, k: int, nid: int, parts: list) -> Sum:
    """One param-only value's adjoint at this step, as outputs whose sum over steps and batch is its adjoint:
    an outer product as its two factors (the sum of outer(a_t, b_t) is one matrix product, A^T B), the rest
    as one value."""
    plain, outers = [], []
    for p in parts:
        p = b.pad(p.g, nid, p.axis, p.start, p.stop) if isinstance(p, Piece) else p
        (outers if bw.node(p).op == "outer" else plain).append(p)
    names = []

    def out(value, name):
        bw.add(Node("output", bw.node(value).shape, make_attrs({"name": name}), "float", bw.node(nid).origin), [value])
        names.append(name)
    for j, p in enumerate(outers):
        left, right = bw.args(p)
        out(left, f"{SUM}{k}.{j}.a")
        out(right, f"{SUM}{k}.{j}.b")
    if plain:
        out(_total(b, nid, plain), f"{SUM}{k}")
    return Sum(k, bw.node(nid).shape, [n for n in names if n.endswith(".a")], f"{SUM}{k}" if plain else None)


def _param_graph(cell: CellGraph, copy: dict, frontier: list[int], needs: set) -> tuple[CellGraph, list[str]]:
    """The graph run once per batch: the summed adjoints of the param-only values (inputs d.sum.<k>) back to
    the params they are made of (outputs grad.<param>)."""
    pg = CellGraph(f"{cell.name}.grad.params")
    b = Builder(pg)
    stage = stages(cell)
    back = {v: k for k, v in copy.items()}
    local = {}
    for nid in cell.order():
        node = cell.node(nid)
        if stage[nid] != "const" or node.op == "output":
            continue
        if node.op == "param":
            pg.params[node.attr("name")] = cell.params[node.attr("name")]
        local[copy[nid]] = pg.add(node, [local[copy[a]] for a in cell.args(nid)])
    adj = defaultdict(list)
    for k, nid in enumerate(frontier):
        shape = cell.node(back[nid]).shape
        seed = pg.add(Node("input", shape, make_attrs({"name": f"d.{SUM}{k}", "shape": shape}), "float"))
        pg.inputs[f"d.{SUM}{k}"] = InputInfo(f"d.{SUM}{k}", shape)
        adj[local[nid]].append(seed)
    order = [local[copy[n]] for n in cell.order() if copy.get(n) in local]
    _sweep(b, pg, order, adj, {local[n] for n in local if n in needs}, cell.name)
    params = []
    for pname, pid in pg.by_name("param").items():
        if pid in adj:
            pg.add(Node("output", pg.node(pid).shape, make_attrs({"name": GRAD + pname}), "float"),
                   [_total(b, pid, adj.pop(pid))])
            params.append(pname)
    return pg, params


def _copy_forward(cell: CellGraph, bw: CellGraph) -> dict[int, int]:
    """Every forward node but the outputs into `bw`; states become inputs (the value before the step)."""
    copy = {}
    for nid in cell.order():
        node = cell.node(nid)
        if node.op == "output":
            continue
        if node.op == "state":
            name = node.attr("name")
            new = Node("input", node.shape, make_attrs({"name": name, "shape": node.shape}), "float", node.origin,
                       node.label)
            bw.inputs[name] = InputInfo(name, node.shape, "float", node.origin)
        else:
            new = node
            if node.op == "input":
                bw.inputs[node.attr("name")] = cell.inputs[node.attr("name")]
            elif node.op == "param":
                bw.params[node.attr("name")] = cell.params[node.attr("name")]
        copy[nid] = bw.add(new, [copy[a] for a in cell.args(nid)])
    return copy


def _total(b: Builder, nid: int, parts: list) -> int:
    """The sum of one node's adjoint contributions; pieces of it (from slices) joined by one concat."""
    pieces = [p for p in parts if isinstance(p, Piece)]
    whole = [p for p in parts if not isinstance(p, Piece)]
    total = None
    if pieces:
        total = _join(b, nid, pieces)
    for p in whole:
        total = p if total is None else b.op("add", total, p)
    return total


def _join(b: Builder, nid: int, pieces: list[Piece]) -> int:
    """Pieces along one axis that do not overlap: one concat, zeros in the gaps; else each padded and summed."""
    axes = {p.axis for p in pieces}
    spans = sorted(pieces, key=lambda p: p.start)
    if len(axes) == 1 and all(a.stop <= c.start for a, c in zip(spans, spans[1:])):
        axis = axes.pop()
        n = b.shape(nid)[axis]
        parts, at = [], 0
        for p in spans:
            if p.start > at:
                parts.append(b.zeros_like(b.op("slice", nid, start=at, stop=p.start, axis=axis)))
            parts.append(p.g)
            at = p.stop
        if at < n:
            parts.append(b.zeros_like(b.op("slice", nid, start=at, stop=n, axis=axis)))
        return parts[0] if len(parts) == 1 else b.op("concat", *parts, axis=axis)
    total = None
    for p in pieces:
        padded = b.pad(p.g, nid, p.axis, p.start, p.stop)
        total = padded if total is None else b.op("add", total, padded)
    return total
