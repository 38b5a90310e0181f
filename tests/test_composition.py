"""Model composition (issue 3) checked against independent computations.

Deep stacks and bidirectional layers against torch.nn.LSTM / nn.GRU with the
same weights (packed sequences for variable lengths); merge modes, reverse
layers, heads, streaming and learned initial states against the hand-written
NumPy cells of tests/reference.py run one unpadded sequence at a time (so the
masking of padded steps is never what the reference relies on); the weights
file check and CLI smoke runs for every composition spec.

Decoders and text completion are in tests/test_decoding.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import reference
import rnncompile
from composition_reference import (SPECS, close, gru_cell, lstm_cell, per_sequence, random_params, ref_stack,
                                   softmax, sub)
from rnncompile.errors import DataError

COMPOSITION_SPECS = ["deep_lstm", "bigru", "sentiment", "captioner", "seq2seq", "char_predictor", "word_predictor"]
MAX_DIFF: dict[str, float] = {}  # spec -> largest |ours - torch| seen (printed with pytest -s)


def record(spec, diff):
    MAX_DIFF[spec] = max(MAX_DIFF.get(spec, 0.0), diff)


@pytest.fixture(scope="module", autouse=True)
def _report_torch_diffs():
    yield
    if MAX_DIFF:
        print("\nmax |ours - torch| (float64): " + ", ".join(f"{k}: {v:.2e}" for k, v in sorted(MAX_DIFF.items())))


# ---- torch helpers ------------------------------------------------------------------

@pytest.fixture
def torch64():
    torch = pytest.importorskip("torch", reason="compares against PyTorch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield torch
    torch.set_default_dtype(old)


def torch_module(torch, kind, *args, **kw):
    m = kind(*args, batch_first=True, **kw)
    for p in m.parameters():  # torch's own init is small; widen it so every weight matters
        torch.nn.init.uniform_(p, -0.5, 0.5)
    return m


def torch_layer(sd: dict, layer: int, reverse: bool = False) -> dict:
    """One layer (and direction) of a multi-layer torch state_dict, renamed to the *_l0 keys reference reads."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    return {k[:-len(suffix)] + "_l0": v.detach().numpy().copy() for k, v in sd.items() if k.endswith(suffix)}


def params_from_torch(module, convert, num_layers, bidirectional):
    sd = module.state_dict()
    params = {}
    for k in range(num_layers):
        for rev in ([False, True] if bidirectional else [False]):
            prefix = f"layers.{k}." + (("reverse." if rev else "forward.") if bidirectional else "")
            for name, v in convert(torch_layer(sd, k, rev)).items():
                params[prefix + name] = v
    return params


# ---- deep LSTM vs nn.LSTM(num_layers=2) ------------------------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("i,h", [(1, 1), (3, 5), (8, 16)])
def test_deep_lstm_matches_torch(torch64, i, h):
    torch = torch64
    b, t = 3, 6
    rng = np.random.default_rng(i * 100 + h)
    net = torch_module(torch, torch.nn.LSTM, i, h, num_layers=2)
    params = params_from_torch(net, reference.from_torch_lstm, 2, False)
    prog = rnncompile.compile(SPECS / "deep_lstm.yaml", dims={"I": i, "H": h})
    assert set(params) == set(prog.params)
    x = rng.normal(size=(b, t, i))
    h0, c0 = rng.uniform(-1, 1, (2, b, h)), rng.uniform(-1, 1, (2, b, h))
    init = {f"layers.{k}.{s}": v[k] for k in range(2) for s, v in (("h", h0), ("c", c0))}
    res = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=init, dtype="float64")
    with torch.no_grad():
        y, (hn, cn) = net(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    d = close(res.outputs["h"], y.numpy(), "outputs")
    for k in range(2):
        d = max(d, close(res.final_state[f"layers.{k}.h"], hn[k].numpy(), f"layer {k} h"),
                close(res.final_state[f"layers.{k}.c"], cn[k].numpy(), f"layer {k} c"))
    record("deep_lstm", d)
    # and the NumPy reference agrees on the same weights (the mapping is not what makes them equal)
    ref_y, ref_f = ref_stack(params, x, None, [("forward", None)] * 2, lstm_cell, h, ("h", "c"), init)
    close(res.outputs["h"], ref_y, "numpy reference")
    for key, v in ref_f.items():
        close(res.final_state[key], v, key)


@pytest.mark.torch
def test_deep_lstm_variable_lengths_match_packed_torch(torch64):
    torch = torch64
    i, h, b, t = 3, 4, 4, 7
    lengths = np.array([7, 2, 5, 1])
    rng = np.random.default_rng(5)
    net = torch_module(torch, torch.nn.LSTM, i, h, num_layers=2)
    params = params_from_torch(net, reference.from_torch_lstm, 2, False)
    prog = rnncompile.compile(SPECS / "deep_lstm.yaml", dims={"I": i, "H": h})
    x = rng.normal(size=(b, t, i))
    res = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64")
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                         batch_first=True, enforce_sorted=False)
        y, (hn, cn) = net(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=t)
    d = close(res.outputs["h"], y.numpy(), "outputs")
    for k in range(2):
        d = max(d, close(res.final_state[f"layers.{k}.h"], hn[k].numpy()),
                close(res.final_state[f"layers.{k}.c"], cn[k].numpy()))
    record("deep_lstm", d)
    pad = np.arange(t)[None] >= lengths[:, None]
    assert np.all(res.outputs["h"][pad] == 0)


