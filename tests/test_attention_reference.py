"""The attention references (tests/attention_reference.py) against each other, and the shipped attention
specs' decoder cells against them step by step on every backend.

The NumPy references (plain loops over each sequence's real source steps) and the PyTorch ones (torch's
GRU/LSTM over packed sequences, attention masked with -inf) agree to 1e-10 in float64, with teacher forcing
and greedy decoding and sources of different lengths; padded source steps get weight exactly 0. The
decoder cell of each spec, scanned on its own over given `enc`/`enc_mask` rows (a spec made from the
shipped cell, with those as ordinary per-step inputs), matches the NumPy reference's step on the numpy,
python and c backends.
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml

import attention_reference as R
import rnncompile
from conftest import SPECS
from rnncompile import registry

B, S, T = 4, 7, 6
SRC_LEN = np.array([7, 3, 5, 1])  # a full source, short ones, and a single word
SPEC_NAMES = ("attention_bahdanau", "attention_luong")
NUMPY_REF = {"attention_bahdanau": R.bahdanau_numpy, "attention_luong": R.luong_numpy}
TORCH_REF = {"attention_bahdanau": R.bahdanau_torch, "attention_luong": R.luong_torch}
KEYS = {"attention_bahdanau": R.BAHDANAU_KEYS, "attention_luong": R.LUONG_KEYS}
GREEDY_SEED = {"attention_bahdanau": 5, "attention_luong": 6}  # weights with which some sequence ends early


def _weights(name, seed=3, scale=0.6):
    """Seeded uniform weights for every key of the spec (not rnncompile's initialisers)."""
    prog = rnncompile.compile(SPECS / f"{name}.yaml")
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-scale, scale, info.shape) for k, info in prog.params.items()}


def _source(seed=5):
    rng = np.random.default_rng(seed)
    src = rng.integers(2, 12, (B, S))
    src[np.arange(S)[None] >= SRC_LEN[:, None]] = 0  # padding (any token: it is never read)
    return src


def _target(seed=6):
    rng = np.random.default_rng(seed)
    return rng.integers(2, 12, (B, T)), np.array([6, 4, 6, 2])


@pytest.fixture
def torch64(request):
    pytest.importorskip("torch", reason="compares against PyTorch")
    return request.getfixturevalue("torch_float64")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_the_references_read_rnncompiles_weight_keys(name):
    prog = rnncompile.compile(SPECS / f"{name}.yaml")
    assert set(prog.params) == KEYS[name]


@pytest.mark.parametrize("teacher", [True, False], ids=["teacher", "greedy"])
@pytest.mark.parametrize("name", SPEC_NAMES)
def test_numpy_and_torch_references_agree(name, teacher, torch64):
    w, src = _weights(name) if teacher else _weights(name, GREEDY_SEED[name], 1.0), _source()
    tgt, tgt_len = _target() if teacher else (None, None)
    a = NUMPY_REF[name](w, src, SRC_LEN, tgt, tgt_len, steps=T)
    b = TORCH_REF[name](w, src, SRC_LEN, tgt, tgt_len, steps=T)
    for field in a._fields:
        got, want = getattr(b, field), getattr(a, field)
        assert got.shape == want.shape, field
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=field)
    assert a.p.shape == (B, T, 12) and a.attention.shape == (B, T, S)
    if teacher:
        np.testing.assert_array_equal(a.lengths, tgt_len)
        assert np.all(a.p[1, 4:] == 0) and np.all(a.attention[3, 2:] == 0)  # past the target lengths
    else:
        assert a.lengths.min() < T, "no sequence stops at its end token: the greedy stop is not exercised"
        for k, n in enumerate(a.lengths):
            assert a.tokens[k, n - 1] == R.END or n == T
            assert np.all(a.tokens[k, n:] == R.END) and np.all(a.p[k, n:] == 0)


