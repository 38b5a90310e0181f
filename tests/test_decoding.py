"""Decoders and text completion checked against hand-written NumPy loops.

seq2seq (greedy and teacher-forced, and encoder variants), the captioner
(context-initialised, greedy and sampled) and `complete` for the character and
word predictors. The references run one sequence at a time with the LSTM of
tests/reference.py, an explicit softmax, argmax feedback and their own stop
rule, so they share nothing with rnncompile's drivers but the weights.
"""
from __future__ import annotations

import numpy as np
import pytest

import reference
import rnncompile
from rnncompile.errors import DataError
from composition_reference import (SPECS, close, lstm_cell, per_sequence, random_params, replace_once, softmax,
                                   spec_text, sub)


def lstm_step(p, emb, tok, h, c):
    """One LSTM step of one sequence on the embedding of token `tok`; h, c: [H]."""
    _, fin = reference.lstm(p, p[emb][[tok]][None], h[None], c[None])
    return fin["h"][0], fin["c"][0]


def ref_decode(p, emb, head, h, c, steps, start, end, feed=None, stop=True):
    """Greedy decoding (or, with `feed`, teacher forcing) of one sequence from state (h, c).
    Returns tokens, the distribution each was chosen from, and the final (h, c)."""
    tok, toks, dists = start, [], []
    for k in range(steps):
        h, c = lstm_step(p, emb, tok, h, c)
        dist = softmax(h @ head["W_p"].T + head["b_p"])
        nxt = int(np.argmax(dist)) if feed is None else int(feed[k])
        toks.append(nxt)
        dists.append(dist)
        if feed is None and stop and nxt == end:
            break
        tok = nxt
    return np.array(toks), np.array(dists), h, c


def check_decoded(res, refs, end, steps):
    """Compare a batched decoder result with per-sequence references [(tokens, dists, h, c)]."""
    lengths = np.array([len(r[0]) for r in refs])
    np.testing.assert_array_equal(res.lengths, lengths)
    n = lengths.max()
    assert res.tokens.shape == (len(refs), n)
    assert res.outputs["p"].shape[:2] == (len(refs), n)
    for b, (toks, dists, h, c) in enumerate(refs):
        m = len(toks)
        np.testing.assert_array_equal(res.tokens[b, :m], toks)
        assert np.all(res.tokens[b, m:] == end), "a finished sequence only repeats the end token"
        close(res.outputs["p"][b, :m], dists, f"distributions of sequence {b}")
        assert np.all(res.outputs["p"][b, m:] == 0.0), "after a sequence ends its distributions are 0"
        close(res.final_state["decoder.h"][b], h, f"decoder h of sequence {b}")
        close(res.final_state["decoder.c"][b], c, f"decoder c of sequence {b}")
    return lengths


# ---- seq2seq --------------------------------------------------------------------------------

S2S_DIMS = {"H": 6, "E": 4}


def seq2seq_reference(params, src, lengths, steps, start, end, feed=None, enc_prefix="encoder."):
    enc, dec, head = sub(params, enc_prefix), sub(params, "decoder."), sub(params, "decoder.head.")
    hidden = enc["W_i"].shape[0]
    _, fin = per_sequence(lstm_cell, enc, enc["E_src"][src], lengths, hidden=hidden, states=("h", "c"))
    return [ref_decode(dec, "E_tgt", head, fin["h"][b], fin["c"][b], steps, start, end,
                       None if feed is None else feed[b]) for b in range(len(src))], fin


def varied_end_bias(params, head_key, make_refs, steps):
    """Raise or lower the end token's bias until the reference stops sequences at different steps
    (some early, one not at all), so the test exercises stopping; returns the references."""
    base = params[head_key].copy()
    for delta in np.arange(-2.0, 2.01, 0.125):
        params[head_key] = base.copy()
        params[head_key][1] += delta
        refs = make_refs()
        lengths = [len(r[0]) for r in refs]
        if len(set(lengths)) >= 3 and max(lengths) == steps and min(lengths) < steps:
            return refs
    pytest.fail("no bias found that makes sequences end at different steps; change the seed")


@pytest.mark.parametrize("seed", [2, 7])
def test_seq2seq_greedy_matches_numpy(seed):
    prog = rnncompile.compile(SPECS / "seq2seq.yaml", dims=S2S_DIMS)
    vocab = prog.vocab.tokens
    start, end = vocab.index("<s>"), vocab.index("</s>")
    assert (start, end) == (0, 1)
    params = random_params(prog, seed, 1.5)
    rng = np.random.default_rng(seed)
    b, s, steps = 8, 8, 8
    src = rng.integers(0, len(vocab), (b, s))
    lengths = rng.integers(1, s + 1, b)
    lengths[0] = s
    refs = varied_end_bias(params, "decoder.head.b_p",
                           lambda: seq2seq_reference(params, src, lengths, steps, start, end)[0], steps)
    res = rnncompile.run(prog, inputs={"src": src}, params=params, lengths=lengths, dtype="float64")
    check_decoded(res, refs, end, steps)
    _, fin = seq2seq_reference(params, src, lengths, steps, start, end)
    close(res.final_state["encoder.h"], fin["h"], "encoder h (summary C)")
    close(res.final_state["encoder.c"], fin["c"], "encoder c (summary C)")