# ---- bidirectional GRU vs nn.GRU(num_layers=2, bidirectional=True) --------------------------

@pytest.mark.torch
@pytest.mark.parametrize("i,h", [(1, 1), (2, 3), (8, 16)])
@pytest.mark.parametrize("variable", [False, True], ids=["equal", "variable"])
def test_bigru_matches_torch(torch64, i, h, variable):
    torch = torch64
    b, t = 4, 6
    lengths = np.array([6, 2, 4, 1]) if variable else np.full(b, t)
    rng = np.random.default_rng(i * 10 + h + variable)
    net = torch_module(torch, torch.nn.GRU, i, h, num_layers=2, bidirectional=True)
    params = params_from_torch(net, reference.from_torch_gru, 2, True)
    prog = rnncompile.compile(SPECS / "bigru.yaml", dims={"I": i, "H": h})
    assert set(params) == set(prog.params)
    x = rng.normal(size=(b, t, i))
    h0 = rng.uniform(-1, 1, (4, b, h))  # torch layout: [layer * 2 + direction, B, H]
    init = {f"layers.{k}.{d}.h": h0[2 * k + j] for k in range(2) for j, d in enumerate(("forward", "reverse"))}
    res = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=init, dtype="float64",
                         lengths=lengths if variable else None)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if variable:
            xt = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.from_numpy(lengths), batch_first=True,
                                                         enforce_sorted=False)
        y, hn = net(xt, torch.from_numpy(h0))
        if variable:
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=t)
    assert res.outputs["h"].shape == (b, t, 2 * h)
    d = close(res.outputs["h"], y.numpy(), "outputs")
    for k in range(2):
        for j, direction in enumerate(("forward", "reverse")):
            d = max(d, close(res.final_state[f"layers.{k}.{direction}.h"], hn[2 * k + j].numpy(),
                             f"layer {k} {direction} h"))
    record("bigru", d)
    if variable:
        pad = np.arange(t)[None] >= lengths[:, None]
        assert np.all(res.outputs["h"][pad] == 0.0), "padded positions must be exactly 0"
    ref_y, ref_f = ref_stack(params, x, lengths, [("bidirectional", "concat")] * 2, gru_cell, h, ("h",), init)
    close(res.outputs["h"], ref_y, "numpy reference")
    for key, v in ref_f.items():
        close(res.final_state[key], v, key)


@pytest.mark.torch
def test_bigru_float32_defaults_close_to_torch(torch64):
    """The default dtype (float32) with seeded weights stays within float32 tolerance of torch in float64."""
    torch = torch64
    prog = rnncompile.compile(SPECS / "bigru.yaml")
    params = rnncompile.make_params(prog, seed=3)
    net = torch_module(torch, torch.nn.GRU, 8, 16, num_layers=2, bidirectional=True)
    sd = {}
    for k in range(2):
        for rev, d in ((False, "forward"), (True, "reverse")):
            suffix = f"_l{k}" + ("_reverse" if rev else "")
            for name, v in reference.to_torch_gru({n: np.float64(a) for n, a in
                                                   sub(params, f"layers.{k}.{d}.").items()}).items():
                sd[name[:-3] + suffix] = torch.from_numpy(np.ascontiguousarray(v))
    net.load_state_dict(sd)
    x = np.random.default_rng(0).normal(size=(2, 10, 8))
    res = rnncompile.run(prog, inputs={"x": x.astype(np.float32)}, params=params)
    with torch.no_grad():
        y, _ = net(torch.from_numpy(x))
    assert res.outputs["h"].dtype == np.float32
    close(res.outputs["h"], y.numpy(), "float32 outputs", rtol=1e-4, atol=1e-5)


# ---- merge modes and directions vs NumPy -----------------------------------------------------