@pytest.mark.parametrize("teacher", [True, False], ids=["teacher", "greedy"])
@pytest.mark.parametrize("name", SPEC_NAMES)
def test_padded_source_steps_get_weight_exactly_zero(name, teacher, request):
    w, src = _weights(name) if teacher else _weights(name, GREEDY_SEED[name], 1.0), _source()
    tgt, tgt_len = _target() if teacher else (None, None)
    refs = [NUMPY_REF[name]]
    try:
        import torch  # noqa: F401
        request.getfixturevalue("torch_float64")
        refs.append(TORCH_REF[name])
    except ImportError:
        pass
    padded = np.arange(S)[None, None, :] >= SRC_LEN[:, None, None]
    for ref in refs:
        out = ref(w, src, SRC_LEN, tgt, tgt_len, steps=T)
        assert np.all(out.attention[np.broadcast_to(padded, out.attention.shape)] == 0.0)
        live = np.arange(out.p.shape[1])[None] < out.lengths[:, None]
        np.testing.assert_allclose(out.attention.sum(-1)[live], 1, rtol=1e-12)
        np.testing.assert_allclose(out.p.sum(-1)[live], 1, rtol=1e-12)
        assert np.all(out.attention[3, live[3], 0] == 1.0)  # one source word: all the weight on it
    other = src.copy()
    other[np.arange(S)[None] >= SRC_LEN[:, None]] = 11
    a, b = (NUMPY_REF[name](w, x, SRC_LEN, tgt, tgt_len, steps=T) for x in (src, other))
    np.testing.assert_array_equal(a.p, b.p)  # what padding holds is never read


def test_masked_softmax_reference_is_the_softmax_of_the_kept_entries():
    x, m = np.array([0.3, 50.0, -1.0, 2.0]), np.array([1, 0, 1, 1])
    e = np.exp([0.3, -1.0, 2.0])
    np.testing.assert_allclose(R.masked_softmax(x, m), [e[0] / e.sum(), 0, e[1] / e.sum(), e[2] / e.sum()])
    assert np.all(R.masked_softmax(x, np.zeros(4)) == 0)


# ---- the shipped decoder cells, scanned on their own, against the reference's step --------------------------

def _cell_alone(name):
    """The spec's decoder cell scanned directly: its memory inputs become per-step inputs [T, S, ...]."""
    spec = yaml.safe_load((SPECS / f"{name}.yaml").read_text())
    cell = spec["cells"]["decoder"]
    inputs = {n: ([T] + (s if isinstance(s, list) else [])) for n, s in cell["inputs"].items()}
    inputs["y_prev"] = [T]
    alone = {"rnncompile": 1, "name": f"{name}_decoder_cell", "vocab": spec["vocab"], "dims": spec["dims"],
             "cells": {"decoder": cell}, "model": {"scan": "decoder", "input": inputs}}
    return rnncompile.compile_text(yaml.safe_dump(alone, sort_keys=False), file=f"{name}_decoder_cell.yaml")


def _cell_inputs(prog, seed=11):
    rng = np.random.default_rng(seed)
    cell = prog.scan_cell
    width = cell.inputs["enc"].shape[1]
    mask = (rng.uniform(size=(B, T, S)) < 0.6).astype(np.float64)
    mask[:, :, 0] = 1
    mask[1, 2] = 0  # one step of one sequence with every source step masked: no attention, a zero context
    return {"y_prev": rng.integers(0, 12, (B, T)), "enc": rng.standard_normal((B, T, S, width)), "enc_mask": mask}


def _reference_steps(name, w, x, state0):
    """The reference cell stepped over the same inputs: per step (the cell's outputs, a), and the final state."""
    outs, atts, finals = [], [], []
    for b in range(B):
        state = {k: v[b] for k, v in state0.items()}
        o_b, a_b = [], []
        for t in range(T):
            args = (w, x["y_prev"][b, t], x["enc"][b, t], x["enc_mask"][b, t])
            if name == "attention_bahdanau":
                s, o, a = R.bahdanau_step_numpy(*args, state["s"])
                state = {"s": s}
            else:
                state, o, a = R.luong_step_numpy(*args, state)
            o_b.append(o)
            a_b.append(a)
        outs.append({k: np.array([o[k] for o in o_b]) for k in o_b[0]})
        atts.append(np.array(a_b))
        finals.append(state)
    stack = lambda dicts: {k: np.array([d[k] for d in dicts]) for k in dicts[0]}  # noqa: E731
    return stack(outs), np.array(atts), stack(finals)


