"""The folded cell: one step of the cell, its recurrences drawn as loops marked z⁻¹."""
from __future__ import annotations

import graphviz

from ..graph import CellGraph
from . import style
from .fold import Folded, fold


def node_id(nid: int) -> str:
    return f"n{nid}"


def to_dot(cell: CellGraph, *, title: str | None = None, legend: bool = True) -> str:
    """DOT source of the folded cell (params folded into the labels of the ops that read them)."""
    folded = fold(cell)
    colours = style.activation_colours(folded.activations)
    g = graphviz.Digraph(cell.name, graph_attr=dict(style.GRAPH_ATTRS, rankdir="LR"),
                         node_attr=style.NODE_ATTRS, edge_attr=style.EDGE_ATTRS)
    for shown in folded.nodes.values():
        g.node(node_id(shown.nid), **style.node_attrs(shown, colours))
    for src, dst in folded.edges():
        g.edge(node_id(src), node_id(dst))
    for name, (update, state) in folded.loops.items():
        g.edge(node_id(update), node_id(state), constraint="false",
               tooltip=style.tooltip(f"{name} at the next step", f"cells.{cell.name}.update.{name}"),
               **style.DELAY_EDGE)
    if legend:
        g.attr(label=_caption(folded, title, colours))
    return g.source


def _caption(folded: Folded, title: str | None, colours) -> str:
    kinds = [k for k in ("input", "state", "op", "affine", "param", "output") if folded.of_kind(k)]
    params = ", ".join(folded.params[:8]) + (", …" if len(folded.params) > 8 else "")
    extra = f"params {params} appear inside the formulas" if folded.params else ""
    head = f'<tr><td align="left"><b>{style.esc(title or f"{folded.cell.name} cell, one step")}</b></td></tr>'
    return f'<<table border="0" cellspacing="0">{head}<tr><td>{style.legend(colours, kinds, extra)}</td></tr></table>>'
