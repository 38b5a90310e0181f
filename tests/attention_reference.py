"""Independent references for the attention specs (specs/attention_bahdanau.yaml, specs/attention_luong.yaml).

Each decoder is written twice from the papers' equations, never from rnncompile's graph: in NumPy, one
unpadded sequence at a time with plain loops (so masking by the source lengths is not something it relies
on: it only ever sees the real source steps), and in PyTorch, batched, with torch's own recurrent layers
(nn.GRU / nn.LSTM over packed sequences for the encoders, nn.LSTMCell for Luong's decoder) and attention
masked by `masked_fill(-inf)` before `torch.softmax`. Both take a dict of weights keyed exactly as
rnncompile's weight keys for those specs (`encoder.layers.1.forward.W_r`, `decoder.W_a`,
`decoder.head.W_o`, ...; see `BAHDANAU_KEYS`, `LUONG_KEYS`) and return a `Decoded`.

Decoding follows rnncompile's decoder rules: the first input token is the start token; teacher forcing
feeds the target shifted right by one (target steps at or past a sequence's target length keep the state
and give zeros); greedy decoding takes the argmax, and once a sequence has produced the end token its
state is kept and every later step gives p = 0, attention = 0 and the end token. The references always run
all `steps` steps (rnncompile stops early once every sequence has ended: compare its first steps).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

START, END = 0, 1  # <s> and </s> in both specs' vocabularies

_GRU = ["W_in", "b_in", "W_hn", "b_hn", "W_r", "b_r", "W_z", "b_z"]
_LSTM = [f"{m}_{g}" for g in "ifgo" for m in "Wb"]
BAHDANAU_KEYS = frozenset(["encoder.layers.0.E_src"] + [f"encoder.layers.1.{d}.{k}" for d in ("forward", "reverse")
                                                        for k in _GRU]
                          + [f"decoder.{k}" for k in ("E_tgt", "W_a", "U_a", "v_a", "W_n", "U_n", "b_n", "W_z", "b_z",
                                                      "W_r", "b_r")]
                          + ["decoder.init.W_s"] + [f"decoder.head.{k}" for k in ("U_o", "V_o", "C_o", "W_o")])
LUONG_KEYS = frozenset(["encoder.E_src"] + [f"encoder.{k}" for k in _LSTM]
                       + [f"decoder.{k}" for k in ["E_tgt", "W_a", "W_c"] + _LSTM] + ["decoder.head.W_s"])


class Decoded(NamedTuple):
    p: np.ndarray  # [B, T, V] the head's distribution at every target step (0 where a sequence is over)
    tokens: np.ndarray  # [B, T] the produced tokens (greedy) or the target (teacher forcing)
    attention: np.ndarray  # [B, T, S] the attention weights over the source steps (0 at padding)
    lengths: np.ndarray  # [B] target steps per sequence, the end token included


# ---- NumPy, one sequence at a time ---------------------------------------------------------------------

def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def masked_softmax(scores, mask):
    """The softmax over the kept source steps only (mask != 0), scattered back: 0 at every masked step."""
    keep = np.flatnonzero(np.asarray(mask) != 0)
    out = np.zeros(len(scores))
    if len(keep):
        out[keep] = softmax(np.asarray(scores, np.float64)[keep])
    return out


def _gru_torch_form(w, prefix, x, h):
    """nn.GRU's cell: r, z = sigmoid(W [h; x] + b), n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""
    hx = np.concatenate([h, x])
    r = sigmoid(w[prefix + "W_r"] @ hx + w[prefix + "b_r"])
    z = sigmoid(w[prefix + "W_z"] @ hx + w[prefix + "b_z"])
    n = np.tanh(w[prefix + "W_in"] @ x + w[prefix + "b_in"] + r * (w[prefix + "W_hn"] @ h + w[prefix + "b_hn"]))
    return (1 - z) * n + z * h


