"""The gate shorthand fits real cells: `act: linear` (no activation) and `add:` terms (a peephole `P ⊙ c`),
checked against hand-written NumPy from the equations on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.c.build import find_compiler

BACKENDS = ["numpy", "python"] + (["c"] if find_compiler() else [])

PEEPHOLE = """\
rnncompile: 1
name: peephole_lstm
dims: {I: 3, H: 4, T: 5}
cells:
  lstm:
    inputs: {x: I}
    state: {h: H, c: H}
    params:
      P_i: {shape: [H], init: normal}
      P_f: {shape: [H], init: normal}
      P_o: {shape: [H], init: normal}
    gates:                                # Gers and Schmidhuber 2000: the gates also see the cell state
      i: {act: sigmoid, from: [h, x], add: [P_i * c]}
      f: {act: sigmoid, from: [h, x], add: [P_f * c]}
      g: {act: tanh, from: [h, x]}
      o: {act: sigmoid, from: [h, x], add: [P_o * c_next]}
    let:
      c_next: f * c + i * g
    update: {c: c_next, h: o * tanh(c_next)}
    outputs: {h: h}
model: {scan: lstm, input: {x: [T, I]}}
"""

LINEAR_GATE = """\
rnncompile: 1
name: linear_gate
dims: {I: 3, H: 4, T: 5}
cells:
  rnn:
    inputs: {x: I}
    state: {h: H}
    gates:
      z: {act: linear, from: [h, x], add: [0.5]}
    update: {h: tanh(z)}
    outputs: {h: h}
model: {scan: rnn, input: {x: [T, I]}}
"""


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_peephole_lstm_from_gates_with_add_terms(backend):
    program = rnncompile.compile_text(PEEPHOLE, dims=None)
    params = rnncompile.make_params(program, seed=3, dtype="float64")
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    got = rnncompile.run(program, inputs={"x": x}, params=params, dtype="float64", backend=backend)
    p = params
    h, c = np.zeros((2, 4)), np.zeros((2, 4))
    for t in range(5):
        hx = np.concatenate([h, x[:, t]], axis=1)
        i = _sigmoid(hx @ p["W_i"].T + p["b_i"] + p["P_i"] * c)
        f = _sigmoid(hx @ p["W_f"].T + p["b_f"] + p["P_f"] * c)
        g = np.tanh(hx @ p["W_g"].T + p["b_g"])
        c = f * c + i * g
        o = _sigmoid(hx @ p["W_o"].T + p["b_o"] + p["P_o"] * c)
        h = o * np.tanh(c)
        np.testing.assert_allclose(got.outputs["h"][:, t], h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.final_state["c"], c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_linear_gate_is_its_affine_map(backend):
    program = rnncompile.compile_text(LINEAR_GATE)
    params = rnncompile.make_params(program, seed=2, dtype="float64")
    assert set(params) == {"W_z", "b_z"}
    x = np.random.default_rng(0).standard_normal((1, 5, 3))
    got = rnncompile.run(program, inputs={"x": x}, params=params, dtype="float64", backend=backend)
    h = np.zeros((1, 4))
    for t in range(5):
        h = np.tanh(np.concatenate([h, x[:, t]], axis=1) @ params["W_z"].T + params["b_z"] + 0.5)
    np.testing.assert_allclose(got.outputs["h"][:, -1], h, rtol=1e-12, atol=1e-12)
    cell = program.checked.main_cell  # the gate's node carries its name, as an activation's would
    (gate,) = [n for n in cell.g.nodes if cell.node(n).label == "z"]
    assert cell.node(gate).op == "add"


def test_an_add_term_of_the_wrong_width_is_a_located_error(cli, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(PEEPHOLE.replace("add: [P_i * c]", "add: [x]"))
    code, out, err = cli("validate", spec)
    assert code == 1
    assert "bad.yaml:13:45: error:" in err
    assert "a term added to gate `i` must be a vector of its width [4] (or a number); `x` is [3]" in err


def test_an_unknown_activation_lists_linear(cli, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(LINEAR_GATE.replace("act: linear", "act: lineer"))
    code, out, err = cli("validate", spec)
    assert code == 1 and "`lineer` is not an activation" in err and "did you mean `linear`?" in err


# the original GRU (Cho et al. 2014): the candidate's gate reads the reset state r * h, written in `from:`;
# and a gate sized by the param matrix that multiplies it (W_q @ a with W_q [H, E] makes a E wide)
CHO_GRU = """\
rnncompile: 1
name: cho_gru
dims: {I: 3, H: 4, E: 2, T: 5}
cells:
  gru:
    inputs: {x: I}
    state: {h: H}
    params:
      W_q: {shape: [H, E], init: normal}
    gates:
      r: {act: sigmoid, from: [h, x]}
      z: {act: sigmoid, from: [h, x]}
      n: {act: tanh, from: [r * h, x]}
      a: {act: tanh, from: [x]}
    update: {h: (1 - z) * n + z * h + W_q @ a}
    outputs: {h: h}
