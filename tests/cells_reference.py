"""The cells of specs/cells/ in plain NumPy, written from the papers' equations, not from rnncompile's graphs.

Each sequence cell is a step function `step(p, x, s) -> (outputs, new state)` on one batch of rows
(x [B, I], every state [B, ...]); `scan()` runs one over each sequence's real steps alone, so padding
is never what a reference relies on. Params are looked up by the names the specs give them; a gate
`g: {from: [a, b]}` owns W_g over [a; b] (split here into its column blocks, so each equation reads as
the paper writes it) and b_g.
"""
from __future__ import annotations

import numpy as np


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def softplus(v):
    return np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0.0)


def softmax(v, axis=-1):
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def affine(p, gate, *parts):
    """W_g [a; b; ...] + b_g, with W_g split into one column block per part (the gate's `from:` order)."""
    W = p[f"W_{gate}"]
    out, col = p[f"b_{gate}"] + 0.0, 0
    for part in parts:
        n = part.shape[-1]
        out = out + part @ W[:, col:col + n].T
        col += n
    assert col == W.shape[1], f"W_{gate}: {W.shape[1]} columns, parts cover {col}"
    return out


# ---- sequence cells ------------------------------------------------------------------------------

def peephole_lstm(p, x, s):
    """Gers, Schraudolph and Schmidhuber 2002: i, f peep at c_{t-1}, o at c_t."""
    h, c = s["h"], s["c"]
    i = sigmoid(affine(p, "i", h, x) + p["p_i"] * c)
    f = sigmoid(affine(p, "f", h, x) + p["p_f"] * c)
    g = np.tanh(affine(p, "g", h, x))
    c = f * c + i * g
    o = sigmoid(affine(p, "o", h, x) + p["p_o"] * c)
    h = o * np.tanh(c)
    return {"h": h}, {"h": h, "c": c}


def cifg_lstm(p, x, s):
    """Greff et al. 2017, CIFG: f_t = 1 - i_t."""
    h, c = s["h"], s["c"]
    i = sigmoid(affine(p, "i", h, x))
    g = np.tanh(affine(p, "g", h, x))
    o = sigmoid(affine(p, "o", h, x))
    c = (1.0 - i) * c + i * g
    h = o * np.tanh(c)
    return {"h": h}, {"h": h, "c": c}


def mgu(p, x, s):
    """Zhou et al. 2016, eqs. 8-10."""
    h = s["h"]
    f = sigmoid(affine(p, "f", h, x))
    h_tilde = np.tanh(affine(p, "n", f * h, x))
    h = (1.0 - f) * h + f * h_tilde
    return {"h": h}, {"h": h}


def indrnn(p, x, s):
    """Li et al. 2018, eq. 2: h_t = relu(W x_t + u * h_{t-1} + b), u a vector."""
    h = np.maximum(x @ p["W_a"].T + p["u"] * s["h"] + p["b_a"], 0.0)
    return {"h": h}, {"h": h}


