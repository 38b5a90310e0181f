"""Recognising a cell that ONNX's own LSTM or GRU operator computes exactly, and its stacked weights.

A candidate is read off the cell's graph as written (before gate fusion): each gate `act(W @ concat(h, x)
+ b)` gives its recurrent and input halves and its bias; a GRU's candidate takes the remaining [H, I] and
[H, H] matrices and [H] biases. Which gate plays which part (and which state is h, which c) is not guessed
from names: every assignment is tried, and one counts only when the cell, stepped by the numpy backend in
float64 on random inputs and states, equals ONNX's equations with those weights to 1e-9 (outputs and next
states). So a cell that differs in any way (a peephole, another activation, an extra output, the reset
gate before the multiply) is never exported as a native operator; it goes out as a Scan.

ONNX layouts: gates stacked in W [1, G*H, I] (over x), R [1, G*H, H] (over h), B [1, 2*G*H] = [Wb, Rb];
LSTM gate order i o f c, GRU z r h with linear_before_reset=1 (PyTorch's form: r scales R_h h + Rb_h).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ... import registry
from ...graph import CellGraph
from ...plan import CellUse


@dataclass
class Native:
    op: str  # LSTM | GRU
    hidden: int
    x: str  # the cell's input
    h: str  # the state that is ONNX's H (and Y)
    c: str | None  # LSTM: the state that is ONNX's C
    W: np.ndarray
    R: np.ndarray
    B: np.ndarray
    sources: tuple  # the weight-file keys stacked into W, R and B

    @property
    def attrs(self) -> dict:
        return {"linear_before_reset": 1} if self.op == "GRU" else {}


@dataclass
class _Gate:
    act: str
    w_h: np.ndarray
    w_x: np.ndarray
    b: np.ndarray
    keys: tuple


def recognise(program, use: CellUse, params: dict) -> Native | None:
    """The native operator that computes `use`'s cell exactly with these params, or None."""
    cell = use.cell
    if len(cell.inputs) != 1 or cell.nodes_of("step_index") or cell.nodes_of("seq_length"):
        return None
    (x, info), = cell.inputs.items()
    if info.dtype != "float" or len(info.shape) != 1 or any(len(s.shape) != 1 for s in cell.states.values()):
        return None
    sizes = {s.shape[0] for s in cell.states.values()}
    if len(sizes) != 1 or len(cell.states) not in (1, 2) or not cell.outputs():
        return None
    hidden = sizes.pop()
    p = {name: np.asarray(params[use.key(name)], np.float64) for name in cell.params}
    for h in cell.states:
        gates = _gates(cell, x, h, p, use)
        if gates is None:
            continue
        c = next((s for s in cell.states if s != h), None)
        for native in (_lstm_candidates(gates, x, h, c, hidden) if c else
                       _gru_candidates(gates, cell, x, h, hidden, p, use)):
            if _same_step(program, use, params, native):
                return native
    return None


def _gates(cell: CellGraph, x: str, h: str, p: dict, use: CellUse) -> list[_Gate] | None:
    """Every `act(W @ concat(h, x) + b)` (either order of the concat, either order of the sum) of the cell."""
    inputs, states = cell.by_name("input"), cell.by_name("state")
    out = []
    for nid in cell.order():
        node = cell.node(nid)
        if node.op not in ("sigmoid", "tanh"):
            continue
        (arg,) = cell.args(nid)
        if cell.node(arg).op != "add":
            continue
        parts = cell.args(arg)
        mm = next((a for a in parts if cell.node(a).op == "matmul"), None)
        bias = next((a for a in parts if cell.node(a).op == "param"), None)
        if mm is None or bias is None or len(parts) != 2:
            continue
        w, cat = cell.args(mm)
        if cell.node(w).op != "param" or cell.node(cat).op != "concat":
            continue
        order = cell.args(cat)
        if sorted(order) != sorted([inputs[x], states[h]]) or len(order) != 2:
            continue
        wname, bname = cell.node(w).attr("name"), cell.node(bias).attr("name")
        W = p[wname]
        nh = cell.states[h].shape[0]
        w_h, w_x = (W[:, :nh], W[:, nh:]) if order[0] == states[h] else (W[:, -nh:], W[:, :-nh])
        out.append(_Gate(node.op, w_h, w_x, p[bname], (use.key(wname), use.key(bname))))
    return out or None


