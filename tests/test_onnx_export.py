"""`rnncompile export --format onnx`: every emitter in onnxruntime against the op table's meaning, every
shipped sequence spec exported and run in onnxruntime against rnncompile's numpy backend (batch > 1, with
and without lengths, float32 to 1e-5), the tables covering every op and flow op, and the command line."""
from __future__ import annotations

import itertools
import zlib
from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile import api, flow
from rnncompile.ops import OPS

onnx = pytest.importorskip("onnx", reason="ONNX export tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="ONNX export tests run the models in onnxruntime")

from rnncompile.interop.onnx.onnx_export import LENGTHS, NOT_EXPORTED, RENDERERS, export_onnx  # noqa: E402
from rnncompile.interop.onnx.onnx_graph import BATCH, ExportError, Graph, Names  # noqa: E402
from rnncompile.interop.onnx.onnx_ops import BOUND_BY_THE_CELL_WRITER, EMITTERS, UNSUPPORTED, Site  # noqa: E402
from test_kernels import CASES, KERNEL_OPS, _array, _full_attrs, _meaning  # noqa: E402

pytestmark = pytest.mark.onnx

ROOT = Path(__file__).resolve().parents[1]
SEQUENCE_SPECS = ["elman", "lstm", "gru", "deep_lstm", "bigru", "bilstm_gru", "sentiment", "char_predictor",
                  "word_predictor", "ntm", "ntm_shorthand", "memn2n", "clockwork"]
NATIVE = {"lstm": {"LSTM"}, "gru": {"GRU"}, "deep_lstm": {"LSTM"}, "bigru": {"GRU"}, "bilstm_gru": {"LSTM", "GRU"}}
B = 4


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# -- the tables ----------------------------------------------------------------------------------------
def test_every_op_has_an_onnx_emitter_or_a_reason():
    """A new op fails here until onnx_ops.py can write it, or says why not."""
    handled = set(EMITTERS) | set(BOUND_BY_THE_CELL_WRITER) | set(UNSUPPORTED)
    missing = [n for n in OPS if n not in handled]
    assert not missing, f"rnncompile/interop/onnx/onnx_ops.py has no emitter and no reason for: {', '.join(missing)}"
    assert not handled - set(OPS), "entries for ops the op table does not have"
    assert not set(EMITTERS) & (set(BOUND_BY_THE_CELL_WRITER) | set(UNSUPPORTED))
    assert all(isinstance(why, str) and why for why in {**BOUND_BY_THE_CELL_WRITER, **UNSUPPORTED}.values())


def test_every_flow_op_has_a_renderer_or_a_reason():
    assert set(RENDERERS) | set(NOT_EXPORTED) == set(flow.OP_NAMES)
    assert not set(RENDERERS) & set(NOT_EXPORTED)
    assert all(isinstance(why, str) and len(why) > 20 for why in NOT_EXPORTED.values())


# -- every emitter against the op's one-example meaning ---------------------------------------------------
def _emitter_cases():
    for op in KERNEL_OPS:
        for n, case in enumerate(CASES.get(op, [])):
            yield pytest.param(op, n, *case, id=f"{op}-{n}")


@pytest.mark.parametrize("op,n,shapes,attrs,kinds", list(_emitter_cases()))
def test_emitter_matches_the_meaning_for_every_batching(op, n, shapes, attrs, kinds):
    """One model per case, holding the node once for each pattern of batched arguments."""
    from onnx import helper

    attrs = _full_attrs(op, attrs)
    out_shape = tuple(OPS[op].shape(list(shapes), attrs))
    rng = np.random.default_rng(zlib.crc32(repr((op, n, shapes)).encode()))
    g = Graph(Names(), "case", "float32")
    rows = g.add_input("rows", np.float32, [BATCH])
    batch = g.op("Shape", [rows], "batch")
    feeds, wants = {"rows": np.zeros(B, np.float32)}, {}
    for flags in itertools.product((False, True), repeat=len(shapes)):
        tag = "".join("B" if f else "-" for f in flags)
        args = [_array(rng, ((B,) if f else ()) + s, k, "float32") for s, f, k in zip(shapes, flags, kinds)]
        names = []
        for i, (a, f, s, k) in enumerate(zip(args, flags, shapes, kinds)):
            name = f"{tag}.{i}"
            feeds[name] = a.astype(np.int64) if k == "token" else a
            names.append(g.add_input(name, np.int64 if k == "token" else np.float32, ([BATCH] if f else []) + list(s)))
        out = EMITTERS[op](Site(g, names, flags, list(shapes), attrs, out_shape, batch))
        g.add_output(out, f"{tag}.out", np.float32, ([BATCH] if any(flags) else []) + list(out_shape))
        if any(flags):
            wants[f"{tag}.out"] = np.stack([np.asarray(_meaning(op, [a[b] if f else a for a, f in zip(args, flags)],
                                                                attrs)) for b in range(B)])
        else:
            wants[f"{tag}.out"] = np.asarray(_meaning(op, args, attrs))
    model = helper.make_model(g.make(f"{op}_{n}"), opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    sess = session(model)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    for name, want in wants.items():
        assert got[name].shape == want.shape, name
        np.testing.assert_allclose(got[name], want, rtol=2e-6, atol=2e-6, err_msg=f"{op} case {n}, batching {name}")


# -- whole models --------------------------------------------------------------------------------------------
CONTEXT_HEAD = """\
rnncompile: 1
name: ctxhead
dims: {I: 3, H: 4, C: 2, T: 6}
cells:
  rnn:
    inputs: {x: I}
    state: {h: {shape: H, init: h0}}
    params: {W: {shape: [H, H + I]}, b: {shape: [H]}}
    update: {h: "tanh(W @ concat(h, x) + b + t / seq_len)"}
    outputs: {h: h}
model:
  input: {x: [T, I]}
  context: {h0: [H], bias: [C]}
  layers:
    - {scan: rnn, direction: bidirectional, merge: mean}
    - {scan: rnn, direction: bidirectional, merge: separate}
  head:
    params: {W_y: {shape: [C, H]}}
    outputs: {y: "softmax(W_y @ (h_forward - h_reverse) + bias)"}
"""
BI_LAST = """\
rnncompile: 1
name: bilast
dims: {I: 5, H: 6, C: 3, T: 7}
cells:
  gru:
    inputs: {x: I}
    state: {h: H}
    gates:
      r: {act: sigmoid, from: [h, x]}
      z: {act: sigmoid, from: [h, x]}
      n: {act: tanh, from: [x]}
    update: {h: "(1 - z) * n * r + z * h"}
    outputs: {h: h}
model:
  input: {x: [T, I]}
  scan: gru
  direction: bidirectional
  merge: sum
  head:
    at: last
    params: {W_y: {shape: [C, H]}, b_y: {shape: [C]}}
    outputs: {y: softmax(W_y @ h + b_y)}
"""
INLINE = {"ctxhead": CONTEXT_HEAD, "bilast": BI_LAST}


def compiled(name):
    if name in INLINE:
        return rnncompile.compile_text(INLINE[name], f"{name}.yaml")
    return rnncompile.compile(str(ROOT / "specs" / f"{name}.yaml"))


def compare(program, lengths: bool, dtype="float32", seed=0, native=True, params=None):
    """Export `program`, run it in onnxruntime and in rnncompile on the same batch; the largest difference."""
    params = api.make_params(program, seed, dtype=dtype) if params is None else params
    model = export_onnx(program, params, dtype, lengths, native)
    onnx.checker.check_model(model, full_check=True)
    inputs = api.seeded_inputs(program, B, seed=seed + 1, dtype=dtype) if program.plan.inputs else {}
    context = api.seeded_context(program, B, seed, dtype) if program.plan.context else None
    first = program.plan.stack.inputs[0] if program.plan.stack else None
    steps = inputs[first].shape[1] if first else 0
    lens = np.array([steps, steps // 2, 1, steps - 1]) if lengths and first else None  # full, half, one, all but one
    feeds = {**inputs, **(context or {}), **({LENGTHS: lens.astype(np.int32)} if lens is not None else {})}
    sess = session(model)
    assert {i.name for i in sess.get_inputs()} == set(feeds)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    res = api.run(program, inputs=inputs or None, params=params, lengths=lens, context=context, dtype=dtype)
    want = {**res.outputs, **{f"final.{k}": v for k, v in res.final_state.items()}}
    if res.tokens is not None:
        want.update(tokens=res.tokens, token_lengths=res.lengths)
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k].shape == v.shape and got[k].dtype == v.dtype, k
    return max((float(np.max(np.abs(got[k] - v))) for k, v in want.items() if v.size), default=0.0), model


def _whole_model_cases():
    for name in SEQUENCE_SPECS + list(INLINE):
        for cells in ("scan", "native") if name in NATIVE else ("scan",):
            for lengths in (False, True):
                yield pytest.param(name, cells, lengths, id=f"{name}-{cells}-{'lengths' if lengths else 'full'}")


@pytest.mark.parametrize("name,cells,lengths", list(_whole_model_cases()))
def test_exported_model_reproduces_rnncompile(name, cells, lengths):
    err, model = compare(compiled(name), lengths, native=cells == "native")
    assert err <= 1e-5, f"{name}: onnxruntime differs from rnncompile by {err:.2e}"
    recurrent = {n.op_type for n in model.graph.node} & {"Scan", "LSTM", "GRU", "RNN"}
    if cells == "native":  # every scan is ONNX's own operator; a Scan is left only for a head at every step
        assert recurrent - {"Scan"} == NATIVE[name]
        heads = sum(op.at == "every_step" for op in compiled(name).flow.of("apply"))
        assert sum(n.op_type == "Scan" for n in model.graph.node) == heads
    else:
        assert recurrent == {"Scan"}, "each cell runs as a Scan"
    assert any(i.name == LENGTHS for i in model.graph.input) == lengths


def test_only_the_cells_onnx_computes_exactly_are_native():
    """Recognition is checked by numbers: the shipped cells in ONNX's own forms are native; an LSTM whose
    input gate is tied to its forget gate, a GRU with the reset before the multiply, a cell with an
    embedding inside it are not (and still export, as Scans)."""
    from rnncompile.interop.onnx.onnx_native import recognise

    def native_ops(program):
        params = api.make_params(program, 0)
        return [getattr(recognise(program, op.use, params), "op", None) for op in program.flow.of("scan")]

    assert native_ops(compiled("lstm")) == ["LSTM"] and native_ops(compiled("bigru")) == ["GRU"] * 4
    assert native_ops(compiled("bilstm_gru")) == ["LSTM", "GRU"]
    tied = (ROOT / "specs" / "lstm.yaml").read_text().replace("c_next: f * c + i * g", "c_next: f * c + (1 - f) * g")
    reset_first = (ROOT / "specs" / "gru.yaml").read_text().replace(
        "tanh(W_in @ x + b_in + r * (W_hn @ h + b_hn))", "tanh(W_in @ x + b_in + W_hn @ (r * h) + b_hn)")
    for text in (tied, reset_first):
        program = rnncompile.compile_text(text, "variant.yaml")
        assert native_ops(program) == [None]
        err, _ = compare(program, True)
        assert err <= 1e-5
    assert native_ops(compiled("elman")) == [None] and native_ops(compiled("sentiment")) == [None]
    assert native_ops(compiled("bilast")) == [None, None]


@pytest.mark.parametrize("name", ["lstm", "gru", "deep_lstm"])
def test_native_models_import_back_as_an_equivalent_spec(name, tmp_path):
    """`rnncompile import` of an exported model: the spec it writes runs as onnxruntime runs the export."""
    from rnncompile.interop.onnx import import_model, run_like_onnx

    program = compiled(name)
    params = api.make_params(program, 2)
    model = export_onnx(program, params)
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    imported = import_model(str(path))
    back = rnncompile.compile_text(imported.text, f"{name}_imported.yaml")
    inputs = api.seeded_inputs(program, B, seed=4)
    feeds = {**inputs, LENGTHS: np.array([10, 5, 1, 9], np.int32)}
    sess = session(model)
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    got = run_like_onnx(imported, back, feeds, imported.weights)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5, rtol=0, err_msg=k)


def test_float64_agrees_to_float64_precision():
    err, model = compare(compiled("bilstm_gru"), True, "float64")
    assert err <= 1e-12
    assert model.graph.initializer[0].data_type == onnx.TensorProto.DOUBLE


def test_params_are_initializers_named_by_their_weight_keys():
    program = compiled("bigru")
    params = api.make_params(program, 3)
    model = export_onnx(program, params, native=False)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert set(inits) == set(program.params)
    for key, value in params.items():
        np.testing.assert_array_equal(inits[key], value)


def test_native_weights_are_onnx_stacks_of_the_spec_params():
    """ONNX's LSTM stacks its gates i o f c: W over x, R over h, B = [Wb, Rb] (the spec's bias in Wb)."""
    program = compiled("lstm")
    params = api.make_params(program, 3)
    model = export_onnx(program, params)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert set(inits) == {"lstm.LSTM.W", "lstm.LSTM.R", "lstm.LSTM.B"}
    H = 16
    for k, g in enumerate("iofg"):
        np.testing.assert_array_equal(inits["lstm.LSTM.W"][0, k * H:(k + 1) * H], params[f"W_{g}"][:, H:])
        np.testing.assert_array_equal(inits["lstm.LSTM.R"][0, k * H:(k + 1) * H], params[f"W_{g}"][:, :H])
        np.testing.assert_array_equal(inits["lstm.LSTM.B"][0, k * H:(k + 1) * H], params[f"b_{g}"])
    assert not inits["lstm.LSTM.B"][0, 4 * H:].any()
    assert "lstm: LSTM (W_i, b_i, W_o, b_o, W_f, b_f, W_g, b_g stacked into lstm.LSTM.W" in model.doc_string


def test_reverse_scans_run_backwards_and_bidirectional_is_two_scans():
    model = export_onnx(compiled("bigru"), api.make_params(compiled("bigru"), 0), native=False)
    scans = [n for n in model.graph.node if n.op_type == "Scan"]
    directions = [next((list(a.ints) for a in n.attribute if a.name == "scan_input_directions"), None) for n in scans]
    assert len(scans) == 4 and [d is not None and set(d) == {1} for d in directions] == [False, True, False, True]


DECODERS = ["seq2seq", "captioner", "attention_luong", "attention_bahdanau"]


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("name", DECODERS)
def test_decoders_export_greedy_as_a_loop_and_teacher_forcing_as_a_scan(name, lengths):
    program = compiled(name)
    err, model = compare(program, lengths)
    assert err <= 1e-5, f"{name}: onnxruntime differs from rnncompile by {err:.2e}"
    (dec,) = program.flow.of("decode")
    loops = [n for n in model.graph.node if n.op_type == "Loop"]
    assert len(loops) == (0 if dec.decoder.feed == "target" else 1)


def test_a_greedy_loop_stops_when_every_sequence_has_written_the_end_token():
    """A strong end-token row in the head: sequences end after 1 to 7 tokens, the loop after 7 of its 8 steps."""
    from rnncompile.drivers import start_and_end_ids

    program = compiled("seq2seq")
    params = api.make_params(program, 0)
    _, end = start_and_end_ids(program.vocab)
    params["decoder.head.W_p"] = params["decoder.head.W_p"].copy()
    params["decoder.head.W_p"][end] *= 8
    model = export_onnx(program, params)
    inputs, lens = api.seeded_inputs(program, 6, seed=3), np.array([8, 3, 1, 5, 8, 2])
    sess = session(model)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {**inputs, LENGTHS: lens.astype(np.int32)})))
    res = api.run(program, inputs=inputs, params=params, lengths=lens)
    assert res.tokens.shape == (6, 7) and res.lengths.tolist() == [1, 1, 3, 7, 1, 5]
    np.testing.assert_array_equal(got["tokens"], res.tokens)
    np.testing.assert_array_equal(got["token_lengths"], res.lengths)
    np.testing.assert_allclose(got["p"], res.outputs["p"], atol=1e-5, rtol=0)


