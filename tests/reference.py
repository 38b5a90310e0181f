"""Textbook RNN cells in plain NumPy, written from the equations, not from rnncompile.

Each cell takes our param dict (the names the specs give: W_xh, W_i, W_r, ...),
inputs x [B, T, I] and the initial state, and returns (outputs [B, T, ...],
final state). Everything is computed in the dtype of the arguments given
(tests pass float64 to get a reference that float32 runs are measured against).

The second half maps weights between PyTorch's layouts (nn.RNN, nn.LSTM,
nn.GRU, nn.Linear) and our param names, both ways. It works on NumPy arrays
keyed by PyTorch's state_dict names, so this module never imports torch.
"""
from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _columns(w, hidden):
    """Split a gate matrix over concat(h, x) into its h part and its x part."""
    return w[:, :hidden], w[:, hidden:]


# ---- cells -----------------------------------------------------------------

def elman(p, x, h0):
    """h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h);  y_t = W_hy h_t + b_y."""
    h, ys = h0, []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ p["W_xh"].T + h @ p["W_hh"].T + p["b_h"])
        ys.append(h @ p["W_hy"].T + p["b_y"])
    return np.stack(ys, axis=1), {"h": h}


def lstm(p, x, h0, c0):
    """i, f, o = sigmoid(W_x* x + W_h* h + b_*);  g = tanh(...);
    c' = f c + i g;  h' = o tanh(c');  y = h'."""
    hidden = h0.shape[-1]
    w = {k: _columns(p[f"W_{k}"], hidden) for k in "ifgo"}  # k -> (W_hk, W_xk)

    def gate(k, x_t, h):
        w_h, w_x = w[k]
        return x_t @ w_x.T + h @ w_h.T + p[f"b_{k}"]

    h, c, ys = h0, c0, []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        i = sigmoid(gate("i", x_t, h))
        f = sigmoid(gate("f", x_t, h))
        g = np.tanh(gate("g", x_t, h))
        o = sigmoid(gate("o", x_t, h))
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys, axis=1), {"h": h, "c": c}


def gru(p, x, h0):
    """PyTorch's GRU: r, z = sigmoid(W_x* x + W_h* h + b_*);
    n = tanh(W_in x + b_in + r (W_hn h + b_hn));  h' = (1 - z) n + z h."""
    hidden = h0.shape[-1]
    w_hr, w_xr = _columns(p["W_r"], hidden)
    w_hz, w_xz = _columns(p["W_z"], hidden)
    h, ys = h0, []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        r = sigmoid(x_t @ w_xr.T + h @ w_hr.T + p["b_r"])
        z = sigmoid(x_t @ w_xz.T + h @ w_hz.T + p["b_z"])
        n = np.tanh(x_t @ p["W_in"].T + p["b_in"] + r * (h @ p["W_hn"].T + p["b_hn"]))
        h = (1.0 - z) * n + z * h
        ys.append(h)
    return np.stack(ys, axis=1), {"h": h}


def run(spec: str, params: dict, x, state: dict):
    """Dispatch by spec name; state holds h (and c for the LSTM)."""
    if spec == "elman":
        return elman(params, x, state["h"])
    if spec == "lstm":
        return lstm(params, x, state["h"], state["c"])
    if spec == "gru":
        return gru(params, x, state["h"])
    raise KeyError(spec)


# ---- PyTorch layouts <-> our params ------------------------------------------
# PyTorch stacks gates in weight_ih_l0 [G*H, I], weight_hh_l0 [G*H, H] and two
# biases, in the order i, f, g, o (LSTM) or r, z, n (GRU). Our gate matrices
# are W_k = [W_hk | W_xk] (columns over concat(h, x), as `from: [h, x]` says)
# with one bias b_k = b_ik + b_hk; the GRU's candidate keeps W_in, W_hn, b_in,
# b_hn apart because r multiplies only the recurrent half.

LSTM_GATES = "ifgo"
GRU_GATES = "rzn"


def _rows(a, n):
    return np.split(np.asarray(a), n, axis=0)


