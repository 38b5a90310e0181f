"""Hand-written references for the tree specs: the papers' equations, one node at a time, by recursion.

Socher et al. (2011): p = tanh(W [c1; c2] + b), a leaf is its word's vector.
Tai, Socher and Manning (2015): the child-sum Tree-LSTM (eqs. 2-8) and the
N-ary Tree-LSTM (eqs. 9-14), here with x = 0 at inner nodes (constituency
trees: only leaves read a word) unless `words_everywhere` (dependency trees).

A tree here is nested Python: a leaf is an int (its word id), an inner node a
list of its children. Written with plain recursion on purpose, as the papers
define the models; the deep-chain test uses `rvnn_chain` instead.
"""
from __future__ import annotations

import numpy as np


def nested(tree) -> object:
    """A rnncompile Tree (words as ids) as nested lists; inner nodes keep their word as ("w", id, kids)."""
    kids = tree.children()

    def build(i):
        if not kids[i]:
            return int(tree.words[i])
        children = [build(k) for k in kids[i]]
        w = tree.words[i]
        return ("w", int(w), children) if isinstance(w, (int, np.integer)) and w >= 0 else children
    return build(tree.root)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _children(node):
    return node[2] if isinstance(node, tuple) else node


def _word(node):
    return node[1] if isinstance(node, tuple) else None


def rvnn(node, p, out: list | None = None):
    """h of `node`; `out` collects every node's h in preorder."""
    if isinstance(node, int):
        h = p["L"][node]
        if out is not None:
            out.append(h)
        return h
    slot = len(out) if out is not None else None
    if out is not None:
        out.append(None)
    left, right = (rvnn(c, p, out) for c in node)
    h = np.tanh(p["W"] @ np.concatenate([left, right]) + p["b"])
    if out is not None:
        out[slot] = h
    return h


def rvnn_chain(words: list[int], p) -> np.ndarray:
    """The root h of a left-branching chain (((w0 w1) w2) ... wn), by a loop."""
    h = p["L"][words[0]]
    for w in words[1:]:
        h = np.tanh(p["W"] @ np.concatenate([h, p["L"][w]]) + p["b"])
    return h


def childsum(node, p, words_everywhere: bool = False):
    """(h, c) of `node` by eqs. 2-8; x is the node's word vector (0 where it has none)."""
    H = p["b_i"].shape[0]
    if isinstance(node, int):
        x, kids = p["E_w"][node], []
    else:
        w = _word(node)
        x = p["E_w"][w] if w is not None else None
        kids = [childsum(k, p, words_everywhere) for k in _children(node)]
    hs = np.array([h for h, _ in kids]).reshape(len(kids), H)
    cs = np.array([c for _, c in kids]).reshape(len(kids), H)
    h_sum = hs.sum(axis=0)
    wx = (lambda W: W @ x) if x is not None else (lambda W: 0.0)
    i = _sigmoid(wx(p["W_i"]) + p["U_i"] @ h_sum + p["b_i"])
    o = _sigmoid(wx(p["W_o"]) + p["U_o"] @ h_sum + p["b_o"])
    u = np.tanh(wx(p["W_u"]) + p["U_u"] @ h_sum + p["b_u"])
    c = i * u
    for k in range(len(kids)):
        f_k = _sigmoid((wx(p["W_f"]) if "W_f" in p else 0.0) + p["U_f"] @ hs[k] + p["b_f"])
        c = c + f_k * cs[k]
    return o * np.tanh(c), c


def nary(node, p):
    """(h, c) of `node` by eqs. 9-14 with N = 2, U_g = [U_g1 U_g2] per gate, U_fk per child."""
    if isinstance(node, int):
        x = p["E_w"][node]
        i = _sigmoid(p["W_i"] @ x + p["b_i"])
        o = _sigmoid(p["W_o"] @ x + p["b_o"])
        u = np.tanh(p["W_u"] @ x + p["b_u"])
        c = i * u
        return o * np.tanh(c), c
    (h1, c1), (h2, c2) = (nary(k, p) for k in node)
    hs = np.concatenate([h1, h2])
    i = _sigmoid(p["U_i"] @ hs + p["b_i"])
    f1 = _sigmoid(p["U_f0"] @ hs + p["b_f"])
    f2 = _sigmoid(p["U_f1"] @ hs + p["b_f"])
    o = _sigmoid(p["U_o"] @ hs + p["b_o"])
    u = np.tanh(p["U_u"] @ hs + p["b_u"])
    c = i * u + f1 * c1 + f2 * c2
    return o * np.tanh(c), c


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


# ---- PyTorch, per node -------------------------------------------------------------------

def torch_rvnn(torch, node, p):
    if isinstance(node, int):
        return p["L"][node]
    left, right = (torch_rvnn(torch, c, p) for c in node)
    return torch.tanh(p["W"] @ torch.cat([left, right]) + p["b"])


def torch_childsum(torch, node, p):
    H = p["b_i"].shape[0]
    if isinstance(node, int):
        x, kids = p["E_w"][node], []
    else:
        x, kids = None, [torch_childsum(torch, k, p) for k in _children(node)]
    hs = torch.stack([h for h, _ in kids]) if kids else torch.zeros(0, H, dtype=p["b_i"].dtype)
    cs = torch.stack([c for _, c in kids]) if kids else torch.zeros(0, H, dtype=p["b_i"].dtype)
    h_sum = hs.sum(0)
    wx = (lambda W: W @ x) if x is not None else (lambda W: 0.0)
    i = torch.sigmoid(wx(p["W_i"]) + p["U_i"] @ h_sum + p["b_i"])
    o = torch.sigmoid(wx(p["W_o"]) + p["U_o"] @ h_sum + p["b_o"])
    u = torch.tanh(wx(p["W_u"]) + p["U_u"] @ h_sum + p["b_u"])
    f = torch.sigmoid(hs @ p["U_f"].T + p["b_f"])
    c = i * u + (f * cs).sum(0)
    return o * torch.tanh(c), c


def torch_nary(torch, node, p):
    if isinstance(node, int):
        x = p["E_w"][node]
        i = torch.sigmoid(p["W_i"] @ x + p["b_i"])
        o = torch.sigmoid(p["W_o"] @ x + p["b_o"])
        u = torch.tanh(p["W_u"] @ x + p["b_u"])
        c = i * u
        return o * torch.tanh(c), c
    (h1, c1), (h2, c2) = (torch_nary(torch, k, p) for k in node)
    hs = torch.cat([h1, h2])
    i = torch.sigmoid(p["U_i"] @ hs + p["b_i"])
    f1 = torch.sigmoid(p["U_f0"] @ hs + p["b_f"])
    f2 = torch.sigmoid(p["U_f1"] @ hs + p["b_f"])
    o = torch.sigmoid(p["U_o"] @ hs + p["b_o"])
    u = torch.tanh(p["U_u"] @ hs + p["b_u"])
    c = i * u + f1 * c1 + f2 * c2
    return o * torch.tanh(c), c
