"""One ONNX RNN, GRU or LSTM node read as a Layer: its attributes, weights W, R, B, P and initial states checked
against what the operator defines, with an error naming the node for anything that does not fit."""
from __future__ import annotations

import numpy as np

from .activations import read_activations
from .nodes import fail, node_attrs
from .values import Const, Layer, Zeros

RECURRENT = {"RNN": 1, "GRU": 3, "LSTM": 4}  # gates stacked in W, R and B
ATTRS = {  # attributes each op may carry (anything else is refused by name)
    "RNN": {"activations", "activation_alpha", "activation_beta", "clip", "direction", "hidden_size", "layout"},
    "GRU": {"activations", "activation_alpha", "activation_beta", "clip", "direction", "hidden_size", "layout",
            "linear_before_reset"},
    "LSTM": {"activations", "activation_alpha", "activation_beta", "clip", "direction", "hidden_size", "layout",
             "input_forget"},
}


def read_layer(node, const) -> tuple[Layer, dict]:
    """The Layer `node` stands for, and the names of its other inputs (x, lengths, h0, c0; "" where absent).
    `const(name, what)`: the constant an input name holds (an error where it is not one)."""
    op, at = node.op_type, node_attrs(node)
    for name in at:
        if name not in ATTRS[op]:
            raise fail(node, f"attribute `{name}` is not supported")
    ins = list(node.input) + [""] * (8 - len(node.input))
    x_name, w_name, r_name, b_name, lens_name, h0_name = ins[:6]
    c0_name, p_name = (ins[6], ins[7]) if op == "LSTM" else ("", "")
    if op != "LSTM" and any(ins[6:]):
        raise fail(node, f"has {len(node.input)} inputs; {op} takes at most 6")
    direction = at.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise fail(node, f"direction `{direction}` is not forward, reverse or bidirectional")
    dirs = 2 if direction == "bidirectional" else 1
    layout = at.get("layout", 0)
    if layout not in (0, 1):
        raise fail(node, f"layout {layout} is not 0 or 1")
    w = const(w_name, "W")
    r = const(r_name, "R")
    gates = RECURRENT[op]
    if w.ndim != 3 or w.shape[0] != dirs or w.shape[1] % gates:
        raise fail(node, f"W has shape {list(w.shape)}; a {direction} {op} needs [{dirs}, {gates}*H, I]")
    hidden = at.get("hidden_size", w.shape[1] // gates)
    if w.shape[1] != gates * hidden or r.shape != (dirs, gates * hidden, hidden):
        raise fail(node, f"W {list(w.shape)} and R {list(r.shape)} do not fit hidden_size {hidden}")
    b = const(b_name, "B") if b_name else None
    if b is not None and b.shape != (dirs, 2 * gates * hidden):
        raise fail(node, f"B has shape {list(b.shape)}, not [{dirs}, {2 * gates * hidden}]")
    p = const(p_name, "P") if p_name else None
    if p is not None and p.shape != (dirs, 3 * hidden):
        raise fail(node, f"P has shape {list(p.shape)}, not [{dirs}, {3 * hidden}]")
    clip = at.get("clip")
    if clip is not None and not clip > 0:
        raise fail(node, f"clip {clip} is not positive")
    lay = Layer(node, op, hidden, dirs, direction, read_activations(node, op, at, dirs), clip,
                at.get("linear_before_reset", 0), at.get("input_forget", 0), b is not None, p is not None, {},
                weights=(w, r, b, p), layout=layout)
    return lay, {"x": x_name, "lengths": lens_name, "h": h0_name, "c": c0_name}


def initial_state(node, lay: Layer, state: str, name: str, value) -> tuple:
    """A layer's start state from its initial_h/initial_c input `name` holding `value`: ("zeros",),
    ("param", [D, H] array) or ("context", graph input name)."""
    if not name:
        return ("zeros",)
    if isinstance(value, Zeros):
        return ("zeros",)
    if isinstance(value, Const):
        a = value.value if lay.layout == 0 or value.value.ndim != 3 else value.value.transpose(1, 0, 2)  # [D, B, H]
        if a.ndim != 3 or a.shape[0] != lay.dirs or a.shape[2] != lay.hidden:
            raise fail(node, f"initial_{state} has shape {list(a.shape)}, not [{lay.dirs}, B, {lay.hidden}]")
        if not np.all(a == a[:, :1]):
            raise fail(node, f"initial_{state} is a constant that differs from batch row to batch row",
                       "rnncompile starts every sequence from one param; feed it as a graph input instead")
        if not a.any():
            return ("zeros",)
        return ("param", a[:, 0])
    if isinstance(value, tuple) and value[0] == "graph_input":
        if lay.dirs == 2:
            raise fail(node, f"initial_{state} is a graph input of a bidirectional node",
                       "rnncompile takes a start state from a context input for one direction only; "
                       "split the node into a forward and a reverse one, or make initial_h an initializer")
        return ("context", value[1])
    raise fail(node, f"initial_{state} (`{name}`) must be an initializer, zeros or a graph input")
