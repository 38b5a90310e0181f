"""`rnncompile import`: ONNX RNN/GRU/LSTM models -> spec + weights, checked against onnxruntime.

Each case builds an ONNX graph with onnx.helper (one recurrent node per attribute case, plus
models exported from PyTorch), imports it, compiles the spec written and runs it on the numpy
and c backends with the weights written, on the ONNX model's own feeds; onnxruntime (and, where it
implements the case, onnx's reference evaluator) gives the outputs to match.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import rnncompile
from rnncompile.errors import DataError

onnx = pytest.importorskip("onnx", reason="ONNX import tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="ONNX import tests compare with onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from rnncompile.interop.onnx import import_model, run_like_onnx  # noqa: E402

pytestmark = pytest.mark.onnx

OPSET, IR_VERSION = 14, 8
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
T, B, I, H = 5, 3, 4, 3
TOL = {np.float32: 1e-5, np.float64: 1e-10}
BACKENDS = ["numpy", "c"]


def _elem(dtype):
    return TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT


def recurrent_model(op, *, direction="forward", layout=0, bias=True, peepholes=False, lengths=False,
                    h0=None, c0=None, outputs=("Y", "Y_h", "Y_c"), dtype=np.float32, seed=0, **attrs):
    """One ONNX recurrent node with random initializers; h0/c0: None, "init" or "input"."""
    rng = np.random.default_rng(seed)
    d = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    inits = {"W": rng.uniform(-0.7, 0.7, (d, g * H, I)), "R": rng.uniform(-0.7, 0.7, (d, g * H, H))}
    if bias:
        inits["B"] = rng.uniform(-0.5, 0.5, (d, 2 * g * H))
    if peepholes:
        inits["P"] = rng.uniform(-0.5, 0.5, (d, 3 * H))
    graph_inputs = [helper.make_tensor_value_info("X", _elem(dtype), [T, B, I] if layout == 0 else [B, T, I])]
    names = ["X", "W", "R", "B" if bias else "", "seq_lens" if lengths else ""]
    if lengths:
        graph_inputs.append(helper.make_tensor_value_info("seq_lens", TensorProto.INT32, [B]))
    state_shape = [d, B, H] if layout == 0 else [B, d, H]
    for state, how in (("h0", h0), ("c0", c0)):
        if state == "c0" and op != "LSTM":
            continue
        if how == "init":
            inits[state] = np.broadcast_to(rng.uniform(-1, 1, (d, 1, H)), (d, B, H)).copy()
            if layout:
                inits[state] = inits[state].transpose(1, 0, 2).copy()
        elif how == "input":
            graph_inputs.append(helper.make_tensor_value_info(state, _elem(dtype), state_shape))
        names.append(state if how else "")
    if op == "LSTM":
        names.append("P" if peepholes else "")
    while names and not names[-1]:
        names.pop()
    outs = [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")[:3 if op == "LSTM" else 2]]
    while outs and not outs[-1]:
        outs.pop()
    node = helper.make_node(op, names, outs, name=f"{op.lower()}_node", direction=direction, hidden_size=H,
                            **({"layout": layout} if layout else {}), **attrs)
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, _elem(dtype), None) for o in outs if o],
                              [numpy_helper.from_array(v.astype(dtype), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def feeds_for(model, seed=1, lengths=(T, 2, 4)):
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value or (B if k == 0 else T) for k, d in enumerate(tt.shape.dim)]
        if tt.elem_type == TensorProto.INT32:
            out[vi.name] = np.asarray(lengths, np.int32)
        elif tt.elem_type == TensorProto.INT64:
            out[vi.name] = rng.integers(0, 10, shape)
        else:
            dtype = np.float64 if tt.elem_type == TensorProto.DOUBLE else np.float32
            out[vi.name] = rng.standard_normal(shape).astype(dtype)
    return out


def onnxruntime_outputs(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _batch_major(out: np.ndarray, name: str) -> np.ndarray:
    """A layout-0 output in layout 1: Y [T, D, B, H] -> [B, T, D, H]; Y_h, Y_c [D, B, H] -> [B, D, H]."""
    return out.transpose(2, 0, 1, 3) if name == "Y" else out.transpose(1, 0, 2)


def check_import(model, tmp_path, dtype=np.float32, reference=False, lengths=(T, 2, 4), twin=None):
    """Import `model`, run the spec on numpy and c; return {backend: max abs difference} against onnxruntime.
    twin: the same node with layout 0, for a layout-1 model (onnxruntime runs only layout 0), checked
    with the reference evaluator as well."""
    imported = import_model(model, "case.onnx", name="case")
    spec = tmp_path / "case.yaml"
    spec.write_text(imported.text)
    prog = rnncompile.compile(spec)
    feeds = feeds_for(model, lengths=lengths)
    if dtype == np.float64:  # onnxruntime's RNN, GRU and LSTM kernels are float32 only
        oracles = []
    elif twin is None:
        oracles = [onnxruntime_outputs(model, feeds)]
    else:
        twin_feeds = {k: v.swapaxes(0, 1) if v.ndim == 3 else v for k, v in feeds.items()}
        oracles = [{k: _batch_major(v, k) for k, v in onnxruntime_outputs(twin, twin_feeds).items()}]
        reference = "seq_lens" not in feeds
    if reference or not oracles:
        oracles.append(dict(zip([o.name for o in model.graph.output], ReferenceEvaluator(model).run(None, feeds))))
    dt = "float64" if dtype == np.float64 else "float32"
    diffs = {}
    for backend in BACKENDS:
        got = run_like_onnx(imported, prog, feeds, imported.weights, backend=backend, dtype=dt)
        worst = 0.0
        for want in oracles:
            assert set(got) == set(want)
            for name, w in want.items():
                assert got[name].shape == w.shape, (backend, name, got[name].shape, w.shape)
                worst = max(worst, float(np.abs(got[name] - w).max()))
        diffs[backend] = worst
        assert worst <= TOL[dtype], (backend, worst)
    return diffs


# ---- one node per attribute case --------------------------------------------------

CASES = {
    "rnn_forward": ("RNN", {}),
    "rnn_reverse": ("RNN", {"direction": "reverse"}),
    "rnn_bidirectional": ("RNN", {"direction": "bidirectional"}),
    "rnn_layout1": ("RNN", {"layout": 1, "direction": "bidirectional"}),
    "rnn_relu": ("RNN", {"activations": ["Relu"]}),
    "rnn_sigmoid_no_bias": ("RNN", {"activations": ["Sigmoid"], "bias": False}),
    "rnn_hard_sigmoid_alpha_beta": ("RNN", {"activations": ["HardSigmoid"], "activation_alpha": [0.3],
                                            "activation_beta": [0.4]}),
    "rnn_hard_sigmoid_defaults": ("RNN", {"activations": ["HardSigmoid"]}),
    "rnn_softplus": ("RNN", {"activations": ["Softplus"]}),
    "rnn_softsign": ("RNN", {"activations": ["Softsign"]}),
    "rnn_leaky_relu": ("RNN", {"activations": ["LeakyRelu"], "activation_alpha": [0.1]}),
    "rnn_elu": ("RNN", {"activations": ["Elu"], "activation_alpha": [0.5]}),
    "rnn_affine": ("RNN", {"activations": ["Affine"], "activation_alpha": [0.5], "activation_beta": [0.1]}),
    "rnn_scaled_tanh": ("RNN", {"activations": ["ScaledTanh"], "activation_alpha": [1.5],
                                "activation_beta": [0.5]}),
    "rnn_bidirectional_same_acts": ("RNN", {"direction": "bidirectional", "activations": ["Relu", "Relu"]}),
    "rnn_clip": ("RNN", {"clip": 0.5}),
    "rnn_initial_h_init": ("RNN", {"h0": "init", "direction": "bidirectional"}),
    "rnn_initial_h_input": ("RNN", {"h0": "input", "direction": "reverse"}),
    "rnn_lengths": ("RNN", {"lengths": True, "direction": "bidirectional"}),
    "rnn_only_y_h": ("RNN", {"outputs": ("Y_h",)}),
    "rnn_only_y": ("RNN", {"outputs": ("Y",), "layout": 1}),
    "gru_lbr0": ("GRU", {}),
    "gru_lbr1": ("GRU", {"linear_before_reset": 1}),
    "gru_lbr0_bidirectional": ("GRU", {"direction": "bidirectional", "h0": "init"}),
    "gru_lbr1_reverse_layout1": ("GRU", {"linear_before_reset": 1, "direction": "reverse", "layout": 1}),
    "gru_lbr1_no_bias": ("GRU", {"linear_before_reset": 1, "bias": False}),
    "gru_clip": ("GRU", {"clip": 0.4, "linear_before_reset": 1}),
    "gru_activations": ("GRU", {"activations": ["HardSigmoid", "Softsign"], "activation_alpha": [0.25],
                                "activation_beta": [0.45]}),
    "gru_lengths_initial_h_input": ("GRU", {"lengths": True, "h0": "input", "linear_before_reset": 1}),
    "lstm_forward": ("LSTM", {}),
    "lstm_reverse": ("LSTM", {"direction": "reverse"}),
    "lstm_bidirectional": ("LSTM", {"direction": "bidirectional"}),
    "lstm_layout1": ("LSTM", {"layout": 1, "direction": "bidirectional", "h0": "init", "c0": "init"}),
    "lstm_peepholes": ("LSTM", {"peepholes": True, "direction": "bidirectional"}),
    "lstm_input_forget": ("LSTM", {"input_forget": 1}),
    "lstm_clip": ("LSTM", {"clip": 0.3}),
    "lstm_activations": ("LSTM", {"activations": ["HardSigmoid", "Tanh", "Softsign"],
                                  "activation_alpha": [0.3], "activation_beta": [0.6]}),
    "lstm_alphas_skip_plain_activations": ("LSTM", {"activations": ["Sigmoid", "LeakyRelu", "Elu"],
                                                    "activation_alpha": [0.2, 0.7]}),  # f takes none: g 0.2, h 0.7
    "lstm_no_bias": ("LSTM", {"bias": False, "peepholes": True}),
    "lstm_initial_state_input": ("LSTM", {"h0": "input", "c0": "input"}),
    "lstm_lengths": ("LSTM", {"lengths": True, "direction": "bidirectional", "h0": "init", "c0": "init"}),
    "lstm_only_y_c": ("LSTM", {"outputs": ("Y_c",)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_single_node_matches_onnxruntime(case, tmp_path):
    op, kw = CASES[case]
    twin = recurrent_model(op, **{**kw, "layout": 0}) if kw.get("layout") else None
    check_import(recurrent_model(op, **kw), tmp_path, twin=twin)


@pytest.mark.parametrize("case", ["lstm_peepholes", "lstm_layout1", "gru_lbr0_bidirectional", "gru_lbr1", "gru_lbr0",
                                  "rnn_bidirectional", "rnn_initial_h_input", "gru_lbr1_no_bias"])
def test_float64_matches_reference_evaluator(case, tmp_path):
    """onnxruntime runs these ops in float32 only: float64 is checked with onnx's reference evaluator (which
    ignores LSTM's clip and input_forget and has no sequence_lens, so those are checked in float32)."""
    op, kw = CASES[case]
    check_import(recurrent_model(op, dtype=np.float64, **kw), tmp_path, np.float64, reference=True)


