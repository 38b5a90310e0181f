"""Unrolling a cell over T steps into one DAG (for drawing and analysis).

Execution never needs this: backends loop over the cell graph. Node ids of
the result are ``(t, nid)`` for a node of step t, ``("const", nid)`` for
params and literals (shared by all steps: the weights are the same at every
step), and ``("init", name)`` for a state's initial value. A state read at
step t is the node ``(t, nid)`` whose only argument is the update computed
at step t-1 (or the initial value), on an edge marked ``recurrent=True``.
"""
from __future__ import annotations

import networkx as nx

from .graph import CellGraph, stages


def unroll(cell: CellGraph, steps: int, reverse: bool = False) -> nx.DiGraph:
    if steps < 1:
        raise ValueError("unroll needs at least one step")
    stage = stages(cell)
    order = cell.order()
    dag = nx.MultiDiGraph(name=f"{cell.name} x {steps}")

    def nid_at(n, t):
        return ("const", n) if stage[n] == "const" else (t, n)

    for n in order:
        if stage[n] == "const":
            dag.add_node(("const", n), node=cell.node(n), step=None)
    for name, info in cell.states.items():
        dag.add_node(("init", name), node=cell.node(cell.by_name("state")[name]), step=None, init=True)
    time = list(range(steps - 1, -1, -1)) if reverse else list(range(steps))
    prev_t = None
    for t in time:
        for n in order:
            if stage[n] == "const":
                continue
            node = cell.node(n)
            dag.add_node((t, n), node=node, step=t)
            if node.op == "state":
                src = ("init", node.attr("name")) if prev_t is None else nid_at(cell.update_of(n), prev_t)
                dag.add_edge(src, (t, n), key=0, recurrent=True)
            for i, a in enumerate(cell.args(n)):
                dag.add_edge(nid_at(a, t), (t, n), key=i, recurrent=False)
        prev_t = t
    return dag


def final_updates(cell: CellGraph, dag, steps: int, reverse: bool = False) -> dict[str, tuple]:
    """The unrolled nodes holding each state's value after the last step."""
    last = 0 if reverse else steps - 1
    stage = stages(cell)
    out = {}
    for name, sid in cell.by_name("state").items():
        u = cell.update_of(sid)
        out[name] = ("const", u) if stage[u] == "const" else (last, u)
    return out