def _lstm(w, prefix, x, h, c):
    """nn.LSTM's cell over [h; x]: i, f, o sigmoid, g tanh, c' = f c + i g, h' = o tanh(c')."""
    hx = np.concatenate([h, x])
    i, f, g, o = (w[prefix + f"W_{k}"] @ hx + w[prefix + f"b_{k}"] for k in "ifgo")
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def bahdanau_encoder_numpy(w, src_tokens):
    """One source sequence (its real tokens only): the annotations h_j = [h->_j; h<-_j] [n, 2H] and h<-_1."""
    x = w["encoder.layers.0.E_src"][np.asarray(src_tokens)]
    hid = w["encoder.layers.1.forward.W_hn"].shape[0]
    fwd, rev = np.zeros((len(x), hid)), np.zeros((len(x), hid))
    h = np.zeros(hid)
    for j in range(len(x)):
        h = fwd[j] = _gru_torch_form(w, "encoder.layers.1.forward.", x[j], h)
    h = np.zeros(hid)
    for j in reversed(range(len(x))):
        h = rev[j] = _gru_torch_form(w, "encoder.layers.1.reverse.", x[j], h)
    return np.concatenate([fwd, rev], axis=1), rev[0]


def bahdanau_init_numpy(w, h_back_first):
    """s_0 = tanh(W_s h<-_1) (Bahdanau et al. 2015, appendix A.2.2)."""
    return np.tanh(w["decoder.init.W_s"] @ h_back_first)


def bahdanau_step_numpy(w, y_prev, enc, enc_mask, s):
    """One decoder step of the spec's cell: e_j = v_a^T tanh(W_a s_{i-1} + U_a h_j), a = softmax over the
    kept steps, c = sum_j a_j h_j, the gated unit over [E y_{i-1}, c] (r before U, z the update fraction).
    enc [S, 2H] may hold padding rows (enc_mask 0): they get weight 0. Returns (s_i, the cell's outputs
    {s_prev, y, c}, a)."""
    d = {k[len("decoder."):]: v for k, v in w.items() if k.startswith("decoder.") and k.count(".") == 1}
    y = d["E_tgt"][int(y_prev)]
    e = np.array([d["v_a"] @ np.tanh(d["W_a"] @ s + d["U_a"] @ h_j) for h_j in enc])
    a = masked_softmax(e, enc_mask)
    c = sum(a_j * h_j for a_j, h_j in zip(a, enc) if a_j != 0) + np.zeros(enc.shape[1])
    syc = np.concatenate([s, y, c])
    z = sigmoid(d["W_z"] @ syc + d["b_z"])
    r = sigmoid(d["W_r"] @ syc + d["b_r"])
    n = np.tanh(d["W_n"] @ np.concatenate([y, c]) + d["U_n"] @ (r * s) + d["b_n"])
    return (1 - z) * s + z * n, {"s_prev": s, "y": y, "c": c}, a


def bahdanau_head_numpy(w, s_prev, y, c):
    """The deep output: t~ = U_o s_{i-1} + V_o E y_{i-1} + C_o c_i, maxout over pairs (j, j + L), softmax."""
    t = w["decoder.head.U_o"] @ s_prev + w["decoder.head.V_o"] @ y + w["decoder.head.C_o"] @ c
    half = len(t) // 2
    return softmax(w["decoder.head.W_o"] @ np.maximum(t[:half], t[half:]))


def luong_encoder_numpy(w, src_tokens):
    """One source sequence (its real tokens only): the LSTM's states h_s [n, H] and its final (h, c)."""
    hid = w["encoder.W_i"].shape[0]
    h, c, hs = np.zeros(hid), np.zeros(hid), []
    for tok in src_tokens:
        h, c = _lstm(w, "encoder.", w["encoder.E_src"][int(tok)], h, c)
        hs.append(h)
    return np.array(hs).reshape(-1, hid), h, c