SAMPLING = (ROOT / "specs" / "seq2seq.yaml").read_text().replace("feed: previous_output ",
                                                                   "sample: sample\n    feed: previous_output ")


@pytest.mark.parametrize("name,op,why", [
    ("rvnn", "tree_fold", NOT_EXPORTED["tree_fold"]),
    ("treelstm_childsum", "tree_fold", NOT_EXPORTED["tree_fold"]),
    ("sampling", "decode", "it samples its tokens with NumPy's seeded generator, whose stream ONNX cannot "
                           "reproduce (export a greedy decoder: `sample: greedy`)")])
def test_what_does_not_export_says_why(name, op, why):
    program = rnncompile.compile_text(SAMPLING, "sampling.yaml") if name == "sampling" else compiled(name)
    with pytest.raises(ExportError) as e:
        export_onnx(program, api.make_params(program, 0))
    where = ".".join(map(str, program.flow.of(op)[0].path))
    assert str(e.value) == f"{program.name} does not export to ONNX: its {op} ({where}) cannot be written yet: {why}"


# -- the command line -------------------------------------------------------------------------------------
def test_cli_writes_a_checked_model_with_the_given_weights(cli, tmp_path):
    spec = str(ROOT / "specs" / "sentiment.yaml")
    weights = tmp_path / "w.npz"
    assert cli("run", spec, "--seed", "5", "--save-weights", str(weights))[0] == 0
    out = tmp_path / "sentiment.onnx"
    code, text, err = cli("export", spec, "--format", "onnx", "-o", str(out), "--weights", str(weights))
    assert code == 0, err
    assert f"wrote {out}" in text and "inputs: w [B, T], sequence_lens [B]" in text
    assert "outputs: p [B, 2], final.h [B, 32], final.c [B, 32]" in text and "cells as: Scan" in text
    assert "starts from the spec's initial state" in err
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    saved = dict(np.load(weights))
    assert {t.name: onnx.numpy_helper.to_array(t).tolist() for t in model.graph.initializer} == \
        {k: v.tolist() for k, v in saved.items()}
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["rnncompile.spec"] == "sentiment.yaml" and meta["rnncompile.weights"] == "w.npz"