GRU_CELL = """\
  gru:
    inputs: {x: I}
    state: {h: H}
    gates:
      r: {act: sigmoid, from: [h, x]}
      z: {act: sigmoid, from: [h, x]}
    params:
      W_in: {shape: [H, I]}
      b_in: {shape: [H]}
      W_hn: {shape: [H, H]}
      b_hn: {shape: [H]}
    let:
      n: tanh(W_in @ x + b_in + r * (W_hn @ h + b_hn))
    update:
      h: (1 - z) * n + z * h
    outputs: {h: h}
"""


def gru_stack_spec(layers, head="") -> str:
    lines = "\n".join(f"    - {{scan: gru, direction: {d}" + (f", merge: {m}}}" if m else "}") for d, m in layers)
    return (f"rnncompile: 1\nname: variant\ndims: {{I: 3, H: 4, C: 2, T: 5}}\ncells:\n{GRU_CELL}"
            f"model:\n  input: {{x: [T, I]}}\n  layers:\n{lines}\n{head}")


MERGE_CASES = {
    "sum_then_separate": [("bidirectional", "sum"), ("bidirectional", "separate")],
    "mean_then_concat": [("bidirectional", "mean"), ("bidirectional", "concat")],
    "concat_then_sum": [("bidirectional", "concat"), ("bidirectional", "mean")],
    "reverse_only": [("reverse", None)],
    "forward_then_reverse": [("forward", None), ("reverse", None)],
    "reverse_then_bi_sum": [("reverse", None), ("bidirectional", "sum")],
}


@pytest.mark.parametrize("variable", [False, True], ids=["equal", "variable"])
@pytest.mark.parametrize("case", list(MERGE_CASES))
def test_merge_and_direction_variants(case, variable):
    layers = MERGE_CASES[case]
    prog = rnncompile.compile_text(gru_stack_spec(layers))
    params = random_params(prog, 1)
    b, t, h = 3, 5, 4
    lengths = np.array([5, 1, 3]) if variable else None
    x = np.random.default_rng(2).normal(size=(b, t, 3))
    res = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64")
    ref_y, ref_f = ref_stack(params, x, lengths, layers, gru_cell, h, ("h",))
    if isinstance(ref_y, dict):  # merge: separate hands up both directions under their own names
        assert set(res.outputs) == {"h_forward", "h_reverse"}
        close(res.outputs["h_forward"], ref_y["forward"], "h_forward")
        close(res.outputs["h_reverse"], ref_y["reverse"], "h_reverse")
    else:
        assert set(res.outputs) == {"h"}
        close(res.outputs["h"], ref_y, "h")
    assert set(res.final_state) == set(ref_f)
    for key, v in ref_f.items():
        close(res.final_state[key], v, key)
    if variable:
        pad = np.arange(t)[None] >= lengths[:, None]
        for v in res.outputs.values():
            assert np.all(v[pad] == 0.0)


@pytest.mark.parametrize("merge", ["concat", "sum", "mean", "separate"])
def test_single_scan_bidirectional(merge):
    """`direction`/`merge` on a plain `scan:` model (no layers list)."""
    text = (f"rnncompile: 1\nname: v\ndims: {{I: 3, H: 4, T: 5}}\ncells:\n{GRU_CELL}"
            f"model:\n  input: {{x: [T, I]}}\n  scan: gru\n  direction: bidirectional\n  merge: {merge}\n")
    prog = rnncompile.compile_text(text)
    params = random_params(prog, 4)
    x = np.random.default_rng(4).normal(size=(2, 5, 3))
    lengths = np.array([5, 3])
    res = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64")
    fwd, ff = per_sequence(gru_cell, sub(params, "forward."), x, lengths, False, None, 4)
    rev, rf = per_sequence(gru_cell, sub(params, "reverse."), x, lengths, True, None, 4)
    want = {"concat": {"h": np.concatenate([fwd, rev], -1)}, "sum": {"h": fwd + rev},
            "mean": {"h": (fwd + rev) / 2}, "separate": {"h_forward": fwd, "h_reverse": rev}}[merge]
    assert set(res.outputs) == set(want)
    for k, v in want.items():
        close(res.outputs[k], v, k)
    close(res.final_state["forward.h"], ff["h"])
    close(res.final_state["reverse.h"], rf["h"])


HEAD_LAST = """\
  head:
    at: last
    params:
      W_y: {shape: [C, H]}
      V_y: {shape: [C, H]}
      b_y: {shape: [C]}
    outputs:
      p: softmax(W_y @ h_forward + V_y @ h_reverse + b_y)
"""


