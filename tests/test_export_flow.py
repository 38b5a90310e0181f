"""The python exporter renders the program's flow: one renderer per flow op, the one start-state rule, the
exported sampler, and a decoder's memory (attention), each checked against the drivers and against
hand-written NumPy.

The exported modules are loaded with exec here (tests/test_export.py runs them where only NumPy is
importable).
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import rnncompile
from composition_reference import close, per_sequence, softmax, sub
from conftest import ROOT, SPECS
from rnncompile import flow
from rnncompile.api import make_params
from rnncompile.backends.python import decode as py_decode
from rnncompile.backends.python.export import RENDERERS, export
from rnncompile.drivers import Executable, sample_tokens
from rnncompile.errors import DataError
from rnncompile.plan import CellUse
from test_decoding import ref_decode

SHIPPED = sorted(SPECS.glob("*.yaml"))


def load(program) -> dict:
    """The exported module of `program`, executed: its names."""
    module = {}
    exec(compile(export(program).source, f"<export of {program.name}>", "exec"), module)
    return module


# -- one renderer per flow op -------------------------------------------------------------------------
def test_every_flow_op_has_a_renderer():
    missing = set(flow.OP_NAMES) - set(RENDERERS)
    assert not missing, f"the python exporter has no renderer for flow op(s) {', '.join(sorted(missing))}"
    assert set(RENDERERS) == set(flow.OP_NAMES), "a renderer for an op the flow does not have"


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda p: p.stem)
def test_run_is_the_flow_op_by_op(spec):
    """Each flow op becomes one commented block of `run` (or `run_trees`), in the flow's order."""
    program = rnncompile.compile(spec)
    source = export(program).source
    body = source[source.index("\ndef run_trees(" if program.flow.of("tree_fold") else "\ndef run("):]
    blocks = re.sub(r"\n    #     ", " ", body)  # a long comment's continued lines joined to its first
    rendered = re.findall(r"^    # (model[\w.]*): (?:[^=\n]* = )?(\w+) ", blocks, re.M)
    assert [op for _, op in rendered] == [op.op for op in program.flow.ops]
    assert [p for p, _ in rendered] == [".".join(map(str, op.path)) for op in program.flow.ops]


def test_the_backend_copies_no_driver_source():
    """The exported helpers are the backend's own text, not the drivers' functions read back as source."""
    for path in (ROOT / "backends" / "python").glob("*.py"):
        text = path.read_text()
        assert "getsource" not in text and "import inspect" not in text, path.name
    source = export(rnncompile.compile(SPECS / "captioner.yaml")).source
    assert "def pick_tokens(" in source and "sample_tokens" not in source


# -- the exported sampler ----------------------------------------------------------------------------
def exported_sampler():
    module = {"np": np}
    exec(py_decode.DECODE_HELPERS["pick_tokens"], module)
    return module["pick_tokens"]


@pytest.mark.parametrize("how, temperature, top_k", [("greedy", 1.0, None), ("sample", 1.0, None),
                                                     ("sample", 0.5, None), ("sample", 2.0, 3), ("sample", 0.8, 1),
                                                     ("sample", 1.3, 7), ("sample", 1.0, 50)])
def test_exported_sampler_draws_the_drivers_tokens(how, temperature, top_k):
    pick = exported_sampler()
    rng = np.random.default_rng(0)
    for seed in range(5):
        p = softmax(rng.standard_normal((64, 7)) * 3)
        p[0] = np.eye(7)[3]  # a distribution with zeros
        mine, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
        for step in range(6):  # draws in a row from one generator, as a decoder loop makes them
            q = np.roll(p, step, axis=1)
            np.testing.assert_array_equal(pick(q, how, temperature, top_k, mine),
                                          sample_tokens(q, how, temperature, top_k, theirs))


def test_exported_sampler_draws_from_the_tempered_top_k():
    """Against the definition: token frequencies approach p ** (1 / T) renormalised over the k most likely."""
    pick = exported_sampler()
    p = np.array([0.05, 0.4, 0.1, 0.3, 0.15])
    n, temperature, k = 200_000, 0.7, 3
    got = pick(np.tile(p, (n, 1)), "sample", temperature, k, np.random.default_rng(1))
    q = np.where(p >= np.sort(p)[-k], p ** (1 / temperature), 0)
    q /= q.sum()
    np.testing.assert_allclose(np.bincount(got, minlength=5) / n, q, atol=4e-3)
    assert pick(np.tile(p, (10, 1)), "greedy", 1.0, None, None).tolist() == [1] * 10


