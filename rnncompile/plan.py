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


@dataclass
class Stack:
    layers: list[Layer]
    inputs: list[str]  # model inputs it reads

    @property
    def outputs(self) -> dict[str, tuple]:
        return self.layers[-1].outputs

    def final_states(self) -> dict[str, tuple]:
        """The summary of the top layer: its final states, merged like its outputs."""
        top = self.layers[-1]
        states = top.uses[0].cell.states
        if len(top.uses) == 1 or top.merge in ("sum", "mean"):
            return {n: s.shape for n, s in states.items()}
        if top.merge == "concat":
            return {n: s.shape[:-1] + (2 * s.shape[-1],) for n, s in states.items()}
        return {f"{n}_{d}": s.shape for n, s in states.items() for d in ("forward", "reverse")}


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
    time_dim: object = None
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
        """Steps of a run: the inputs' time axis, or for one-to-many generation the decoder's steps."""
        if override is not None:
            return override
        if self.kind == "generate" and self.decoder is not None:
            return self.decoder.steps
        if isinstance(self.time_dim, int):
            return self.time_dim
        return dims.get(self.time_dim, DEFAULT_STEPS)
