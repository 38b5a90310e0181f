"""Which fixed-point format each node of a cell graph holds its value in.

Every node's value is an integer of one format (token inputs excepted). The class of a node decides it
(QuantConfig.formats), unless `tensors:` names the node (`<cell>.<param, state or label>`):

    param            weights (rank >= 2) or biases (rank <= 1)
    input            inputs (token inputs: whole ids, no format)
    state            state; the node computing a state's next value takes that state's format, so the
                     recurrence carries integers unchanged
    const            an exact 32-bit format for the literal (1.0 -> q31.0), see formats.exact
    matmul, sum      accumulators
    add, sub, mul,   accumulators when an argument is an accumulator (a pre-activation sum stays wide
    outer, neg,      until its activation reads it); exact (32 bits) when every argument is a whole number or
    maximum, minimum a literal (t - 4); else elementwise
    relu             elementwise
    sigmoid, tanh,   activations
    softmax
    one_hot          q7.0 (0 and 1 exactly)
    t, seq_len       q31.0 (whole numbers)
    mod              exact: 32 bits with the larger N of its arguments (|x % y| < |y|)
    comparisons      q7.0 (0 or 1)
    where            its two choices' format (different formats: as for concat)
    shape ops        their argument's format (concat of different formats: see _joined)
    output           its argument's format
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncompile.errors import UsageError
from rnncompile.graph import CellGraph

from .config import QuantConfig, unknown_tensor
from .formats import QFormat, exact, fitting

SHAPE_OPS = {"slice", "chunk", "index", "transpose", "flatten", "embed"}
WIDE_WHEN_ACC = {"add", "sub", "mul", "outer", "neg", "maximum", "minimum"}
ACTIVATIONS = {"sigmoid", "tanh", "softmax", "masked_softmax"}
ONE_HOT = QFormat(7, 0)
WHOLE = QFormat(31, 0)
COMPARISONS = {"lt", "le", "gt", "ge", "eq", "ne"}
STEP_SOURCES = {"step_index", "seq_length"}


@dataclass(frozen=True)
class Assignment:
    formats: dict  # node id -> QFormat (token-valued nodes absent)
    classes: dict  # node id -> class name (or "const", "token", "exact")


def assign(cell: CellGraph, config: QuantConfig) -> Assignment:
    fmts, classes, literal = {}, {}, {}  # literal: a const's magnitude
    update_of = {nid: name for name, nid in cell.updates().items()}
    state_fmt = {}
    for name, sid in cell.by_name("state").items():
        state_fmt[name] = config.tensor(cell.name, name) or config.of_class("state")
    for nid in cell.order():
        node = cell.node(nid)
        args = cell.args(nid)
        op = node.op
        if op == "param":
            cls = "weights" if len(node.shape) >= 2 else "biases"
            fmt = config.tensor(cell.name, node.attr("name")) or config.of_class(cls)
        elif op == "input":
            if node.dtype == "token":
                classes[nid] = "token"
                continue
            cls, fmt = "inputs", config.tensor(cell.name, node.attr("name")) or config.of_class("inputs")
        elif op == "state":
            cls, fmt = "state", state_fmt[node.attr("name")]
        elif op == "const":
            value = np.asarray(node.attr("value"), np.float64)
            cls = "const"
            fmt = exact(float(value)) if value.ndim == 0 else fitting(float(np.max(np.abs(value), initial=0)), 32)
            if fmt.n > 24:
                fmt = QFormat(31 - 24, 24)
            literal[nid] = float(np.max(np.abs(value), initial=0))
        elif op in SHAPE_OPS or op == "output":
            src = args[1] if op == "embed" else args[0]
            if src not in fmts:
                classes[nid] = "token"
                continue
            cls, fmt = classes[src], fmts[src]
        elif op == "concat":
            fmt = _joined([fmts[a] for a in args], [classes[a] for a in args], [literal.get(a) for a in args])
            cls = _joined_class([classes[a] for a in args])
        elif op in ("matmul", "sum"):
            cls = "accumulators"
            fmt = config.of_class(cls)
        elif op in WIDE_WHEN_ACC and all(classes[a] in ("const", "exact") for a in args):
            # arithmetic on whole numbers and literals (t - 4, seq_len - 1): exact in 32 bits
            n = min(sum(fmts[a].n for a in args) if op in ("mul", "outer") else max(fmts[a].n for a in args), 24)
            cls, fmt = "exact", QFormat(31 - n, n)
        elif op in WIDE_WHEN_ACC:
            cls = "accumulators" if any(classes.get(a) == "accumulators" for a in args) else "elementwise"
            fmt = config.of_class(cls)
        elif op == "relu":
            cls, fmt = "elementwise", config.of_class("elementwise")
        elif op in ACTIVATIONS:
            cls, fmt = "activations", config.of_class("activations")
        elif op == "one_hot" or op in COMPARISONS:
            cls, fmt = "exact", ONE_HOT
        elif op in STEP_SOURCES:
            cls, fmt = "exact", WHOLE
        elif op == "mod":
            n = max(fmts[a].n for a in args)
            cls, fmt = "exact", QFormat(31 - n, n)
        elif op == "where":
            fmt = _joined([fmts[a] for a in args[1:]], [classes[a] for a in args[1:]],
                          [literal.get(a) for a in args[1:]])
            cls = _joined_class([classes[a] for a in args[1:]])
        else:
            raise UsageError(unsupported(cell, nid))
        if op not in ("param", "input", "state", "const", "output") and op not in STEP_SOURCES and node.label:
            fmt = config.tensor(cell.name, node.label) or fmt
        if nid in update_of:
            cls, fmt = "state", state_fmt[update_of[nid]]
        fmts[nid], classes[nid] = fmt, cls
    return Assignment(fmts, classes)


def _joined(formats: list, classes: list, literals: list) -> QFormat:
    """One format for the parts of a concat (or a where's choices): the widest range among the real-valued
    ones, in the widest of their widths, widened for a literal's value (its magnitude in `literals`): where(c,
    x, 0) keeps x's format. Whole numbers (t, seq_len, their arithmetic) are brought into it, saturating.
    When every part is a whole number or a literal: exact, 32 bits."""
    real = [f for f, c in zip(formats, classes) if c not in ("const", "exact")]
    if not real:
        n = max(f.n for f in formats)
        return QFormat(31 - n, n)
    bits = max(f.bits for f in real)
    m = max([f.m for f in real] + [fitting(lit, bits).m for lit in literals if lit is not None])
    return QFormat(m, bits - 1 - m)


def _joined_class(classes: list) -> str:
    """The parts' class when they share one; whole numbers and literals alone stay exact; else elementwise."""
    if len(set(classes)) == 1:
        return classes[0]
    return "exact" if set(classes) <= {"const", "exact"} else "elementwise"


