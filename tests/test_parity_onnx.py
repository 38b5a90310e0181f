"""The shipped recurrent specs against the ONNX operator semantics of RNN, LSTM and GRU.

Each case builds a one-node (or, for the stacked bigru, two-node) ONNX graph with our
weights laid out as the ONNX operator specification says (gate orders i,o,f,c for LSTM
and z,r,h for GRU; W over x, R over h, B = [Wb, Rb]) and evaluates it with
`onnx.reference.ReferenceEvaluator` (the operator definitions in Python) and, where
installed, with onnxruntime (an independent C++ implementation, which also honours
`sequence_lens` for variable-length batches: ONNX's packed-sequence semantics).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import reference
import rnncompile

onnx = pytest.importorskip("onnx", reason="ONNX parity tests need the onnx package")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

pytestmark = pytest.mark.onnx

SPECS = Path(__file__).resolve().parents[1] / "specs"
BATCH, STEPS = 3, 7
OPSET = 14
IR_VERSION = 8  # what opset 14 needs; onnxruntime reads IR versions up to its own maximum
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


# ---- our params -> ONNX W, R, B (one direction) ----------------------------------

def _split_hx(w, hidden):
    return w[:, :hidden], w[:, hidden:]  # columns over concat(h, x)


def _onnx_weights(cell: str, p: dict, hidden: int):
    """W [G*H, I], R [G*H, H], B [2*G*H] for one direction, from our param dict."""
    if cell == "elman":
        return p["W_xh"], p["W_hh"], np.concatenate([p["b_h"], np.zeros(hidden)])
    if cell == "lstm":
        hx = {k: _split_hx(p[f"W_{k}"], hidden) for k in "iofg"}
        order = "iofg"  # ONNX: i, o, f, c (our g is the cell candidate c)
        return (np.concatenate([hx[k][1] for k in order]), np.concatenate([hx[k][0] for k in order]),
                np.concatenate([p[f"b_{k}"] for k in order] + [np.zeros(4 * hidden)]))
    if cell == "gru":  # ONNX: z, r, h; linear_before_reset=1 keeps b_hn inside r * (...)
        (r_hz, w_xz), (r_hr, w_xr) = _split_hx(p["W_z"], hidden), _split_hx(p["W_r"], hidden)
        zeros = np.zeros(hidden)
        return (np.concatenate([w_xz, w_xr, p["W_in"]]), np.concatenate([r_hz, r_hr, p["W_hn"]]),
                np.concatenate([p["b_z"], p["b_r"], p["b_in"], zeros, zeros, p["b_hn"]]))
    raise KeyError(cell)


def _stack_directions(cell, params, prefixes, hidden):
    parts = [_onnx_weights(cell, {k[len(pre):]: v for k, v in params.items() if k.startswith(pre)}, hidden)
             for pre in prefixes]
    return [np.stack([w[i] for w in parts]) for i in range(3)]


# ---- one ONNX recurrent node ------------------------------------------------------

OP = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _recurrent_model(cell, direction, hidden, dtype, with_lengths):
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    names = ["X", "W", "R", "B", "sequence_lens" if with_lengths else "", "initial_h"]
    if cell == "lstm":
        names.append("initial_c")
    attrs = {"hidden_size": hidden, "direction": direction}
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    outputs = ["Y", "Y_h"] + (["Y_c"] if cell == "lstm" else [])
    node = helper.make_node(OP[cell], names, outputs, **attrs)
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else elem, None)
              for n in names if n]
    graph = helper.make_graph([node], cell, inputs,
                              [helper.make_tensor_value_info(n, elem, None) for n in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def _ort_session(model):
    ort = pytest.importorskip("onnxruntime", reason="variable lengths: onnxruntime honours sequence_lens")
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run_onnx(engine, cell, direction, weights, x, h0, c0=None, lengths=None):
    """x [B, T, I] -> Y [B, T, D, H], Y_h [D, B, H] (and Y_c) through one ONNX node."""
    hidden = h0.shape[-1]
    dtype = x.dtype.type
    model = _recurrent_model(cell, direction, hidden, dtype, lengths is not None)
    feeds = {"X": np.ascontiguousarray(x.transpose(1, 0, 2)), "initial_h": h0}
    feeds.update({k: w.astype(dtype) for k, w in zip("WRB", weights)})
    if cell == "lstm":
        feeds["initial_c"] = c0
    if lengths is not None:
        feeds["sequence_lens"] = np.asarray(lengths, np.int32)
    if engine == "reference":
        out = ReferenceEvaluator(model).run(None, feeds)
    else:
        out = _ort_session(model).run(None, feeds)
    y = np.asarray(out[0]).transpose(2, 0, 1, 3)  # [T, D, B, H] -> [B, T, D, H]
    return (y, *map(np.asarray, out[1:]))


# ---- single cells: elman, lstm, gru ------------------------------------------------

@pytest.mark.parametrize("i,h", [(1, 1), (3, 5), (8, 16)])
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_cell_matches_onnx_reference_evaluator(cell, i, h):
    dims = {"I": i, "H": h, "O": 4} if cell == "elman" else {"I": i, "H": h}
    prog = rnncompile.compile(SPECS / f"{cell}.yaml", dims=dims)
    rng = np.random.default_rng([i, h, 3])
    params = reference.random_params(prog.params, rng)
    x = rng.standard_normal((BATCH, STEPS, i))
    state = reference.random_state(prog.scan_cell.states, BATCH, rng)
    ours = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, dtype="float64")

    weights = [w[None] for w in _onnx_weights(cell, params, h)]
    y, *final = _run_onnx("reference", cell, "forward", weights, x, state["h"][None],
                          state.get("c", np.zeros(0))[None] if cell == "lstm" else None)
    hidden_seq = y[:, :, 0]
    want_y = hidden_seq @ params["W_hy"].T + params["b_y"] if cell == "elman" else hidden_seq
    np.testing.assert_allclose(ours.outputs["y"], want_y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours.final_state["h"], final[0][0], rtol=1e-10, atol=1e-10)
    if cell == "lstm":
        np.testing.assert_allclose(ours.final_state["c"], final[1][0], rtol=1e-10, atol=1e-10)


# ---- the stacked bidirectional GRU, layer by layer -----------------------------------

def _bigru_onnx(engine, params, x, state, hidden, lengths=None):
    """Two ONNX GRU nodes (direction=bidirectional), each layer's Y concatenated per step."""
    finals = {}
    layer_in = x
    for layer in range(2):
        prefixes = [f"layers.{layer}.{d}." for d in ("forward", "reverse")]
        weights = _stack_directions("gru", params, prefixes, hidden)
        h0 = np.stack([state[p + "h"] for p in prefixes]).astype(x.dtype)
        y, y_h = _run_onnx(engine, "gru", "bidirectional", weights, layer_in, h0, lengths=lengths)
        layer_in = y.reshape(y.shape[0], y.shape[1], 2 * hidden)  # [B, T, (fwd, rev) * H]
        finals.update({p + "h": y_h[d] for d, p in enumerate(prefixes)})
    return layer_in, finals


