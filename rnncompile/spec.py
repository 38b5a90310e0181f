"""Pydantic models that mirror the spec file one-to-one (extra keys forbidden).

Shorthands a person writes by hand (`x: I`, `M: [N, W]`) are accepted and
stored in their long form, so `Spec.model_dump()` is the canonical JSON.
"""
from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

DimExpr = Union[int, str]  # 16, "H", "H + I"
ShapeSpec = list[DimExpr]  # [] is a scalar
Expr = Union[str, int, float]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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
    init: Union[float, str] = Field(0.0, description="a constant, or the name of a param holding the initial value")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        v = _shape_shorthand(v)
        if isinstance(v, dict) and "shape" in v:
            v = {**v, "shape": _as_list(v["shape"])}
        return v


InitName = Literal["glorot", "xavier", "uniform", "normal", "zeros", "ones", "orthogonal", "constant"]


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


class GateSpec(Strict):
    """Sugar for `act(W_g @ concat(from) + b_g)`, creating W_g and b_g."""

    act: str = Field(description="activation: sigmoid, tanh, relu, ...")
    from_: list[str] = Field(alias="from", description="names concatenated as the gate's input")
    size: DimExpr | None = Field(None, description="gate width; defaults to the width of the cell's state")
    bias: bool = True
    bias_init: float = 0.0
    init: InitName = "glorot"


class CellSpec(Strict):
    kind: Literal["step"] = Field("step", description="step: one time step of a recurrence")
    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    state: dict[str, StateSpec] = Field(default_factory=dict)
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    gates: dict[str, GateSpec] = Field(default_factory=dict)
    let: dict[str, Expr] = Field(default_factory=dict, description="intermediates; may use each other in any order")
    update: dict[str, Expr] = Field(default_factory=dict, description="next value of every state")
    outputs: dict[str, Expr] = Field(default_factory=dict, description="state names here mean their new values")


class VocabSpec(Strict):
    tokens: list[str] = Field(description="the vocabulary, in index order")
    level: Literal["char", "word"] = "char"
    unknown: str | None = Field(None, description="token used for anything not in the vocabulary")
    end: str | None = Field(None, description="end-of-sequence token")
    dim: str = Field("V", description="dim name bound to the vocabulary size")


class ModelSpec(Strict):
    scan: str = Field(description="the cell run over the input sequence")
    input: dict[str, ShapeSpec] = Field(default_factory=dict,
                                        description="each sequence input: [time_dim, *step_shape], e.g. [T, I]")
    direction: Literal["forward", "reverse"] = "forward"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        if isinstance(v, dict) and isinstance(v.get("input"), dict):
            v = {**v, "input": {k: _as_list(s) for k, s in v["input"].items()}}
        return v


class Spec(Strict):
    rnncompile: Literal[1] = Field(description="spec format version")
    name: str
    description: str = ""
    dims: dict[str, int] = Field(default_factory=dict, description="named sizes, overridable with --dim")
    vocab: VocabSpec | None = None
    cells: dict[str, CellSpec]
    model: ModelSpec


def json_schema() -> dict:
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rnncompile spec"
    return schema