def tensor_names(cell: CellGraph) -> set[str]:
    """The `<cell>.<name>` a quant file's `tensors:` may name for this cell."""
    names = set(cell.params) | set(cell.states) | set(cell.inputs)
    names |= {cell.node(n).label for n in cell.g.nodes if cell.node(n).label}
    return {f"{cell.name}.{n}" for n in names}


def check_tensors(config: QuantConfig, cells) -> None:
    """Every `tensors:` entry names a tensor of one of the model's cells (a located error otherwise)."""
    known = set().union(*(tensor_names(c) for c in cells)) if cells else set()
    for name in config.tensors:
        if name not in known:
            raise unknown_tensor(config, name, known)


FIXED_OPS = {"param", "input", "state", "const", "output", "concat", "matmul", "sum", "relu", "one_hot", "mod",
             "where"} | SHAPE_OPS | WIDE_WHEN_ACC | ACTIVATIONS | COMPARISONS | STEP_SOURCES


def unsupported(cell: CellGraph, nid: int) -> str:
    node = cell.node(nid)
    return (f"cell `{cell.name}`: `{node.op}` ({node.origin or 'node %' + str(nid)}) has no fixed-point form; the "
            f"fixed-point backends run {', '.join(sorted(FIXED_OPS - {'param', 'input', 'state', 'const', 'output'}))}")
