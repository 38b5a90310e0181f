"""The model plan of a tree model: `model: {fold: <tree cell>, input: {tree: tree}, head: ...}`.

The fold applies the tree cell at every node, leaves to root; its two rules
are two cell uses that share one set of weights (keyed without a prefix,
as the cell's params are named in the spec). A head reads what each node
holds (its states and the cell's outputs): at the root, one result per tree,
or at every node. PlanBuilder.build hands `fold:` models to build_fold.
"""
from __future__ import annotations

from ..plan import CellUse, Fold, Head, Plan
from ..spec import HeadSpec

TREE_INPUT = "tree"


def build_fold(b) -> Plan | None:
    """The plan of a `fold:` model (b: the PlanBuilder), reporting every problem located."""
    m = b.spec.model
    for key in ("scan", "layers", "encoder", "decoder"):
        if getattr(m, key) is not None:
            b.error(("model", key), f"`fold` and `{key}` cannot be combined",
                    "a tree model folds one tree cell over each tree; sequences need their own spec")
            return None
    if m.context:
        b.error(("model", "context"), "a tree model takes no context inputs")
    name = _input_name(b, m.input)
    if not b.cell_name(m.fold, ("model", "fold")):
        return None
    if b.spec.cells[m.fold].kind != "tree":
        b.error(("model", "fold"), f"cell `{m.fold}` is a step cell; `fold` needs a tree cell (kind: tree)",
                "run a step cell with `scan:`", True, len(m.fold))
        return None
    head = m.head
    if isinstance(head, HeadSpec) and "at" in head.model_fields_set:
        b.error(("model", "head", "at"), f"a tree has no steps: its head is at `root` (one result per tree) or "
                                         f"`every_node`, not `{head.at}`", value=True, width=len(head.at))
        head = None
    cell = b.cell(m.fold, b.dims)
    if cell is None or name is None:
        return None
    plan = Plan({}, {}, {}, kind="tree")
    plan.fold = Fold(cell, CellUse(cell.node, "node.", weights=""),
                     CellUse(cell.leaf, "leaf.", weights="") if cell.leaf is not None else None, name)
    needs_vocab = sorted({i for reads in cell.reads.values() for i in reads})
    if needs_vocab and b.spec.vocab is None:
        b.error(("cells", m.fold, "inputs"), f"cell `{m.fold}` reads `{needs_vocab[0]}`, a token, so the spec "
                                             f"needs a `vocab:`", "add vocab: {level: word, tokens: [...]}")
    if head is not None:
        at = "root" if isinstance(head, HeadSpec) else head.at
        before = len(b.sink.errors)
        graph = b.stateless(head, cell.values, ("model", "head"), "head")
        if len(b.sink.errors) > before:
            return None
        plan.head = Head(CellUse(graph, "head."), at)
    return plan


def _input_name(b, inputs: dict) -> str | None:
    if not inputs:
        return TREE_INPUT
    if len(inputs) > 1:
        b.error(("model", "input"), "a tree model reads one tree per example: write `input: {tree: tree}`")
        return None
    (name, shape), = inputs.items()
    if shape != [TREE_INPUT]:
        b.error(("model", "input", name), f"the input of a tree model is a tree: write `{name}: tree`",
                value=True)
        return None
    return name
