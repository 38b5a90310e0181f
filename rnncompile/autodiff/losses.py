"""Losses as graph nodes, so the loss is differentiated by the same rules as the model.

`loss_cell` returns a stateless cell computing one step's loss `loss` [] from
a model output and an input `loss.target`:

    xent  -log p[target] for a distribution p over tokens. When p is a softmax
          (a head's `softmax(W_y @ h + b_y)`), the log is taken as log-softmax
          of its argument, z - max z - log sum exp(z - max z): no probability is
          ever divided by or logged, so a confident wrong prediction gives a
          large finite loss and the adjoint of z is exactly softmax(z) - onehot.
    mse   the mean over the output's elements of (y - target)^2.
    bce   the mean over the output's elements of -(t log p + (1 - t) log(1 - p)),
          binary cross-entropy against targets t in [0, 1]. When p is a sigmoid,
          it is taken from the sigmoid's argument z as softplus(z) - t z
          (log(1 + e^z) computed as logaddexp(0, z)): nothing overflows, a
          confident wrong prediction gives a large finite loss, and the adjoint
          of z is exactly sigmoid(z) - t (PyTorch's binary_cross_entropy_with_logits).

The loss of a batch: the sum over each sequence's real steps, the mean over
the batch (`reduction="sum"`, the lecture's definition), or the mean over
every real step of the batch (`reduction="mean"`). `reference_loss` computes
the same number in NumPy from a run's outputs, as a check that shares no code
with the graph.

The loss, the output it reads, its target and the reduction default to the
spec's `train:` section (rnncompile.train_spec checks it), which the caller's
choices override (`train_settings`).
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..graph import CellGraph, InputInfo, Node, make_attrs
from ..spec import LOSS_KINDS, LOSS_REDUCTIONS
from .build import Builder

LOSSES = LOSS_KINDS  # xent, mse, bce


def _train_section(program):
    checked = getattr(program, "checked", None)
    return getattr(checked.spec, "train", None) if checked is not None else None


def default_loss(program, loss: str | None) -> str:
    """`loss`, else the spec's `train: loss:`, else xent for a model with a vocabulary (its output is a
    distribution over tokens), else mse."""
    if loss is not None:
        if loss not in LOSSES:
            raise UsageError(f"unknown loss `{loss}`; use one of: {', '.join(LOSSES)}")
        return loss
    train = _train_section(program)
    if train is not None and train.loss is not None:
        return train.loss
    return "xent" if program.vocab is not None else "mse"


def train_settings(program, loss: str | None, output: str | None, reduction: str | None):
    """(loss, output, reduction, target input) for a gradient program: each given one, else the spec's
    `train:` section's, else the default (xent with a vocabulary else mse; the only output; sum; the
    caller's target rather than a model input)."""
    train = _train_section(program)
    output = output if output is not None else (train.output if train is not None else None)
    if reduction is None:
        reduction = train.reduction if train is not None and train.reduction is not None else "sum"
    return default_loss(program, loss), output, reduction, train.target if train is not None else None


REDUCTIONS = LOSS_REDUCTIONS
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
        if kind == "bce":
            loss = b.op("mean", _binary_xent(b, value, target), label="loss")
        else:
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


def _binary_xent(b: Builder, p: int, t: int) -> int:
    """-(t log p + (1 - t) log(1 - p)) elementwise; of a sigmoid, from its argument z: softplus(z) - t z."""
    node = b.cell.node(p)
    if node.op == "sigmoid":
        (z,) = b.cell.args(p)
        return b.op("sub", b.op("softplus", z), b.op("mul", t, z))
    one = b.const(1.0)
    hit = b.op("mul", t, b.op("log", p))
    miss = b.op("mul", b.op("sub", one, t), b.op("log", b.op("sub", one, p)))
    return b.op("neg", b.op("add", hit, miss))


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
        t = np.asarray(target, np.float64)
        if kind == "bce":
            with np.errstate(divide="ignore", invalid="ignore"):
                d2 = -(t * np.log(y) + (1 - t) * np.log(1 - y))
        else:
            d2 = (y - t) ** 2
        each = d2.reshape(d2.shape[:2 if per_step else 1] + (-1,)).mean(axis=-1)
    weights, _ = step_weights(y.shape[0], y.shape[1] if per_step else None, lengths, reduction)
    return float((np.where(weights > 0, each, 0) * weights).sum())
