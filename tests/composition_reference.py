"""Hand-written references for composed models, shared by tests/test_composition.py and tests/test_decoding.py.

Stacks, directions and variable lengths as plain loops over the cells of
tests/reference.py, one unpadded sequence at a time, so masking padded steps
is never what a reference relies on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import reference

SPECS = Path(__file__).resolve().parents[1] / "specs"
TOL = dict(rtol=1e-5, atol=1e-5)


def close(a, b, what="", **tol):
    """assert_allclose at TOL (or the given tolerance); returns the largest difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    np.testing.assert_allclose(a, b, err_msg=what, **(tol or TOL))
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def random_params(prog, seed: int, scale: float = 0.5) -> dict:
    """Seeded uniform values for every param of a compiled program (not rnncompile's initialisers)."""
    return reference.random_params(prog.params, np.random.default_rng(seed), scale=scale)


def spec_text(name: str) -> str:
    return (SPECS / f"{name}.yaml").read_text()


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def lstm_cell(p, x, s):
    return reference.lstm(p, x, s["h"], s["c"])


def gru_cell(p, x, s):
    return reference.gru(p, x, s["h"])


def sub(params: dict, prefix: str) -> dict:
    """The params under one prefix, with the prefix removed ("layers.0.forward.W_r" -> "W_r")."""
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix) and "." not in k[len(prefix):]}


def per_sequence(cell, p, x, lengths, reverse=False, state0=None, hidden=None, states=("h",)):
    """Run a reference cell on each sequence's real steps alone (reversed for reverse).
    Returns outputs [B, T, H] (zeros past each length) and each sequence's final state."""
    b, t = x.shape[:2]
    lengths = np.full(b, t) if lengths is None else np.asarray(lengths)
    out = np.zeros((b, t, hidden))
    finals = {s: np.zeros((b, hidden)) for s in states}
    for i in range(b):
        n = int(lengths[i])
        xi = x[i:i + 1, :n]
        if reverse:
            xi = xi[:, ::-1]
        s0 = {s: (np.zeros((1, hidden)) if state0 is None or s not in state0 else state0[s][i:i + 1]) for s in states}
        ys, fin = cell(p, xi, s0)
        if reverse:
            ys = ys[:, ::-1]
        out[i, :n] = ys[0]
        for s in states:
            finals[s][i] = fin[s][0]
    return out, finals


def ref_stack(params, x, lengths, layers, cell, hidden, states, init=None):
    """A stack of (direction, merge) layers, each direction with its own params, as plain loops."""
    below, finals = x, {}
    for k, (direction, merge) in enumerate(layers):
        dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
        outs = []
        for d in dirs:
            prefix = f"layers.{k}." + (f"{d}." if direction == "bidirectional" else "")
            s0 = None if init is None else {s: init[prefix + s] for s in states if prefix + s in init}
            y, fin = per_sequence(cell, sub(params, prefix), below, lengths, d == "reverse", s0, hidden, states)
            outs.append(y)
            finals.update({prefix + s: v for s, v in fin.items()})
        if len(outs) == 1:
            below = outs[0]
        elif merge == "concat":
            below = np.concatenate(outs, axis=-1)
        elif merge == "sum":
            below = outs[0] + outs[1]
        elif merge == "mean":
            below = (outs[0] + outs[1]) / 2
        else:
            below = {"forward": outs[0], "reverse": outs[1]}
    return below, finals