def test_spec_reads_like_the_shipped_ones():
    text = import_model(recurrent_model("LSTM", peepholes=True, clip=0.5), "m.onnx", name="m").text
    assert "gate order in ONNX: i o f c (LSTM), z r h (GRU)" in text
    assert "i: sigmoid(minimum(maximum(W_i @ X + R_i @ h + P_i * c + b_i, -0.5), 0.5))" in text
    assert "o: sigmoid(minimum(maximum(W_o @ X + R_o @ h + P_o * c_next + b_o, -0.5), 0.5))" in text
    assert "W_g: {shape: [H, I]}   # g: ONNX's c (cell candidate)" in text
    gru0 = import_model(recurrent_model("GRU"), "m.onnx").text
    assert "n: tanh(W_n @ X + R_n @ (r * h) + b_n)" in gru0
    gru1 = import_model(recurrent_model("GRU", linear_before_reset=1), "m.onnx").text
    assert "n: tanh(W_n @ X + b_Wn + r * (R_n @ h + b_Rn))" in gru1  # as specs/gru.yaml writes it


# ---- the graph around the nodes, built by hand ----------------------------------------

def _const(name, value):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def _finish(model, nodes, inits, outputs):
    """`model` (one recurrent node) with `nodes` after it and `outputs` as the graph's outputs."""
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items())
    del model.graph.output[:]
    model.graph.output.extend(helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs)
    return model