def test_seq2seq_without_stop_runs_every_step():
    text = replace_once(spec_text("seq2seq"), "    steps: T\n", "    steps: T\n    stop_at_end: false\n")
    prog = rnncompile.compile_text(text, file=str(SPECS / "s2s_nostop.yaml"), dims=S2S_DIMS)
    params = random_params(prog, 2, 1.5)
    params["decoder.head.b_p"][1] += 1.0  # the end token is likely, yet decoding goes on
    src = np.random.default_rng(2).integers(0, 12, (3, 8))
    res = rnncompile.run(prog, inputs={"src": src}, params=params, dtype="float64")
    _, fin = seq2seq_reference(params, src, None, 8, 0, 1)
    refs = [ref_decode(sub(params, "decoder."), "E_tgt", sub(params, "decoder.head."), fin["h"][i], fin["c"][i],
                       8, 0, 1, stop=False) for i in range(3)]
    assert any(1 in r[0][:-1] for r in refs), "an end token mid-sequence shows that decoding went on"
    assert res.tokens.shape == (3, 8)
    np.testing.assert_array_equal(res.lengths, [8, 8, 8])
    for i, (toks, dists, h, c) in enumerate(refs):
        np.testing.assert_array_equal(res.tokens[i], toks)
        close(res.outputs["p"][i], dists)


TEACHER = [("  input: {src: [S]}\n", "  input: {src: [T], tgt: [T]}\n"),
           ("    feed: previous_output               # greedy decoding\n", "    feed: target\n    target: tgt\n")]


def test_seq2seq_teacher_forcing_matches_numpy():
    prog = teacher_forced_seq2seq()
    params = random_params(prog, 3, 1.5)
    rng = np.random.default_rng(3)
    b, t = 4, 8
    src, tgt = rng.integers(0, 12, (b, t)), rng.integers(2, 12, (b, t))
    tgt[1, 3] = 1  # an end token in the target does not stop teacher forcing
    res = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params, dtype="float64")
    refs, _ = seq2seq_reference(params, src, None, t, 0, 1, feed=tgt)
    assert res.outputs["p"].shape == (b, t, 12)
    np.testing.assert_array_equal(res.tokens, tgt)
    for i, (toks, dists, h, c) in enumerate(refs):
        close(res.outputs["p"][i], dists, f"sequence {i}")
        close(res.final_state["decoder.h"][i], h)
        close(res.final_state["decoder.c"][i], c)
    # the fed tokens matter: greedy decoding from the same weights gives other distributions
    greedy = rnncompile.run(rnncompile.compile(SPECS / "seq2seq.yaml", dims=S2S_DIMS), inputs={"src": src},
                            params=params, dtype="float64")
    assert not np.allclose(greedy.outputs["p"][:, 1:2], res.outputs["p"][:, 1:2])


def teacher_forced_seq2seq():
    text = spec_text("seq2seq")
    for old, new in TEACHER:
        text = replace_once(text, old, new)
    return rnncompile.compile_text(text, file=str(SPECS / "s2s_teacher.yaml"), dims=S2S_DIMS)


def test_teacher_forcing_with_target_lengths_matches_numpy():
    """Padded target steps leave the decoder's state as it was and give exactly-zero distributions, as padded
    source steps do in the encoder; each sequence's final decoder state is after its own last target token."""
    prog = teacher_forced_seq2seq()
    params = random_params(prog, 13, 1.5)
    rng = np.random.default_rng(13)
    b, t = 4, 8
    src, tgt = rng.integers(0, 12, (b, t)), rng.integers(2, 12, (b, t))
    src_len, tgt_len = np.array([8, 3, 5, 1]), np.array([2, 8, 1, 5])
    res = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params, lengths={"src": src_len, "tgt": tgt_len},
                         dtype="float64")
    enc = sub(params, "encoder.")
    _, fin = per_sequence(lstm_cell, enc, enc["E_src"][src], src_len, hidden=6, states=("h", "c"))
    close(res.final_state["encoder.h"], fin["h"], "encoder h")
    np.testing.assert_array_equal(res.lengths, tgt_len)
    assert res.outputs["p"].shape == (b, t, 12)
    for i in range(b):
        n = tgt_len[i]
        toks, dists, h, c = ref_decode(sub(params, "decoder."), "E_tgt", sub(params, "decoder.head."), fin["h"][i],
                                       fin["c"][i], n, 0, 1, feed=tgt[i])
        np.testing.assert_array_equal(res.tokens[i, :n], toks)
        close(res.outputs["p"][i, :n], dists, f"distributions of sequence {i}")
        assert np.all(res.outputs["p"][i, n:] == 0.0), "padded target steps give exactly-zero outputs"
        close(res.final_state["decoder.h"][i], h, f"decoder h of sequence {i}")
        close(res.final_state["decoder.c"][i], c, f"decoder c of sequence {i}")
    # what the padding holds does not matter
    tgt2 = tgt.copy()
    tgt2[np.arange(t)[None] >= tgt_len[:, None]] = 1
    res2 = rnncompile.run(prog, inputs={"src": src, "tgt": tgt2}, params=params,
                          lengths={"src": src_len, "tgt": tgt_len}, dtype="float64")
    np.testing.assert_array_equal(res2.outputs["p"], res.outputs["p"])
    for k, v in res.final_state.items():
        np.testing.assert_array_equal(res2.final_state[k], v)
    traced = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params, dtype="float64", trace=True,
                            lengths={"src": src_len, "tgt": tgt_len})
    close(traced.outputs["p"], res.outputs["p"])
    assert {"encoder.", "decoder.", "decoder.head."} <= set(traced.trace)