def test_head_at_last_reads_each_directions_final_output():
    """Many-to-one over a bidirectional top layer: forward's last real step, reverse's step 0."""
    layers = [("bidirectional", "separate")]
    prog = rnncompile.compile_text(gru_stack_spec(layers, HEAD_LAST))
    params = random_params(prog, 6)
    b, t = 4, 5
    lengths = np.array([5, 2, 1, 4])
    x = np.random.default_rng(6).normal(size=(b, t, 3))
    res = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64")
    ref_y, _ = ref_stack(params, x, lengths, layers, gru_cell, 4, ("h",))
    last_fwd = ref_y["forward"][np.arange(b), lengths - 1]
    first_rev = ref_y["reverse"][:, 0]
    want = softmax(last_fwd @ params["head.W_y"].T + first_rev @ params["head.V_y"].T + params["head.b_y"])
    assert res.outputs["p"].shape == (b, 2)
    close(res.outputs["p"], want)


def test_head_every_step_masks_padded_steps():
    head = ("  head:\n    params:\n      W_y: {shape: [C, H + H]}\n      b_y: {shape: [C]}\n"
            "    outputs:\n      p: softmax(W_y @ h + b_y)\n")
    layers = [("bidirectional", "concat")]
    prog = rnncompile.compile_text(gru_stack_spec(layers, head))
    params = random_params(prog, 8)
    lengths = np.array([5, 3])
    x = np.random.default_rng(8).normal(size=(2, 5, 3))
    res = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64")
    ref_y, _ = ref_stack(params, x, lengths, layers, gru_cell, 4, ("h",))
    want = softmax(ref_y @ params["head.W_y"].T + params["head.b_y"])
    want[1, 3:] = 0.0  # padded steps output exact zeros, not a softmax of zeros
    close(res.outputs["p"], want)
    assert np.all(res.outputs["p"][1, 3:] == 0.0)


def test_stack_with_per_layer_dims():
    """Layers sized by their own `dims:` (the design's example): an LSTM of 5 under a bidirectional GRU of 3."""
    text = (f"rnncompile: 1\nname: v\ndims: {{I: 3, H: 4, C: 2, T: 6}}\ncells:\n{GRU_CELL}"
            "  lstm:\n    inputs: {x: I}\n    state: {h: H, c: H}\n    gates:\n"
            "      i: {act: sigmoid, from: [h, x]}\n      f: {act: sigmoid, from: [h, x]}\n"
            "      g: {act: tanh, from: [h, x]}\n      o: {act: sigmoid, from: [h, x]}\n"
            "    let:\n      c_next: f * c + i * g\n    update: {c: c_next, h: o * tanh(c_next)}\n"
            "    outputs: {h: h}\n"
            "model:\n  input: {x: [T, I]}\n  layers:\n    - {scan: lstm, dims: {H: 5}}\n"
            "    - {scan: gru, dims: {H: 3}, direction: bidirectional, merge: concat}\n"
            "  head:\n    params:\n      W_y: {shape: [C, 6]}\n      b_y: {shape: [C]}\n"
            "    outputs:\n      y: W_y @ h + b_y\n")
    prog = rnncompile.compile_text(text)
    assert prog.params["layers.0.W_i"].shape == (5, 8)
    assert prog.params["layers.1.forward.W_r"].shape == (3, 8)
    assert prog.params["layers.1.reverse.W_in"].shape == (3, 5)
    params = random_params(prog, 9)
    x = np.random.default_rng(9).normal(size=(3, 6, 3))
    lengths = np.array([6, 4, 1])
    res = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64")
    y0, f0 = per_sequence(lstm_cell, sub(params, "layers.0."), x, lengths, False, None, 5, ("h", "c"))
    fw, ff = per_sequence(gru_cell, sub(params, "layers.1.forward."), y0, lengths, False, None, 3)
    rv, rf = per_sequence(gru_cell, sub(params, "layers.1.reverse."), y0, lengths, True, None, 3)
    want = np.concatenate([fw, rv], -1) @ params["head.W_y"].T + params["head.b_y"]
    want[np.arange(6)[None] >= lengths[:, None]] = 0.0
    close(res.outputs["y"], want, "head")
    close(res.final_state["layers.0.h"], f0["h"])
    close(res.final_state["layers.0.c"], f0["c"])
    close(res.final_state["layers.1.forward.h"], ff["h"])
    close(res.final_state["layers.1.reverse.h"], rf["h"])


# ---- sentiment: many-to-one with lengths ----------------------------------------------------------

def sentiment_reference(params, w, lengths):
    p = sub(params, "")
    x = params["E_w"][w]
    _, fin = per_sequence(lstm_cell, p, x, lengths, hidden=params["W_i"].shape[0], states=("h", "c"))
    return softmax(fin["h"] @ params["head.W_y"].T + params["head.b_y"]), fin


