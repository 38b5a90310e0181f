"""Source and target with their own time axes and lengths: a teacher-forced seq2seq whose source is
[S] and target [T] (S != T) runs without padding to a shared length, matching per-sequence NumPy."""
import numpy as np
import pytest

import rnncompile
from rnncompile.errors import DataError
from composition_reference import close, per_sequence, random_params, replace_once, spec_text, sub, lstm_cell
from test_decoding import SPECS, ref_decode

S, T = 9, 4
AXES = [("  input: {src: [S]}\n", "  input: {src: [S], tgt: [T]}\n"),
        ("    feed: previous_output               # greedy decoding\n", "    feed: target\n    target: tgt\n")]


def seq2seq_two_axes(dims=None):
    text = spec_text("seq2seq")
    for old, new in AXES:
        text = replace_once(text, old, new)
    return rnncompile.compile_text(text, file=str(SPECS / "s2s_axes.yaml"), dims=dims or {"S": S, "T": T, "H": 6,
                                                                                         "E": 5})


def test_source_and_target_keep_their_own_lengths():
    prog = seq2seq_two_axes()
    params = random_params(prog, 21, 1.5)
    rng = np.random.default_rng(21)
    b = 3
    src, tgt = rng.integers(0, 12, (b, S)), rng.integers(2, 12, (b, T))
    src_len, tgt_len = np.array([9, 2, 6]), np.array([4, 1, 3])
    res = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params,
                         lengths={"src": src_len, "tgt": tgt_len}, dtype="float64")
    assert res.outputs["p"].shape == (b, T, 12)
    enc = sub(params, "encoder.")
    _, fin = per_sequence(lstm_cell, enc, enc["E_src"][src], src_len, hidden=6, states=("h", "c"))
    close(res.final_state["encoder.h"], fin["h"], "encoder h")
    for i in range(b):
        n = tgt_len[i]
        toks, dists, h, c = ref_decode(sub(params, "decoder."), "E_tgt", sub(params, "decoder.head."), fin["h"][i],
                                       fin["c"][i], n, 0, 1, feed=tgt[i])
        close(res.outputs["p"][i, :n], dists, f"sequence {i}")
        assert np.all(res.outputs["p"][i, n:] == 0.0)
        close(res.final_state["decoder.h"][i], h)


def test_random_inputs_follow_each_axis():
    prog = seq2seq_two_axes()
    res = rnncompile.run(prog, batch=2)
    assert res.steps == S and res.outputs["p"].shape[:2] == (2, T)


def test_one_lengths_array_is_the_first_axis_only():
    prog = seq2seq_two_axes()
    params = random_params(prog, 22, 1.5)
    rng = np.random.default_rng(22)
    src, tgt = rng.integers(0, 12, (2, S)), rng.integers(2, 12, (2, T))
    one = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params, lengths=np.array([9, 5]),
                         dtype="float64")
    by_name = rnncompile.run(prog, inputs={"src": src, "tgt": tgt}, params=params,
                             lengths={"src": np.array([9, 5])}, dtype="float64")
    np.testing.assert_array_equal(one.outputs["p"], by_name.outputs["p"])
    np.testing.assert_array_equal(one.lengths, [T, T])


def test_steps_on_one_axis_must_agree():
    prog = seq2seq_two_axes()
    with pytest.raises(DataError, match="disagree on batch size"):
        rnncompile.run(prog, inputs={"src": np.zeros((2, S), int), "tgt": np.zeros((3, T), int)})


def test_a_target_longer_than_its_lengths_allow_is_refused():
    prog = seq2seq_two_axes()
    with pytest.raises(DataError, match=r"lengths of `tgt` must lie in 1\.\.4"):
        rnncompile.run(prog, inputs={"src": np.zeros((1, S), int), "tgt": np.zeros((1, T), int)},
                       lengths={"tgt": np.array([5])})


def test_one_scan_reading_two_time_axes_is_a_located_error():
    text = """rnncompile: 1
name: two_axes
dims: {I: 3, H: 4, S: 5, T: 6}
cells:
  c:
    inputs: {x: I, y: I}
    state: {h: H}
    params: {W: {shape: [H, I]}}
    update: {h: tanh(W @ x + W @ y)}
    outputs: {h: h}
model:
  input: {x: [S, I], y: [T, I]}
  scan: c
"""
    from rnncompile.errors import SpecError

    with pytest.raises(SpecError) as e:
        rnncompile.compile_text(text, file="two_axes.yaml")
    msg = str(e.value)
    assert "cell `c` reads `x` [S, ...], `y` [T, ...]: the inputs of one scan share one time axis" in msg
    assert "two_axes.yaml:" in msg