def test_one_lengths_array_is_every_sequence_inputs_lengths():
    prog = teacher_forced_seq2seq()
    params = random_params(prog, 14, 1.5)
    rng = np.random.default_rng(14)
    src, tgt, lengths = rng.integers(0, 12, (3, 6)), rng.integers(2, 12, (3, 6)), np.array([6, 2, 4])
    one = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params, lengths=lengths, dtype="float64")
    both = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params,
                          lengths={"src": lengths, "tgt": lengths}, dtype="float64")
    np.testing.assert_array_equal(one.outputs["p"], both.outputs["p"])
    np.testing.assert_array_equal(one.lengths, lengths)
    src_only = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params, lengths={"src": lengths},
                              dtype="float64")
    np.testing.assert_array_equal(src_only.lengths, [6, 6, 6])  # a target without lengths is all real steps
    with pytest.raises(DataError, match="`tgx`"):
        rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params, lengths={"tgx": lengths})


def test_cli_target_lengths_from_an_input_file(cli, tmp_path):
    text = spec_text("seq2seq")
    for old, new in TEACHER:
        text = replace_once(text, old, new)
    (tmp_path / "s2s.yaml").write_text(text)
    rng = np.random.default_rng(15)
    src, tgt, tgt_len = rng.integers(0, 12, (2, 8)), rng.integers(2, 12, (2, 8)), np.array([3, 8])
    mask = (np.arange(8)[None] < tgt_len[:, None]).astype(np.int8)
    np.savez(tmp_path / "in.npz", src=src, tgt=tgt, **{"lengths.tgt": tgt_len})
    np.savez(tmp_path / "mask.npz", src=src, tgt=tgt, **{"mask.tgt": mask})
    outs = []
    for name in ("in", "mask"):
        code, out, err = cli("run", tmp_path / "s2s.yaml", "--input", tmp_path / f"{name}.npz", "--dtype", "float64",
                             "-o", tmp_path / f"out_{name}.npz")
        assert code == 0, err
        outs.append(np.load(tmp_path / f"out_{name}.npz"))
    prog = rnncompile.compile(tmp_path / "s2s.yaml")
    want = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, lengths={"tgt": tgt_len}, dtype="float64",
                          params=rnncompile.make_params(prog, 0, dtype="float64"))
    for got in outs:
        np.testing.assert_array_equal(got["outputs.p"], want.outputs["p"])
        np.testing.assert_array_equal(got["lengths"], tgt_len)
    assert np.all(outs[0]["outputs.p"][0, 3:] == 0.0)


def _enc(params, prefix, x, lengths, hidden, reverse=False):
    return per_sequence(lstm_cell, sub(params, prefix), x, lengths, reverse, None, hidden, ("h", "c"))


def _start_bi(join):
    def start(params, src, lengths):
        _, f = _enc(params, "encoder.layers.0.forward.", params["encoder.layers.0.forward.E_src"][src], lengths, 4)
        _, r = _enc(params, "encoder.layers.0.reverse.", params["encoder.layers.0.reverse.E_src"][src], lengths, 4,
                    reverse=True)
        return join(f["h"], r["h"]), join(f["c"], r["c"])
    return start


def _start_two_layers(params, src, lengths):
    y, _ = _enc(params, "encoder.layers.0.", params["encoder.layers.0.E_src"][src], lengths, 4)
    _, f = _enc(params, "encoder.layers.1.", y, lengths, 4)
    return f["h"], f["c"]


def _start_bridge(params, src, lengths):
    _, f = _enc(params, "encoder.", params["encoder.E_src"][src], lengths, 4)
    h0 = np.tanh(f["h"] @ params["decoder.init.W_c"].T + params["decoder.init.b_c"])
    return h0, f["c"] @ params["decoder.init.V_c"].T