def test_sentiment_matches_per_sequence_numpy():
    prog = rnncompile.compile(SPECS / "sentiment.yaml")
    params = random_params(prog, 11)
    rng = np.random.default_rng(11)
    b, t = 5, 12
    lengths = np.array([12, 3, 7, 1, 9])
    w = rng.integers(0, 25, (b, t))
    res = rnncompile.run(prog, inputs={"w": w}, params=params, lengths=lengths, dtype="float64")
    want, fin = sentiment_reference(params, w, lengths)
    assert res.outputs["p"].shape == (b, 2)
    close(res.outputs["p"], want, "p")
    close(res.final_state["h"], fin["h"], "h")
    close(res.final_state["c"], fin["c"], "c")
    # the padding tokens themselves do not matter
    w2 = w.copy()
    w2[np.arange(t)[None] >= lengths[:, None]] = 17
    res2 = rnncompile.run(prog, inputs={"w": w2}, params=params, lengths=lengths, dtype="float64")
    np.testing.assert_array_equal(res2.outputs["p"], res.outputs["p"])


def test_sentiment_lengths_from_mask():
    prog = rnncompile.compile(SPECS / "sentiment.yaml")
    params = random_params(prog, 12)
    mask = np.array([[1] * 12, [1] * 4 + [0] * 8])
    lengths = rnncompile.lengths_from_mask(mask)
    np.testing.assert_array_equal(lengths, [12, 4])
    w = np.random.default_rng(12).integers(0, 25, (2, 12))
    res = rnncompile.run(prog, inputs={"w": w}, params=params, lengths=lengths, dtype="float64")
    close(res.outputs["p"], sentiment_reference(params, w, lengths)[0])
    with pytest.raises(DataError):
        rnncompile.lengths_from_mask(np.array([[1, 0, 1]]))


@pytest.mark.torch
def test_sentiment_matches_packed_torch(torch64):
    torch = torch64
    prog = rnncompile.compile(SPECS / "sentiment.yaml", dims={"H": 6, "E": 5})
    net = torch_module(torch, torch.nn.LSTM, 5, 6)
    params = {**random_params(prog, 13), **reference.from_torch_lstm(torch_layer(net.state_dict(), 0))}
    rng = np.random.default_rng(13)
    lengths = np.array([3, 12, 1, 8])
    w = rng.integers(0, 25, (4, 12))
    res = rnncompile.run(prog, inputs={"w": w}, params=params, lengths=lengths, dtype="float64")
    with torch.no_grad():
        x = torch.from_numpy(params["E_w"][w])
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(lengths), batch_first=True,
                                                         enforce_sorted=False)
        _, (hn, cn) = net(packed)
        p = torch.softmax(hn[0] @ torch.from_numpy(params["head.W_y"]).T + torch.from_numpy(params["head.b_y"]), -1)
    d = max(close(res.outputs["p"], p.numpy(), "p"), close(res.final_state["h"], hn[0].numpy(), "h"),
            close(res.final_state["c"], cn[0].numpy(), "c"))
    record("sentiment", d)


# ---- streaming: two chunks equal one run ----------------------------------------------------------

STREAM_CASES = {
    "lstm": lambda rng, b, t: {"x": rng.normal(size=(b, t, 8))},
    "gru": lambda rng, b, t: {"x": rng.normal(size=(b, t, 8))},
    "deep_lstm": lambda rng, b, t: {"x": rng.normal(size=(b, t, 8))},
    "char_predictor": lambda rng, b, t: {"ch": rng.integers(0, 32, (b, t))},
    "word_predictor": lambda rng, b, t: {"w": rng.integers(0, 161, (b, t))},
}


@pytest.mark.parametrize("name", list(STREAM_CASES))
@pytest.mark.parametrize("split", [1, 4])
def test_streaming_in_two_chunks_equals_one_run(name, split):
    prog = rnncompile.compile(SPECS / f"{name}.yaml")
    params = random_params(prog, 21)
    inputs = STREAM_CASES[name](np.random.default_rng(21), 2, 7)
    whole = rnncompile.run(prog, inputs=inputs, params=params, dtype="float64")
    first = rnncompile.run(prog, inputs={k: v[:, :split] for k, v in inputs.items()}, params=params, dtype="float64")
    second = rnncompile.run(prog, inputs={k: v[:, split:] for k, v in inputs.items()}, params=params,
                            init_state=first.final_state, dtype="float64")
    assert set(whole.outputs) == set(second.outputs)
    for k, v in whole.outputs.items():
        close(np.concatenate([first.outputs[k], second.outputs[k]], axis=1), v, k, rtol=1e-12, atol=1e-12)
    assert set(second.final_state) == set(whole.final_state)
    for k, v in whole.final_state.items():
        close(second.final_state[k], v, k, rtol=1e-12, atol=1e-12)


