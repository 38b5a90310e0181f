"""The Python API of tree models (`model: {fold: ...}`); `rnncompile.run` hands them here.

    prog = rnncompile.compile("specs/rvnn.yaml")
    result = rnncompile.run(prog, trees=["(S (NP He) (VP wins))", "(S (NP She) (VP (V is) (ADJ happy)))"])
    result.outputs["y"]          # the head's: [N nodes, C] at every node, [B trees, C] at the root
    result.nodes["h"]            # every node's state [N, H]; result.final_state["h"]: the roots' [B, H]
"""
from __future__ import annotations

import math

from ..data import check_budget
from ..drivers import Executable
from ..errors import DataError
from ..params import make_params
from ..program import Program
from ..progress import bar as progress_bar
from ..vocab import unknown_note
from .forest import Forest
from .generate import random_trees
from .parse import as_trees
from .run import check_forest
from .schedule import make_schedule

RANDOM_LEAVES = (3, 8)


def run_trees(program: Program, trees=None, params: dict | None = None, weights=None, batch: int = 1,
              seed: int = 0, dtype: str = "float32", backend: str = "numpy", trace: bool = False,
              mode: str = "level", progress: bool = False):
    """Fold the tree cell over `trees` (bracketed text, JSON-like values, Trees, or a Forest;
    seeded random trees when None) and apply the head. mode: level (batched) or node (one at a time)."""
    fold = program.plan.fold
    forest = trees if isinstance(trees, Forest) else Forest.of(
        as_trees(trees) if trees is not None else default_trees(program, batch, seed))
    per_node = sum(math.prod(s) for s in fold.cell.values.values())
    check_budget("the trees' node values", forest.size * per_node)
    if trace:
        check_budget("the trace", forest.size * sum(program.cell(u).node(n).size for u in program.plan.uses()
                                                    for n in program.cell(u).g.nodes))
    schedule = make_schedule(forest.parent)
    tokens = check_forest(forest, fold, program.vocab, schedule.nchildren)
    if params is None:
        params = make_params(program, seed, weights, dtype)
    with progress_bar(forest.size, progress, f"{program.name}: folding", "node") as shown:
        exe = Executable.cached(program, backend, dtype)
        result = exe.run_fold(program.flow, forest, tokens, mode, schedule, params, trace, shown)
    result.note = unknown_note(program.vocab.unknown, forest.unknown) if program.vocab else ""
    return result


def default_trees(program: Program, batch: int, seed: int):
    """Seeded random trees that fit the cell: its arity, and a word (or label) wherever a rule reads one."""
    cell = program.plan.fold.cell
    vocab = len(program.vocab.tokens) if program.vocab else 1
    node_reads = cell.reads.get("node", frozenset())
    if batch < 1:
        raise DataError("a batch needs at least one tree")
    return random_trees(batch, RANDOM_LEAVES, cell.arity, vocab, seed + 1_000_003,
                        labels=any("label" in r for r in cell.reads.values()),
                        words_everywhere="word" in node_reads)
