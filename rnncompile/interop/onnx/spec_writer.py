"""A recognised ONNX graph (walk.py) -> the spec's text in the shipped specs' style, and its weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from .activations import activation_expr
from .expr_text import ident, num_text
from .values import Layer
from .walk import GraphWalk

MAX_ID_VOCAB = 4096  # up to this many token ids get a vocabulary of their numbers (so `run` can make inputs)


def _gate_pre(g: str, lay: Layer, xin: str, peep: str = "") -> str:
    terms = [f"W_{g} @ {xin}", f"R_{g} @ h"]
    if peep:
        terms.append(f"P_{g} * {peep}")
    if lay.bias:
        terms.append(f"b_{g}")
    return " + ".join(terms)


def _clip(expr: str, lay: Layer) -> str:
    if lay.clip is None:
        return expr
    c = num_text(lay.clip)
    return f"minimum(maximum({expr}, -{c}), {c})"


def _cell_params(lay: Layer, x_size: str) -> dict:
    """param name -> shape text, in the order the equations use them."""
    names = {"RNN": "i", "GRU": "zrn", "LSTM": "iofg"}[lay.op]
    out = {}
    for g in names:
        out[f"W_{g}"] = f"[H, {x_size}]"
        out[f"R_{g}"] = "[H, H]"
    if lay.bias:
        for g in names:
            if lay.op == "GRU" and g == "n" and lay.lbr:
                out["b_Wn"], out["b_Rn"] = "[H]", "[H]"
            else:
                out[f"b_{g}"] = "[H]"
    if lay.peepholes:
        for g in "iof":
            out[f"P_{g}"] = "[H]"
    for state, init in lay.init.items():
        if init[0] == "param":
            out[f"{state}0"] = "[H]"
    return out


def _cell_weights(lay: Layer, d: int) -> dict:
    """This direction's arrays keyed by the cell's param names."""
    w, r, b, p = lay.weights
    H = lay.hidden
    blocks = {"RNN": "i", "GRU": "zrn", "LSTM": "iofg"}[lay.op]  # ONNX row-block order (c and h renamed)
    out = {}
    for k, g in enumerate(blocks):
        out[f"W_{g}"] = w[d, k * H:(k + 1) * H]
        out[f"R_{g}"] = r[d, k * H:(k + 1) * H]
    if b is not None:
        n = len(blocks) * H
        for k, g in enumerate(blocks):
            wb, rb = b[d, k * H:(k + 1) * H], b[d, n + k * H:n + (k + 1) * H]
            if lay.op == "GRU" and g == "n" and lay.lbr:
                out["b_Wn"], out["b_Rn"] = wb, rb
            else:
                out[f"b_{g}"] = wb + rb
    if p is not None:
        for k, g in enumerate("iof"):
            out[f"P_{g}"] = p[d, k * H:(k + 1) * H]
    for state, init in lay.init.items():
        if init[0] == "param":
            out[f"{state}0"] = init[1][d]
    return out


def _equations(lay: Layer, xin: str) -> tuple[dict, dict]:
    """(let, update) of the cell, ONNX's equations written out."""
    f, g = lay.acts[0], lay.acts[1] if len(lay.acts) > 1 else None
    let: dict = {}
    if lay.op == "RNN":
        return let, {"h": activation_expr(f, _clip(_gate_pre("i", lay, xin), lay), let, "a")}
    if lay.op == "GRU":
        let["z"] = activation_expr(f, _clip(_gate_pre("z", lay, xin), lay), let, "z_in")
        let["r"] = activation_expr(f, _clip(_gate_pre("r", lay, xin), lay), let, "r_in")
        if lay.lbr:
            inner = "R_n @ h + b_Rn" if lay.bias else "R_n @ h"
            pre = f"W_n @ {xin} + " + ("b_Wn + " if lay.bias else "") + f"r * ({inner})"
        else:
            pre = f"W_n @ {xin} + R_n @ (r * h)" + (" + b_n" if lay.bias else "")
        let["n"] = activation_expr(g, _clip(pre, lay), let, "n_in")
        return let, {"h": "(1 - z) * n + z * h"}
    h_act = lay.acts[2]
    peep = "c" if lay.peepholes else ""
    let["i"] = activation_expr(f, _clip(_gate_pre("i", lay, xin, peep), lay), let, "i_in")
    if lay.input_forget:
        let["f"] = "1 - i"
    else:
        let["f"] = activation_expr(f, _clip(_gate_pre("f", lay, xin, peep), lay), let, "f_in")
    let["g"] = activation_expr(g, _clip(_gate_pre("g", lay, xin), lay), let, "g_in")
    let["c_next"] = "f * c + i * g"
    let["o"] = activation_expr(f, _clip(_gate_pre("o", lay, xin, "c_next" if peep else ""), lay), let, "o_in")
    return let, {"c": "c_next", "h": "o * " + activation_expr(h_act, "c_next", let, "c_act")}