@pytest.mark.parametrize("backend", ["numpy", "python", "c"])
@pytest.mark.parametrize("name", SPEC_NAMES)
def test_the_decoder_cell_matches_the_reference_step(name, backend):
    if getattr(registry.get(backend), "unsupported", lambda p: None)(None):
        pytest.skip("no C compiler")
    prog = _cell_alone(name)
    w = _weights(name)
    params = {k[len("decoder."):]: v for k, v in w.items() if k.startswith("decoder.") and k.count(".") == 1}
    assert set(params) == set(prog.params)
    x = _cell_inputs(prog)
    rng = np.random.default_rng(2)
    state0 = {n: rng.uniform(-0.8, 0.8, (B,) + info.shape) for n, info in prog.scan_cell.states.items()}
    res = rnncompile.run(prog, inputs=x, params=params, init_state=state0, dtype="float64", backend=backend,
                         trace=backend == "numpy")
    outs, atts, final = _reference_steps(name, w, x, state0)
    for k, v in outs.items():
        np.testing.assert_allclose(res.outputs[k], v, rtol=1e-10, atol=1e-12, err_msg=k)
    for k, v in final.items():
        np.testing.assert_allclose(res.final_state[k], v, rtol=1e-10, atol=1e-12, err_msg=k)
    if backend == "numpy":
        a = res.values["a"]
        np.testing.assert_allclose(a, atts, rtol=1e-10, atol=1e-13)
        assert np.all(a[x["enc_mask"] == 0] == 0.0) and np.all(a[1, 2] == 0.0)


# ---- the whole shipped models (the model level: memory, memory_mask, two time axes) against the references ----

def _spec_text(name, teacher):
    """The shipped spec, switched to teacher forcing or to greedy decoding (Bahdanau's ships teacher-forced,
    Luong's greedy)."""
    text = (SPECS / f"{name}.yaml").read_text()

    def once(old, new):
        nonlocal text
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    if name == "attention_bahdanau" and not teacher:
        once("  input: {src: [S], tgt: [T]}", "  input: {src: [S]}")
        once("    feed: target ", "    feed: previous_output ")
        once("    target: tgt\n", "")
    if name == "attention_luong" and teacher:
        once("  input: {src: [S]} ", "  input: {src: [S], tgt: [T]} ")
        once("    feed: previous_output ", "    feed: target\n    target: tgt ")
    return text


@pytest.mark.parametrize("backend", ["numpy", "python", "c"])
@pytest.mark.parametrize("teacher", [True, False], ids=["teacher", "greedy"])
@pytest.mark.parametrize("name", SPEC_NAMES)
def test_the_model_matches_the_numpy_reference(name, teacher, backend):
    if getattr(registry.get(backend), "unsupported", lambda p: None)(None):
        pytest.skip("no C compiler")
    prog = rnncompile.compile_text(_spec_text(name, teacher), file=f"{name}.yaml")
    w = _weights(name) if teacher else _weights(name, GREEDY_SEED[name], 1.0)
    inputs, lengths = {"src": _source()}, {"src": SRC_LEN}
    tgt, tgt_len = _target() if teacher else (None, None)
    if teacher:
        inputs["tgt"], lengths["tgt"] = tgt, tgt_len
    ref = NUMPY_REF[name](w, inputs["src"], SRC_LEN, tgt, tgt_len, steps=T)
    res = rnncompile.run(prog, inputs=inputs, params=w, lengths=lengths, dtype="float64", backend=backend,
                         trace=backend == "numpy")
    n = res.outputs["p"].shape[1]  # greedy decoding stops once every sequence has ended
    assert n == ref.lengths.max()
    np.testing.assert_allclose(res.outputs["p"], ref.p[:, :n], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(res.tokens, ref.tokens[:, :n])
    np.testing.assert_array_equal(res.lengths, ref.lengths)
    if backend == "numpy":  # the trace holds every step's weights; steps past a sequence's end are not its own
        live = np.arange(n)[None] < ref.lengths[:, None]
        np.testing.assert_allclose(res.values["decoder.a"][live], ref.attention[:, :n][live], rtol=1e-10, atol=1e-13)