def test_cli_no_lengths_leaves_the_input_out(cli, tmp_path):
    out = tmp_path / "gru.onnx"
    code, text, err = cli("export", ROOT / "specs" / "gru.yaml", "--format", "onnx", "--no-lengths", "-o", out)
    assert code == 0, err
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["x"]


@pytest.mark.parametrize("args,message", [
    (["specs/rvnn.yaml", "--format", "onnx", "-o", "{tmp}/s.onnx"],
     "error: rvnn does not export to ONNX: its tree_fold (model.fold) cannot be written yet"),
    (["specs/lstm.yaml", "--format", "onnx", "--backend", "c", "-o", "{tmp}/s.onnx"],
     "error: --backend chooses the code written; --format onnx writes an ONNX model, leave it out"),
    (["specs/lstm.yaml", "--no-lengths", "-o", "{tmp}/s.py"],
     "error: --no-lengths and --no-native are for --format onnx"),
    (["specs/lstm.yaml", "--format", "onnx", "-o", "{tmp}/s.txt"],
     "unknown output format (`.txt`); use .onnx"),
])
def test_cli_refusals_are_clear_and_write_nothing(cli, tmp_path, args, message):
    args = [str(ROOT / a) if a.startswith("specs/") else a.format(tmp=tmp_path) for a in args]
    code, text, err = cli("export", *args)
    assert code in (1, 2) and message in err, err
    assert not any(tmp_path.iterdir())