def layer_norm(z, gain, bias, eps=1e-5):
    """Ba, Kiros and Hinton 2016, eqs. 3-4 (over the units of one example), eps inside the root."""
    mu = z.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(((z - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    return gain * (z - mu) / sigma + bias


def ln_lstm(p, x, s):
    """Ba, Kiros and Hinton 2016, eqs. 20-22."""
    h, c = s["h"], s["c"]
    a = layer_norm(h @ p["W_h"].T, p["a_h"], p["b_h"]) + layer_norm(x @ p["W_x"].T, p["a_x"], p["b_x"]) + p["b"]
    i, f, g, o = np.split(a, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(layer_norm(c, p["a_c"], p["b_c"]))
    return {"h": h}, {"h": h, "c": c}


def onnx_gru_params(p, hidden):
    """The spec's weights laid out as ONNX's GRU wants them: W [3H, I], R [3H, H], B [6H], gate order z, r, h
    (each gate's b_g is Wb_g, with Rb_g = 0 for z and r and Rb_h = the spec's Rb_h)."""
    H = hidden
    W = np.concatenate([p["W_z"][:, :-H], p["W_r"][:, :-H], p["W_n"]])
    R = np.concatenate([p["W_z"][:, -H:], p["W_r"][:, -H:], p["R_h"]])
    B = np.concatenate([p["b_z"], p["b_r"], p["b_n"], np.zeros(H), np.zeros(H), p["Rb_h"]])
    return W, R, B


def gru_onnx_lbr(p, x, s):
    """The ONNX GRU operator's equations, linear_before_reset != 0, default activations (f = sigmoid,
    g = tanh), written on the ONNX layout: Xt W^T + Ht-1 R^T + Wb + Rb per gate."""
    h = s["h"]
    H = h.shape[-1]
    W, R, B = onnx_gru_params(p, H)
    Wz, Wr, Wh = np.split(W, 3)
    Rz, Rr, Rh = np.split(R, 3)
    Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = np.split(B, 6)
    z = sigmoid(x @ Wz.T + h @ Rz.T + Wbz + Rbz)
    r = sigmoid(x @ Wr.T + h @ Rr.T + Wbr + Rbr)
    ht = np.tanh(x @ Wh.T + r * (h @ Rh.T + Rbh) + Wbh)
    h = (1.0 - z) * ht + z * h
    return {"h": h}, {"h": h}


def mlstm(p, x, s):
    """Krause et al. 2016: m_t = (W_mx x_t) * (W_mh h_{t-1}); the gates and h^ read [x_t, m_t]."""
    h, c = s["h"], s["c"]
    m = (x @ p["W_mx"].T) * (h @ p["W_mh"].T)
    i = sigmoid(affine(p, "i", x, m))
    f = sigmoid(affine(p, "f", x, m))
    o = sigmoid(affine(p, "o", x, m))
    h_hat = affine(p, "u", x, m)
    c = f * c + i * np.tanh(h_hat)
    h = np.tanh(c) * o
    return {"h": h}, {"h": h, "c": c}


def jordan(p, x, s):
    """Jordan 1986: h_t = sigmoid(W_h x_t + U_h y_{t-1} + b_h), y_t = sigmoid(W_y h_t + b_y)."""
    hidden = sigmoid(affine(p, "h", x, s["y"]))
    y = sigmoid(hidden @ p["W_out"].T + p["b_out"])
    return {"y": y}, {"y": y}


# ---- the Neural Turing Machine (Graves, Wayne and Danihelka 2014, section 3) ------------------------

def _address(p, tag, k_in, M, w_prev, eps=1e-8):
    """One head's weighting: content (eqs. 5-6), interpolation (7), circular shift (8), sharpening (9)."""
    k = np.tanh(k_in @ p[f"W_k_{tag}"].T + p[f"b_k_{tag}"])                       # key [B, W]
    beta = softplus(k_in @ p[f"u_beta_{tag}"] + p[f"b_beta_{tag}"])[:, None]      # strength >= 0
    g = sigmoid(k_in @ p[f"u_g_{tag}"] + p[f"b_g_{tag}"])[:, None]                # interpolation gate
    shift = softmax(k_in @ p[f"W_s_{tag}"].T + p[f"b_s_{tag}"])                   # over -1, 0, +1
    gamma = 1.0 + softplus(k_in @ p[f"u_gamma_{tag}"] + p[f"b_gamma_{tag}"])[:, None]
    sim = np.einsum("bnw,bw->bn", M, k) / (np.linalg.norm(M, axis=2) * np.linalg.norm(k, axis=1)[:, None] + eps)
    w_c = softmax(beta * sim)
    w_g = g * w_c + (1.0 - g) * w_prev
    kk = (shift.shape[1] - 1) // 2   # w~(i) = sum_j w_g(i - j) s(j), j = -k..k: s(+1) moves weight one slot on
    w_s = sum(np.roll(w_g, j, axis=1) * shift[:, j + kk:j + kk + 1] for j in range(-kk, kk + 1))
    powered = w_s ** gamma
    return powered / powered.sum(axis=1, keepdims=True)


def ntm(p, x, s, reads=("r0", "r1"), writes=("w0",)):
    """An LSTM controller over [h, x, r...]; write heads address M_{t-1} (erase then add, eqs. 3-4),
    read heads the memory after the write (eq. 2). Output sigmoid(W_y [h, r...] + b_y)."""
    h, c, M = s["h"], s["c"], s["M"]
    z = [h, x] + [s[r] for r in reads]
    i = sigmoid(affine(p, "i", *z))
    f = sigmoid(affine(p, "f", *z))
    g = np.tanh(affine(p, "g", *z))
    o = sigmoid(affine(p, "o", *z))
    c = f * c + i * g
    h = o * np.tanh(c)
    new = {"h": h, "c": c}
    keep, add = np.ones_like(M), np.zeros_like(M)
    for tag in writes:
        w = _address(p, tag, h, M, s[f"w_{tag}"])
        e = sigmoid(h @ p[f"W_e_{tag}"].T + p[f"b_e_{tag}"])
        a = np.tanh(h @ p[f"W_a_{tag}"].T + p[f"b_a_{tag}"])
        keep = keep * (1.0 - w[:, :, None] * e[:, None, :])
        add = add + w[:, :, None] * a[:, None, :]
        new[f"w_{tag}"] = w
    M = M * keep + add
    new["M"] = M
    for tag in reads:
        w = _address(p, tag, h, M, s[f"w_{tag}"])
        new[f"w_{tag}"] = w
        new[tag] = np.einsum("bn,bnw->bw", w, M)
    y = sigmoid(np.concatenate([h] + [new[r] for r in reads], axis=1) @ p["W_y"].T + p["b_y"])
    return {"y": y}, new


# ---- running a step function over padded sequences ------------------------------------------------

def scan(step, p, x, state0, lengths=None):
    """Run `step` over each sequence's real steps alone. Returns (outputs [B, T, ...] with zeros past each
    length, the final state at each sequence's last real step)."""
    B, T = x.shape[:2]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    outs, finals = None, {k: np.array(v, dtype=np.float64) for k, v in state0.items()}
    for b in range(B):
        s = {k: v[b:b + 1] for k, v in state0.items()}
        for t in range(int(lengths[b])):
            y, s = step(p, x[b:b + 1, t], s)
            if outs is None:
                outs = {k: np.zeros((B, T) + v.shape[1:]) for k, v in y.items()}
            for k, v in y.items():
                outs[k][b, t] = v[0]
        for k, v in s.items():
            finals[k][b] = v[0]
    return outs, finals


def stack(step, params, x, states0, layers, lengths=None):
    """A stack of forward layers; layer k's params and state are keyed `layers.k.<name>`; each layer reads
    the `h` the layer below hands up."""
    below, finals = x, {}
    for k in range(layers):
        pre = f"layers.{k}."
        p = {n[len(pre):]: v for n, v in params.items() if n.startswith(pre)}
        s0 = {n[len(pre):]: v for n, v in states0.items() if n.startswith(pre)}
        out, fin = scan(step, p, below, s0, lengths)
        below = out["h"]
        finals.update({pre + n: v for n, v in fin.items()})
    return {"h": below}, finals


# ---- the binary Tree-GRU -------------------------------------------------------------------------

def tree_gru(p, tree, ids):
    """h of a tree given as nested pairs of words (ids: word -> row of E_w; others are `<unk>`): leaves tanh(W_x E[w] + b_x); a node combines its two
    children with a reset r, an update z and a candidate over [r * h_L; r * h_R]."""
    if isinstance(tree, str):
        return np.tanh(p["W_x"] @ p["E_w"][ids.get(tree, ids["<unk>"])] + p["b_x"])
    left, right = (tree_gru(p, child, ids) for child in tree)
    hs = np.concatenate([left, right])
    r = sigmoid(p["U_r"] @ hs + p["b_r"])
    z = sigmoid(p["U_z"] @ hs + p["b_z"])
    n = np.tanh(p["U_n"] @ np.concatenate([r * left, r * right]) + p["b_n"])
    return z * (left + right) / 2.0 + (1.0 - z) * n
