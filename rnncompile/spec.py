"""Pydantic models that mirror the spec file one-to-one (extra keys forbidden).

Shorthands a person writes by hand (`x: I`, `M: [N, W]`) are accepted and
stored in their long form, so `Spec.model_dump()` is the canonical JSON.
"""
from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

DimExpr = Union[int, str]  # 16, "H", "H + I"
ShapeSpec = list[DimExpr]  # [] is a scalar
Expr = Union[str, int, float]


# defer_build: pydantic compiles a model's validator when it is first used, not at import; validating a
# Spec then compiles one validator with the others inside it instead of one per model (~50 ms less for
# `rnncompile validate`, see benchmarks/bench_startup.py).
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


def _shape_shorthand(value: Any, key: str = "shape") -> Any:
    """`H` or `[N, W]` stands for `{shape: ...}`."""
    if isinstance(value, (str, int, list)):
        return {key: value}
    return value


def _as_list(shape: Any) -> Any:
    if isinstance(shape, (str, int)):
        return [shape]
    return shape


class InputSpec(Strict):
    shape: ShapeSpec = Field(default_factory=list, description="size of one step's input, e.g. [I]")
    dtype: Literal["float", "token"] = Field("float", description="token: an integer index into the vocabulary")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        if v == "token":
            return {"shape": [], "dtype": "token"}
        v = _shape_shorthand(v)
        if isinstance(v, dict) and "shape" in v:
            v = {**v, "shape": _as_list(v["shape"])}
        return v