def test_cli_native_by_default_and_scans_on_request(cli, tmp_path):
    spec = str(ROOT / "specs" / "deep_lstm.yaml")
    for flag, ops in (([], {"LSTM"}), (["--no-native"], {"Scan"})):
        out = tmp_path / f"deep{len(flag)}.onnx"
        code, text, err = cli("export", spec, "--format", "onnx", *flag, "-o", str(out))
        assert code == 0, err
        assert f"cells as: {', '.join(sorted(ops))}" in text
        assert {n.op_type for n in onnx.load(str(out)).graph.node} & {"LSTM", "Scan"} == ops


@pytest.mark.parametrize("native", [True, False], ids=["native", "scan"])
def test_a_state_starting_from_a_param_or_a_constant_feeds_the_start_value(native):
    """initial_h from a param, initial_c from a constant: the native node takes them as its initial state."""
    text = (ROOT / "specs" / "lstm.yaml").read_text().replace(
        "state: {h: H, c: H}", "state: {h: {shape: H, init: h_init}, c: {shape: H, init: 0.5}}").replace(
        "    gates:", "    params: {h_init: {shape: [H], init: normal}}\n    gates:", 1)
    program = rnncompile.compile_text(text, "lstm_start.yaml")
    for lengths in (False, True):
        err, model = compare(program, lengths, native=native)
        assert err <= 1e-5
        assert ("LSTM" in {n.op_type for n in model.graph.node}) == native
        assert "h_init" in {t.name for t in model.graph.initializer}
