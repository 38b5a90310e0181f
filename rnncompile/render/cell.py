"""The folded cell: one step of the cell, its recurrences drawn as loops marked z⁻¹.

Laid out left to right, like the lecture's LSTM picture: states and inputs on
the left, the gates in a column in the order the updates read them (an LSTM
reads f, i, g, o: `c = f * c + i * g` first, then `h = o * tanh(c)`), the
products and sums after them, the outputs on the right. Several gates that
read the same values (every LSTM gate reads [h, x]) get them through one
junction dot, so the h and x edges join once and fan out without crossing.
A cell with no state (MemN2N's hops, a head) is drawn bottom to top instead.
"""
from __future__ import annotations

import graphviz

from ..graph import CellGraph
from . import style
from .shown import ShownCell, shown_nodes

JUNCTION = dict(shape="point", width="0.09", height="0.09", color="#495057", fillcolor="#495057")


def node_id(nid: int) -> str:
    return f"n{nid}"


def to_dot(cell: CellGraph, *, title: str | None = None, legend: bool = True) -> str:
    """DOT source of the folded cell (params folded into the labels of the ops that read them)."""
    folded = shown_nodes(cell)
    colours = style.activation_colours(folded.activations)
    # a cell that carries nothing over reads bottom to top, a feed-forward net's layers (MemN2N's hops)
    rankdir = "LR" if folded.loops else "BT"
    g = graphviz.Digraph(cell.name, graph_attr=dict(style.GRAPH_ATTRS, rankdir=rankdir, ordering="out"),
                         node_attr=style.NODE_ATTRS, edge_attr=style.EDGE_ATTRS)
    read = {f for s in folded.nodes.values() for f in s.feeders}
    order = [n for n in reading_order(folded)  # a head's inputs include context it may not read
             if folded.nodes[n].kind != "input" or n in read]
    for nid in order:
        g.node(node_id(nid), **style.node_attrs(folded.nodes[nid], colours))
    joined = junctions(folded, order)
    for feeders, users in joined.items():
        jid = junction_id(feeders)
        names = ", ".join(folded.nodes[f].name or folded.nodes[f].op for f in feeders)
        g.node(jid, tooltip=f"[{names}], read by {len(users)} nodes", **JUNCTION)
        for f in feeders:
            g.edge(node_id(f), jid, arrowhead="none")
        with g.subgraph(name=f"column_{jid}") as column:  # the gates it feeds, in one column
            column.attr(rank="same")
            for nid in users:
                column.node(node_id(nid))
    for nid in order:
        feeders = folded.nodes[nid].feeders
        if feeders in joined:
            g.edge(junction_id(feeders), node_id(nid))
            continue
        for src in feeders:
            g.edge(node_id(src), node_id(nid))
    for name, (update, state) in folded.loops.items():
        g.edge(node_id(update), node_id(state), constraint="false",
               tooltip=style.tooltip(f"{name} at the next step", f"cells.{cell.name}.update.{name}"),
               **style.DELAY_EDGE)
    if legend:
        g.attr(label=_caption(folded, title, colours))
    return g.source


def junction_id(feeders: tuple) -> str:
    return "j" + "_".join(str(f) for f in feeders)


def junctions(folded: ShownCell, order: list[int]) -> dict[tuple, list[int]]:
    """Feeder lists of two or more nodes read, in the same order, by two or more nodes -> those nodes."""
    users: dict[tuple, list[int]] = {}
    for nid in order:
        feeders = folded.nodes[nid].feeders
        if len(feeders) >= 2 and len(set(feeders)) == len(feeders):
            users.setdefault(feeders, []).append(nid)
    return {f: u for f, u in users.items() if len(u) >= 2}


def reading_order(folded: ShownCell) -> list[int]:
    """The shown nodes in the order a reader meets them going back from the results: the
    state updates nearest the inputs first (an LSTM's c before its h), each expression's
    arguments left to right, so `f * c + i * g` then `o * tanh(c)` orders the gates f, i, g, o.
    Nodes no update reads (outputs, say) follow in dependency order."""
    nodes = folded.nodes
    depth: dict[int, int] = {}
    for nid, s in nodes.items():  # nodes are in dependency order
        depth[nid] = 1 + max((depth[f] for f in s.feeders), default=-1)
    seen: dict[int, None] = {}

    def visit(start: int) -> None:
        todo = [start]
        while todo:  # depth first, arguments left to right, without recursion
            nid = todo.pop()
            if nid in seen:
                continue
            seen[nid] = None
            todo.extend(reversed(nodes[nid].feeders))

    roots = [update for update, _ in folded.loops.values()]
    for update in sorted(dict.fromkeys(roots), key=lambda u: depth[u]):
        visit(update)
    for nid in nodes:
        visit(nid)
    by_depth = sorted(seen, key=lambda n: depth[n])  # stable: reading order within a column
    return by_depth


def _caption(folded: ShownCell, title: str | None, colours) -> str:
    kinds = [k for k in ("input", "state", "op", "affine", "expr", "function", "param", "output") if folded.of_kind(k)]
    params = ", ".join(folded.params[:8]) + (", …" if len(folded.params) > 8 else "")
    extra = f"params {params} appear inside the formulas" if folded.params else ""
    head = f'<tr><td align="left"><b>{style.esc(title or f"{folded.cell.name} cell, one step")}</b></td></tr>'
    row = style.legend(colours, kinds, extra, delay=bool(folded.loops))  # no z⁻¹ entry where nothing recurs
    return f'<<table border="0" cellspacing="0">{head}<tr><td>{row}</td></tr></table>>'