def test_streaming_with_lengths_keeps_each_sequences_state():
    """A sequence that ended in the first chunk keeps its final state when the second chunk is all padding."""
    prog = rnncompile.compile(SPECS / "deep_lstm.yaml", dims={"I": 3, "H": 4})
    params = random_params(prog, 22)
    x = np.random.default_rng(22).normal(size=(2, 6, 3))
    first = rnncompile.run(prog, inputs={"x": x[:, :3]}, params=params, lengths=np.array([3, 2]), dtype="float64")
    ref_y, ref_f = ref_stack(params, x[:, :3], np.array([3, 2]), [("forward", None)] * 2, lstm_cell, 4, ("h", "c"))
    for k, v in ref_f.items():
        close(first.final_state[k], v, k)
    second = rnncompile.run(prog, inputs={"x": x[:, 3:]}, params=params, init_state=first.final_state,
                            dtype="float64")
    ref2, ref2_f = ref_stack(params, x[:, 3:], None, [("forward", None)] * 2, lstm_cell, 4, ("h", "c"), ref_f)
    close(second.outputs["h"], ref2)
    for k, v in ref2_f.items():
        close(second.final_state[k], v, k)


def test_streaming_through_the_cli(cli, tmp_path):
    x = np.random.default_rng(23).normal(size=(2, 6, 8))
    np.savez(tmp_path / "a.npz", x=x[:, :2])
    np.savez(tmp_path / "b.npz", x=x[:, 2:])
    np.savez(tmp_path / "all.npz", x=x)
    spec = SPECS / "deep_lstm.yaml"
    for name in ("a", "all"):
        code, out, err = cli("run", spec, "--dtype", "float64", "--input", tmp_path / f"{name}.npz",
                             "-o", tmp_path / f"out_{name}.npz")
        assert code == 0, err
    code, out, err = cli("run", spec, "--dtype", "float64", "--input", tmp_path / "b.npz",
                         "--init-state", tmp_path / "out_a.npz", "-o", tmp_path / "out_b.npz")
    assert code == 0, err
    whole, a, b = (np.load(tmp_path / f"out_{n}.npz") for n in ("all", "a", "b"))
    state_keys = [k for k in whole.files if k.startswith("state.")]
    assert state_keys, whole.files
    for k in state_keys:
        close(b[k], whole[k], k, rtol=1e-12, atol=1e-12)
    out_keys = [k for k in whole.files if not k.startswith("state.")]
    for k in out_keys:
        if whole[k].ndim >= 2 and whole[k].shape[1] == 6:
            close(np.concatenate([a[k], b[k]], axis=1), whole[k], k, rtol=1e-12, atol=1e-12)


# ---- initial state from a learned param ------------------------------------------------------------

LSTM_H0 = """\
rnncompile: 1
name: lstm_h0
dims: {I: 3, H: 4, T: 5}
cells:
  lstm:
    inputs: {x: I}
    state: {h: {shape: H, init: h0}, c: {shape: H, init: c0}}
    params:
      h0: {shape: [H], init: normal}
      c0: {shape: [H], init: normal}
    gates:
      i: {act: sigmoid, from: [h, x]}
      f: {act: sigmoid, from: [h, x]}
      g: {act: tanh, from: [h, x]}
      o: {act: sigmoid, from: [h, x]}
    let:
      c_next: f * c + i * g
    update: {c: c_next, h: o * tanh(c_next)}
    outputs: {h: h}
model:
  input: {x: [T, I]}
"""


@pytest.mark.parametrize("model", ["  scan: lstm\n",
                                   "  layers:\n    - {scan: lstm}\n    - {scan: lstm}\n",
                                   "  layers:\n    - {scan: lstm, direction: bidirectional, merge: sum}\n"],
                         ids=["scan", "stack", "bidirectional"])
def test_learned_initial_state_equals_explicit_init_state(model):
    prog = rnncompile.compile_text(LSTM_H0 + model)
    params = random_params(prog, 31)
    prefixes = sorted({k[:-2] for k in prog.params if k.endswith("h0")})
    assert prefixes, prog.params
    b = 3
    x = np.random.default_rng(31).normal(size=(b, 5, 3))
    lengths = np.array([5, 2, 4])
    learned = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64")
    init = {f"{p}{s}": np.broadcast_to(params[f"{p}{s}0"], (b, 4)).copy() for p in prefixes for s in "hc"}
    explicit = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, init_state=init,
                              dtype="float64")
    for k, v in explicit.outputs.items():
        close(learned.outputs[k], v, k, rtol=1e-12, atol=1e-12)
    for k, v in explicit.final_state.items():
        close(learned.final_state[k], v, k, rtol=1e-12, atol=1e-12)
    # and it is not the zero start
    zero = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64",
                          init_state={k: np.zeros_like(v) for k, v in init.items()})
    assert not np.allclose(zero.outputs[next(iter(zero.outputs))], learned.outputs[next(iter(zero.outputs))])
    if model.strip() == "scan: lstm":
        want, fin = per_sequence(lstm_cell, params, x, lengths, False, init, 4, ("h", "c"))
        close(learned.outputs["h"], want)
        close(learned.final_state["h"], fin["h"])


