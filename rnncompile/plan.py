"""The model plan: what a checked spec's `model:` composes out of cells.

Stacks of layers (each one or two directions of a cell), an optional head,
for sequence-to-sequence or one-to-many models a decoder that feeds back its
own output, and for tree models a fold. Cells know nothing of time; the plan
says who feeds whom. `rnncompile.model` builds it from the spec (reporting
every problem located) and `rnncompile.flow` turns it into the flat list of
flow ops that the drivers run and the code generators render.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .graph import CellGraph, ParamInfo

if TYPE_CHECKING:
    from .trees.lower import TreeCell

DEFAULT_STEPS = 10


@dataclass
class CellUse:
    """One cell, lowered for its dims, at one place of the model."""

    cell: CellGraph
    prefix: str  # weight-file key prefix: "", "layers.1.reverse.", "head.", ...
    reverse: bool = False
    weights: str | None = None  # the weight-key prefix when it is not `prefix` (a tree cell's rules share one)

    def key(self, param: str) -> str:
        return (self.prefix if self.weights is None else self.weights) + param


@dataclass
class Layer:
    uses: list[CellUse]  # one per direction
    merge: str  # concat | sum | mean | separate (bidirectional only)
    feed: dict[str, str]  # cell input -> the name it reads below (a model input or the previous layer's output)
    outputs: dict[str, tuple]  # what the layer hands up, after merging
    path: tuple = ("model",)  # where the spec writes it: model, model.layers.1, model.encoder.layers.0


@dataclass
class Stack:
    layers: list[Layer]
    inputs: list[str]  # model inputs it reads

    @property
    def outputs(self) -> dict[str, tuple]:
        return self.layers[-1].outputs

    def final_states(self) -> dict[str, tuple]:
        """The summary of the top layer: its final states, merged like its outputs (each direction may run
        its own cell: concat joins their widths)."""
        top = self.layers[-1]
        per_dir = [{n: s.shape for n, s in u.cell.states.items()} for u in top.uses]
        fwd = per_dir[0]
        if len(top.uses) == 1 or top.merge in ("sum", "mean"):
            return fwd
        rev = per_dir[1]
        if top.merge == "concat":
            return {n: s[:-1] + (s[-1] + rev[n][-1],) for n, s in fwd.items() if n in rev}
        return {f"{n}_{d}": shape for d, states in zip(("forward", "reverse"), per_dir) for n, shape in states.items()}


@dataclass
class Head:
    use: CellUse  # stateless; its inputs are the stack's outputs (and context)
    at: str  # every_step | last


@dataclass
class Decoder:
    use: CellUse
    token_input: str
    init: str | CellUse  # "zeros" | "encoder" | a stateless bridge cell producing each state
    feed: str  # previous_output | target
    target: str | None
    steps: int
    head: Head
    sample: str
    temperature: float
    top_k: int | None
    stop_at_end: bool
    memory: dict[str, str] = field(default_factory=dict)  # decoder cell input -> the encoder output it reads at every source step
    memory_mask: str | None = None  # decoder cell input given 1 at real source steps, 0 at padding


@dataclass
class Fold:
    """A tree model's fold: the tree cell's node rule (and leaf rule), sharing one set of weights."""

    cell: "TreeCell"
    node: CellUse
    leaf: CellUse | None
    input: str  # the model input's name

    def uses(self) -> list[CellUse]:
        return [self.node] + ([self.leaf] if self.leaf is not None else [])


@dataclass
class Plan:
    inputs: dict[str, tuple]  # sequence inputs: name -> step shape
    input_dtypes: dict[str, str]
    context: dict[str, tuple]  # per-sequence vectors
    time_dim: object = None  # the first sequence input's time axis (a dim name or a number)
    time_dims: dict = field(default_factory=dict)  # each sequence input's time axis: a source and a target may differ
    stack: Stack | None = None  # the sequence model, or the encoder
    head: Head | None = None
    decoder: Decoder | None = None
    kind: str = "sequence"  # sequence | seq2seq | generate | tree
    fold: Fold | None = None  # tree models

    def uses(self) -> list[CellUse]:
        out = self.fold.uses() if self.fold is not None else []
        if self.stack:
            out += [u for layer in self.stack.layers for u in layer.uses]
        if self.head:
            out.append(self.head.use)
        if self.decoder:
            out.append(self.decoder.use)
            if isinstance(self.decoder.init, CellUse):
                out.append(self.decoder.init)
            out.append(self.decoder.head.use)
        return out

    def params(self) -> dict[str, ParamInfo]:
        out = {}
        for use in self.uses():
            for name, info in use.cell.params.items():
                out[use.key(name)] = info
        return out

    def steps(self, dims: dict, override: int | None = None) -> int:
        """Steps of a run: the first input's time axis, or for one-to-many generation the decoder's steps."""
        if override is not None:
            return override
        if self.kind == "generate" and self.decoder is not None:
            return self.decoder.steps
        return self.axis_steps(self.time_dim, dims)

    def steps_of(self, dims: dict, override: int | None = None) -> dict[str, int]:
        """Each sequence input's steps: its time axis's size; `override` sets those on the first input's axis."""
        out = {}
        for name in self.inputs:
            axis = self.time_dims.get(name, self.time_dim)
            same = str(axis) == str(self.time_dim)
            out[name] = override if override is not None and same else self.axis_steps(axis, dims)
        return out

    @staticmethod
    def axis_steps(axis, dims: dict) -> int:
        if isinstance(axis, int):
            return axis
        return dims.get(axis, DEFAULT_STEPS)