# -- the one start-state rule: a state starting from a context input ----------------------------------
CONTEXT_STACK = """\
rnncompile: 1
name: ctxstack
dims: {I: 3, H: 4, T: 5}
cells:
  rnn:
    inputs: {x: I}
    state: {h: {shape: H, init: h0}}
    params: {W: {shape: [H, H + I]}, b: {shape: [H]}}
    update: {h: "tanh(W @ concat(h, x) + b)"}
    outputs: {h: h}
model:
  input: {x: [T, I]}
  context: {h0: [H]}
  layers:
    - {scan: rnn, direction: bidirectional, merge: sum}
    - {scan: rnn}
"""


def rnn_cell(p, x, s):
    """tanh(W @ concat(h, x) + b) over the steps of x [1, n, I]: outputs [1, n, H] and the final h."""
    h, ys = s["h"], []
    for t in range(x.shape[1]):
        h = np.tanh(np.concatenate([h, x[:, t]], -1) @ p["W"].T + p["b"])
        ys.append(h)
    return np.stack(ys, 1) if ys else np.zeros((1, 0, h.shape[-1])), {"h": h}


def ref_context_stack(params, x, lengths, start):
    """The stack by hand; `start` gives each use's h at step 0 by its prefix."""
    fwd, ff = per_sequence(rnn_cell, sub(params, "layers.0.forward."), x, lengths, False,
                           {"h": start["layers.0.forward."]}, 4)
    rev, fr = per_sequence(rnn_cell, sub(params, "layers.0.reverse."), x, lengths, True,
                           {"h": start["layers.0.reverse."]}, 4)
    top, ft = per_sequence(rnn_cell, sub(params, "layers.1."), fwd + rev, lengths, False,
                           {"h": start["layers.1."]}, 4)
    return top, {"layers.0.forward.h": ff["h"], "layers.0.reverse.h": fr["h"], "layers.1.h": ft["h"]}


