"""Specs for PyTorch recurrent modules: `rnncompile new lstm --layers 2 --bidirectional --proj-size 3`.

The spec computes exactly what nn.RNN / nn.LSTM / nn.GRU(input_size, hidden_size, num_layers, bias,
bidirectional, proj_size, nonlinearity) computes, in the shipped specs' style, so `rnncompile weights
--from-torch` has a spec to target (torch_cells.layout reads the module back from the spec's equations).
"""
from __future__ import annotations

KINDS = ("rnn", "lstm", "gru")


def torch_spec(kind: str, input_size: int = 8, hidden: int = 16, layers: int = 1, bidirectional: bool = False,
               proj_size: int = 0, bias: bool = True, nonlinearity: str = "tanh", name: str | None = None,
               steps: int = 10) -> str:
    """The spec text of one torch recurrent module (batch_first: the spec's arrays are [B, T, ...])."""
    from ..errors import UsageError

    if kind not in KINDS:
        raise UsageError(f"unknown module `{kind}`; use one of: {', '.join(KINDS)}")
    if proj_size and kind != "lstm":
        raise UsageError("--proj-size is an nn.LSTM option")
    if nonlinearity != "tanh" and kind != "rnn":
        raise UsageError("--nonlinearity is an nn.RNN option")
    if nonlinearity not in ("tanh", "relu"):
        raise UsageError(f"--nonlinearity {nonlinearity}: nn.RNN takes tanh or relu")
    if proj_size and proj_size >= hidden:
        raise UsageError(f"--proj-size {proj_size} must be smaller than --hidden {hidden} (as in nn.LSTM)")
    module = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[kind]
    options = [f"num_layers={layers}"] * (layers > 1) + ["bidirectional=True"] * bidirectional + \
        ["bias=False"] * (not bias) + [f"proj_size={proj_size}"] * bool(proj_size) + \
        ["nonlinearity='relu'"] * (nonlinearity == "relu")
    call = f"nn.{module}({input_size}, {hidden}{''.join(', ' + o for o in options)}, batch_first=True)"
    name = name or kind
    h = "P" if proj_size else "H"
    dims = {"I": input_size, "H": hidden} | ({"P": proj_size} if proj_size else {}) | {"T": steps}
    lines = ["rnncompile: 1", f"name: {name}", "description: >", f"  What PyTorch's {call} computes",
             "  (written by `rnncompile new`); convert its state_dict with",
             f"  rnncompile weights {name}.yaml --from-torch model.pt -o weights.npz.",
             "dims: {" + ", ".join(f"{k}: {v}" for k, v in dims.items()) + "}", "cells:", f"  {kind}:",
             "    inputs: {x: I}"]
    no_bias = "" if bias else ", bias: false"
    if kind == "rnn":
        lines += ["    state: {h: H}", "    gates:", f"      h_new: {{act: {nonlinearity}, from: [h, x]{no_bias}}}",
                  "    update: {h: h_new}"]
    elif kind == "lstm":
        size = ", size: H" if proj_size else ""
        lines += [f"    state: {{h: {h}, c: H}}"]
        if proj_size:
            lines += ["    params:", "      W_hr: {shape: [P, H]}          # torch's weight_hr: h' = W_hr (o tanh(c'))"]
        lines += ["    gates:                              # rows i, f, g, o of torch's weight_ih / weight_hh"]
        lines += [f"      {g}: {{act: {a}, from: [h, x]{size}{no_bias}}}"
                  for g, a in (("i", "sigmoid"), ("f", "sigmoid"), ("g", "tanh"), ("o", "sigmoid"))]
        update = "W_hr @ (o * tanh(c_next))" if proj_size else "o * tanh(c_next)"
        lines += ["    let:", "      c_next: f * c + i * g", f"    update: {{c: c_next, h: {update}}}"]
    else:
        lines += ["    state: {h: H}", "    gates:                              # rows r, z of torch's weight_ih / weight_hh",
                  f"      r: {{act: sigmoid, from: [h, x]{no_bias}}}", f"      z: {{act: sigmoid, from: [h, x]{no_bias}}}"]
        if bias:
            lines += ["    params:                             # the candidate n keeps torch's two biases apart",
                      "      W_in: {shape: [H, I]}", "      b_in: {shape: [H], init: zeros}",
                      "      W_hn: {shape: [H, H]}", "      b_hn: {shape: [H], init: zeros}",
                      "    let:", "      n: tanh(W_in @ x + b_in + r * (W_hn @ h + b_hn))"]
        else:
            lines += ["    params:", "      W_in: {shape: [H, I]}", "      W_hn: {shape: [H, H]}",
                      "    let:", "      n: tanh(W_in @ x + r * (W_hn @ h))"]
        lines += ["    update:", "      h: (1 - z) * n + z * h"]
    lines += ["    outputs: {h: h}", "model:", "  input: {x: [T, I]}"]
    direction = ", direction: bidirectional, merge: concat" if bidirectional else ""
    if layers == 1 and not bidirectional:
        lines += [f"  scan: {kind}"]
    else:
        lines += ["  layers:                               # each layer's input size follows the one below"]
        lines += [f"    - {{scan: {kind}{direction}}}" for _ in range(layers)]
    return "\n".join(lines) + "\n"