def _start_scan_bi_sum(params, src, lengths):
    _, f = _enc(params, "encoder.forward.", params["encoder.forward.E_src"][src], lengths, 4)
    _, r = _enc(params, "encoder.reverse.", params["encoder.reverse.E_src"][src], lengths, 4, reverse=True)
    return f["h"] + r["h"], f["c"] + r["c"]


UPPER_LSTM = """\
  upper_lstm:
    inputs: {x: H}
    state: {h: H, c: H}
    gates:
      i: {act: sigmoid, from: [h, x]}
      f: {act: sigmoid, from: [h, x]}
      g: {act: tanh, from: [h, x]}
      o: {act: sigmoid, from: [h, x]}
    update: {c: f * c + i * g, h: o * tanh(f * c + i * g)}
    outputs: {h: h}
"""

# encoder text, dims, decoder init text (None: init: encoder), the decoder's start state from the encoder
ENCODER_VARIANTS = {
    # decoder H = 8 = the concatenated 2 x 4 of the bidirectional encoder
    "bidirectional_concat": ("  encoder:\n    input: src\n    layers:\n      - {scan: encoder_lstm, dims: {H: 4}, "
                             "direction: bidirectional, merge: concat}\n", {"H": 8, "E": 3}, None,
                             _start_bi(lambda a, b: np.concatenate([a, b], -1))),
    "bidirectional_mean": ("  encoder:\n    input: src\n    layers:\n      - {scan: encoder_lstm, dims: {H: 4}, "
                           "direction: bidirectional, merge: mean}\n", {"H": 4, "E": 3}, None,
                           _start_bi(lambda a, b: (a + b) / 2)),
    "scan_bidirectional_sum": ("  encoder: {scan: encoder_lstm, input: src, direction: bidirectional, merge: sum}\n",
                               {"H": 4, "E": 3}, None, _start_scan_bi_sum),
    "two_layers": ("  encoder:\n    input: src\n    layers:\n      - {scan: encoder_lstm}\n"
                   "      - {scan: upper_lstm}\n", {"H": 4, "E": 3}, None, _start_two_layers),
    "bridge": ("  encoder: {scan: encoder_lstm, input: src, keep: final}\n", {"H": 4, "E": 3},
               "    init: {h: tanh(W_c @ encoder.h + b_c), c: V_c @ encoder.c}\n"
               "    params:\n      W_c: {shape: [H, H]}\n      b_c: {shape: [H]}\n      V_c: {shape: [H, H]}\n",
               _start_bridge),
}

ENCODER_LINE = "  encoder: {scan: encoder_lstm, input: src, keep: final}    # C = its final (h, c)\n"
INIT_LINE = "    init: encoder                       # start from C\n"


@pytest.mark.parametrize("variant", list(ENCODER_VARIANTS))
def test_seq2seq_encoder_variants(variant):
    encoder, dims, init, start = ENCODER_VARIANTS[variant]
    text = replace_once(spec_text("seq2seq"), ENCODER_LINE, encoder)
    if init:
        text = replace_once(text, INIT_LINE, init)
    if variant == "two_layers":
        text = replace_once(text, "  decoder_lstm:\n", UPPER_LSTM + "  decoder_lstm:\n")
    prog = rnncompile.compile_text(text, file=str(SPECS / f"s2s_{variant}.yaml"), dims=dims)
    params = random_params(prog, 4, 1.0)
    src = np.random.default_rng(4).integers(0, 12, (3, 8))
    lengths = np.array([8, 2, 5])
    res = rnncompile.run(prog, inputs={"src": src}, params=params, lengths=lengths, dtype="float64")
    h0, c0 = start(params, src, lengths)
    refs = [ref_decode(sub(params, "decoder."), "E_tgt", sub(params, "decoder.head."), h0[i], c0[i], 8, 0, 1)
            for i in range(3)]
    check_decoded(res, refs, 1, 8)


def test_decoder_dims_apply_to_its_head():
    """`decoder: {dims: {H: 8}}` sizes the decoder cell, so its head (which reads the decoder's h) uses H = 8 too."""
    text = replace_once(spec_text("seq2seq"), ENCODER_LINE,
                        "  encoder: {scan: encoder_lstm, input: src, direction: bidirectional, merge: concat}\n")
    text = replace_once(text, "    scan: decoder_lstm\n", "    scan: decoder_lstm\n    dims: {H: 8}\n")
    prog = rnncompile.compile_text(text, file=str(SPECS / "s2s_decoder_dims.yaml"), dims={"H": 4, "E": 3})
    assert prog.params["decoder.head.W_p"].shape == (12, 8)
    params = random_params(prog, 5)
    src = np.random.default_rng(5).integers(0, 12, (2, 8))
    res = rnncompile.run(prog, inputs={"src": src}, params=params, dtype="float64")
    h0 = np.concatenate([res.final_state["encoder.forward.h"], res.final_state["encoder.reverse.h"]], -1)
    c0 = np.concatenate([res.final_state["encoder.forward.c"], res.final_state["encoder.reverse.c"]], -1)
    refs = [ref_decode(sub(params, "decoder."), "E_tgt", sub(params, "decoder.head."), h0[i], c0[i], 8, 0, 1)
            for i in range(2)]
    check_decoded(res, refs, 1, 8)