def _bigru_case(dtype, seed):
    hidden = 5
    prog = rnncompile.compile(SPECS / "bigru.yaml", dims={"I": 4, "H": hidden})
    rng = np.random.default_rng(seed)
    params = {k: v.astype(dtype) for k, v in reference.random_params(prog.params, rng).items()}
    x = rng.standard_normal((BATCH, STEPS, 4)).astype(dtype)
    state = {k: rng.standard_normal((BATCH, hidden)).astype(dtype) for k in
             (f"layers.{n}.{d}.h" for n in range(2) for d in ("forward", "reverse"))}
    return prog, params, x, state, hidden


def test_bigru_matches_onnx_reference_evaluator():
    prog, params, x, state, hidden = _bigru_case(np.float64, seed=11)
    ours = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, dtype="float64")
    y, finals = _bigru_onnx("reference", params, x, state, hidden)
    np.testing.assert_allclose(ours.outputs["h"], y, rtol=1e-10, atol=1e-10)
    for name, want in finals.items():
        np.testing.assert_allclose(ours.final_state[name], want, rtol=1e-10, atol=1e-10, err_msg=name)


# ---- variable lengths: ONNX sequence_lens, through onnxruntime -----------------------

LENGTHS = [STEPS, 2, 5]


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_variable_lengths_match_onnxruntime(cell, direction, tmp_path):
    """Padded steps keep the state and give zero outputs; reverse runs inside each length."""
    hidden = 6
    spec = tmp_path / f"{cell}.yaml"
    spec.write_text((SPECS / f"{cell}.yaml").read_text()
                    .replace(f"scan: {cell}", f"scan: {cell}\n  direction: {direction}"))
    prog = rnncompile.compile(spec, dims={"I": 3, "H": hidden})
    rng = np.random.default_rng(21)
    params = {k: v.astype(np.float32) for k, v in reference.random_params(prog.params, rng).items()}
    x = rng.standard_normal((BATCH, STEPS, 3)).astype(np.float32)
    state = {k: v.astype(np.float32) for k, v in reference.random_state(prog.scan_cell.states, BATCH, rng).items()}
    ours = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, lengths=LENGTHS)

    weights = [w[None] for w in _onnx_weights(cell, params, hidden)]
    y, *final = _run_onnx("onnxruntime", cell, direction, weights, x, state["h"][None],
                          state["c"][None] if cell == "lstm" else None, lengths=LENGTHS)
    np.testing.assert_allclose(ours.outputs["y"], y[:, :, 0], rtol=1e-5, atol=1e-5)
    for b, n in enumerate(LENGTHS):
        assert not ours.outputs["y"][b, n:].any(), "padded outputs are exactly zero"
    np.testing.assert_allclose(ours.final_state["h"], final[0][0], rtol=1e-5, atol=1e-5)
    if cell == "lstm":
        np.testing.assert_allclose(ours.final_state["c"], final[1][0], rtol=1e-5, atol=1e-5)


def test_bigru_variable_lengths_match_onnxruntime():
    prog, params, x, state, hidden = _bigru_case(np.float32, seed=12)
    ours = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, lengths=LENGTHS)
    y, finals = _bigru_onnx("onnxruntime", params, x, state, hidden, lengths=LENGTHS)
    np.testing.assert_allclose(ours.outputs["h"], y, rtol=1e-5, atol=1e-5)
    for name, want in finals.items():
        np.testing.assert_allclose(ours.final_state[name], want, rtol=1e-5, atol=1e-5, err_msg=name)