def luong_step_numpy(w, y_prev, enc, enc_mask, state):
    """One decoder step of the spec's cell: the LSTM over [E y_{t-1}; h~_{t-1}] (input feeding), then
    score(h_t, h_s) = h_t^T W_a h_s, a_t = softmax over the kept steps, c_t = sum_s a_t(s) h_s,
    h~_t = tanh(W_c [c_t; h_t]). state: {h, c, h_att}. Returns (the next state, {h_tilde}, a_t)."""
    x = np.concatenate([w["decoder.E_tgt"][int(y_prev)], state["h_att"]])
    h, c = _lstm(w, "decoder.", x, state["h"], state["c"])
    scores = np.array([h @ w["decoder.W_a"] @ h_s for h_s in enc])
    a = masked_softmax(scores, enc_mask)
    ctx = sum(a_s * h_s for a_s, h_s in zip(a, enc) if a_s != 0) + np.zeros(enc.shape[1])
    h_tilde = np.tanh(w["decoder.W_c"] @ np.concatenate([ctx, h]))
    return {"h": h, "c": c, "h_att": h_tilde}, {"h_tilde": h_tilde}, a


def luong_head_numpy(w, h_tilde):
    """p(y_t) = softmax(W_s h~_t)."""
    return softmax(w["decoder.head.W_s"] @ h_tilde)


def _decode_one(step, head, state, enc, mask, steps, target, target_len):
    """One sequence's decoding loop: (p [T, V], tokens [T], attention [T, S], length)."""
    ps, toks, atts = [], [], []
    y, done, length = START, False, 0
    for k in range(steps):
        if target is not None:
            live = k < target_len
            y = START if k == 0 else int(target[k - 1])
        else:
            live = not done
        new, outs, a = step(y, enc, mask, state)
        p = head(outs)
        if live:
            state = new
        if target is not None:
            tok = int(target[k])
        else:
            tok = int(np.argmax(p)) if live else END
            done = done or tok == END
            y = tok
        ps.append(p if live else np.zeros_like(p))
        atts.append(a if live else np.zeros_like(a))
        toks.append(tok)
        length += live
    return np.array(ps), np.array(toks), np.array(atts), length


def _decode(encode, step, head, w, src, src_len, target, target_len, steps):
    src, src_len = np.asarray(src), np.asarray(src_len)
    batch, width = src.shape
    if target is not None:
        target = np.asarray(target)
        steps = target.shape[1]
        target_len = np.full(batch, steps) if target_len is None else np.asarray(target_len)
    out = []
    for b in range(batch):
        n = int(src_len[b])
        memory, state = encode(w, src[b, :n])
        enc = np.zeros((width, memory.shape[1]))
        enc[:n] = memory  # rows past the source length stay 0: masked, they get weight 0 anyway
        mask = (np.arange(width) < n).astype(np.float64)
        out.append(_decode_one(lambda y, e, m, s: step(w, y, e, m, s), head, state, enc, mask, steps,
                               None if target is None else target[b], None if target is None else target_len[b]))
    p, tokens, att, lengths = (np.array(v) for v in zip(*out))
    return Decoded(p, tokens, att, lengths)


def bahdanau_numpy(w, src, src_len, target=None, target_len=None, steps: int = 6) -> Decoded:
    """Bahdanau et al. (2015) on a batch of padded sources src [B, S] with lengths src_len [B]: teacher
    forcing when `target` [B, T] is given (with optional target lengths), else greedy for `steps` steps."""
    def encode(w, toks):
        enc, back_first = bahdanau_encoder_numpy(w, toks)
        return enc, bahdanau_init_numpy(w, back_first)

    return _decode(encode, bahdanau_step_numpy, lambda o: bahdanau_head_numpy(w, **o), w, src, src_len, target,
                   target_len, steps)


def luong_numpy(w, src, src_len, target=None, target_len=None, steps: int = 6) -> Decoded:
    """Luong et al. (2015), global "general" attention with input feeding, on a batch of padded sources:
    teacher forcing when `target` [B, T] is given, else greedy for `steps` steps."""
    def encode(w, toks):
        hs, h, c = luong_encoder_numpy(w, toks)
        return hs, {"h": h, "c": c, "h_att": np.zeros_like(h)}

    return _decode(encode, luong_step_numpy, lambda o: luong_head_numpy(w, **o), w, src, src_len, target,
                   target_len, steps)


# ---- PyTorch, batched -------------------------------------------------------------------------------------

