"""Dead-node removal.

Preserves: every output and state update. Nodes that feed neither an output
nor a state's next value are dropped; named leaves (inputs, states) stay, so
the step's signature never changes.
"""
from __future__ import annotations

from ..graph import CellGraph


def remove_dead_nodes(cell: CellGraph) -> CellGraph:
    cell = cell.copy()
    roots = [n for n in cell.g.nodes if cell.node(n).op in ("output", "state", "input")]
    live, stack = set(), list(roots)
    while stack:
        n = stack.pop()
        if n in live:
            continue
        live.add(n)
        stack.extend(cell.args(n))
        if cell.node(n).op == "state":
            stack.append(cell.update_of(n))
    cell.g.remove_nodes_from([n for n in list(cell.g.nodes) if n not in live])
    return cell
