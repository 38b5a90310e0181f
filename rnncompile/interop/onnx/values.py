"""What a value in the ONNX graph is to the importer: a constant, zeros, a shape, a sequence over time
(with a name for each axis) or a final state; and a recurrent node as recognised (a Layer)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Const:
    value: np.ndarray


@dataclass(frozen=True)
class Zeros:
    """A tensor of zeros of a run-time shape (torch's default initial_h)."""


@dataclass(frozen=True)
class ShapeVal:
    """A run-time shape or a piece of one (only feeds ConstantOfShape, Expand, Reshape's shape)."""


@dataclass(frozen=True)
class Seq:
    """A tensor over time: `axes` names each axis: T, B, D (directions), F (features), DF (directions
    then features, merged), U (a unit axis). `expr` is its per-step value as a spec expression."""
    axes: tuple
    size: int  # the feature axis' size (F or DF)
    stage: str  # "input" (before the first recurrent node), "layer" (a node's Y), "head" (after the last)
    expr: str = ""
    layer: int = -1
    dirs: int = 1


@dataclass(frozen=True)
class Last:
    """A per-sequence tensor: a node's Y_h or Y_c (axes D, B, F), or a head over it (axes B, F)."""
    axes: tuple
    size: int
    layer: int
    state: str  # "h" or "c"
    expr: str = ""


@dataclass
class Layer:
    node: object
    op: str
    hidden: int
    dirs: int
    direction: str
    acts: list  # [(name, alpha, beta)] for one direction
    clip: float | None
    lbr: int
    input_forget: int
    bias: bool
    peepholes: bool
    init: dict  # state -> ("zeros",) | ("param", {prefix: array}) | ("context", graph input name)
    cell: str = ""
    embed: tuple | None = None  # (param name, table) when the layer reads a token input through Gather
    weights: tuple = ()  # (W, R, B, P) as ONNX stacks them; B and P may be None
    layout: int = 0  # ONNX's layout: 0 time-major, 1 batch-major




def with_axes(src, axes):
    if isinstance(src, Seq):
        return Seq(axes, src.size, src.stage, src.expr, src.layer, src.dirs)
    return Last(axes, src.size, src.layer, src.state, src.expr)


def with_expr(src, expr, size):
    if isinstance(src, Seq):
        return Seq(src.axes, size, src.stage, expr, src.layer, src.dirs)
    return Last(src.axes, size, src.layer, src.state, expr)