# ---- a state whose update reads only params ----------------------------------------------------------

PARAM_ONLY_UPDATE = """\
rnncompile: 1
name: param_only_update
dims: {I: 3, H: 4, T: 5}
cells:
  bias_rnn:
    inputs: {x: I}
    state: {h: H, k: H}
    params:
      W: {shape: [H, I]}
      U: {shape: [H, H]}
      b: {shape: [H]}
    update:
      h: tanh(W @ x + U @ k)
      k: tanh(b)          # no input, no state: the same value for every sequence
    outputs: {y: h}
model:
  scan: bias_rnn
  input: {x: [T, I]}
"""


def param_only_reference(p, x, lengths):
    b, t = x.shape[:2]
    lengths = np.full(b, t) if lengths is None else lengths
    ys, hs, ks = np.zeros((b, t, 4)), np.zeros((b, 4)), np.zeros((b, 4))
    for i in range(b):
        h, k = np.zeros(4), np.zeros(4)
        for s in range(lengths[i]):
            h, k = np.tanh(p["W"] @ x[i, s] + p["U"] @ k), np.tanh(p["b"])
            ys[i, s] = h
        hs[i], ks[i] = h, k
    return ys, hs, ks


@pytest.mark.parametrize("lengths", [None, [5, 2, 1]], ids=["equal", "variable"])
@pytest.mark.parametrize("trace", [False, True], ids=["run", "trace"])
def test_state_updated_from_params_only_keeps_its_batch_axis(lengths, trace):
    prog = rnncompile.compile_text(PARAM_ONLY_UPDATE)
    params = random_params(prog, 41)
    x = np.random.default_rng(41).normal(size=(3, 5, 3))
    lengths = None if lengths is None else np.array(lengths)
    res = rnncompile.run(prog, inputs={"x": x}, params=params, lengths=lengths, dtype="float64", trace=trace)
    ys, hs, ks = param_only_reference(params, x, lengths)
    assert res.final_state["k"].shape == (3, 4)
    close(res.final_state["k"], ks, "k")
    close(res.final_state["h"], hs, "h")
    close(res.outputs["y"], ys, "y")
    # and the final state streams into the next chunk
    more = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=res.final_state, dtype="float64")
    assert more.final_state["k"].shape == (3, 4)


def test_step_of_a_state_updated_from_params_only_keeps_its_batch_axis():
    from rnncompile.drivers import Executable

    prog = rnncompile.compile_text(PARAM_ONLY_UPDATE)
    params = random_params(prog, 42)
    exe = Executable(prog, dtype="float64")
    bound = exe.bind(prog.plan.stack.layers[0].uses[0], params)
    x = np.random.default_rng(42).normal(size=(3, 3))
    _, state = bound.step({"x": x}, bound.initial_state(3))
    assert state["k"].shape == (3, 4)
    close(state["k"], np.broadcast_to(np.tanh(params["b"]), (3, 4)))


# ---- init_state and lengths errors -------------------------------------------------------------

def test_init_state_errors_are_data_errors():
    prog = rnncompile.compile(SPECS / "bigru.yaml", dims={"I": 2, "H": 3})
    x = np.zeros((2, 4, 2))
    with pytest.raises(DataError, match="layers.0.forward.c"):
        rnncompile.run(prog, inputs={"x": x}, init_state={"layers.0.forward.c": np.zeros((2, 3))})
    with pytest.raises(DataError, match=r"\[2, 3\]"):
        rnncompile.run(prog, inputs={"x": x}, init_state={"layers.0.forward.h": np.zeros((3,))})
    with pytest.raises(DataError, match="lengths"):
        rnncompile.run(prog, inputs={"x": x}, lengths=np.array([5, 1]))


# ---- weights file (item 9) ----------------------------------------------------------------------

