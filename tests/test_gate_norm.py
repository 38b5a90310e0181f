"""Gates that fit real cells: `norm: layer` (a layer norm of the pre-activation with the gate's own gain and
shift) and gate widths inferred from their use, so `size:` is needed only where nothing fixes it. Checked
against hand-written NumPy from the equations on every backend; the errors by their text."""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.c.build import find_compiler
from rnncompile.errors import SpecError
from rnncompile.render.shown import shown_nodes

BACKENDS = ["numpy", "python"] + (["c"] if find_compiler() else [])

# the layer-normalised LSTM with the gate shorthand: each gate's pre-activation normalised on its own
# (as TensorFlow's LayerNormBasicLSTMCell does), and a memory m of another width whose gate's size is inferred
LN_GATES = """\
rnncompile: 1
name: ln_gates
dims: {I: 3, H: 4, K: 6, T: 5}
cells:
  lstm:
    inputs: {x: I}
    state: {h: H, c: H, m: K}
    params:
      g_c: {shape: [H], init: normal}
    gates:
      f: {act: sigmoid, from: [h, x], norm: layer, bias_init: 1.0}
      i: {act: sigmoid, from: [h, x], norm: layer}
      o: {act: sigmoid, from: [h, x], norm: layer, norm_eps: 1e-3}
      g: {act: tanh, from: [h, x], norm: layer, bias: false}
      u: {act: tanh, from: [x, m]}
      r: {act: linear, from: [h], norm: layer, size: H}   # read by index only: nothing fixes its width
    let:
      c_next: f * c + i * g
    update: {c: c_next, h: o * tanh(c_next * g_c), m: "u * r[0]"}
    outputs: {h: h, m: m}
model: {scan: lstm, input: {x: [T, I]}}
"""


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _ln(v, gain, shift=0.0, eps=1e-5):
    mu = v.mean(axis=-1, keepdims=True)
    return gain * (v - mu) / np.sqrt(((v - mu) ** 2).mean(axis=-1, keepdims=True) + eps) + shift


