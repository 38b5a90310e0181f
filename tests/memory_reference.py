"""Networks with explicit memory in plain NumPy, written from the papers' equations, not from rnncompile.

- ntm(): the Neural Turing Machine of Graves, Wayne and Danihelka (2014), section 3: content
  addressing (eqs. 5-6), interpolation (7), circular convolution (8), sharpening (9), reading (2),
  erase and add (3-4); with an LSTM controller and any number of read and write heads.
- memn2n(): the end-to-end memory network of Sukhbaatar et al. (2015), section 2, with K = 3 hops,
  adjacent weight tying and temporal encoding.

Loops are written out where the paper writes sums, so the code reads like the equations. The
parameter names are the ones specs/ntm.yaml and the `memory:` shorthand give (see rnncompile/memory.py).
"""
from __future__ import annotations

import numpy as np

EPS = 1e-8  # the cosine's guard against a zero slot or key (the paper divides by |u||v| alone)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---- NTM -----------------------------------------------------------------------------------

def cosine_similarity(M, k):
    """K[b, i] = M[b, i] . k[b] / (|M[b, i]| |k[b]| + eps)   (eq. 6)"""
    B, N, _ = M.shape
    K = np.empty((B, N))
    for b in range(B):
        for i in range(N):
            K[b, i] = M[b, i] @ k[b] / (np.linalg.norm(M[b, i]) * np.linalg.norm(k[b]) + EPS)
    return K


def convolve(w, s):
    """w~(i) = sum_j w(j) s(i - j), with i - j taken modulo N and s indexed by shifts -k..k   (eq. 8)"""
    B, N = w.shape
    k = (s.shape[1] - 1) // 2
    out = np.zeros_like(w)
    for i in range(N):
        for j in range(N):
            for shift in range(-k, k + 1):
                if (i - j - shift) % N == 0:
                    out[:, i] += w[:, j] * s[:, shift + k]
    return out


def head_weighting(p, tag, c, M, w_prev, location=True):
    """One head's weighting from the controller output c and the memory it addresses."""
    k = np.tanh(c @ p[f"W_k_{tag}"].T + p[f"b_k_{tag}"])
    beta = softplus(c @ p[f"u_beta_{tag}"] + p[f"b_beta_{tag}"])
    w_c = softmax(beta[:, None] * cosine_similarity(M, k))  # eq. 5
    if not location:
        return w_c
    g = sigmoid(c @ p[f"u_g_{tag}"] + p[f"b_g_{tag}"])
    s = softmax(c @ p[f"W_s_{tag}"].T + p[f"b_s_{tag}"])
    gamma = 1.0 + softplus(c @ p[f"u_gamma_{tag}"] + p[f"b_gamma_{tag}"])
    w_g = g[:, None] * w_c + (1.0 - g[:, None]) * w_prev  # eq. 7
    w_s = convolve(w_g, s)
    powered = w_s ** gamma[:, None]
    return powered / powered.sum(axis=1, keepdims=True)  # eq. 9


def ntm(p, x, state, reads=("r0",), writes=("w0",), location=True):
    """x [B, T, I]; state: h, c, M, the read vectors and (location addressing) each head's weighting.
    Returns y [B, T, O], the final state, and each head's weighting at every step [B, T, N]."""
    h, c, M = state["h"], state["c"], state["M"]
    r = {tag: state[tag] for tag in reads}
    w = {tag: state.get(f"w_{tag}") for tag in reads + writes}
    ys, trace = [], {f"w_{tag}": [] for tag in reads + writes}
    for t in range(x.shape[1]):
        z = np.concatenate([h, x[:, t]] + [r[tag] for tag in reads], axis=1)  # the gates read [h, x, r...]
        i = sigmoid(z @ p["W_i"].T + p["b_i"])
        f = sigmoid(z @ p["W_f"].T + p["b_f"])
        g = np.tanh(z @ p["W_g"].T + p["b_g"])
        o = sigmoid(z @ p["W_o"].T + p["b_o"])
        c = f * c + i * g
        h = o * np.tanh(c)
        erase = np.ones_like(M)
        add = np.zeros_like(M)
        for tag in writes:  # every write head addresses the memory of the previous step
            w[tag] = head_weighting(p, tag, h, M, w[tag], location)
            e = sigmoid(h @ p[f"W_e_{tag}"].T + p[f"b_e_{tag}"])
            a = np.tanh(h @ p[f"W_a_{tag}"].T + p[f"b_a_{tag}"])
            erase *= 1.0 - w[tag][:, :, None] * e[:, None, :]  # eq. 3: erasures multiply
            add += w[tag][:, :, None] * a[:, None, :]  # eq. 4: adds sum
        M = M * erase + add
        for tag in reads:  # read heads address and read the memory after this step's writes
            w[tag] = head_weighting(p, tag, h, M, w[tag], location)
            r[tag] = np.einsum("bn,bnw->bw", w[tag], M)  # eq. 2
        for tag in reads + writes:
            trace[f"w_{tag}"].append(w[tag])
        ys.append(sigmoid(np.concatenate([h] + [r[tag] for tag in reads], axis=1) @ p["W_y"].T + p["b_y"]))
    final = {"h": h, "c": c, "M": M, **r}
    if location:
        final.update({f"w_{tag}": w[tag] for tag in reads + writes})
    return np.stack(ys, axis=1), final, {k: np.stack(v, axis=1) for k, v in trace.items()}


# ---- MemN2N --------------------------------------------------------------------------------

def memn2n(p, story, question, hops=3):
    """story [B, T, S, L] and question [B, T, L] word ids; returns the answer distributions [B, T, V]
    and each hop's attention [B, T, S]. Adjacent tying: A_1 = B = p["A"], A_{k+1} = C_k, W^T = C_K."""
    def bag(table, ids):  # sum of the words' embeddings
        return table[ids].sum(axis=-2)

    u = bag(p["A"], question)
    memory = bag(p["A"], story) + p["T_A"]
    attention = []
    for k in range(1, hops + 1):
        out = bag(p[f"C{k}"], story) + p[f"T_C{k}"]
        weights = np.zeros(memory.shape[:-1])
        for i in range(memory.shape[-2]):
            weights[..., i] = (memory[..., i, :] * u).sum(axis=-1)  # u . m_i
        weights = softmax(weights)
        u = u + (weights[..., None] * out).sum(axis=-2)  # u_{k+1} = u_k + o_k
        attention.append(weights)
        memory = out
    return softmax(u @ p[f"C{hops}"].T), attention
