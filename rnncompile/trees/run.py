"""The fold driver: a tree cell applied at every node of a batch of trees, leaves to root.

Written once for every backend, which only runs a rule's graph on a batch
of rows (`rows`). Every per-node value (states, the cell's outputs) lives in
one array over all N nodes of the batch, in the schedule's row order: a
group gathers its children's states with one `take` ([n, k, ...]), runs its
rule and writes the results as one contiguous block. `result.nodes` puts
the rows back in node order when first read.

A large group runs in blocks of rows, as many as keep the rule's widest
value near BLOCK_BYTES (2,048 rows at H = 64). A rule makes new arrays; at
that size they stay in cache and the allocator recycles them from one block
to the next, where a whole level's (megabytes, mapped fresh each time) cost
a page fault per 4 KB, which on the benchmark's VM was a third of the
level-batched run. Each block's affine maps are still one matrix multiply.

    level (default)  the schedule's groups: all nodes of one height (and one
                     number of children) across every tree in one call, so
                     each affine map is one matrix multiply per group, as in
                     TensorFlow Fold's dynamic batching
    node             the same rules one node at a time, children first (for
                     checking the batched run, and as the baseline it beats)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..ops import CHILDREN
from .forest import Forest, encode
from .schedule import Schedule, make_schedule
from .tree import NO_TOKEN, TreeError

MODES = ("level", "node")
BLOCK_BYTES = 1 << 20  # a block's widest value, about (the whole group when tracing)
MIN_BLOCK_ROWS = 256


@dataclass
class TreeRunResult:
    outputs: dict[str, np.ndarray]  # the head's: [B, ...] at the root, [N, ...] at every node; no head: roots'
    stored: dict[str, np.ndarray]  # every node's states and outputs [N, ...], row `row_of[i]` for node i
    forest: Forest
    schedule: Schedule
    at: str = "root"  # root | every_node: what `outputs` is indexed by
    mode: str = "level"
    trace: list = field(default_factory=list)  # per call: (rule, node ids, {graph node id: [n, ...]})
    row_of: np.ndarray | None = None  # node -> its row of `stored` (None: row i is node i)
    tokens = None  # as RunResult's: a tree model produces no token sequence
    lengths = None
    note: str = ""  # e.g. which words were read as the unknown token (set by trees.api.run_trees)

    @cached_property
    def nodes(self) -> dict[str, np.ndarray]:
        """Every node's states and outputs [N, ...], in forest order."""
        if self.row_of is None:
            return self.stored
        return {name: np.take(v, self.row_of, axis=0) for name, v in self.stored.items()}

    @property
    def final_state(self) -> dict[str, np.ndarray]:
        """Each tree's root values [B, ...] (the tree's summary, as a sequence's final state)."""
        return {name: v[self.forest.roots] for name, v in self.nodes.items()}

    def per_tree(self, values: np.ndarray) -> list[np.ndarray]:
        """Split an [N, ...] array into one array per tree."""
        return np.split(values, self.forest.offsets[1:-1])