def test_weights_file_reports_every_problem_at_once(cli, tmp_path):
    prog = rnncompile.compile(SPECS / "bigru.yaml")
    w = rnncompile.make_params(prog, seed=0)
    w["layers.0.forward.W_r"] = np.zeros((3, 3), np.float32)
    del w["layers.1.reverse.b_hn"]
    w["layers.2.forward.W_r"] = np.zeros((16, 48), np.float32)
    np.savez(tmp_path / "w.npz", **w)
    code, out, err = cli("run", SPECS / "bigru.yaml", "--weights", tmp_path / "w.npz")
    assert code == 1
    assert "Traceback" not in err and out == ""
    assert err.count("error") == 1, err
    lines = err.splitlines()
    assert lines[0].startswith("error:")
    for name, words in (("layers.0.forward.W_r", ("[3, 3]", "[16, 24]")), ("layers.1.reverse.b_hn", ("missing",)),
                        ("layers.2.forward.W_r", ("unexpected",))):
        hit = [ln for ln in lines[1:] if f"`{name}`" in ln]
        assert len(hit) == 1, (name, err)
        for word in words:
            assert word in hit[0], (name, hit[0])


def test_weights_file_roundtrip_for_a_composition(cli, tmp_path):
    code, _, err = cli("run", SPECS / "bigru.yaml", "--seed", "5", "--save-weights", tmp_path / "w.npz",
                       "-o", tmp_path / "a.npz", "--input", _save_x(tmp_path))
    assert code == 0, err
    code, _, err = cli("run", SPECS / "bigru.yaml", "--seed", "9", "--weights", tmp_path / "w.npz",
                       "-o", tmp_path / "b.npz", "--input", tmp_path / "x.npz")
    assert code == 0, err
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert set(a.files) == set(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])


def _save_x(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).normal(size=(2, 10, 8)).astype(np.float32))
    return tmp_path / "x.npz"


# ---- CLI smoke for every composition spec --------------------------------------------------------------

@pytest.mark.parametrize("name", COMPOSITION_SPECS)
def test_cli_run(cli, name):
    code, out, err = cli("run", SPECS / f"{name}.yaml", "--batch", "2")
    assert code == 0, err
    assert "Traceback" not in out + err
    assert name in out


@pytest.mark.parametrize("name", COMPOSITION_SPECS)
def test_cli_run_trace_prints_a_step_table(cli, name):
    code, out, err = cli("run", SPECS / f"{name}.yaml", "--trace", "--steps", "2")
    assert code == 0, err
    assert "step 0" in out and "step 1" in out, out
    assert "Traceback" not in out + err


@pytest.mark.parametrize("name", COMPOSITION_SPECS)
def test_cli_inspect(cli, name):
    code, out, err = cli("inspect", SPECS / f"{name}.yaml")
    assert code == 0, err
    prog = rnncompile.compile(SPECS / f"{name}.yaml")
    for key in prog.params:  # every param is listed under its weight-file name
        assert key in out, (key, out)


@pytest.mark.parametrize("name", COMPOSITION_SPECS)
def test_cli_validate(cli, name):
    code, out, err = cli("validate", SPECS / f"{name}.yaml")
    assert code == 0, err
    assert "ok" in out


def test_cli_many_to_one_header_counts_the_text_steps(cli):
    """`run sentiment --text` reads 5 words: the header should say 5 steps, not the spec's default T (12)."""
    code, out, err = cli("run", SPECS / "sentiment.yaml", "--text", "the movie was not great")
    assert code == 0, err
    assert out.splitlines()[0].startswith("sentiment: 5 steps"), out.splitlines()[0]


def test_cli_lengths_from_an_input_file(cli, tmp_path):
    x = np.random.default_rng(24).normal(size=(3, 10, 8))
    lengths = np.array([10, 4, 1])
    np.savez(tmp_path / "in.npz", x=x, lengths=lengths)
    code, out, err = cli("run", SPECS / "bigru.yaml", "--dtype", "float64", "--input", tmp_path / "in.npz",
                         "-o", tmp_path / "out.npz")
    assert code == 0, err
    got = np.load(tmp_path / "out.npz")
    prog = rnncompile.compile(SPECS / "bigru.yaml")
    params = rnncompile.make_params(prog, 0, dtype="float64")
    want = rnncompile.run(prog, inputs={"x": x}, lengths=lengths, params=params, dtype="float64")
    np.testing.assert_array_equal(got["outputs.h"], want.outputs["h"])
    assert np.all(got["outputs.h"][1, 4:] == 0) and np.all(got["outputs.h"][2, 1:] == 0)
    np.savez(tmp_path / "mask.npz", x=x, mask=(np.arange(10)[None] < lengths[:, None]).astype(np.int8))
    code, out, err = cli("run", SPECS / "bigru.yaml", "--dtype", "float64", "--input", tmp_path / "mask.npz",
                         "-o", tmp_path / "out2.npz")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "out2.npz")["outputs.h"], got["outputs.h"])
