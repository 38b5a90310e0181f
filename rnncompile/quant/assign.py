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
    outer, neg,      until its activation reads it), else elementwise
    maximum, minimum
    relu             elementwise
    sigmoid, tanh,   activations
    softmax
    one_hot          q7.0 (0 and 1 exactly)
    shape ops        their argument's format (concat of different formats: the first argument's class)
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


@dataclass(frozen=True)
class Assignment:
    formats: dict  # node id -> QFormat (token-valued nodes absent)
    classes: dict  # node id -> class name (or "const", "token", "exact")


def assign(cell: CellGraph, config: QuantConfig) -> Assignment:
    fmts, classes = {}, {}
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
        elif op in SHAPE_OPS or op == "output":
            src = args[1] if op == "embed" else args[0]
            if src not in fmts:
                classes[nid] = "token"
                continue
            cls, fmt = classes[src], fmts[src]
        elif op == "concat":
            cls, fmt = classes[args[0]], fmts[args[0]]
        elif op in ("matmul", "sum"):
            cls = "accumulators"
            fmt = config.of_class(cls)
        elif op in WIDE_WHEN_ACC:
            cls = "accumulators" if any(classes.get(a) == "accumulators" for a in args) else "elementwise"
            fmt = config.of_class(cls)
        elif op == "relu":
            cls, fmt = "elementwise", config.of_class("elementwise")
        elif op in ACTIVATIONS:
            cls, fmt = "activations", config.of_class("activations")
        elif op == "one_hot":
            cls, fmt = "exact", ONE_HOT
        else:
            raise UsageError(unsupported(cell, nid))
        if op not in ("param", "input", "state", "const", "output") and node.label:
            fmt = config.tensor(cell.name, node.label) or fmt
        if nid in update_of:
            cls, fmt = "state", state_fmt[update_of[nid]]
        fmts[nid], classes[nid] = fmt, cls
    return Assignment(fmts, classes)


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


FIXED_OPS = {"param", "input", "state", "const", "output", "concat", "matmul", "sum", "relu", "one_hot"} | SHAPE_OPS \
    | WIDE_WHEN_ACC | ACTIVATIONS


def unsupported(cell: CellGraph, nid: int) -> str:
    node = cell.node(nid)
    return (f"cell `{cell.name}`: `{node.op}` ({node.origin or 'node %' + str(nid)}) has no fixed-point form; the "
            f"fixed-point backends run {', '.join(sorted(FIXED_OPS - {'param', 'input', 'state', 'const', 'output'}))}")