def check_forest(forest: Forest, fold, vocab, nchildren: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Refuse trees the cell cannot fold (arity, missing words or labels); the token ids [N] of
    the inputs the rules read. `nchildren`: each node's number of children, when known."""
    cell = fold.cell
    sched_children = nchildren if nchildren is not None else \
        np.bincount(forest.parent[forest.parent >= 0], minlength=forest.size)
    if cell.arity is not None:
        bad = np.flatnonzero((sched_children > 0) & (sched_children != cell.arity))
        if bad.size:
            n = int(bad[0])
            where, text, col, what = forest.describe(n)
            k = int(sched_children[n])
            raise TreeError(f"{what} has {k} child{'ren' if k != 1 else ''}, but cell `{cell.name}` takes exactly "
                            f"{cell.arity} (arity: {cell.arity})", where, text, col,
                            "binarize the trees, or give the cell `arity: any` and a children axis")
    tokens = {}
    forest.unknown.clear()  # this check's words only, if the same forest runs again
    is_leaf = sched_children == 0
    runs = {"leaf": is_leaf, "node": ~is_leaf} if cell.leaf is not None else {"node": np.ones(forest.size, bool)}
    for name in ("word", "label"):
        readers = [rule for rule, reads in cell.reads.items() if name in reads]
        if not readers:
            continue
        values = forest.words if name == "word" else forest.labels
        ids = encode_tokens(values, vocab, name, forest)
        for rule in readers:
            missing = np.flatnonzero(runs[rule] & (ids == NO_TOKEN))
            if missing.size:
                where, text, col, what = forest.describe(int(missing[0]))
                kind = "leaf" if is_leaf[missing[0]] else "node"
                hint = ("a dependency tree (JSON or parent pointers) gives every node a word" if name == "word"
                        else "label every node: (LABEL child ...)")
                raise TreeError(f"{what} has no {name}, but the {rule} rule of cell `{cell.name}` reads `{name}` "
                                f"(at every {kind if rule == 'node' and cell.leaf is None else rule})", where, text,
                                col, hint)
        tokens[name] = ids
    return tokens


def encode_tokens(values: np.ndarray, vocab, what: str, forest: Forest) -> np.ndarray:
    """Token ids [N] of the forest's words or labels; `vocab`: the spec's (a VocabSpec, or None)."""
    if vocab is None:
        raise TreeError(f"the trees' {what}s need a vocabulary to become token ids, and the spec has none")
    return encode(values, vocab, what, forest)


class FoldRunner:
    """A tree model's bound rules and head, ready to run on forests."""

    def __init__(self, exe, params: dict):
        plan = exe.program.plan
        self.fold, self.head_spec = plan.fold, plan.head
        self.rules = {"node": exe.bind(self.fold.node, params)}
        if self.fold.leaf is not None:
            self.rules["leaf"] = exe.bind(self.fold.leaf, params)
        self.head = exe.bind(plan.head.use, params) if plan.head is not None else None
        self.dtype = exe.dtype
        uses = {"node": self.fold.node, "leaf": self.fold.leaf, "head": plan.head.use if plan.head else None}
        self.block_rows = {name: self._block(exe.program.cell(u))
                           for name, u in uses.items() if u is not None}  # per rule, and the head's

    def run(self, forest: Forest, tokens: dict[str, np.ndarray], mode: str = "level", trace: bool = False,
            schedule: Schedule | None = None, progress=None) -> TreeRunResult:
        """Fold every tree; `progress` (a tqdm bar) ticks once per node folded."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        sched = schedule if schedule is not None else make_schedule(forest.parent)
        stored = {name: np.empty((forest.size,) + shape, self.dtype) for name, shape in self.fold.cell.values.items()}
        traced = [] if trace else None
        if mode == "level":  # rows in the schedule's order
            row_of, node_at = sched.row, sched.order
            for g in sched.groups:
                block = len(g.nodes) if trace else self.block_rows[self._rule(g.arity)]
                for a in range(0, len(g.nodes), block):
                    b = min(a + block, len(g.nodes))
                    rows = slice(g.rows.start + a, g.rows.start + b)
                    kids = None if g.child_block is None else \
                        slice(g.child_block.start + a * g.arity, g.child_block.start + b * g.arity)
                    self._apply(g.nodes[a:b], g.child_rows[a:b], rows, stored, tokens, traced, kids)
                    if progress is not None:
                        progress.update(b - a)
        else:  # row i is node i
            row_of, node_at = None, np.arange(forest.size)
            for node in sched.order.tolist():
                self._apply(np.array([node]), sched.children_of(node)[None], node, stored, tokens, traced)
                if progress is not None:
                    progress.update(1)
        roots = forest.roots if row_of is None else row_of[forest.roots]
        at = self.head_spec.at if self.head_spec is not None else "root"
        if self.head is None:
            outputs = {name: v[roots] for name, v in stored.items()}
        elif at == "root":
            outputs, env = self.head.rows({name: stored[name][roots] for name in self.head.r.inputs}, trace)
            if trace:
                traced.append(("head", forest.roots, env))
        else:
            outputs = self._head_every_node(stored, node_at, forest.size if trace else self.block_rows["head"], traced)
            if row_of is not None:
                outputs = {name: np.take(v, row_of, axis=0) for name, v in outputs.items()}
        return TreeRunResult(outputs, stored, forest, sched, at, mode, traced or [], row_of)

    def _block(self, cell) -> int:
        """Rows per call of a graph: its widest value near BLOCK_BYTES."""
        return max(MIN_BLOCK_ROWS, BLOCK_BYTES // (self.dtype.itemsize * _widest(cell)))

    def _rule(self, arity: int) -> str:
        return "leaf" if arity == 0 and "leaf" in self.rules else "node"

    def _head_every_node(self, stored: dict, node_at: np.ndarray, block: int, traced) -> dict:
        """The head on every row of `stored`, a block of rows at a time; [N, ...] in row order."""
        n, outputs = len(node_at), {}
        for a in range(0, n, block):
            rows = slice(a, min(a + block, n))
            out, env = self.head.rows({name: stored[name][rows] for name in self.head.r.inputs}, traced is not None)
            for name, v in out.items():
                if name not in outputs:
                    outputs[name] = np.empty((n,) + v.shape[1:], v.dtype)
                outputs[name][rows] = v
            if traced is not None:
                traced.append(("head", node_at[rows], env))
        return outputs

    def _apply(self, nodes: np.ndarray, child_rows: np.ndarray, rows, stored: dict, tokens: dict, traced,
               child_block: slice | None = None) -> None:
        """Run one rule on `nodes`, reading their children's states from `child_rows` of `stored` (the
        rows of `child_block` in order, when given: read in place) and writing theirs to `rows` (a
        block, or one node's row)."""
        rule = self._rule(child_rows.shape[1])
        bound = self.rules[rule]
        x = {}
        for name in bound.r.inputs:
            if name.startswith("children."):  # [n, k, ...]
                v = stored[name[len("children."):]]
                if child_block is not None:
                    x[name] = v[child_block].reshape(child_rows.shape + v.shape[1:])
                else:  # a take of the flat rows is the fastest gather
                    x[name] = np.take(v, child_rows.ravel(), axis=0).reshape(child_rows.shape + v.shape[1:])
            else:
                x[name] = tokens[name][nodes] if name in tokens else np.zeros(len(nodes), np.int64)
        outputs, env = bound.rows(x, traced is not None)
        for name, v in outputs.items():
            stored[name][rows] = v
        if traced is not None:
            traced.append((rule, nodes, env))


def _widest(cell) -> int:
    """The most numbers one value of a graph holds per row: its inputs and what is computed from them
    (a children axis counted as 8)."""
    stack = list(cell.by_name("input").values())
    per_row = set(stack)
    while stack:
        for user in cell.users(stack.pop()):
            if user not in per_row:
                per_row.add(user)
                stack.append(user)
    return max((math.prod(d if d != CHILDREN else 8 for d in cell.node(n).shape) for n in per_row), default=1)