def from_torch_rnn(sd: dict, linear: dict) -> dict:
    """nn.RNN state_dict + nn.Linear state_dict -> the elman spec's params."""
    return {"W_xh": sd["weight_ih_l0"], "W_hh": sd["weight_hh_l0"],
            "b_h": sd["bias_ih_l0"] + sd["bias_hh_l0"],
            "W_hy": linear["weight"], "b_y": linear["bias"]}


def to_torch_rnn(p: dict) -> tuple[dict, dict]:
    """elman params -> (nn.RNN state_dict, nn.Linear state_dict); the bias goes to bias_ih."""
    rnn = {"weight_ih_l0": p["W_xh"], "weight_hh_l0": p["W_hh"],
           "bias_ih_l0": p["b_h"], "bias_hh_l0": np.zeros_like(p["b_h"])}
    return rnn, {"weight": p["W_hy"], "bias": p["b_y"]}


def from_torch_lstm(sd: dict) -> dict:
    w_ih, w_hh = _rows(sd["weight_ih_l0"], 4), _rows(sd["weight_hh_l0"], 4)
    b_ih, b_hh = _rows(sd["bias_ih_l0"], 4), _rows(sd["bias_hh_l0"], 4)
    out = {}
    for k, wi, wh, bi, bh in zip(LSTM_GATES, w_ih, w_hh, b_ih, b_hh):
        out[f"W_{k}"] = np.concatenate([wh, wi], axis=1)
        out[f"b_{k}"] = bi + bh
    return out


def to_torch_lstm(p: dict) -> dict:
    hidden = p["W_i"].shape[0]
    parts = {k: _columns(p[f"W_{k}"], hidden) for k in LSTM_GATES}
    return {"weight_ih_l0": np.concatenate([parts[k][1] for k in LSTM_GATES]),
            "weight_hh_l0": np.concatenate([parts[k][0] for k in LSTM_GATES]),
            "bias_ih_l0": np.concatenate([p[f"b_{k}"] for k in LSTM_GATES]),
            "bias_hh_l0": np.zeros(4 * hidden, p["b_i"].dtype)}


def from_torch_gru(sd: dict) -> dict:
    w_ir, w_iz, w_in = _rows(sd["weight_ih_l0"], 3)
    w_hr, w_hz, w_hn = _rows(sd["weight_hh_l0"], 3)
    b_ir, b_iz, b_in = _rows(sd["bias_ih_l0"], 3)
    b_hr, b_hz, b_hn = _rows(sd["bias_hh_l0"], 3)
    return {"W_r": np.concatenate([w_hr, w_ir], axis=1), "b_r": b_ir + b_hr,
            "W_z": np.concatenate([w_hz, w_iz], axis=1), "b_z": b_iz + b_hz,
            "W_in": w_in, "W_hn": w_hn, "b_in": b_in, "b_hn": b_hn}


def to_torch_gru(p: dict) -> dict:
    hidden = p["W_r"].shape[0]
    w_hr, w_ir = _columns(p["W_r"], hidden)
    w_hz, w_iz = _columns(p["W_z"], hidden)
    zeros = np.zeros(hidden, p["b_r"].dtype)
    return {"weight_ih_l0": np.concatenate([w_ir, w_iz, p["W_in"]]),
            "weight_hh_l0": np.concatenate([w_hr, w_hz, p["W_hn"]]),
            "bias_ih_l0": np.concatenate([p["b_r"], p["b_z"], p["b_in"]]),
            "bias_hh_l0": np.concatenate([zeros, zeros, p["b_hn"]])}


# ---- random test data ----------------------------------------------------------

def random_params(infos: dict, rng: np.random.Generator, scale: float = 0.5) -> dict:
    """Non-zero values for every param (biases included), keyed as the program names them."""
    return {name: rng.uniform(-scale, scale, info.shape) for name, info in infos.items()}


def random_state(states: dict, batch: int, rng: np.random.Generator) -> dict:
    return {name: rng.uniform(-1, 1, (batch,) + tuple(info.shape)) for name, info in states.items()}