model: {scan: gru, input: {x: [T, I]}}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gate_reads_expressions_and_is_sized_by_the_matrix_that_multiplies_it(backend):
    program = rnncompile.compile_text(CHO_GRU)
    params = rnncompile.make_params(program, seed=4, dtype="float64")
    assert params["W_a"].shape == (2, 3) and params["W_n"].shape == (4, 7)
    x = np.random.default_rng(2).standard_normal((2, 5, 3))
    got = rnncompile.run(program, inputs={"x": x}, params=params, dtype="float64", backend=backend)
    p = params
    h = np.zeros((2, 4))
    for t in range(5):
        hx = np.concatenate([h, x[:, t]], axis=1)
        r = _sigmoid(hx @ p["W_r"].T + p["b_r"])
        z = _sigmoid(hx @ p["W_z"].T + p["b_z"])
        n = np.tanh(np.concatenate([r * h, x[:, t]], axis=1) @ p["W_n"].T + p["b_n"])
        a = np.tanh(x[:, t] @ p["W_a"].T + p["b_a"])
        h = (1 - z) * n + z * h + a @ p["W_q"].T
        np.testing.assert_allclose(got.outputs["h"][:, t], h, rtol=1e-12, atol=1e-12)


def test_a_bad_expression_in_from_is_located_inside_it(cli, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(CHO_GRU.replace("from: [r * h, x]", "from: [r * hh, x]"))
    code, out, err = cli("validate", spec)
    assert code == 1
    assert "bad.yaml:13:33: error: undefined name `hh` [cells.gru.gates.n.from.0]" in err
    assert "hint: did you mean `h`?" in err


TREE_GATES = """\
rnncompile: 1
name: tree_gates
dims: {E: 3, H: 4}
vocab: {tokens: [a, b, c]}
cells:
  t:
    kind: tree
    arity: 2
    inputs: {word: token}
    state: {h: H}
    params:
      E_w: {shape: [V, E], init: normal}
    leaf:
      let:
        x: embed(word, E_w)
      gates:
        o: {act: tanh, from: [x]}
      h: o
    node:
      let:
        hs: concat(children[0].h, children[1].h)
      gates:
        o: {act: sigmoid, from: [hs]}
      h: o * (children[0].h + children[1].h)
model: {fold: t, input: {tree: tree}}
"""


def test_tree_rules_take_gates_W_at_the_leaves_U_at_the_nodes_one_bias():
    program = rnncompile.compile_text(TREE_GATES)
    params = rnncompile.make_params(program, seed=1, dtype="float64")
    assert {k: v.shape for k, v in params.items()} == {"E_w": (3, 3), "W_o": (4, 3), "U_o": (4, 8), "b_o": (4,)}
    got = rnncompile.run(program, trees=["(S (A a) (B b))"], params=params, dtype="float64")
    p = params
    leaf = {w: np.tanh(p["W_o"] @ p["E_w"][i] + p["b_o"]) for i, w in enumerate(["a", "b"])}
    hs = np.concatenate([leaf["a"], leaf["b"]])
    root = _sigmoid(p["U_o"] @ hs + p["b_o"]) * (leaf["a"] + leaf["b"])
    np.testing.assert_allclose(np.asarray(got.outputs["h"])[0], root, rtol=1e-12, atol=1e-12)  # the root


def test_a_gate_of_both_rules_with_two_widths_is_a_located_error(cli, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(TREE_GATES.replace("o: {act: tanh, from: [x]}", "o: {act: tanh, from: [x], size: E}")
                    .replace("h: o\n", "h: concat(o, o)[0:4]\n"))
    code, out, err = cli("validate", spec)
    assert code == 1, err
    assert "gate `o` of the node rule is 4 wide, but the leaf rule's gate `o` is 3: they share `b_o`" in err
