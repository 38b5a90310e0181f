"""The fold driver: a tree cell applied at every node of a batch of trees, leaves to root.

Written once for every backend, which only runs a rule's graph on a batch
of rows (`rows`). Every per-node value (states, the cell's outputs) lives in
one array over all N nodes of the batch; a group of the schedule gathers its
children's states with fancy indexing ([n, k, ...]), runs its rule once and
scatters the results back.

    level (default)  the schedule's groups: all nodes of one height (and one
                     number of children) across every tree in one call, so
                     each affine map is one matrix multiply per group, as in
                     TensorFlow Fold's dynamic batching
    node             the same rules one node at a time, children first (for
                     checking the batched run, and as the baseline it beats)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .schedule import Schedule, make_schedule
from .trees import NO_TOKEN, Forest, TreeError

MODES = ("level", "node")


@dataclass
class TreeRunResult:
    outputs: dict[str, np.ndarray]  # the head's: [B, ...] at the root, [N, ...] at every node; no head: roots'
    nodes: dict[str, np.ndarray]  # every node's states and outputs: [N, ...] (forest order)
    forest: Forest
    schedule: Schedule
    at: str = "root"  # root | every_node: what `outputs` is indexed by
    mode: str = "level"
    trace: list = field(default_factory=list)  # per call: (rule, node ids, {graph node id: [n, ...]})
    tokens = None  # as RunResult's: a tree model produces no token sequence
    lengths = None

    @property
    def final_state(self) -> dict[str, np.ndarray]:
        """Each tree's root values [B, ...] (the tree's summary, as a sequence's final state)."""
        return {name: v[self.forest.roots] for name, v in self.nodes.items()}

    def per_tree(self, values: np.ndarray) -> list[np.ndarray]:
        """Split an [N, ...] array into one array per tree."""
        return np.split(values, self.forest.offsets[1:-1])


def check_forest(forest: Forest, fold, vocab) -> dict[str, np.ndarray]:
    """Refuse trees the cell cannot fold (arity, missing words or labels); the token ids [N] of
    the inputs the rules read."""
    from .vocab import Vocab

    cell = fold.cell
    sched_children = np.bincount(forest.parent[forest.parent >= 0], minlength=forest.size)
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
    voc = Vocab(vocab) if vocab is not None else None
    is_leaf = sched_children == 0
    runs = {"leaf": is_leaf, "node": ~is_leaf} if cell.leaf is not None else {"node": np.ones(forest.size, bool)}
    for name in ("word", "label"):
        readers = [rule for rule, reads in cell.reads.items() if name in reads]
        if not readers:
            continue
        values = forest.words if name == "word" else forest.labels
        ids = encode_tokens(values, voc, name, forest)
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
    from .trees import encode

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

    def run(self, forest: Forest, tokens: dict[str, np.ndarray], mode: str = "level", trace: bool = False,
            schedule: Schedule | None = None) -> TreeRunResult:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        sched = schedule if schedule is not None else make_schedule(forest.parent)
        values = {name: np.empty((forest.size,) + shape, self.dtype) for name, shape in self.fold.cell.values.items()}
        traced: list = []
        if mode == "level":
            for g in sched.groups:
                self._apply(g.nodes, g.children, values, tokens, traced if trace else None)
        else:
            for node in sched.order.tolist():
                kids = sched.children_of(node)
                self._apply(np.array([node]), kids[None], values, tokens, traced if trace else None)
        at = self.head_spec.at if self.head_spec is not None else "root"
        if self.head is not None:
            rows = forest.roots if at == "root" else slice(None)
            x = {name: values[name][rows] for name in self.head.r.inputs}
            outputs, env = self.head.rows(x, trace)
            if trace:
                traced.append(("head", forest.roots if at == "root" else np.arange(forest.size), env))
        else:
            outputs = {name: v[forest.roots] for name, v in values.items()}
        return TreeRunResult(outputs, values, forest, sched, at, mode, traced)

    def _apply(self, nodes: np.ndarray, children: np.ndarray, values: dict, tokens: dict, traced) -> None:
        rule = "leaf" if children.shape[1] == 0 and "leaf" in self.rules else "node"
        bound = self.rules[rule]
        x = {}
        for name in bound.r.inputs:
            if name.startswith("children."):
                x[name] = np.take(values[name[len("children."):]], children, axis=0)  # faster than [children]
            else:
                x[name] = tokens[name][nodes] if name in tokens else np.zeros(len(nodes), np.int64)
        outputs, env = bound.rows(x, traced is not None)
        for name, v in outputs.items():
            values[name][nodes] = v
        if traced is not None:
            traced.append((rule, nodes, env))