def test_gemm_head_over_the_final_state(tmp_path):
    """Y_h -> Squeeze -> Gemm (transB, alpha, beta) -> Softmax: many-to-one."""
    rng = np.random.default_rng(5)
    model = recurrent_model("GRU", outputs=("Y_h",), linear_before_reset=1)
    model = _finish(model, [
        _const("axes0", np.array([0], np.int64)),
        helper.make_node("Squeeze", ["Y_h", "axes0"], ["last"]),
        helper.make_node("Gemm", ["last", "Wc", "bc"], ["logits"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ], {"Wc": rng.standard_normal((4, H)), "bc": rng.standard_normal(4)}, ["probs"])
    text = import_model(model, "m.onnx").text
    assert "at: last" in text and "probs: softmax(W_y @ h + b_y)" in text
    check_import(model, tmp_path)


def test_stacked_nodes_with_glue_and_a_head(tmp_path):
    """Two bidirectional LSTM nodes joined by Transpose + Reshape (as torch exports them), a MatMul + Add +
    LogSoftmax head, the top Y and the lower layer's Y_h as outputs too."""
    rng = np.random.default_rng(6)
    first = recurrent_model("LSTM", direction="bidirectional", outputs=("Y", "Y_h"), seed=3)
    second = recurrent_model("LSTM", direction="bidirectional", outputs=("Y",), seed=4)
    w2 = numpy_helper.from_array(rng.uniform(-0.5, 0.5, (2, 4 * H, 2 * H)).astype(np.float32), "W2")
    node2 = second.graph.node[0]
    node2.input[0], node2.input[1], node2.input[2], node2.input[3] = "x2", "W2", "R2", "B2"
    node2.output[0] = "Y2"
    node2.name = "lstm_top"
    inits = {t.name: numpy_helper.to_array(t) for t in second.graph.initializer}
    model = _finish(first, [
        helper.make_node("Transpose", ["Y"], ["yt"], perm=[0, 2, 1, 3]),
        _const("shape", np.array([0, 0, -1], np.int64)),
        helper.make_node("Reshape", ["yt", "shape"], ["x2"]),
        node2,
        helper.make_node("Transpose", ["Y2"], ["y2t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["y2t", "shape"], ["top"]),
        helper.make_node("MatMul", ["top", "Wo"], ["mm"]),
        helper.make_node("Add", ["bo", "mm"], ["logits"]),
        helper.make_node("LogSoftmax", ["logits"], ["logp"], axis=-1),
    ], {"R2": inits["R"], "B2": inits["B"], "Wo": rng.standard_normal((2 * H, 5)), "bo": rng.standard_normal(5)},
        ["logp", "Y2", "Y_h"])
    model.graph.initializer.append(w2)
    imported = import_model(model, "m.onnx")
    assert "logp: log(softmax(W_y @ h + b_y))" in imported.text and "layers:" in imported.text
    check_import(model, tmp_path)


def test_sequence_lens_with_a_head_differs_only_at_padded_steps(tmp_path):
    model = recurrent_model("LSTM", lengths=True, outputs=("Y",))
    model = _finish(model, [
        _const("axes1", np.array([1], np.int64)),
        helper.make_node("Squeeze", ["Y", "axes1"], ["y"]),
        helper.make_node("Softmax", ["y"], ["p"], axis=-1),
    ], {}, ["p"])
    imported = import_model(model, "m.onnx")
    assert any("padded steps" in n for n in imported.notes)
    spec = tmp_path / "m.yaml"
    spec.write_text(imported.text)
    feeds = feeds_for(model)
    want = onnxruntime_outputs(model, feeds)["p"]  # [T, B, H]
    got = run_like_onnx(imported, rnncompile.compile(spec), feeds, imported.weights)["p"]
    for b, n in enumerate(feeds["seq_lens"]):
        np.testing.assert_allclose(got[:n, b], want[:n, b], atol=1e-5)
        assert not got[n:, b].any()


# ---- models exported from PyTorch --------------------------------------------------

def _torch():
    return pytest.importorskip("torch", reason="exporting models needs torch")


def _export(module, example, tmp_path, **kw):
    t = _torch()
    path = tmp_path / "model.onnx"
    with t.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's advice on batch sizes and deprecations
        t.onnx.export(module, example, str(path), dynamo=False, **kw)
    return onnx.load(str(path))


def _language_model(kind, bidirectional, layers, batch_first, log_softmax=True):
    t = _torch()

    class LM(t.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = t.nn.Embedding(10, 4)
            self.rnn = getattr(t.nn, kind)(4, 3, num_layers=layers, bidirectional=bidirectional,
                                           batch_first=batch_first)
            self.fc = t.nn.Linear(3 * (2 if bidirectional else 1), 5)

        def forward(self, ids):
            y, _ = self.rnn(self.emb(ids))
            z = self.fc(y)
            return t.log_softmax(z, -1) if log_softmax else t.softmax(z, -1)

    t.manual_seed(0)
    return LM()


TORCH_CASES = {
    "lstm_2layer_bidirectional_batch_first": ("LSTM", True, 2, True, True),
    "gru_1layer": ("GRU", False, 1, False, True),
    "gru_2layer_bidirectional": ("GRU", True, 2, False, False),
    "rnn_2layer": ("RNN", False, 2, True, True),
    "lstm_2layer": ("LSTM", False, 2, False, False),
}


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_torch_exported_model_matches_onnxruntime(case, tmp_path):
    kind, bi, layers, batch_first, log = TORCH_CASES[case]
    t = _torch()
    model = _export(_language_model(kind, bi, layers, batch_first, log), (t.zeros(2, 6, dtype=t.long),), tmp_path,
                    input_names=["ids"], output_names=["p"], dynamic_axes={"ids": {0: "a", 1: "b"}})
    check_import(model, tmp_path)


@pytest.mark.torch
def test_torch_many_to_one_from_final_state(tmp_path):
    """h_n[-1] -> Linear -> softmax: a head at the last step."""
    t = _torch()

    class Classifier(t.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = t.nn.LSTM(I, H)
            self.fc = t.nn.Linear(H, 2)

        def forward(self, x):
            _, (h, _) = self.rnn(x)
            return t.softmax(self.fc(h[-1]), -1)

    t.manual_seed(1)
    model = _export(Classifier(), (t.zeros(T, B, I),), tmp_path, input_names=["x"], output_names=["p"])
    text = import_model(model, "c.onnx").text
    assert "at: last" in text
    check_import(model, tmp_path)


@pytest.mark.torch
def test_torch_many_to_one_from_the_last_step(tmp_path):
    """y[:, -1, :] -> Linear (a Gather of step -1, then Gemm): a head at the last step."""
    t = _torch()

    class Classifier(t.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = t.nn.GRU(I, H, batch_first=True)
            self.fc = t.nn.Linear(H, 2)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.fc(y[:, -1, :])

    t.manual_seed(2)
    model = _export(Classifier(), (t.zeros(B, T, I),), tmp_path, input_names=["x"], output_names=["p"])
    assert "at: last" in import_model(model, "c.onnx").text
    check_import(model, tmp_path)


def test_last_step_of_a_reverse_layer_is_refused():
    model = recurrent_model("GRU", direction="reverse", outputs=("Y",))
    model = _finish(model, [
        _const("axes1", np.array([1], np.int64)),
        helper.make_node("Squeeze", ["Y", "axes1"], ["y"]),
        _const("last", np.array(-1, np.int64)),
        helper.make_node("Gather", ["y", "last"], ["y_last"], name="pick", axis=0),
    ], {}, ["y_last"])
    assert "ONNX node `pick` (Gather): takes the last step of a reverse layer's Y" in _error(model)


@pytest.mark.torch
def test_torch_model_through_the_cli(cli, tmp_path):
    """import, validate, render, run and export C: the Done-when path."""
    t = _torch()
    model = _export(_language_model("LSTM", True, 2, True), (t.zeros(2, 6, dtype=t.long),), tmp_path,
                    input_names=["ids"], output_names=["p"])
    onnx.save(model, str(tmp_path / "lm.onnx"))
    code, out, err = cli("import", tmp_path / "lm.onnx", "-o", tmp_path / "lm.yaml")
    assert code == 0, err
    assert "wrote" in out and (tmp_path / "lm.npz").is_file()
    assert cli("validate", tmp_path / "lm.yaml")[0] == 0
    assert cli("render", tmp_path / "lm.yaml", "-o", tmp_path / "lm.svg")[0] == 0
    for backend in ("numpy", "python", "c"):
        code, out, err = cli("run", tmp_path / "lm.yaml", "--weights", tmp_path / "lm.npz", "--text", "1 2 3",
                             "--backend", backend)
        assert code == 0, err
    code, out, err = cli("export", tmp_path / "lm.yaml", "--backend", "c", "--weights", tmp_path / "lm.npz",
                         "-o", tmp_path / "lm.c")
    assert code == 0, err


# ---- what is refused, and how ------------------------------------------------------

def _error(model) -> str:
    with pytest.raises(DataError) as e:
        import_model(model, "m.onnx")
    return str(e.value)


def test_unsupported_op_names_the_node():
    model = recurrent_model("RNN", outputs=("Y",))
    node = helper.make_node("Cos", ["Y"], ["Z"], name="weird")
    model.graph.node.append(node)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT, None))
    assert _error(model).startswith("ONNX node `weird` (Cos): this operator is not supported")


def test_thresholded_relu_is_refused():
    msg = _error(recurrent_model("RNN", activations=["ThresholdedRelu"]))
    assert "ONNX node `rnn_node` (RNN): activation `ThresholdedRelu` has no rnncompile equivalent" in msg


def test_directions_with_different_activations_are_refused():
    msg = _error(recurrent_model("RNN", direction="bidirectional", activations=["Tanh", "Relu"]))
    assert "the two directions use different activations" in msg


def test_unknown_attribute_is_refused():
    model = recurrent_model("GRU")
    model.graph.node[0].attribute.append(helper.make_attribute("output_sequence", 1))
    assert "(GRU): attribute `output_sequence` is not supported" in _error(model)


def test_initial_h_input_of_a_bidirectional_node_is_refused():
    msg = _error(recurrent_model("LSTM", direction="bidirectional", h0="input"))
    assert "initial_h is a graph input of a bidirectional node" in msg


def test_per_row_initial_state_is_refused():
    model = recurrent_model("RNN", h0="init")
    t = model.graph.initializer[-1]
    arr = numpy_helper.to_array(t).copy()
    arr[0, 1] += 1
    t.CopyFrom(numpy_helper.from_array(arr, t.name))
    assert "differs from batch row to batch row" in _error(model)


def test_cli_errors(cli, tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    code, out, err = cli("import", tmp_path / "bad.onnx", "-o", tmp_path / "s.yaml")
    assert code == 1 and "not an ONNX model" in err and not (tmp_path / "s.yaml").exists()
    code, out, err = cli("import", tmp_path / "none.onnx", "-o", tmp_path / "s.yaml")
    assert code == 2 and "no such file" in err
    onnx.save(recurrent_model("RNN", activations=["ThresholdedRelu"]), str(tmp_path / "t.onnx"))
    code, out, err = cli("import", tmp_path / "t.onnx", "-o", tmp_path / "s.yaml")
    assert code == 1 and "ThresholdedRelu" in err and not (tmp_path / "s.yaml").exists()


def test_external_data_outside_the_folder_is_refused(tmp_path):
    model = recurrent_model("RNN")
    w = model.graph.initializer[0]
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.external_data.add(key="location", value="../secret.bin")
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(DataError, match="outside the model's folder"):
        import_model(path)


def test_external_data_inside_the_folder_is_read(tmp_path):
    model = recurrent_model("LSTM")
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="m.data",
              size_threshold=0)
    imported = import_model(path)
    assert imported.weights["W_i"].shape == (H, I)


def test_a_model_over_the_size_limit_is_refused(tmp_path, monkeypatch):
    from rnncompile.interop.onnx import model_file

    path = tmp_path / "m.onnx"
    onnx.save(recurrent_model("RNN"), str(path))
    monkeypatch.setattr(model_file, "MAX_MODEL_BYTES", 100)
    with pytest.raises(DataError, match="over the 100-byte limit"):
        import_model(path)


def test_cli_prints_the_mapping(cli, tmp_path):
    onnx.save(recurrent_model("LSTM", lengths=True, h0="input", direction="reverse"), str(tmp_path / "m.onnx"))
    code, out, err = cli("import", tmp_path / "m.onnx", "-o", tmp_path / "out" / "m.yaml", "--name", "my model")
    assert code == 0, err
    assert "wrote" in out and (tmp_path / "out" / "m.npz").is_file()
    assert "note: ONNX input `X` is time-major [T, B, ...]" in err
    assert "note: ONNX input `seq_lens` (sequence_lens) is the run's `lengths`" in err
    assert "note: ONNX input `h0` (an initial state [1, B, H]) is the context input `h0` [B, H]" in err
    assert "note: ONNX output `Y_c` is the final state `c`" in err
    assert "name: my_model" in (tmp_path / "out" / "m.yaml").read_text()