@pytest.mark.parametrize("given", [False, True], ids=["from the context", "given wins"])
def test_stack_state_from_a_context_input(given):
    program = rnncompile.compile_text(CONTEXT_STACK, "ctxstack.yaml")
    params = make_params(program, seed=2, dtype="float64")
    rng = np.random.default_rng(2)
    x, h0 = rng.standard_normal((3, 5, 3)), rng.standard_normal((3, 4))
    lengths = np.array([5, 2, 1])
    prefixes = ("layers.0.forward.", "layers.0.reverse.", "layers.1.")
    state = {p + "h": rng.standard_normal((3, 4)) for p in prefixes} if given else None
    want_out, want_final = ref_context_stack(params, x, lengths,
                                             {p: state[p + "h"] if given else h0 for p in prefixes})
    outputs, final = load(program)["run"](params, {"x": x}, state, lengths, {"h0": h0}, dtype="float64")
    close(outputs["h"], want_out, "outputs")
    assert set(final) == set(want_final)
    for k, v in want_final.items():
        close(final[k], v, k)
    drivers = rnncompile.run(program, inputs={"x": x}, params=params, context={"h0": h0}, lengths=lengths,
                             init_state=state, dtype="float64")
    close(outputs["h"], drivers.outputs["h"], "outputs against the drivers", rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("where", ["stack", "decoder"])
def test_a_missing_or_misshapen_context_start_fails_as_in_the_drivers(where):
    """Missing, or not one per sequence (an unbatched [H] the export used to broadcast silently): the
    exported run refuses it with the drivers' words."""
    if where == "stack":
        program, inputs, name, key, size = (rnncompile.compile_text(CONTEXT_STACK, "ctxstack.yaml"),
                                            {"x": np.zeros((3, 5, 3))}, "h0", "layers.0.forward.h", 4)
    else:
        program, inputs, name, key, size = context_decoder("zeros"), {"src": np.zeros((3, 8), np.int64)}, "c0", \
            "decoder.c", 6
    params = make_params(program, seed=2, dtype="float64")
    run = load(program)["run"]
    exe = Executable(program, "numpy", "float64")
    for context, message in [({}, f"state `{key}` starts from context input `{name}`, which was not given"),
                             ({name: np.zeros((2, size))}, f"context input `{name}` has shape [2, {size}]; state "
                                                          f"`{key}` needs [3, {size}] (one per sequence)"),
                             ({name: np.zeros(size)}, f"context input `{name}` has shape [{size}]; state `{key}` "
                                                      f"needs [3, {size}] (one per sequence)")]:
        with pytest.raises(DataError) as want:
            exe.run(inputs, params, context=context)
        with pytest.raises(ValueError) as got:
            run(params, inputs, None, None, context, dtype="float64")
        assert str(got.value) == str(want.value) == message


def context_decoder(init: str):
    """specs/seq2seq.yaml with its decoder's c starting from the context input c0 (and init: `init`)."""
    text = (SPECS / "seq2seq.yaml").read_text()
    at = text.index("decoder_lstm:")
    text = text[:at] + text[at:].replace("state: {h: H, c: H}", "state: {h: H, c: {shape: H, init: c0}}", 1)
    text = text.replace("  input: {src: [S]}\n", "  input: {src: [S]}\n  context: {c0: [H]}\n")
    text = text.replace("    init: encoder ", f"    init: {init} ")
    text = text.replace("dims: {E: 16, H: 32", "dims: {E: 4, H: 6")
    return rnncompile.compile_text(text, f"seq2seq_c0_{init}.yaml")


@pytest.mark.parametrize("init", ["zeros", "encoder"])
def test_decoder_state_from_a_context_input(init):
    """init: zeros starts the decoder's c from c0 (its own init); init: encoder overrides it with the
    encoder's final c (the `over` bundle beats the cell's init), as the drivers' start_state does."""
    program = context_decoder(init)
    params = {k: v * 3 for k, v in make_params(program, seed=4, dtype="float64").items()}
    rng = np.random.default_rng(4)
    src, c0 = rng.integers(0, 12, (4, 8)), rng.standard_normal((4, 6))
    lengths = np.array([8, 3, 1, 6])
    outputs, final, tokens, token_lengths = load(program)["run"](params, {"src": src}, None, lengths, {"c0": c0},
                                                                 dtype="float64")
    enc, head, dec = sub(params, "encoder."), sub(params, "decoder.head."), sub(params, "decoder.")
    from composition_reference import lstm_cell

    _, fin = per_sequence(lstm_cell, enc, enc["E_src"][src], lengths, hidden=6, states=("h", "c"))
    for b in range(4):
        h, c = (fin["h"][b], fin["c"][b]) if init == "encoder" else (np.zeros(6), c0[b])
        toks, dists, hb, cb = ref_decode(dec, "E_tgt", head, h, c, 8, 0, 1)
        np.testing.assert_array_equal(tokens[b, :len(toks)], toks)
        close(outputs["p"][b, :len(toks)], dists, f"distributions of sequence {b}")
        close(final["decoder.c"][b], cb, f"decoder c of sequence {b}")
    drivers = rnncompile.run(program, inputs={"src": src}, params=params, context={"c0": c0}, lengths=lengths,
                             dtype="float64")
    np.testing.assert_array_equal(tokens, drivers.tokens)
    np.testing.assert_array_equal(token_lengths, drivers.lengths)


# -- a decoder's memory (attention), on a flow made by hand -----------------------------------------
ATTENTION_BASE = """\
rnncompile: 1
name: attention_by_hand
vocab:
  level: word
  start: <s>
  end: </s>
  tokens: [<s>, </s>, one, two, three, four, five, six]
dims: {E: 4, H: 5, S: 6, T: 6}
cells:
  enc:
    inputs: {w: token}
    state: {h: H}
    params:
      E_src: {shape: [V, E], init: normal, scale: 0.5}
      W: {shape: [H, H + E]}
      b: {shape: [H], init: zeros}
    update: {h: "tanh(W @ concat(h, embed(w, E_src)) + b)"}
    outputs: {h: h}
  dec:
    inputs: {y_prev: token}
    state: {h: H}
    params:
      E_tgt: {shape: [V, E], init: normal, scale: 0.5}
      W: {shape: [H, H + E]}
    update: {h: "tanh(W @ concat(h, embed(y_prev, E_tgt)))"}
    outputs: {h: h}
model:
  input: {src: [S]}
  encoder: {scan: enc, input: src}
  decoder:
    scan: dec
    init: encoder
    feed: previous_output
    steps: T
    head:
      params: {W_p: {shape: [V, H]}, b_p: {shape: [V], init: zeros}}
      outputs: {p: softmax(W_p @ h + b_p)}
"""

# dot-product attention (Luong et al. 2015) over the encoder's outputs, masked by the source lengths
ATTENTION_CELL = """\
rnncompile: 1
name: attention_cell
vocab:
  level: word
  tokens: [<s>, </s>, one, two, three, four, five, six]
dims: {E: 4, H: 5, S: 6, T: 6}
cells:
  attend:
    inputs: {y_prev: token, enc: [S, H], enc_mask: [S]}
    state: {h: H}
    params:
      E_tgt: {shape: [V, E], init: normal, scale: 0.5}
      W: {shape: [H, H + E + H]}
      b: {shape: [H], init: zeros}
    let:
      score: enc @ h
      a: softmax(score * enc_mask - (1 - enc_mask) * 1.0e9)
    update: {h: "tanh(W @ concat(h, embed(y_prev, E_tgt), a @ enc) + b)"}
    outputs: {h: h}
model:
  input: {y_prev: [T], enc: [T, S, H], enc_mask: [T, S]}
  scan: attend
"""


def attention_program(teacher: bool):
    """An encoder-decoder whose decoder cell reads the encoder's outputs h at every source step (`enc`) and
    their mask (`enc_mask`): the plan's decoder given memory by hand, until the spec language says it."""
    text = ATTENTION_BASE
    if teacher:
        text = text.replace("  input: {src: [S]}\n", "  input: {src: [S], tgt: [T]}\n")
        text = text.replace("    feed: previous_output\n", "    feed: target\n    target: tgt\n")
    program = rnncompile.compile_text(text, "attention_by_hand.yaml")
    cell_program = rnncompile.compile_text(ATTENTION_CELL, "attention_cell.yaml")
    (use,) = cell_program.plan.uses()
    plan = program.plan
    plan.decoder = dataclasses.replace(plan.decoder, use=CellUse(use.cell, "decoder."), memory={"enc": "h"},
                                       memory_mask="enc_mask")
    program.optimised["decoder."] = cell_program.cell(use)
    for cached in ("flow", "values_by_stage"):
        program.__dict__.pop(cached, None)
    (op,) = program.flow.of("decode")
    assert op.memory == (("enc", flow.Read("encoder.out", "h")),) and op.memory_mask == ("enc_mask", ("src",))
    return program


def ref_attention(params, src, src_lengths, steps, target=None, target_lengths=None):
    """Per sequence: the encoder over its real steps, then the decoder attending over those steps only (a
    softmax over n scores, no mask), greedy until the end token, or fed the target for its real steps."""
    enc, dec, head = sub(params, "encoder."), sub(params, "decoder."), sub(params, "decoder.head.")
    out, fin = per_sequence(rnn_cell, enc, enc["E_src"][src], src_lengths, hidden=5)
    results = []
    for b in range(len(src)):
        memory, h = out[b, :src_lengths[b]], fin["h"][b]
        tok, toks, dists = 0, [], []
        n = steps if target is None else target_lengths[b]
        for t in range(n):
            if target is not None:
                tok = 0 if t == 0 else target[b, t - 1]
            a = softmax(memory @ h)
            h = np.tanh(dec["W"] @ np.concatenate([h, dec["E_tgt"][tok], a @ memory]) + dec["b"])
            p = softmax(head["W_p"] @ h + head["b_p"])
            dists.append(p)
            tok = int(np.argmax(p)) if target is None else target[b, t]
            toks.append(tok)
            if target is None and tok == 1:
                break
        results.append((np.array(toks), np.array(dists), h))
    return results


def test_attention_greedy_matches_numpy_and_the_drivers():
    program = attention_program(teacher=False)
    params = {k: v * 3 for k, v in make_params(program, seed=1, dtype="float64").items()}
    rng = np.random.default_rng(0)
    src, lengths = rng.integers(2, 8, (4, 6)), np.array([6, 3, 1, 5])
    for delta in np.arange(0.0, 6.0, 0.25):  # a larger end-token bias until sequences stop at different steps
        params["decoder.head.b_p"][1] = delta
        refs = ref_attention(params, src, lengths, 6)
        if len({len(t) for t, _, _ in refs}) >= 2:
            break
    assert len({len(t) for t, _, _ in refs}) >= 2
    outputs, final, tokens, token_lengths = load(program)["run"](params, {"src": src}, None, lengths,
                                                                 dtype="float64")
    np.testing.assert_array_equal(token_lengths, [len(t) for t, _, _ in refs])
    for b, (toks, dists, h) in enumerate(refs):
        np.testing.assert_array_equal(tokens[b, :len(toks)], toks)
        close(outputs["p"][b, :len(toks)], dists, f"distributions of sequence {b}", rtol=1e-10, atol=1e-10)
        assert np.all(outputs["p"][b, len(toks):] == 0)
        close(final["decoder.h"][b], h, f"decoder h of sequence {b}", rtol=1e-10, atol=1e-10)
    drivers = rnncompile.run(program, inputs={"src": src}, params=params, lengths=lengths, dtype="float64")
    np.testing.assert_array_equal(tokens, drivers.tokens)
    close(outputs["p"], drivers.outputs["p"], "against the drivers", rtol=1e-12, atol=1e-12)


def test_attention_teacher_forced_matches_numpy_and_the_drivers():
    program = attention_program(teacher=True)
    params = make_params(program, seed=3, dtype="float64")
    rng = np.random.default_rng(3)
    src, tgt = rng.integers(2, 8, (4, 6)), rng.integers(0, 8, (4, 6))
    lengths = {"src": np.array([6, 3, 1, 5]), "tgt": np.array([2, 6, 4, 1])}  # each its own lengths
    outputs, final, tokens, token_lengths = load(program)["run"](params, {"src": src, "tgt": tgt}, None, lengths,
                                                                 dtype="float64")
    refs = ref_attention(params, src, lengths["src"], 6, tgt, lengths["tgt"])
    np.testing.assert_array_equal(token_lengths, lengths["tgt"])
    np.testing.assert_array_equal(tokens, tgt)
    for b, (_, dists, h) in enumerate(refs):
        n = lengths["tgt"][b]
        close(outputs["p"][b, :n], dists, f"distributions of sequence {b}", rtol=1e-10, atol=1e-10)
        assert np.all(outputs["p"][b, n:] == 0)
        close(final["decoder.h"][b], h, f"decoder h of sequence {b}", rtol=1e-10, atol=1e-10)
    drivers = rnncompile.run(program, inputs={"src": src, "tgt": tgt}, params=params, lengths=lengths,
                             dtype="float64")
    close(outputs["p"], drivers.outputs["p"], "against the drivers", rtol=1e-12, atol=1e-12)


ATTENTION_SPECS = sorted(SPECS.glob("attention_*.yaml"))


@pytest.mark.skipif(not ATTENTION_SPECS, reason="no specs/attention_*.yaml yet")
@pytest.mark.parametrize("spec", ATTENTION_SPECS, ids=lambda p: p.stem)
@pytest.mark.parametrize("teacher", [True, False], ids=["teacher forcing", "greedy"])
def test_shipped_attention_specs_export_like_the_drivers(spec, teacher):
    program = rnncompile.compile(spec)
    params = make_params(program, seed=0, dtype="float64")
    steps = program.plan.steps_of(program.dims)  # a source and a target, each on its own time axis
    rng = np.random.default_rng(0)
    vocab = len(program.vocab.tokens)
    inputs = {n: rng.integers(0, vocab, (3, steps[n])) for n in program.plan.inputs}
    lengths = {n: np.array([steps[n], max(1, steps[n] // 2), 1]) for n in inputs}
    if not teacher:
        target = program.flow.of("decode")[0].decoder.target
        inputs.pop(target, None)
        lengths.pop(target, None)
    # (the api asks for every declared input; the drivers decode greedily when the target is not given)
    want = Executable.cached(program, "numpy", "float64").run(inputs, params, lengths=lengths)
    outputs, final, tokens, _ = load(program)["run"](params, inputs, None, lengths, dtype="float64")
    np.testing.assert_array_equal(tokens, want.tokens)
    for k, v in want.outputs.items():
        close(outputs[k], v, k, rtol=1e-10, atol=1e-10)
    for k, v in want.final_state.items():
        close(final[k], v, k, rtol=1e-10, atol=1e-10)


def test_attention_and_context_starts_run_with_only_numpy(tmp_path):
    """The exports above, imported where only NumPy is (`python -I -S`), give the drivers' numbers."""
    import os
    import subprocess
    import sys

    from test_export import DECODE_RUNNER

    cases = [("by_hand_teacher", attention_program(teacher=True), True),
             ("by_hand_greedy", attention_program(teacher=False), False),
             ("c0_zeros", context_decoder("zeros"), False)]
    cases += [(spec.stem, rnncompile.compile(spec), True) for spec in ATTENTION_SPECS]
    expected = {}
    for name, program, teacher in cases:
        (tmp_path / f"{name}.py").write_text(export(program).source)
        params = make_params(program, seed=5, dtype="float32")
        steps = program.plan.steps_of(program.dims)
        rng = np.random.default_rng(5)
        vocab = len(program.vocab.tokens)
        inputs = {n: rng.integers(0, vocab, (3, steps[n])) for n in program.plan.inputs}
        lengths = {n: np.array([steps[n], max(1, steps[n] // 2), 1]) for n in inputs}
        target = program.flow.of("decode")[0].decoder.target
        if not teacher and target:
            inputs.pop(target), lengths.pop(target)
        context = {n: rng.standard_normal((3,) + s).astype("float32") for n, s in program.plan.context.items()}
        arrays = {**{f"params.{k}": v for k, v in params.items()}, **{f"inputs.{k}": v for k, v in inputs.items()},
                  **{f"lengths.{k}": v for k, v in lengths.items()}, **{f"context.{k}": v for k, v in context.items()}}
        np.savez(tmp_path / f"{name}.in.npz", dtype=np.array("float32"), **arrays)
        (tmp_path / f"{name}.kw.json").write_text("{}")
        expected[name] = Executable.cached(program, "numpy", "float32").run(inputs, params, lengths=lengths,
                                                                            context=context)
    only = tmp_path / "only_numpy"
    only.mkdir()
    os.symlink(os.path.dirname(np.__file__), only / "numpy")
    script = tmp_path / "runner.py"
    script.write_text(DECODE_RUNNER.format(numpy=str(only), here=str(tmp_path), names=list(expected)))
    done = subprocess.run([sys.executable, "-I", "-S", str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for name, want in expected.items():
        with np.load(tmp_path / f"{name}.out.npz") as f:
            got = {k: f[k] for k in f.files}
        np.testing.assert_array_equal(got["tokens"], want.tokens, err_msg=name)
        np.testing.assert_array_equal(got["token_lengths"], want.lengths, err_msg=name)
        assert set(got) == {"tokens", "token_lengths"} | {f"outputs.{k}" for k in want.outputs} | \
            {f"state.{k}" for k in want.final_state}, name
        for k, v in {**{f"outputs.{k}": v for k, v in want.outputs.items()},
                     **{f"state.{k}": v for k, v in want.final_state.items()}}.items():
            assert got[k].dtype == np.float32, name
            np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-5, err_msg=f"{name}: {k}")


@pytest.mark.skipif(not ATTENTION_SPECS, reason="no specs/attention_*.yaml yet")
def test_exported_attention_pads_a_shorter_source_and_refuses_a_longer_one_as_the_drivers_do():
    program = rnncompile.compile(ATTENTION_SPECS[0])
    params = make_params(program, seed=0, dtype="float64")
    steps = program.plan.steps_of(program.dims)
    target = program.flow.of("decode")[0].decoder.target
    source = next(n for n in program.plan.inputs if n != target)
    run, exe = load(program)["run"], Executable(program, "numpy", "float64")
    rng = np.random.default_rng(0)
    short = {source: rng.integers(2, len(program.vocab.tokens), (2, steps[source] - 2))}
    for lengths in (None, {source: np.array([steps[source] - 2, 1])}):
        want = exe.run(short, params, lengths=lengths)
        outputs, final, tokens, _ = run(params, short, None, lengths, dtype="float64")
        np.testing.assert_array_equal(tokens, want.tokens)
        for k, v in want.outputs.items():
            close(outputs[k], v, k, rtol=1e-12, atol=1e-12)
    long = {source: np.zeros((2, steps[source] + 1), np.int64)}
    with pytest.raises(DataError) as want:
        exe.run(long, params)
    with pytest.raises(ValueError) as got:
        run(params, long, dtype="float64")
    assert str(got.value) == str(want.value)
    assert f"the source has {steps[source] + 1} steps" in str(got.value)
