"""The model level of attention: a decoder cell reads the encoder's outputs at every source step (`memory:`)
and a mask of the real source steps (`memory_mask:`), on every backend, greedy and teacher-forced, with source
lengths — against a hand-written NumPy loop of the same small dot-product attention (tests/attention_wiring.yaml)."""
from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile import registry
from rnncompile.errors import DataError, SpecError
from composition_reference import close, random_params, softmax, sub

SPEC = Path(__file__).parent / "attention_wiring.yaml"
S, T, H = 6, 4, 5


def reference(p, src, src_len, target=None, end=1):
    """Per sequence: an Elman encoder, then a decoder step h' = tanh(W e(y) + U h), attention a = softmax over
    the real source steps of enc @ h', context a @ enc, p = softmax(W_p h' + W_c ctx)."""
    e, d, hd = sub(p, "encoder."), sub(p, "decoder."), sub(p, "decoder.head.")
    out = []
    for b in range(len(src)):
        n = int(src_len[b])
        h, enc = np.zeros(H), np.zeros((S, H))
        for t in range(n):
            h = np.tanh(e["W"] @ e["E_src"][src[b, t]] + e["U"] @ h)
            enc[t] = h
        y, probs, weights = 0, [], []
        for k in range(T):
            h = np.tanh(d["W"] @ d["E_tgt"][y] + d["U"] @ h)
            scores = enc[:n] @ h
            a = np.zeros(S)
            a[:n] = softmax(scores)
            pk = softmax(hd["W_p"] @ h + hd["W_c"] @ (a @ enc))
            probs.append(pk)
            weights.append(a)
            y = int(np.argmax(pk)) if target is None else int(target[b, k])
            if target is None and y == end:
                break
        out.append((np.array(probs), np.array(weights), h))
    return out


@pytest.mark.parametrize("backend", ["numpy", "python", "c"])
@pytest.mark.parametrize("teacher", [False, True])
def test_attention_reads_every_real_source_step(backend, teacher):
    if getattr(registry.get(backend), "unsupported", lambda p: None)(None):
        pytest.skip("no C compiler")
    text = SPEC.read_text()
    if teacher:
        text = text.replace("  input: {src: [S]}", "  input: {src: [S], tgt: [T]}").replace(
            "    init: encoder\n", "    init: encoder\n    feed: target\n    target: tgt\n")
    prog = rnncompile.compile_text(text, file=str(SPEC))
    params = random_params(prog, 7, 1.2)
    rng = np.random.default_rng(7)
    src, src_len = rng.integers(0, 6, (3, S)), np.array([6, 2, 4])
    inputs, lengths = {"src": src}, {"src": src_len}
    tgt = rng.integers(2, 6, (3, T)) if teacher else None
    if teacher:
        inputs["tgt"] = tgt
    res = rnncompile.run(prog, inputs=inputs, params=params, lengths=lengths, dtype="float64", backend=backend,
                         trace=backend == "numpy")
    for b, (probs, weights, h) in enumerate(reference(params, src, src_len, tgt)):
        close(res.outputs["p"][b, :len(probs)], probs, f"sequence {b}")
        if backend == "numpy":
            a = res.values["decoder.a"][b, :len(weights)]
            close(a, weights, f"attention of sequence {b}")
            assert np.all(a[:, src_len[b]:] == 0.0), "padded source steps get exactly zero weight"
    # padding holds nothing the decoder reads
    src2 = src.copy()
    src2[np.arange(S)[None] >= src_len[:, None]] = 5
    res2 = rnncompile.run(prog, inputs={**inputs, "src": src2}, params=params, lengths=lengths, dtype="float64",
                          backend=backend)
    np.testing.assert_allclose(res2.outputs["p"], res.outputs["p"], rtol=0, atol=1e-12)


def test_a_shorter_source_is_padded_and_a_longer_one_refused():
    prog = rnncompile.compile(str(SPEC))
    params = random_params(prog, 8, 1.2)
    src = np.random.default_rng(8).integers(0, 6, (2, 3))
    short = rnncompile.run(prog, inputs={"src": src}, params=params, dtype="float64")
    for b, (probs, _, _) in enumerate(reference(params, src, np.array([3, 3]))):
        close(short.outputs["p"][b, :len(probs)], probs)
    with pytest.raises(DataError, match=r"the source has 7 steps, but the decoder's attention reads at most 6"):
        rnncompile.run(prog, inputs={"src": np.zeros((1, 7), int)})


@pytest.mark.parametrize("old,new,message", [
    ("    memory: {enc: h}\n", "    memory: {enc: g}\n", "the encoder gives no output `g`"),
    ("    memory: {enc: h}\n", "    memory: {encs: h}\n", "cell `dec` has no input `encs` for the memory to fill"),
    ("enc: [S, H], enc_mask: [S]", "enc: [T, H], enc_mask: [T]",
     "input `enc` of cell `dec` is [4, 5], but the encoder's `h` at every source step is [6, 5]"),
    ("    memory_mask: enc_mask\n", "", "a decoder cell takes one token input (its previous output) and the inputs "
                                        "its `memory:` fills; `dec` takes y_prev, enc, enc_mask"),
])
def test_memory_mistakes_are_located(old, new, message):
    text = SPEC.read_text()
    assert old in text
    with pytest.raises(SpecError) as e:
        rnncompile.compile_text(text.replace(old, new), file="att.yaml")
    assert message in str(e.value) and "att.yaml:" in str(e.value)