# ---- captioner -----------------------------------------------------------------------------

def captioner_reference(params, img, steps=12):
    dec, head = sub(params, "decoder."), sub(params, "decoder.head.")
    h0 = np.tanh(img @ params["decoder.init.W_img"].T + params["decoder.init.b_img"])
    c0 = np.zeros_like(h0)
    return [ref_decode(dec, "E_w", head, h0[i], c0[i], steps, 0, 1) for i in range(len(img))]


CAP_DIMS = {"F": 5, "E": 4, "H": 6}


def test_captioner_greedy_matches_numpy():
    prog = rnncompile.compile(SPECS / "captioner.yaml", dims=CAP_DIMS)
    assert prog.vocab.tokens[:2] == ["<s>", "</s>"]
    params = random_params(prog, 2, 2.0)
    img = np.random.default_rng(2).normal(size=(8, 5))
    refs = varied_end_bias(params, "decoder.head.b_p", lambda: captioner_reference(params, img), 12)
    res = rnncompile.run(prog, context={"img": img}, params=params, dtype="float64")
    check_decoded(res, refs, 1, 12)


def test_steps_sets_how_many_tokens_a_generator_writes(cli):
    """`steps` of a one-to-many run is the most tokens to write; the reference decodes as many."""
    prog = rnncompile.compile(SPECS / "captioner.yaml", dims=CAP_DIMS)
    params = random_params(prog, 4, 2.0)
    img = np.random.default_rng(4).normal(size=(3, 5))
    for steps in (1, 5, 30):
        res = rnncompile.run(prog, context={"img": img}, params=params, dtype="float64", steps=steps)
        check_decoded(res, captioner_reference(params, img, steps), 1, steps)
    code, out, _ = cli("run", SPECS / "captioner.yaml", "--steps", "3")
    assert code == 0
    assert out.splitlines()[0].startswith("captioner: 3 steps, batch 1")
    assert len(out.splitlines()[2].split()) <= 3  # the produced tokens


def test_decoder_dims_apply_to_its_bridge():
    """The captioner's `init: {h: tanh(W_img @ img + b_img)}` is sized by the decoder's own H, not the spec's."""
    text = replace_once(spec_text("captioner"), "    scan: lstm\n", "    scan: lstm\n    dims: {H: 7}\n")
    prog = rnncompile.compile_text(text, file=str(SPECS / "captioner_dims.yaml"), dims=CAP_DIMS)
    assert prog.params["decoder.init.W_img"].shape == (7, 5)
    assert prog.params["decoder.head.W_p"].shape == (20, 7)
    params = random_params(prog, 12, 1.5)
    img = np.random.default_rng(12).normal(size=(3, 5))
    res = rnncompile.run(prog, context={"img": img}, params=params, dtype="float64")
    check_decoded(res, captioner_reference(params, img), 1, 12)


def test_captioner_init_from_context():
    """h starts at tanh(W_img img + b_img), c at zeros: the first distribution shows it."""
    prog = rnncompile.compile(SPECS / "captioner.yaml", dims=CAP_DIMS)
    params = random_params(prog, 6)
    img = np.random.default_rng(6).normal(size=(2, 5))
    res = rnncompile.run(prog, context={"img": img}, params=params, dtype="float64")
    h0 = np.tanh(img @ params["decoder.init.W_img"].T + params["decoder.init.b_img"])
    h1, _ = lstm_step(sub(params, "decoder."), "E_w", 0, h0[1], np.zeros(6))
    close(res.outputs["p"][1, 0], softmax(h1 @ params["decoder.head.W_p"].T + params["decoder.head.b_p"]))
    other = rnncompile.run(prog, context={"img": img[::-1]}, params=params, dtype="float64")
    close(other.outputs["p"][0, 0], res.outputs["p"][1, 0])


def sampling_captioner(top_k=None, temperature=None):
    text = spec_text("captioner")
    extra = "    sample: sample\n" + (f"    top_k: {top_k}\n" if top_k else "") + \
            (f"    temperature: {temperature}\n" if temperature else "")
    text = replace_once(text, "    steps: 12\n", "    steps: 12\n" + extra)
    return rnncompile.compile_text(text, file=str(SPECS / "captioner_sampling.yaml"), dims=CAP_DIMS)