def _lstm_candidates(gates: list[_Gate], x, h, c, hidden):
    if len(gates) != 4:
        return
    for i, o, f, g in itertools.permutations(gates):
        if (i.act, o.act, f.act, g.act) != ("sigmoid", "sigmoid", "sigmoid", "tanh"):
            continue
        order = (i, o, f, g)
        W = np.concatenate([q.w_x for q in order])[None]
        R = np.concatenate([q.w_h for q in order])[None]
        B = np.concatenate([np.concatenate([q.b for q in order]), np.zeros(4 * hidden)])[None]
        yield Native("LSTM", hidden, x, h, c, W, R, B, tuple(k for q in order for k in q.keys))


def _gru_candidates(gates: list[_Gate], cell: CellGraph, x, h, hidden, p: dict, use: CellUse):
    sig = [q for q in gates if q.act == "sigmoid"]
    if len(sig) != 2:
        return
    used = {k for q in sig for k in q.keys}
    rest = {n: v for n, v in p.items() if use.key(n) not in used}
    n_in = cell.inputs[x].shape[0]
    matrices = [(a, b) for a, b in itertools.permutations(rest, 2)  # the candidate's input and recurrent matrices
                if rest[a].shape == (hidden, n_in) and rest[b].shape == (hidden, hidden)]
    biases = [n for n, v in rest.items() if v.shape == (hidden,)]
    if len(rest) != 4 or not matrices or len(biases) != 2:
        return
    for (z, r), (w_in, w_hn), (b_in, b_hn) in itertools.product(itertools.permutations(sig), matrices,
                                                                itertools.permutations(biases)):
        W = np.concatenate([z.w_x, r.w_x, rest[w_in]])[None]
        R = np.concatenate([z.w_h, r.w_h, rest[w_hn]])[None]
        B = np.concatenate([z.b, r.b, rest[b_in], np.zeros(2 * hidden), rest[b_hn]])[None]
        keys = z.keys + r.keys + tuple(use.key(n) for n in (w_in, w_hn, b_in, b_hn))
        yield Native("GRU", hidden, x, h, None, W, R, B, keys)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def onnx_step(native: Native, x: np.ndarray, h: np.ndarray, c: np.ndarray | None):
    """ONNX's LSTM / GRU (linear_before_reset=1) equations for one step: (H, C)."""
    W, R, B, n = native.W[0], native.R[0], native.B[0], native.hidden
    wb, rb = np.split(B, 2)
    if native.op == "LSTM":
        i, o, f, g = np.split(x @ W.T + h @ R.T + wb + rb, 4, axis=-1)
        c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c_new), c_new
    xz, xr, xh = np.split(x @ W.T + wb, 3, axis=-1)
    hz, hr = np.split(h @ R[:2 * n].T + rb[:2 * n], 2, axis=-1)
    z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
    cand = np.tanh(xh + r * (h @ R[2 * n:].T + rb[2 * n:]))
    return (1 - z) * cand + z * h, None


def _same_step(program, use: CellUse, params: dict, native: Native, rows: int = 6) -> bool:
    rng = np.random.default_rng(0)
    cell = program.cell(use)
    bound = registry.get("numpy").cell_runner(cell, "float64").bind(
        {n: np.asarray(params[use.key(n)], np.float64) for n in use.cell.params})
    x = rng.standard_normal((rows, cell.inputs[native.x].shape[0]))
    state = {s: rng.standard_normal((rows, native.hidden)) for s in cell.states}
    outs, new = bound.step({native.x: x}, state)
    want_h, want_c = onnx_step(native, x, state[native.h], state.get(native.c) if native.c else None)
    close = [np.allclose(new[native.h], want_h, rtol=0, atol=1e-9)]
    if native.c:
        close.append(np.allclose(new[native.c], want_c, rtol=0, atol=1e-9))
    close += [np.shape(v) == want_h.shape and np.allclose(v, want_h, rtol=0, atol=1e-9) for v in outs.values()]
    return all(close)
