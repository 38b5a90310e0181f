"""Losses as graph nodes, so the loss is differentiated by the same rules as the model.

`loss_cell` returns a stateless cell computing one step's loss `loss` [] from
a model output and an input `loss.target`:

    xent  -log p[target] for a distribution p over tokens. When p is a softmax
          (a head's `softmax(W_y @ h + b_y)`), the log is taken as log-softmax
          of its argument, z - max z - log sum exp(z - max z): no probability is
          ever divided by or logged, so a confident wrong prediction gives a
          large finite loss and the adjoint of z is exactly softmax(z) - onehot.
    mse   the mean over the output's elements of (y - target)^2.

The loss of a batch: the sum over each sequence's real steps, the mean over
the batch (`reduction="sum"`, the lecture's definition), or the mean over
every real step of the batch (`reduction="mean"`). `reference_loss` computes
the same number in NumPy from a run's outputs, as a check that shares no code
with the graph.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..graph import CellGraph, InputInfo, Node, make_attrs
from .build import Builder

LOSSES = ("xent", "mse")


def default_loss(program, loss: str | None) -> str:
    """xent for a model with a vocabulary (its output is a distribution over tokens), else mse."""
    if loss is not None:
        if loss not in LOSSES:
            raise UsageError(f"unknown loss `{loss}`; use one of: {', '.join(LOSSES)}")
        return loss
    return "xent" if program.vocab is not None else "mse"


REDUCTIONS = ("sum", "mean")
TARGET, LOSS = "loss.target", "loss"


def loss_cell(cell: CellGraph | None, output: str, shape: tuple, kind: str) -> CellGraph:
    """`cell` (a head, or None: the output is read as an input named `output`) with the loss of its output
    `output` (shape `shape`) added as the output `loss`."""
    if kind not in LOSSES:
        raise UsageError(f"unknown loss `{kind}`; use one of: {', '.join(LOSSES)}")
    if cell is None:
        g = CellGraph(f"loss.{output}")
        value = g.add(Node("input", shape, make_attrs({"name": output, "shape": shape}), "float", "loss"))
        g.inputs[output] = InputInfo(output, shape, "float", "loss")
    else:
        g = cell.copy()
        (value,) = g.args(g.outputs()[output])
    b = Builder(g, "loss")
    if kind == "xent":
        if len(shape) != 1:
            raise UsageError(f"cross-entropy needs a distribution over tokens (a vector), but output `{output}` "
                             f"is {list(shape)}; use --loss mse")
        target = g.add(Node("input", (), make_attrs({"name": TARGET, "shape": ()}), "token", "loss"))
        g.inputs[TARGET] = InputInfo(TARGET, (), "token", "loss")
        logp = _log_probs(b, value)
        hot = b.op("one_hot", target, n=shape[0])
        loss = b.op("neg", b.op("sum", b.op("mul", hot, logp)), label="loss")
    else:
        target = g.add(Node("input", shape, make_attrs({"name": TARGET, "shape": shape}), "float", "loss"))
        g.inputs[TARGET] = InputInfo(TARGET, shape, "float", "loss")
        diff = b.op("sub", value, target)
        loss = b.op("mean", b.op("mul", diff, diff), label="loss")
    g.add(Node("output", (), make_attrs({"name": LOSS}), "float", "loss"), [loss])
    return g


def _log_probs(b: Builder, p: int) -> int:
    """log p, as log-softmax of the logits when p is a softmax over its last axis."""
    node = b.cell.node(p)
    if node.op == "softmax" and node.attr("axis", -1) % len(node.shape) == len(node.shape) - 1:
        (z,) = b.cell.args(p)
        shifted = b.op("sub", z, b.op("max", z))
        return b.op("sub", shifted, b.op("log", b.op("sum", b.op("exp", shifted))))
    return b.op("log", p)


def step_weights(batch: int, steps: int | None, lengths, reduction: str) -> tuple[np.ndarray, float]:
    """The weight of each step's loss in the batch's loss ([B, T], or [B] for one loss per sequence) and the
    number of real steps."""
    if reduction not in REDUCTIONS:
        raise UsageError(f"unknown reduction `{reduction}`; use one of: {', '.join(REDUCTIONS)}")
    if steps is None:
        real = np.ones(batch)
    else:
        lens = np.full(batch, steps) if lengths is None else np.asarray(lengths)
        real = (np.arange(steps)[None, :] < lens[:, None]).astype(np.float64)
    count = float(real.sum())
    scale = 1.0 / batch if reduction == "sum" or steps is None else 1.0 / max(count, 1.0)
    return real * scale, count


def reference_loss(outputs: np.ndarray, target: np.ndarray, kind: str, lengths=None, reduction: str = "sum",
                   per_step: bool = True) -> float:
    """The loss of a run's outputs ([B, T, ...], or [B, ...] when not `per_step`) in plain NumPy."""
    y = np.asarray(outputs, np.float64)
    if kind == "xent":
        ids = np.asarray(target, np.int64)
        with np.errstate(divide="ignore"):
            each = -np.log(np.take_along_axis(y, ids[..., None], axis=-1)[..., 0])
    else:
        d = y - np.asarray(target, np.float64)
        each = (d * d).reshape(d.shape[:2 if per_step else 1] + (-1,)).mean(axis=-1)
    weights, _ = step_weights(y.shape[0], y.shape[1] if per_step else None, lengths, reduction)
    return float((np.where(weights > 0, each, 0) * weights).sum())