def test_captioner_sampling_is_reproducible_and_seeded():
    prog = sampling_captioner(temperature=2.0)
    params = random_params(prog, 7, 1.5)
    img = np.random.default_rng(7).normal(size=(4, 5))
    a = rnncompile.run(prog, context={"img": img}, params=params, seed=3, dtype="float64")
    b = rnncompile.run(prog, context={"img": img}, params=params, seed=3, dtype="float64")
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.outputs["p"], b.outputs["p"])
    others = [rnncompile.run(prog, context={"img": img}, params=params, seed=s, dtype="float64").tokens
              for s in (4, 5, 6)]
    assert any(o.shape != a.tokens.shape or not np.array_equal(o, a.tokens) for o in others), \
        "the seed should change what is sampled"
    # every sampled sequence is consistent: its distributions are those of the reference fed its own tokens
    check_fed_tokens(a, params, img)


def check_fed_tokens(res, params, img):
    dec, head = sub(params, "decoder."), sub(params, "decoder.head.")
    h0 = np.tanh(img @ params["decoder.init.W_img"].T + params["decoder.init.b_img"])
    for i in range(len(img)):
        m = res.lengths[i]
        toks, dists, h, c = ref_decode(dec, "E_w", head, h0[i], np.zeros_like(h0[i]), m, 0, 1,
                                       feed=res.tokens[i, :m])
        close(res.outputs["p"][i, :m], dists, f"sequence {i}")
        close(res.final_state["decoder.h"][i], h)
        if m < 12:
            assert res.tokens[i, m - 1] == 1, "a sequence shorter than the steps ended with </s>"


def test_captioner_top_k_1_equals_greedy():
    greedy = rnncompile.compile(SPECS / "captioner.yaml", dims=CAP_DIMS)
    sampled = sampling_captioner(top_k=1)
    params = random_params(greedy, 8, 1.5)
    img = np.random.default_rng(8).normal(size=(5, 5))
    g = rnncompile.run(greedy, context={"img": img}, params=params, dtype="float64")
    for seed in (0, 1):
        s = rnncompile.run(sampled, context={"img": img}, params=params, seed=seed, dtype="float64")
        np.testing.assert_array_equal(s.tokens, g.tokens)
        np.testing.assert_array_equal(s.lengths, g.lengths)
        close(s.outputs["p"], g.outputs["p"])


def test_captioner_top_k_draws_among_the_k_most_likely():
    k = 3
    prog = sampling_captioner(top_k=k, temperature=3.0)
    params = random_params(prog, 9, 1.5)
    img = np.random.default_rng(9).normal(size=(6, 5))
    drawn = set()  # positions among the k most likely that were drawn
    for seed in range(3):
        res = rnncompile.run(prog, context={"img": img}, params=params, seed=seed, dtype="float64")
        for i in range(len(img)):
            for t in range(res.lengths[i]):
                top = np.argsort(res.outputs["p"][i, t])[-k:]
                assert res.tokens[i, t] in top
                drawn.add(int(np.where(top == res.tokens[i, t])[0][0]))
        check_fed_tokens(res, params, img)
    assert len(drawn) > 1, "with temperature 3 not every draw should be the most likely token"


# ---- decoder traces ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["captioner", "seq2seq"])
def test_decoder_steps_are_traced(name):
    """`trace=True` records the decoder's values step by step, as it does for every scanned cell."""
    prog = rnncompile.compile(SPECS / f"{name}.yaml")
    res = rnncompile.run(prog, batch=2, steps=3, seed=0, trace=True)
    assert "decoder." in res.trace, f"traced uses: {sorted(res.trace)}"
    n = res.tokens.shape[1]
    arrays = [v for v in res.trace["decoder."].values() if np.ndim(v) >= 2 and np.shape(v)[:1] == (2,)]
    assert any(np.shape(v)[1] == n for v in arrays)
    # the traced values are the run's: the head's distribution at every real step, the tokens it chose
    plain = rnncompile.run(prog, batch=2, steps=3, seed=0)
    np.testing.assert_array_equal(res.tokens, plain.tokens)
    head = prog.cell(prog.plan.decoder.head.use)
    p = res.trace["decoder.head."][head.args(head.outputs()["p"])[0]]
    dec = prog.cell(prog.plan.decoder.use)
    fed = res.trace["decoder."][dec.by_name("input")[prog.plan.decoder.token_input]]
    for b in range(2):
        m = res.lengths[b]
        close(p[b, :m], plain.outputs["p"][b, :m], f"traced distributions of sequence {b}")
        np.testing.assert_array_equal(fed[b, 1:m], res.tokens[b, :m - 1])  # each step reads the previous token
    if name == "captioner":  # the bridge's start state is traced too
        assert "decoder.init." in res.trace