def _act_text(lay: Layer) -> str:
    def one(spec):
        name, a, b = spec
        args = [f"{k}={np.float32(v)}" for k, v in (("alpha", a), ("beta", b)) if v is not None]
        return name + (f"({', '.join(args)})" if args else "")
    return ", ".join(one(s) for s in lay.acts)


class SpecWriter:
    def __init__(self, imp: GraphWalk, name: str, source: str):
        self.imp, self.name, self.source = imp, name, source
        self.lines: list[str] = []
        self.weights: dict = {}
        self.notes: list = []

    def write(self) -> str:
        imp = self.imp
        layers = imp.layers
        seq_input = next(iter(imp.inputs.values())) if imp.inputs else None
        if seq_input is None:
            raise DataError(f"{self.source}: no graph input feeds the first recurrent node")
        in_name, order, kind = seq_input
        used = {"h", "c", "i", "o", "f", "g", "z", "r", "n", "c_next", "T", "H", "I", "V", "E"}
        if kind == "embed":
            used.add("x")  # the embedded vector's let
        x_spec = ident(in_name, used, "x")
        imp.spec_input = x_spec
        # cells: one per distinct configuration; the first layer's may read tokens
        cells, keys = {}, {}
        for k, lay in enumerate(layers):
            key = (lay.op, tuple(lay.acts), lay.clip, lay.lbr, lay.input_forget, lay.bias, lay.peepholes,
                   tuple((s, i[0]) for s, i in lay.init.items()), lay.embed is not None,
                   tuple(i[1] for i in lay.init.values() if i[0] == "context"), k == 0 and x_spec != "x")
            if key not in keys:
                base = lay.op.lower() if not cells else f"{lay.op.lower()}{len(cells) + 1}"
                keys[key] = base
                cells[base] = (k, lay)
            lay.cell = keys[key]
        first = layers[0]
        dims, vocab = {}, None
        if first.embed:
            dims["V"], dims["E"] = first.embed[1].shape
            if dims["V"] <= MAX_ID_VOCAB:  # ONNX has no vocabulary: the tokens are the ids, so `run --text "3 1 4"`
                vocab = dims.pop("V")
        else:
            dims["I"] = layers[0].weights[0].shape[2]
        dims["H"] = first.hidden
        dims["T"] = 10
        L = self.lines
        L.append("rnncompile: 1")
        L.append(f"name: {self.name}")
        L.append("description: >")
        ops = ", ".join(f"{lay.op} ({lay.direction}, hidden_size {lay.hidden})" for lay in layers)
        L.append(f"  Imported from {Path(self.source).name} by `rnncompile import`: {ops}.")
        L.append("  ONNX's W (over x), R (over h) and B = [Wb, Rb] are split per gate into W_g, R_g and one")
        L.append("  bias b_g = Wb_g + Rb_g; gate order in ONNX: i o f c (LSTM), z r h (GRU).")
        if vocab is not None:
            L.append("vocab:                 # ONNX has no vocabulary: token k is the id k")
            L.append("  level: word")
            L.append("  tokens: [" + ", ".join(f'"{k}"' for k in range(vocab)) + "]")
        L.append("dims: {" + ", ".join(f"{k}: {v}" for k, v in dims.items()) + "}"
                 + "   # T: any length at run time")
        L.append("cells:")
        for cname, (k, lay) in cells.items():
            self.cell(cname, k, lay, x_spec if k == 0 else "x", kind if k == 0 else "input")
        self.model(layers, x_spec, kind, order, dims)
        return "\n".join(L) + "\n"

    def cell(self, cname, k, lay, xin_name, kind):
        L = self.lines
        nodes = [lay2.node.name or lay2.op for lay2 in self.imp.layers if lay2.cell == cname]
        L.append(f"  {cname}:")
        L.append(f"    description: ONNX {lay.op} node{'s' if len(nodes) > 1 else ''} "
                 + ", ".join(f"`{n}`" for n in nodes) + f"; activations {_act_text(lay)}"
                 + (f"; clip {num_text(lay.clip)}" if lay.clip is not None else "")
                 + (f"; linear_before_reset {lay.lbr}" if lay.op == "GRU" else "")
                 + (f"; input_forget {lay.input_forget}" if lay.op == "LSTM" else ""))
        xin = "x"
        if kind == "embed":
            L.append(f"    inputs: {{{xin_name}: token}}")
        else:
            L.append(f"    inputs: {{{xin_name}: I}}")
            xin = xin_name
        state = []
        for s in (("h", "c") if lay.op == "LSTM" else ("h",)):
            init = lay.init[s]
            if init[0] == "zeros":
                state.append(f"{s}: H")
            elif init[0] == "param":
                state.append(f"{s}: {{shape: H, init: {s}0}}")
            else:
                state.append(f"{s}: {{shape: H, init: {self.imp.context_names[init[1]]}}}")
        L.append("    state: {" + ", ".join(state) + "}"
                 + ("   # initial_h/initial_c from ONNX" if any(lay.init[s][0] != "zeros" for s in lay.init
                                                           if s in ("h", "c")) else ""))
        L.append("    params:")
        if kind == "embed":
            L.append(f"      E_x: {{shape: [V, E]}}     # the Gather's embedding table `{lay.embed[0]}`")
        for pname, shape in _cell_params(lay, "E" if kind == "embed" else "I").items():
            note = {"W_g": "   # g: ONNX's c (cell candidate)", "W_n": "   # n: ONNX's h (candidate)",
                    "b_Wn": "   # Wbh, kept apart: linear_before_reset=1", "P_i": "   # peepholes P = [P_i, P_o, P_f]",
                    "h0": "   # initial_h", "c0": "   # initial_c"}.get(pname, "")
            L.append(f"      {pname}: {{shape: {shape}}}{note}")
        let, update = _equations(lay, xin)
        if kind == "embed":
            let = {"x": f"embed({xin_name}, E_x)", **let}
        L.append("    let:" if let else "    let: {}")
        for kk, vv in let.items():
            note = "   # ONNX's f = 1 - i (input_forget=1)" if kk == "f" and lay.input_forget else ""
            L.append(f"      {kk}: {vv}{note}")
        L.append("    update:")
        for kk, vv in update.items():
            L.append(f"      {kk}: {vv}")
        L.append("    outputs: {h: h}")

    def model(self, layers, x_spec, kind, order, dims):
        imp, L = self.imp, self.lines
        L.append("model:")
        L.append(f"  input: {{{x_spec}: [T]}}" if kind == "embed" else f"  input: {{{x_spec}: [T, I]}}")
        if imp.context_names:
            L.append("  context: {" + ", ".join(f"{v}: [H]" for v in imp.context_names.values()) + "}"
                     + "   # initial states given with the data")
        if len(layers) == 1:
            lay = layers[0]
            L.append(f"  scan: {lay.cell}")
            if lay.direction != "forward":
                L.append(f"  direction: {lay.direction}" + ("   # merge: concat (ONNX's Y, directions side by side)"
                                                           if lay.dirs == 2 else ""))
        else:
            L.append("  layers:")
            for k, lay in enumerate(layers):
                parts = [f"scan: {lay.cell}"]
                if lay.direction != "forward":
                    parts.append(f"direction: {lay.direction}")
                if lay.hidden != dims["H"]:
                    parts.append(f"dims: {{H: {lay.hidden}}}")
                L.append("    - {" + ", ".join(parts) + "}" + f"   # ONNX node `{lay.node.name or lay.op}`")
        if imp.head_outputs:
            L.append("  head:")
            L.append(f"    at: {imp.head_at}")
            if imp.head_params:
                L.append("    params:")
                for pname, value in imp.head_params.items():
                    L.append(f"      {pname}: {{shape: {list(value.shape)}}}   # {imp.head_notes[pname]}")
            L.append("    outputs:")
            for name, expr in imp.head_outputs.items():
                L.append(f"      {name}: {expr}")
        for lk, lay in enumerate(layers):
            for d in range(lay.dirs):
                prefix = ("" if len(layers) == 1 else f"layers.{lk}.") + \
                         (("forward.", "reverse.")[d] if lay.dirs == 2 else "")
                cw = _cell_weights(lay, d)
                if lay.embed:
                    cw["E_x"] = lay.embed[1]
                self.weights.update({prefix + k: v for k, v in cw.items()})
        self.weights.update({"head." + k: v for k, v in imp.head_params.items()})

