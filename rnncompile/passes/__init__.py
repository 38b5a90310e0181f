"""Compiler passes: each is a `CellGraph -> CellGraph` function in its own
module, with a docstring saying what it preserves. `PIPELINE` lists them in
the order `compile()` runs them; the verifier runs after each one."""
from __future__ import annotations

from ..graph import CellGraph, verify
from .cse import eliminate_common_subexpressions
from .dce import remove_dead_nodes
from .flatten import flatten_joined_rows
from .constants import fold_constants
from .fuse import fuse_gates
from .fuse_elementwise import fuse_elementwise
from .hoist import hoist_inputs

PIPELINE = (
    ("fold-constants", fold_constants),
    ("flatten-rows", flatten_joined_rows),
    ("hoist-inputs", hoist_inputs),
    ("cse", eliminate_common_subexpressions),
    ("fuse-gates", fuse_gates),
    ("fuse-elementwise", fuse_elementwise),
    ("cse", eliminate_common_subexpressions),
    ("dce", remove_dead_nodes),
)


def optimise(cell: CellGraph, pipeline=PIPELINE) -> tuple[CellGraph, list[tuple[str, int, int]]]:
    """Run the passes in order; returns the graph and (pass, nodes before, nodes after)."""
    log = []
    for name, fn in pipeline:
        before = cell.g.number_of_nodes()
        cell = fn(cell)
        verify(cell)
        log.append((name, before, cell.g.number_of_nodes()))
    return cell, log