def _t(torch, w, key):
    return torch.as_tensor(np.asarray(w[key], np.float64))


def _torch_decode(torch, step, state, batch, steps, target, target_len):
    """The batched decoding loop; step(y [B], state) -> (new state, p [B, V], a [B, S])."""
    ps, toks, atts = [], [], []
    y = torch.full((batch,), START, dtype=torch.long)
    done = torch.zeros(batch, dtype=torch.bool)
    lengths = torch.zeros(batch, dtype=torch.long)
    if target is not None:
        target = torch.as_tensor(np.asarray(target), dtype=torch.long)
        steps = target.shape[1]
        tlen = torch.as_tensor(np.full(batch, steps) if target_len is None else np.asarray(target_len))
    for k in range(steps):
        if target is not None:
            live = k < tlen
            y = target[:, k - 1] if k else torch.full((batch,), START, dtype=torch.long)
        else:
            live = ~done
        new, p, a = step(y, state)
        state = tuple(torch.where(live[:, None], n, o) for n, o in zip(new, state))
        if target is not None:
            tok = target[:, k]
        else:
            tok = torch.where(live, p.argmax(dim=-1), torch.full_like(y, END))
            done = done | (tok == END)
            y = tok
        ps.append(torch.where(live[:, None], p, torch.zeros_like(p)))
        atts.append(torch.where(live[:, None], a, torch.zeros_like(a)))
        toks.append(tok)
        lengths += live.long()
    return Decoded(torch.stack(ps, 1).numpy(), torch.stack(toks, 1).numpy(), torch.stack(atts, 1).numpy(),
                   lengths.numpy())


def _attend(torch, scores, mask):
    """Attention weights: the scores at padded source steps set to -inf, then torch.softmax."""
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def _packed(torch, rnn, x, src_len, total):
    pack = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(np.asarray(src_len)), batch_first=True,
                                                   enforce_sorted=False)
    out, final = rnn(pack)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=total)
    return out, final


def bahdanau_torch(w, src, src_len, target=None, target_len=None, steps: int = 6) -> Decoded:
    """Bahdanau et al. (2015) in PyTorch (float64): nn.Embedding and a bidirectional nn.GRU over the packed
    sources, then the attention decoder written with torch ops, batched."""
    import torch

    src = torch.as_tensor(np.asarray(src), dtype=torch.long)
    batch, width = src.shape
    table = _t(torch, w, "encoder.layers.0.E_src")
    emb, hid = table.shape[1], w["encoder.layers.1.forward.W_hn"].shape[0]
    gru = torch.nn.GRU(emb, hid, batch_first=True, bidirectional=True, dtype=torch.float64)
    with torch.no_grad():
        for suffix, prefix in (("", "encoder.layers.1.forward."), ("_reverse", "encoder.layers.1.reverse.")):
            W_r, W_z, W_in, W_hn, b_r, b_z, b_in, b_hn = (_t(torch, w, prefix + k) for k in
                                                          ("W_r", "W_z", "W_in", "W_hn", "b_r", "b_z", "b_in", "b_hn"))
            # torch's gate order is r, z, n; rnncompile's W_r, W_z act on [h; x]
            for name, value in (("weight_ih_l0", torch.cat([W_r[:, hid:], W_z[:, hid:], W_in])),
                                ("weight_hh_l0", torch.cat([W_r[:, :hid], W_z[:, :hid], W_hn])),
                                ("bias_ih_l0", torch.cat([b_r, b_z, b_in])),
                                ("bias_hh_l0", torch.cat([torch.zeros(2 * hid), b_hn]))):
                getattr(gru, name + suffix).copy_(value)
        enc, h_n = _packed(torch, gru, torch.nn.functional.embedding(src, table), src_len, width)  # [B, S, 2H]
        mask = torch.arange(width)[None, :] < torch.as_tensor(np.asarray(src_len))[:, None]
        s0 = torch.tanh(h_n[1] @ _t(torch, w, "decoder.init.W_s").T)  # h_n[1]: the backward GRU at step 0
        d = {k[len("decoder."):]: _t(torch, w, k) for k in w if k.startswith("decoder.")}
        keys = enc @ d["U_a"].T  # U_a h_j for every j, once per sequence

        def step(y, state):
            (s,) = state
            e = torch.tanh(keys + (s @ d["W_a"].T)[:, None, :]) @ d["v_a"]
            a = _attend(torch, e, mask)
            c = torch.bmm(a[:, None, :], enc)[:, 0]
            yv = torch.nn.functional.embedding(y, d["E_tgt"])
            syc = torch.cat([s, yv, c], dim=-1)
            z = torch.sigmoid(syc @ d["W_z"].T + d["b_z"])
            r = torch.sigmoid(syc @ d["W_r"].T + d["b_r"])
            n = torch.tanh(torch.cat([yv, c], -1) @ d["W_n"].T + (r * s) @ d["U_n"].T + d["b_n"])
            t = s @ d["head.U_o"].T + yv @ d["head.V_o"].T + c @ d["head.C_o"].T
            t_max = torch.max(torch.stack(t.chunk(2, dim=-1)), dim=0).values
            p = torch.softmax(t_max @ d["head.W_o"].T, dim=-1)
            return ((1 - z) * s + z * n,), p, a

        return _torch_decode(torch, step, (s0,), batch, steps, target, target_len)