def test_norm_adds_a_gain_per_gate_and_sizes_are_inferred():
    program = rnncompile.compile_text(LN_GATES)
    shapes = {k: v.shape for k, v in program.params.items()}
    assert shapes["gain_f"] == (4,) and shapes["b_f"] == (4,) and "b_g" not in shapes and shapes["gain_g"] == (4,)
    assert shapes["W_u"] == (6, 9)  # u's width: m's (update m: u * ...), though the states differ in width
    assert shapes["W_r"] == (4, 4)
    params = rnncompile.make_params(program, seed=0)
    np.testing.assert_array_equal(params["gain_f"], np.ones(4))  # a norm starts as the identity
    np.testing.assert_array_equal(params["b_f"], np.ones(4))  # bias_init: the shift's start


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_normalised_gates_against_numpy(backend):
    program = rnncompile.compile_text(LN_GATES)
    p = rnncompile.make_params(program, seed=7, dtype="float64")
    rng = np.random.default_rng(1)
    for name in ("gain_f", "gain_i", "gain_o", "gain_g", "gain_r", "b_f", "b_i", "b_o", "b_r"):
        p[name] = rng.standard_normal(p[name].shape)  # not the identity: the test must see them
    x = rng.standard_normal((2, 5, 3))
    got = rnncompile.run(program, inputs={"x": x}, params=p, dtype="float64", backend=backend)
    h, c, m = np.zeros((2, 4)), np.zeros((2, 4)), np.zeros((2, 6))
    for t in range(5):
        hx = np.concatenate([h, x[:, t]], axis=1)
        f = _sigmoid(_ln(hx @ p["W_f"].T, p["gain_f"], p["b_f"]))
        i = _sigmoid(_ln(hx @ p["W_i"].T, p["gain_i"], p["b_i"]))
        o = _sigmoid(_ln(hx @ p["W_o"].T, p["gain_o"], p["b_o"], eps=1e-3))
        g = np.tanh(_ln(hx @ p["W_g"].T, p["gain_g"]))
        u = np.tanh(np.concatenate([x[:, t], m], axis=1) @ p["W_u"].T + p["b_u"])
        r = _ln(h @ p["W_r"].T, p["gain_r"], p["b_r"])
        c = f * c + i * g
        h, m = o * np.tanh(c * p["g_c"]), u * r[:, :1]
        np.testing.assert_allclose(got.outputs["h"][:, t], h, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(got.outputs["m"][:, t], m, rtol=1e-11, atol=1e-12)


def test_a_normalised_gate_is_drawn_with_one_layer_norm_box():
    program = rnncompile.compile_text(LN_GATES)
    shown = shown_nodes(program.checked.main_cell)
    boxes = [s.formula for s in shown.of_kind("function")]
    assert "layer_norm(W_f @ [h, x], gain_f, b_f)" in boxes and "layer_norm(W_g @ [h, x], gain_g)" in boxes
    assert len(boxes) == 5 and not [s for s in shown.nodes.values() if s.op in ("mean", "sqrt")]


SIZES = """\
rnncompile: 1
name: sizes
dims: {I: 3, H: 4, K: 6, T: 5}
cells:
  c:
    inputs: {x: I}
    state: {h: H, m: K}
    gates:
      z: {act: sigmoid, from: [h, x]}
      u: {act: tanh, from: [x]}
      v: {act: tanh, from: [x]}
    let:
      mixed: z * u + (1 - z) * h        # u: as wide as z * u, whose z is as wide as h
    update: {h: mixed, m: UPDATE_M}
    outputs: {h: h}
model: {scan: c, input: {x: [T, I]}}
"""


def test_sizes_flow_through_elementwise_expressions():
    program = rnncompile.compile_text(SIZES.replace("UPDATE_M", "tanh(v) * m"))
    shapes = {k: v.shape for k, v in program.params.items()}
    assert shapes["W_z"] == (4, 7) and shapes["W_u"] == (4, 3) and shapes["W_v"] == (6, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inferred_sizes_run_as_written(backend):
    program = rnncompile.compile_text(SIZES.replace("UPDATE_M", "tanh(v) * m + 1"))
    p = rnncompile.make_params(program, seed=2, dtype="float64")
    x = np.random.default_rng(5).standard_normal((2, 5, 3))
    got = rnncompile.run(program, inputs={"x": x}, params=p, dtype="float64", backend=backend)
    h, m = np.zeros((2, 4)), np.zeros((2, 6))
    for t in range(5):
        z = _sigmoid(np.concatenate([h, x[:, t]], axis=1) @ p["W_z"].T + p["b_z"])
        u = np.tanh(x[:, t] @ p["W_u"].T + p["b_u"])
        v = np.tanh(x[:, t] @ p["W_v"].T + p["b_v"])
        h, m = z * u + (1 - z) * h, np.tanh(v) * m + 1
    np.testing.assert_allclose(got.outputs["h"][:, -1], h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.final_state["m"], m, rtol=1e-12, atol=1e-12)


def _errors(text: str) -> str:
    with pytest.raises(SpecError) as e:
        rnncompile.compile_text(text, file="s.yaml")
    return e.value.format()


def test_an_undetermined_size_lists_the_possible_ones():
    err = _errors(SIZES.replace("UPDATE_M", "m + sum(v)"))
    assert "s.yaml:11:7: error: gate `v` needs a `size:`: nothing in the cell fixes its width, and the cell's " \
           "states differ in width (h is 4, m is 6) [cells.c.gates.v]" in err
    assert "hint: add size: H (or K), or use the gate elementwise with a value of its width" in err
    assert err.endswith("1 error")


def test_a_gate_used_with_two_widths_names_both_uses():
    err = _errors(SIZES.replace("UPDATE_M", "z * m"))
    assert "s.yaml:9:7: error: gate `z` needs a `size:`: the cell uses it with widths 4 (in let.mixed) and 6 " \
           "(in update.m) [cells.c.gates.z]" in err
    assert "hint: say which you mean (size: H or size: K)" in err


def test_an_explicit_size_still_wins():
    program = rnncompile.compile_text(SIZES.replace("UPDATE_M", "tanh(v) * m").replace(
        "v: {act: tanh, from: [x]}", "v: {act: tanh, from: [x], size: 1}"))
    assert program.params["W_v"].shape == (1, 3)  # [1] broadcasts against m's [6]