class StateSpec(Strict):
    shape: ShapeSpec = Field(description="size of the state, e.g. [H] or [N, W] for a memory")
    init: Union[float, str] = Field(0.0, description="a constant, or the name of a param of the cell, or of a model "
                                                     "context input (one start value per sequence, e.g. a memory M0)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        v = _shape_shorthand(v)
        if isinstance(v, dict) and "shape" in v:
            v = {**v, "shape": _as_list(v["shape"])}
        return v


InitName = Literal["glorot", "xavier", "uniform", "normal", "zeros", "ones", "orthogonal", "constant",
                   "one_hot"]  # one_hot: 1 at index 0 of the last axis (a head that starts at slot 0)


class ParamSpec(Strict):
    shape: ShapeSpec = Field(description="e.g. [H, H + I]")
    init: InitName = Field("glorot", description="initialiser used when no values or weights file are given")
    scale: float | None = Field(None, description="std for normal, bound for uniform, value for constant")
    values: Any = Field(None, description="literal values (nested lists), for worked examples")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        v = _shape_shorthand(v)
        if isinstance(v, dict) and "shape" in v:
            v = {**v, "shape": _as_list(v["shape"])}
        return v


class ConstSpec(Strict):
    """A named constant tensor: read like a param, but fixed by the spec (never in a weights file)."""

    values: Union[float, list, str] = Field(description="a number, nested lists of numbers (one level per axis), "
                                                        "or a literal expression such as \"[1, 0, -1]\"")
    shape: ShapeSpec | None = Field(None, description="its shape; defaults to the values' shape (one number with "
                                                      "a shape fills it)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        if isinstance(v, (int, float, str, list)) and not isinstance(v, bool):
            return {"values": v}
        if isinstance(v, dict) and "shape" in v:
            v = {**v, "shape": _as_list(v["shape"])}
        return v


class FunctionSpec(Strict):
    """A named expression with parameters, expanded where it is called (the long form of `f(x, y): expr`)."""

    args: list[str] = Field(description="parameter names, in call order")
    body: Expr = Field(description="the expression; it reads its parameters, numbers and dims (and calls ops and "
                                   "other functions)")


# `name(a, b): expr`, or `name: {args: [a, b], body: expr}`; None is let through for functions.check_functions to
# explain: `{f(a, b): ...}` in a YAML flow mapping splits into `f(a` (no value) and `b)`
Functions = dict[str, Union[FunctionSpec, Expr, None]]


class GateSpec(Strict):
    """Sugar for `act(W_g @ concat(from) + b_g + add...)`, creating W_g and b_g (and with `norm: layer`,
    act(LN(W_g @ concat(from) + add...) * gain_g + b_g), creating gain_g too)."""

    act: str = Field(description="activation: sigmoid, tanh, relu, ..., or linear (none: the affine map itself)")
    from_: list[str] = Field(alias="from", description="names or expressions concatenated as the gate's input, "
                                                       "e.g. [r * h, x]")
    add: list[str | float] = Field(default_factory=list,
                                   description="extra terms added before the activation, e.g. [P_i * c] (a peephole)")
    size: DimExpr | None = Field(None, description="gate width; inferred when the gate is multiplied elementwise "
                                                   "with a sized value (a state, another gate), else the width "
                                                   "the cell's vector states share")
    norm: Literal["none", "layer"] = Field("none", description="layer: a layer norm (Ba et al. 2016) of the "
                                                               "pre-activation, with its own gain gain_<gate> "
                                                               "(ones) and the bias b_<gate> as its shift")
    norm_eps: float = Field(1e-5, gt=0, description="the layer norm's epsilon: (z - mean) / sqrt(var + eps)")
    bias: bool = True
    bias_init: float = 0.0
    init: InitName = "glorot"


class MemorySpec(Strict):
    """Sugar for an NTM-style memory (Graves et al. 2014) with read and write heads;
    `rnncompile.memory` writes it out as the params, state, let and update entries it stands for."""

    slots: DimExpr = Field(description="N: how many rows (slots) the memory holds")
    width: DimExpr = Field(description="W: the length of each slot")
    controller: str = Field(description="the vector every head is computed from, e.g. the controller's new h")
    controller_size: DimExpr | None = Field(None, description="its length; defaults to the shared width of the "
                                                              "cell's vector states")
    read_heads: int = Field(1, ge=1)
    write_heads: int = Field(1, ge=0)
    addressing: Literal["content", "content+location"] = Field(
        "content+location", description="content: softmax(beta * cosine(M, k)); content+location adds "
                                        "interpolation with the previous weighting, a shift and sharpening")
    shifts: int = Field(1, ge=1, description="location addressing shifts by -k..k slots")
    init: Union[float, str] = Field(1e-6, description="initial value of every entry, or a param [N, W], or a model "
                                                      "context input [N, W]; a small constant (not zeros, not "
                                                      "random) keeps training NaN-free")
    name: str = Field("M", description="the memory's state name; other names are derived from the heads")

    @model_validator(mode="before")
    @classmethod
    def _number_text(cls, v):
        """YAML reads `1e-6` (no dot) as text; here it can only mean the number."""
        if isinstance(v, dict) and isinstance(v.get("init"), str):
            try:
                v = {**v, "init": float(v["init"])}
            except ValueError:
                pass  # a param name
        return v


class TreeRuleSpec(BaseModel):
    """One rule of a tree cell: `let:` intermediates, then one expression per state (`h: ...`).
    State names are the keys beside `let`; rnncompile.trees.lower checks them against `state:`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)
    let: dict[str, Expr] = Field(default_factory=dict, description="intermediates of this rule")
    gates: dict[str, GateSpec] = Field(default_factory=dict, description="this rule's gates, as a step cell's; "
                                                                         "W_<gate> in the leaf rule, U_<gate> in "
                                                                         "the node rule, b_<gate> shared")

    @property
    def values(self) -> dict:
        """state name -> its expression (every key but `let` and `gates`)."""
        return dict(self.model_extra or {})


class CellSpec(Strict):
    kind: Literal["step", "tree"] = Field("step", description="step: one time step of a recurrence; "
                                                              "tree: one node of a tree (leaf and node rules)")
    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    state: dict[str, StateSpec] = Field(default_factory=dict)
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    consts: dict[str, ConstSpec] = Field(default_factory=dict, description="named constant tensors, e.g. "
                                                                           "{P: [1, 0, -1]}; never in weight files")
    functions: Functions = Field(default_factory=dict, description="this cell's own functions (as the "
                                                                   "top-level `functions:`)")
    gates: dict[str, GateSpec] = Field(default_factory=dict)
    let: dict[str, Expr] = Field(default_factory=dict, description="intermediates; may use each other in any order")
    update: dict[str, Expr] = Field(default_factory=dict, description="next value of every state")
    outputs: dict[str, Expr] = Field(default_factory=dict, description="state names here mean their new values")
    memory: MemorySpec | None = Field(None, description="an NTM-style memory with read and write heads (shorthand)")
    leaf: TreeRuleSpec | None = Field(None, description="tree cells: a leaf's states from its inputs")
    node: TreeRuleSpec | None = Field(None, description="tree cells: a node's states from its children's "
                                                        "(children.h, children[0].h) and its inputs")
    arity: Union[Annotated[int, Field(le=2**31 - 1)], Literal["any"], None] = Field(None, description="tree cells: children per node, or `any` "
                                                                      "for a children axis K (the default)")


class VocabSpec(Strict):
    tokens: list[str] | None = Field(None, description="the vocabulary, in index order")
    file: str | None = Field(None, description="a text file with one token per line (relative to the spec)")
    level: Literal["char", "word"] = "char"
    lowercase: bool = Field(False, description="lowercase text before looking tokens up")
    unknown: str | None = Field(None, description="token used for anything not in the vocabulary")
    start: str | None = Field(None, description="start-of-sequence token a decoder begins with")
    end: str | None = Field(None, description="end-of-sequence token; generation stops after it")
    dim: str = Field("V", description="dim name bound to the vocabulary size")


Direction = Literal["forward", "reverse", "bidirectional"]
Merge = Literal["concat", "sum", "mean", "separate"]


def _inputs_shorthand(v):
    if isinstance(v, dict):
        for key in ("input", "context"):
            if isinstance(v.get(key), dict):
                v = {**v, key: {k: _as_list(s) for k, s in v[key].items()}}
    return v


class Directed(Strict):
    """The direction fields of anything that scans: a layer, an encoder, a one-scan model."""

    direction: Direction = Field("forward", description="forward, reverse, or bidirectional (both, joined by merge)")
    merge: Merge = Field("concat", description="how a bidirectional layer joins its two directions' outputs "
                                               "(separate: both, as <name>_forward and <name>_reverse)")


class PerDirection(Strict):
    """A bidirectional layer whose two directions run different cells (or one cell with other settings)."""

    forward: str = Field(description="the cell run forward in time")
    reverse: str = Field(description="the cell run in reverse")


ScanCell = Union[str, PerDirection]


class LayerSpec(Directed):
    scan: ScanCell = Field(description="the cell this layer runs over time, or {forward: <cell>, reverse: <cell>}")
    dims: dict[str, int] = Field(default_factory=dict, description="dims for this layer only, e.g. {H: 32}")


class _Stateless(Strict):
    """What every head has: its own params, lets and outputs (the kinds differ in where they apply)."""

    params: dict[str, ParamSpec] = Field(default_factory=dict)
    let: dict[str, Expr] = Field(default_factory=dict)
    outputs: dict[str, Expr] = Field(description="e.g. {y: softmax(W_y @ h + b_y)}")


class HeadSpec(_Stateless):
    """A stateless output layer over the top layer's outputs."""

    at: Literal["every_step", "last"] = Field(
        "every_step", description="every_step: many-to-many; last: many-to-one (each sequence's final outputs)")


class TreeHeadSpec(_Stateless):
    """A stateless output layer over a tree model's per-node values."""

    at: Literal["root", "every_node"] = Field(
        "root", description="root: one result per tree (sentence level); every_node: one per node (phrase level)")


class _FoldHead(dict):
    """A head mapping inside a fold model, marked so that it is read as a tree head."""


def _head_kind(v: Any) -> str:
    """Which head a mapping is: its `at` decides, else the model it sits in.
    One choice, so a mistake inside a head is reported against one vocabulary,
    never also against the other (`expected 'root' or 'every_node'` for `at: last`)."""
    if isinstance(v, BaseModel):
        return "tree" if isinstance(v, TreeHeadSpec) else "seq"
    at = v.get("at") if isinstance(v, dict) else None
    if isinstance(at, str) and at in typing.get_args(TreeHeadSpec.model_fields["at"].annotation):
        return "tree"
    if isinstance(at, str) and at in typing.get_args(HeadSpec.model_fields["at"].annotation):
        return "seq"
    return "tree" if isinstance(v, _FoldHead) else "seq"


AnyHead = Annotated[Union[Annotated[HeadSpec, Tag("seq")], Annotated[TreeHeadSpec, Tag("tree")]],
                    Discriminator(_head_kind)]


class EncoderSpec(Directed):
    scan: ScanCell | None = Field(None, description="the encoder cell (or give layers)")
    layers: list[LayerSpec] | None = None
    input: str | None = Field(None, description="the model input it reads (default: the only one)")
    keep: Literal["final"] = Field("final", description="the summary C: the final state of the top layer")


class DecoderSpec(Strict):
    scan: str = Field(description="the decoder cell; its token input is fed back")
    dims: dict[str, int] = Field(default_factory=dict, description="dims for the decoder, its head and its init")
    init: Union[Literal["zeros", "encoder"], dict[str, Expr]] = Field(
        "encoder", description="encoder: start from the encoder's final state (C); or an expression per state "
                               "over encoder.<state> and the context inputs")
    params: dict[str, ParamSpec] = Field(default_factory=dict, description="params of the init expressions")
    feed: Literal["previous_output", "target"] = Field(
        "previous_output", description="target: teacher forcing with a model input; previous_output: its own output")
    target: str | None = Field(None, description="the model input fed in teacher forcing")
    steps: DimExpr = Field(10, description="how many tokens to produce at most")
    stop_at_end: bool = Field(True, description="stop a sequence after the vocabulary's end token")
    sample: Literal["greedy", "sample"] = "greedy"
    temperature: float = Field(1.0, ge=1e-6, le=1e6)  # as api.MIN_TEMPERATURE, api.MAX_TEMPERATURE
    top_k: int | None = Field(None, ge=1)
    memory: dict[str, str] = Field(default_factory=dict, description="attention: decoder cell input -> the encoder "
                                                                     "output it reads at every source step, [S, ...]")
    memory_mask: str | None = Field(None, description="attention: the decoder cell input given 1 at real source "
                                                      "steps and 0 at padding (from the source lengths), [S]")
    head: HeadSpec


class ModelSpec(Directed):
    input: dict[str, ShapeSpec] = Field(default_factory=dict,
                                        description="sequence inputs: [time_dim, *step_shape], e.g. [T, I]")
    context: dict[str, ShapeSpec] = Field(default_factory=dict,
                                          description="one vector per sequence (not a sequence), e.g. an image feature")
    scan: ScanCell | None = Field(None, description="the cell run over the input sequence (one layer), or "
                                                    "{forward: <cell>, reverse: <cell>} (bidirectional)")
    layers: list[LayerSpec] | None = Field(None, description="a stack: each layer's outputs feed the next")
    head: Optional[AnyHead] = None  # a tree head (at: root | every_node) for fold models
    encoder: EncoderSpec | None = None
    decoder: DecoderSpec | None = None
    fold: str | None = Field(None, description="the tree cell folded over each input tree, leaves to root")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        if isinstance(v, dict) and v.get("fold") is not None and type(v.get("head")) is dict:
            v = {**v, "head": _FoldHead(v["head"])}
        return _inputs_shorthand(v)


LOSS_KINDS = ("xent", "mse", "bce")
LOSS_PLACES = ("every_step", "last_step", "every_node", "root")
LOSS_REDUCTIONS = ("sum", "mean")


class TrainSpec(Strict):
    """What `rnncompile grad` and `rnncompile train` minimise: one loss of one model output against its target.
    Every field has a default; the command line's --loss, --output-name and --reduction override them.
    rnncompile.train_spec checks the names against the model (and says why a combination cannot work)."""

    loss: str = Field(None, json_schema_extra={"enum": list(LOSS_KINDS)},
                                description="xent: cross-entropy of a distribution (a softmax) against token ids; "
                                            "mse: mean squared error; bce: binary cross-entropy of probabilities "
                                            "(a sigmoid) against values in [0, 1]. Default: xent with a "
                                            "vocabulary, else mse")
    output: Optional[str] = Field(None, description="the model output the loss reads (default: the only one)")
    target: Optional[str] = Field(None, description="a model input the output is compared with (a teacher-forced "
                                                    "decoder's target, an autoencoder's input); default: the "
                                                    "training data's own `target` array")
    at: str = Field(None, json_schema_extra={"enum": list(LOSS_PLACES)},
                              description="where the loss is taken: every_step or last_step (sequences, as the "
                                          "head's `at:` says), every_node or root (trees); default: where the "
                                          "output is")
    reduction: str = Field(None, json_schema_extra={"enum": list(LOSS_REDUCTIONS)},
                                     description="sum: over each sequence's steps (or nodes), mean over the batch "
                                                 "(the lecture's definition, the default); mean: over every real "
                                                 "step (or node) of the batch")


class Spec(Strict):
    rnncompile: Literal[1] = Field(description="spec format version")
    name: str
    description: str = ""
    dims: dict[str, int] = Field(default_factory=dict, description="named sizes, overridable with --dim")
    functions: Functions = Field(default_factory=dict, description="named expressions with parameters, e.g. "
                                 "`layer_norm(x, g, b): g * (x - mean(x)) / sqrt(mean((x - mean(x)) ** 2) + 1e-5) "
                                 "+ b`, expanded where called")
    vocab: VocabSpec | None = None
    cells: dict[str, CellSpec]
    model: ModelSpec
    train: TrainSpec | None = Field(None, description="the loss `rnncompile grad` and `train` take (defaults to "
                                                      "xent with a vocabulary, else mse, of the only output)")


def json_schema() -> dict:
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    head = schema["$defs"]["ModelSpec"]["properties"]["head"]["anyOf"][0]
    head["anyOf"] = head.pop("oneOf")  # a head without `at:` is both kinds; the checker picks by the model
    schema["title"] = "rnncompile spec"
    return schema
