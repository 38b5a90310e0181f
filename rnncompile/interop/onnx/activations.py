"""ONNX's recurrent activations (with activation_alpha/beta) -> spec expressions."""
from __future__ import annotations

import re

import numpy as np

from .expr_text import num_text
from .nodes import fail

DEFAULT_ACTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
ALPHA_BETA = {  # ONNX activation -> (uses alpha, uses beta, default alpha, default beta)
    "Sigmoid": (False, False, None, None), "Tanh": (False, False, None, None), "Relu": (False, False, None, None),
    "Softsign": (False, False, None, None), "Softplus": (False, False, None, None),
    "HardSigmoid": (True, True, 0.2, 0.5), "LeakyRelu": (True, False, 0.01, None), "Elu": (True, False, 1.0, None),
    "Affine": (True, True, 1.0, 0.0), "ScaledTanh": (True, True, 1.0, 1.0),
}


def read_activations(node, op, attrs, dirs) -> list:
    """[(name, alpha, beta)] per activation of one direction; both directions must agree (one cell)."""
    per = len(DEFAULT_ACTS[op])
    names = attrs.get("activations") or DEFAULT_ACTS[op] * dirs
    if len(names) != per * dirs:
        raise fail(node, f"`activations` lists {len(names)} functions; a {attrs.get('direction', 'forward')} "
                         f"{op} takes {per * dirs} ({per} per direction)")
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    out = []
    for name in names:
        canon = {k.lower(): k for k in ALPHA_BETA}.get(name.lower())
        if canon is None:
            known = ", ".join(sorted(ALPHA_BETA))
            raise fail(node, f"activation `{name}` has no rnncompile equivalent",
                       f"supported: {known} (ThresholdedRelu needs a comparison, which specs do not have)")
        ua, ub, da, db = ALPHA_BETA[canon]
        a = alphas.pop(0) if ua and alphas else da
        b = betas.pop(0) if ub and betas else db
        out.append((canon, a, b))
    if alphas or betas:
        raise fail(node, "`activation_alpha`/`activation_beta` hold more values than its activations use")
    if dirs == 2 and out[:per] != out[per:]:
        raise fail(node, f"the two directions use different activations ({out[:per]} and {out[per:]})",
                   "rnncompile runs both directions of a layer with one cell; export the directions as two nodes")
    return out[:per]


def activation_expr(spec, arg: str, lets: dict, name: str) -> str:
    """The activation `spec` applied to `arg` as an expression; arguments used twice get their own let."""
    kind, a, b = spec
    simple = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "Softplus": "softplus"}
    if kind in simple:
        return f"{simple[kind]}({arg})"
    if kind == "HardSigmoid":
        if (np.float32(a), np.float32(b)) == (np.float32(0.2), np.float32(0.5)):
            return f"hard_sigmoid({arg})"
        return f"hard_sigmoid({arg}, alpha={num_text(a)}, beta={num_text(b)})"
    if kind == "Affine":
        return f"({num_text(a)} * ({arg}) + {num_text(b)})"
    if kind == "ScaledTanh":
        return f"({num_text(a)} * tanh({num_text(b)} * ({arg})))"
    if not re.fullmatch(r"\w+", arg):
        lets[name] = arg
        arg = name
    if kind == "Softsign":
        return f"({arg} / (1 + abs({arg})))"
    if kind == "LeakyRelu":
        return f"(maximum({arg}, 0) + {num_text(a)} * minimum({arg}, 0))"
    if kind == "Elu":
        return f"(maximum({arg}, 0) + {num_text(a)} * (exp(minimum({arg}, 0)) - 1))"
    raise AssertionError(kind)

