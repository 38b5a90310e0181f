"""`import_model`: an ONNX model -> an Imported (the spec's text, its weights, and how the ONNX graph's
inputs and outputs map onto a run)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .expr_text import ident
from .model_file import read_model
from .spec_writer import SpecWriter
from .walk import GraphWalk


@dataclass
class Imported:
    """The spec's text, its weights and how the ONNX graph's inputs and outputs map onto a run."""
    text: str
    weights: dict
    inputs: dict = field(default_factory=dict)  # ONNX input -> (rnncompile input, "BT" | "TB")
    context: dict = field(default_factory=dict)  # ONNX input -> (context name, the node's layout)
    lengths: str | None = None  # the ONNX input holding sequence_lens
    outputs: dict = field(default_factory=dict)  # ONNX output -> description (see onnx_outputs)
    notes: list = field(default_factory=list)
    top_hidden: int = 0  # the top layer's hidden size (to split ONNX's Y per direction)


def import_model(model, source: str = "model.onnx", name: str | None = None) -> Imported:
    """A ModelProto (or a path to one) -> the spec text, its weights and the input/output mapping."""
    if isinstance(model, (str, os.PathLike)):
        source = str(model)
        model = read_model(model)
    imp = GraphWalk(model, source)
    imp.run()
    used = {"h", "c", "x", "T", "H", "I", "V", "E"}
    imp.context_names = {}
    for lay in imp.layers:
        for s, init in lay.init.items():
            if init[0] == "context":
                imp.context_names.setdefault(init[1], ident(init[1], used, f"{s}0"))
    spec_name = ident(name or Path(source).stem, set(), "model")
    writer = SpecWriter(imp, spec_name, source)
    text = writer.write()
    weights = {k: np.ascontiguousarray(v, dtype=imp.dtype) for k, v in writer.weights.items()}
    out = Imported(text, weights)
    name0, order, kind = next(iter(imp.inputs.values()))
    out.inputs = {name0: (imp.spec_input, order)}
    out.context = {}
    for k, lay in enumerate(imp.layers):
        for s, init in lay.init.items():
            if init[0] == "context":
                out.context[init[1]] = (imp.context_names[init[1]], lay.layout)
    out.lengths = imp.lengths
    out.outputs = _describe_outputs(imp)
    out.notes = _notes(imp, out)
    out.top_hidden = imp.layers[-1].hidden
    return out


def _describe_outputs(imp) -> dict:
    """ONNX output -> ("y", axes) | ("head", name, axes) | ("state", key, axes): what of a run it is."""
    out = {}
    n = len(imp.layers)
    for onnx_name, desc in imp.outputs.items():
        if desc[0] == "state":
            _, k, state, axes = desc
            lay = imp.layers[k]
            pre = "" if n == 1 else f"layers.{k}."
            keys = [pre + (f"{d}." if lay.dirs == 2 else "") + state for d in
                    (("forward", "reverse") if lay.dirs == 2 else ("",))]
            out[onnx_name] = ("state", keys, axes)
        elif desc[0] == "y":
            out[onnx_name] = ("y", "h", desc[1])
        else:
            out[onnx_name] = desc
    return out


def _notes(imp, out: Imported) -> list:
    notes = []
    for onnx_name, (spec_name, order) in out.inputs.items():
        if order == "TB":
            notes.append(f"ONNX input `{onnx_name}` is time-major [T, B, ...]; rnncompile reads `{spec_name}` as "
                         f"[B, T, ...] (transpose the first two axes)")
    if imp.lengths:
        notes.append(f"ONNX input `{imp.lengths}` (sequence_lens) is the run's `lengths`")
        if imp.head_outputs:
            notes.append("at padded steps ONNX applies the head to Y's zeros, rnncompile gives zeros: compare the "
                         "real steps only")
    for onnx_name, (ctx, layout) in out.context.items():
        shape = "[1, B, H]" if layout == 0 else "[B, 1, H]"
        notes.append(f"ONNX input `{onnx_name}` (an initial state {shape}) is the context input `{ctx}` [B, H]")
    for onnx_name, desc in out.outputs.items():
        if desc[0] == "state":
            notes.append(f"ONNX output `{onnx_name}` is the final state " + ", ".join(f"`{k}`" for k in desc[1]))
        elif desc[0] == "y":
            axes = ", ".join("H" if a == "F" else "D*H" if a == "DF" else "1" if a == "U" else a for a in desc[2])
            notes.append(f"ONNX output `{onnx_name}` [{axes}] is the output `h` [B, T, D*H]")
        else:
            notes.append(f"ONNX output `{onnx_name}` is the head output `{desc[1]}`")
    return notes