def test_trace_records_each_states_previous_value():
    """A state's row is its value before the step: the start state at step 0, the last step's next value after."""
    prog = rnncompile.compile(SPECS / "seq2seq.yaml", dims=S2S_DIMS)
    params = random_params(prog, 16, 1.5)
    src = np.random.default_rng(16).integers(0, 12, (2, 5))
    res = rnncompile.run(prog, inputs={"src": src}, params=params, dtype="float64", trace=True)
    for prefix, start in (("encoder.", np.zeros((2, 6))), ("decoder.", res.final_state["encoder.h"])):
        cell = prog.cell(next(u for u in prog.plan.uses() if u.prefix == prefix))
        prev = res.trace[prefix][cell.by_name("state")["h"]]
        nxt = res.trace[prefix][cell.updates()["h"]]
        close(prev[:, 0], start, f"{prefix}h (prev) at step 0")
        close(prev[:, 1:], nxt[:, :-1], f"{prefix}h (prev) after step 0")


@pytest.mark.parametrize("name", ["captioner", "seq2seq"])
def test_cli_trace_table_shows_decoder_steps(cli, name):
    code, out, err = cli("run", SPECS / f"{name}.yaml", "--trace", "--steps", "2")
    assert code == 0, err
    assert "step 0" in out and "step 1" in out, out
    assert "decoder." in out.split("produced")[0], out


# ---- complete ------------------------------------------------------------------------------------

def lm_reference(params, prompt_ids, steps, layers, emb_key, end=None, feed=None):
    """Prime a stack of LSTMs with the prompt, then feed back the argmax (or the given tokens)."""
    hidden = params[f"{layers[0]}W_i"].shape[0]
    state = {pre: (np.zeros(hidden), np.zeros(hidden)) for pre in layers}

    def advance(tok):
        x = params[emb_key][tok]
        for pre in layers:
            h, c = state[pre]
            _, fin = reference.lstm(sub(params, pre), x[None, None], h[None], c[None])
            state[pre] = (fin["h"][0], fin["c"][0])
            x = state[pre][0]
        return softmax(x @ params["head.W_y"].T + params["head.b_y"])

    for tok in prompt_ids:
        dist = advance(tok)
    toks, dists = [], []
    for k in range(steps):
        nxt = int(np.argmax(dist)) if feed is None else int(feed[k])
        toks.append(nxt)
        dists.append(dist)
        if end is not None and nxt == end:
            break
        dist = advance(nxt)
    return np.array(toks), np.array(dists)


LM = {
    "char_predictor": ([""], "E_c", {"H": 8, "E": 5}),
    "word_predictor": (["layers.1.", "layers.2."], "layers.0.E_w", {"H": 8, "E": 5}),
}


def lm_setup(name, seed):
    layers, emb, dims = LM[name]
    prog = rnncompile.compile(SPECS / f"{name}.yaml", dims=dims)
    params = random_params(prog, seed, 1.5)
    vocab = prog.vocab.tokens
    end = vocab.index("<eos>") if name == "word_predictor" else None
    return prog, params, vocab, layers, emb, end


def prompt_ids(name, vocab, prompt):
    if name == "char_predictor":
        return [vocab.index(ch) for ch in prompt.lower()]
    return [vocab.index(w) if w in vocab else vocab.index("<unk>") for w in prompt.lower().split()]


PROMPTS = {"char_predictor": "The cat sat on the m", "word_predictor": "He was born in the city of"}


@pytest.mark.parametrize("name", list(LM))
@pytest.mark.parametrize("seed", [0, 1])
def test_complete_greedy_matches_numpy(name, seed):
    prog, params, vocab, layers, emb, end = lm_setup(name, seed)
    prompt = PROMPTS[name]
    ids = prompt_ids(name, vocab, prompt)
    got = rnncompile.complete(prog, prompt, steps=15, greedy=True, params=params, dtype="float64")
    np.testing.assert_array_equal(got.prompt, ids)
    toks, dists = lm_reference(params, ids, 15, layers, emb, end)
    np.testing.assert_array_equal(got.tokens, toks)
    close(got.distributions, dists)


@pytest.mark.parametrize("name", list(LM))
@pytest.mark.parametrize("k", [1, 3])
def test_complete_top_k_draws_among_the_k_most_likely(name, k):
    prog, params, vocab, layers, emb, end = lm_setup(name, 2)
    prompt = PROMPTS[name]
    ids = prompt_ids(name, vocab, prompt)
    seen_rank = set()
    for seed in range(3):
        got = rnncompile.complete(prog, prompt, steps=25, top_k=k, temperature=3.0, seed=seed, params=params,
                                  dtype="float64")
        assert len(got.tokens) == len(got.distributions) > 0
        for tok, dist in zip(got.tokens, got.distributions):
            order = np.argsort(dist)[::-1]
            rank = int(np.where(order == tok)[0][0])
            assert rank < k, f"token {tok} has rank {rank} in its distribution"
            seen_rank.add(rank)
        # the distributions are those of the reference fed the drawn tokens
        _, dists = lm_reference(params, ids, len(got.tokens), layers, emb, end, feed=got.tokens)
        close(got.distributions, dists)
        again = rnncompile.complete(prog, prompt, steps=25, top_k=k, temperature=3.0, seed=seed, params=params,
                                    dtype="float64")
        np.testing.assert_array_equal(again.tokens, got.tokens)
    if k > 1:
        assert len(seen_rank) > 1
    if k == 1:  # top_k=1 sampling is greedy
        greedy = rnncompile.complete(prog, prompt, steps=25, greedy=True, params=params, dtype="float64")
        np.testing.assert_array_equal(got.tokens, greedy.tokens)