def luong_torch(w, src, src_len, target=None, target_len=None, steps: int = 6) -> Decoded:
    """Luong et al. (2015) in PyTorch (float64): nn.LSTM over the packed sources; the decoder an
    nn.LSTMCell over [E y; h~] with "general" scores by F.bilinear (h_t^T W_a h_s), batched."""
    import torch

    F = torch.nn.functional
    src = torch.as_tensor(np.asarray(src), dtype=torch.long)
    batch, width = src.shape
    emb, hid = w["encoder.E_src"].shape[1], w["encoder.W_i"].shape[0]

    def lstm_weights(prefix):  # rnncompile's gates act on [h; x]; torch's order is i, f, g, o
        ws = [_t(torch, w, prefix + f"W_{k}") for k in "ifgo"]
        return (torch.cat([m[:, hid:] for m in ws]), torch.cat([m[:, :hid] for m in ws]),
                torch.cat([_t(torch, w, prefix + f"b_{k}") for k in "ifgo"]))

    lstm = torch.nn.LSTM(emb, hid, batch_first=True, dtype=torch.float64)
    cell = torch.nn.LSTMCell(emb + hid, hid, dtype=torch.float64)
    with torch.no_grad():
        for mod, names, prefix in ((lstm, ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), "encoder."),
                                   (cell, ("weight_ih", "weight_hh", "bias_ih", "bias_hh"), "decoder.")):
            w_ih, w_hh, b = lstm_weights(prefix)
            for name, value in zip(names, (w_ih, w_hh, b, torch.zeros(4 * hid))):
                getattr(mod, name).copy_(value)
        enc, (h_n, c_n) = _packed(torch, lstm, F.embedding(src, _t(torch, w, "encoder.E_src")), src_len, width)
        mask = torch.arange(width)[None, :] < torch.as_tensor(np.asarray(src_len))[:, None]
        W_a, W_c, W_s, E_tgt = (_t(torch, w, k) for k in ("decoder.W_a", "decoder.W_c", "decoder.head.W_s",
                                                          "decoder.E_tgt"))

        def step(y, state):
            h, c, h_att = state
            h, c = cell(torch.cat([F.embedding(y, E_tgt), h_att], -1), (h, c))
            scores = F.bilinear(h[:, None, :].expand(-1, width, -1).contiguous(), enc, W_a[None])[..., 0]
            a = _attend(torch, scores, mask)
            ctx = torch.bmm(a[:, None, :], enc)[:, 0]
            h_tilde = torch.tanh(torch.cat([ctx, h], -1) @ W_c.T)
            return (h, c, h_tilde), torch.softmax(h_tilde @ W_s.T, dim=-1), a

        state = (h_n[0], c_n[0], torch.zeros(batch, hid, dtype=torch.float64))
        return _torch_decode(torch, step, state, batch, steps, target, target_len)