def test_complete_unknown_word_reads_as_unk():
    prog, params, vocab, layers, emb, end = lm_setup("word_predictor", 3)
    assert "zzyzx" not in vocab
    got = rnncompile.complete(prog, "He was born in Zzyzx", steps=5, greedy=True, params=params, dtype="float64")
    np.testing.assert_array_equal(got.prompt, [vocab.index(w) for w in ("he", "was", "born", "in", "<unk>")])
    assert "zzyzx" in got.note and "<unk>" in got.note
    toks, dists = lm_reference(params, got.prompt, 5, layers, emb, end)
    np.testing.assert_array_equal(got.tokens, toks)
    close(got.distributions, dists)


def test_complete_without_unknown_token_raises_data_error():
    text = replace_once(spec_text("char_predictor"), '  unknown: "?"\n', "")
    prog = rnncompile.compile_text(text, file=str(SPECS / "char_no_unknown.yaml"))
    with pytest.raises(DataError) as info:
        rnncompile.complete(prog, "hello!", steps=3)
    msg = str(info.value)
    assert "'!'" in msg and "not in the vocabulary" in msg and "6" in msg, msg
    # the word predictor's <unk> absorbs the same text
    word = rnncompile.compile(SPECS / "word_predictor.yaml", dims={"H": 4, "E": 3})
    assert len(rnncompile.complete(word, "hello!", steps=2, greedy=True).prompt) == 2


def test_complete_cli_without_unknown_is_a_clear_error(cli, tmp_path):
    text = replace_once(spec_text("char_predictor"), '  unknown: "?"\n', "")
    spec = tmp_path / "char_no_unknown.yaml"
    spec.write_text(text)
    code, out, err = cli("complete", spec, "--prompt", "hi there!", "-n", "3")
    assert code == 1
    assert "Traceback" not in out + err
    assert "'!'" in err and "not in the vocabulary" in err, err


@pytest.mark.parametrize("name", list(LM))
def test_complete_cli(cli, name):
    code, out, err = cli("complete", SPECS / f"{name}.yaml", "--prompt", PROMPTS[name], "-n", "5", "--greedy")
    assert code == 0, err
    assert out.strip()
    code, out2, err = cli("complete", SPECS / f"{name}.yaml", "--prompt", PROMPTS[name], "-n", "5", "--greedy")
    assert out2 == out


def test_complete_refuses_a_model_that_cannot_generate():
    from rnncompile.errors import UsageError

    with pytest.raises(UsageError, match="bidirectional"):
        text = replace_once(spec_text("char_predictor"), "  scan: lstm\n",
                            "  scan: lstm\n  direction: bidirectional\n  merge: sum\n")
        rnncompile.complete(rnncompile.compile_text(text, file=str(SPECS / "bi_char.yaml")), "hello", steps=2)
    with pytest.raises(UsageError):
        rnncompile.complete(rnncompile.compile(SPECS / "bigru.yaml"), "hello", steps=2)


def test_decoder_state_left_out_of_init_keeps_its_own_init():
    """The captioner's init gives only h; c keeps the cell's own init (here a learned param c0, not zeros)."""
    text = replace_once(spec_text("captioner"), "    state: {h: H, c: H}\n",
                        "    state: {h: H, c: {shape: H, init: c0}}\n")
    text = replace_once(text, "      E_w: {shape: [V, E], init: normal, scale: 0.5}\n",
                        "      E_w: {shape: [V, E], init: normal, scale: 0.5}\n      c0: {shape: [H], init: normal}\n")
    prog = rnncompile.compile_text(text, file=str(SPECS / "captioner_c0.yaml"), dims=CAP_DIMS)
    assert "decoder.c0" in prog.params
    params = random_params(prog, 10, 1.5)
    img = np.random.default_rng(10).normal(size=(3, 5))
    res = rnncompile.run(prog, context={"img": img}, params=params, dtype="float64")
    h0 = np.tanh(img @ params["decoder.init.W_img"].T + params["decoder.init.b_img"])
    refs = [ref_decode(sub(params, "decoder."), "E_w", sub(params, "decoder.head."), h0[i], params["decoder.c0"],
                       12, 0, 1) for i in range(3)]
    check_decoded(res, refs, 1, 12)


def test_inspect_reports_the_decoders_steps(cli):
    """The captioner decodes `steps: 12` tokens; inspect's header (and its per-run memory) should say so."""
    code, out, err = cli("inspect", SPECS / "captioner.yaml")
    assert code == 0, err
    assert "12 steps" in out.splitlines()[0], out.splitlines()[0]
