"""Literal vectors and matrices, `consts:` (never in weight files) and `functions:` (named expressions with
parameters, expanded at lowering, drawn as one box): numbers against hand-written NumPy on every backend,
located error texts, and the layer-normalised LSTM of Ba, Kiros & Hinton (2016) written with a function."""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.c.build import find_compiler
from rnncompile.errors import DataError, SpecError
from rnncompile.render.shown import shown_nodes

BACKENDS = ["numpy", "python"] + (["c"] if find_compiler() else [])

LITERALS = """\
rnncompile: 1
name: literals
dims: {I: 3, H: 4, T: 5}
cells:
  rnn:
    inputs: {x: I}
    state: {h: H}
    consts:
      P: [1, 0, -1, 2]                     # a YAML list: a vector
      E: {shape: [H], values: 0.5}         # one number fills the shape
      M: "[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, H / 2]]"   # a literal expression; dims allowed
    params:
      W: [H, H + I]
    let:
      z: "[1, 2, 3, 4] * tanh(W @ concat(h, x))"
    update:
      h: "0.5 * (M @ z + P * E) - [[0, 1], [1, 0]] @ [0.25, 0.5] @ [[1, 0, 0, 0], [0, 0, 0, 1]]"
    outputs: {h: h}
model: {scan: rnn, input: {x: [T, I]}}
"""

LN_LSTM = """\
rnncompile: 1
name: ln_lstm
description: the layer-normalised LSTM of Ba, Kiros and Hinton (2016), eqs. 20-22
dims: {I: 3, H: 4, T: 6}
functions:
  layer_norm(x, g, b): g * (x - mean(x)) / sqrt(mean((x - mean(x)) ** 2) + 1e-5) + b
cells:
  lstm:
    inputs: {x: I}
    state: {h: H, c: H}
    params:
      W_h: [4 * H, H]
      W_x: [4 * H, I]
      b: {shape: [4 * H], init: normal}
      g_h: {shape: [4 * H], init: normal}
      g_x: {shape: [4 * H], init: normal}
      g_c: {shape: [H], init: normal}
      b_c: {shape: [H], init: normal}
    consts:
      no_shift: {shape: [4 * H], values: 0}
    let:
      a: layer_norm(W_h @ h, g_h, no_shift) + layer_norm(W_x @ x, g_x, no_shift) + b
      f: sigmoid(chunk(a, 4, 0))
      i: sigmoid(chunk(a, 4, 1))
      o: sigmoid(chunk(a, 4, 2))
      g: tanh(chunk(a, 4, 3))
      c_next: f * c + i * g
    update:
      c: c_next
      h: o * tanh(layer_norm(c_next, g_c, b_c))
    outputs: {h: h}
model: {scan: lstm, input: {x: [T, I]}}
"""


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _layer_norm(v, g, b):  # over the last axis, one example per row
    mu = v.mean(axis=-1, keepdims=True)
    return g * (v - mu) / np.sqrt(((v - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-5) + b


@pytest.mark.parametrize("backend", BACKENDS)
def test_literal_vectors_matrices_and_consts(backend):
    program = rnncompile.compile_text(LITERALS)
    params = rnncompile.make_params(program, seed=1, dtype="float64")
    assert set(params) == {"W"}  # constants are no params
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    got = rnncompile.run(program, inputs={"x": x}, params=params, dtype="float64", backend=backend)
    M, P = np.diag([1.0, 1, 1, 2]), np.array([1.0, 0, -1, 2])
    tail = np.array([[0, 1], [1, 0]]) @ np.array([0.25, 0.5]) @ np.array([[1, 0, 0, 0], [0, 0, 0, 1]])
    h = np.zeros((2, 4))
    for t in range(5):
        z = np.array([1.0, 2, 3, 4]) * np.tanh(np.concatenate([h, x[:, t]], axis=1) @ params["W"].T)
        h = 0.5 * (z @ M.T + P * 0.5) - tail
        np.testing.assert_allclose(got.outputs["h"][:, t], h, rtol=1e-12, atol=1e-12)


def test_consts_never_reach_weight_files(cli, tmp_path):
    spec = tmp_path / "lit.yaml"
    spec.write_text(LITERALS)
    saved = tmp_path / "w.npz"
    code, out, err = cli("run", spec, "--save-weights", saved)
    assert code == 0, err
    assert sorted(np.load(saved).files) == ["W"]
    weights = dict(np.load(saved))
    weights["P"] = np.ones(4)
    np.savez(tmp_path / "w2.npz", **weights)
    code, out, err = cli("run", spec, "--weights", tmp_path / "w2.npz")
    assert code == 1
    assert f"`P` is a constant, declared at {spec}:9:7 (cells.rnn.consts.P): its value is fixed by the spec, " \
           "not read from weights" in err
    assert "declare it under the cell's `params:` instead of `consts:`" in err
    program = rnncompile.compile(spec)
    with pytest.raises(DataError, match="`M` is a constant"):
        rnncompile.make_params(program, weights={"W": weights["W"], "M": np.eye(4)})


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_layer_normalised_lstm_written_with_a_function(backend):
    program = rnncompile.compile_text(LN_LSTM)
    p = rnncompile.make_params(program, seed=4, dtype="float64")
    x = np.random.default_rng(2).standard_normal((3, 6, 3))
    got = rnncompile.run(program, inputs={"x": x}, params=p, dtype="float64", backend=backend)
    h, c = np.zeros((3, 4)), np.zeros((3, 4))
    for t in range(6):  # Ba et al. (2016), eq. 20-22: LN of W_h h and of W_x x apart, then of c for the output
        a = _layer_norm(h @ p["W_h"].T, p["g_h"], 0) + _layer_norm(x[:, t] @ p["W_x"].T, p["g_x"], 0) + p["b"]
        f, i, o, g = _sigmoid(a[:, :4]), _sigmoid(a[:, 4:8]), _sigmoid(a[:, 8:12]), np.tanh(a[:, 12:])
        c = f * c + i * g
        h = o * np.tanh(_layer_norm(c, p["g_c"], p["b_c"]))
        np.testing.assert_allclose(got.outputs["h"][:, t], h, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(got.final_state["c"], c, rtol=1e-11, atol=1e-12)


def test_a_function_call_is_drawn_as_one_labelled_box():
    program = rnncompile.compile_text(LN_LSTM)
    cell = program.checked.main_cell
    assert [c.name for c in cell.calls] == ["layer_norm"] * 3
    shown = shown_nodes(cell)
    boxes = sorted(s.formula for s in shown.of_kind("function"))
    assert boxes == ["layer_norm(W_h @ h, g_h, no_shift)", "layer_norm(W_x @ x, g_x, no_shift)",
                     "layer_norm(c_next, g_c, b_c)"]
    assert not [s for s in shown.nodes.values() if s.op in ("mean", "sqrt", "pow")]  # the bodies are folded
    (ln_c,) = [s for s in shown.of_kind("function") if "c_next" in s.formula]
    assert [shown.nodes[f].name for f in ln_c.feeders] == ["c_next"]
    dot = rnncompile.render.cell_dot(cell)
    assert "layer_norm(c_next, g_c, b_c)" in dot and "function call (its body folded in)" in dot


FUNCS = """\
rnncompile: 1
name: funcs
dims: {I: 3, H: 4, T: 4}
functions:
  scale(v, s): s * v
  twice(v): scale(v, 2)                  # a function may call another
  mix: {args: [a, b, w], body: w * a + (1 - w) * b}   # the long form
cells:
  rnn:
    inputs: {x: I}
    state: {h: H}
    functions:
      squash(v): v / (1 + abs(v))         # a cell's own function
    params:
      W: [H, H + I]
      U: [H, I]
    update:
      h: mix(squash(twice(W @ concat(h, x))), tanh(U @ x), w=0.25)
    outputs: {h: h}
model: {scan: rnn, input: {x: [T, I]}}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_functions_nest_take_keywords_and_live_in_cells(backend):
    program = rnncompile.compile_text(FUNCS)
    p = rnncompile.make_params(program, seed=5, dtype="float64")
    x = np.random.default_rng(3).standard_normal((2, 4, 3))
    got = rnncompile.run(program, inputs={"x": x}, params=p, dtype="float64", backend=backend)
    h = np.zeros((2, 4))
    for t in range(4):
        v = 2 * (np.concatenate([h, x[:, t]], axis=1) @ p["W"].T)
        h = 0.25 * (v / (1 + np.abs(v))) + 0.75 * np.tanh(x[:, t] @ p["U"].T)
    np.testing.assert_allclose(got.outputs["h"][:, -1], h, rtol=1e-12, atol=1e-12)
    cell = program.checked.main_cell
    calls = {c.name: c for c in cell.calls}
    assert calls["scale"].nodes < calls["twice"].nodes  # twice's body calls scale: its nodes are twice's too
    assert not calls["twice"].nodes & calls["squash"].nodes  # an argument is lowered before the call
    assert [s.formula for s in shown_nodes(cell).of_kind("function")] == \
        ["twice(W @ [h, x])", "squash(·)", "mix(·, ·, 0.25)"]  # · : the box the edge comes from


def _errors(text: str) -> str:
    with pytest.raises(SpecError) as e:
        rnncompile.compile_text(text, file="f.yaml")
    return e.value.format()


def test_a_wrong_number_of_arguments_points_at_the_call_and_names_the_definition():
    err = _errors(FUNCS.replace("w=0.25", "0.25, 1"))
    assert "f.yaml:18:10: error: mix takes 3 arguments (a, b, w), got 4 [cells.rnn.update.h]" in err
    assert "hint: `mix(a, b, w)` is defined at f.yaml:7:32" in err
    err = _errors(FUNCS.replace("w=0.25", "q=0.25"))
    assert "error: mix has no parameter `q`" in err


def test_an_error_inside_a_body_points_into_the_definition_and_names_the_call():
    err = _errors(FUNCS.replace("tanh(U @ x)", "x"))
    assert "f.yaml:7:33: error: shape mismatch: cannot multiply [] and [3]" not in err
    assert "f.yaml:7:38: error: shape mismatch: cannot add [4] and [3] in `(w * a) + ((1 - w) * b)`" in err
    assert "(in `mix`) [functions.mix.body]" in err
    assert "hint: in the call `mix(" in err and "at f.yaml:18:10 (cells.rnn.update.h) (a: [4], b: [3], w: [])" in err


def test_recursion_is_refused_located_in_the_body():
    err = _errors(FUNCS.replace("twice(v): scale(v, 2)", "twice(v): scale(twice(v), 2)"))
    assert "f.yaml:6:19: error: function `twice` calls itself: twice → twice [functions.twice(v)]" in err
    assert "a recursive one never ends" in err
    assert err.endswith("1 error")  # the call in the cell says nothing more
    err = _errors(FUNCS.replace("twice(v): scale(v, 2)", "twice(v): mix(v, v, 1)").replace(
        "body: w * a + (1 - w) * b", "body: twice(w * a) + (1 - w) * b"))
    assert "calls itself: twice → mix → twice" in err or "calls itself: mix → twice → mix" in err


def test_a_body_reads_only_its_parameters_and_dims():
    err = _errors(FUNCS.replace("twice(v): scale(v, 2)", "twice(v): scale(v, W) * H"))
    assert "f.yaml:6:22: error: `W` is not a parameter of `twice(v)` [functions.twice(v)]" in err
    assert "pass `W` in, twice(v, W)" in err
    assert "`H`" not in err  # a dim is a number


def test_bad_definitions():
    err = _errors(FUNCS.replace("  scale(v, s): s * v", "  mean(v, s): s * v"))
    assert "`mean` is a built-in op; a function cannot take its name" in err
    err = _errors(FUNCS.replace("  scale(v, s): s * v\n", "  scale(v, v): v\n"))
    assert "`scale` names the parameter `v` twice" in err
    err = _errors(FUNCS.replace("      squash(v):", "      scale(v):"))
    assert "`scale` is already a function of the spec (top-level `functions:`)" in err


def test_a_signature_split_by_a_yaml_flow_mapping_says_why():
    start, end = FUNCS.index("functions:"), FUNCS.index("cells:")
    text = FUNCS[:start] + "functions: {scale(v, s): s * v, twice: {args: [v], body: 2 * v}, " \
                           "mix: {args: [a, b, w], body: w * a + (1 - w) * b}}\n" + FUNCS[end:]
    err = _errors(text)
    assert "f.yaml:4:13: error: `scale(v` is cut short: YAML splits a flow mapping `{...}` at every comma" in err
    assert "or use the long form f: {args: [x, y], body: x * y}" in err
    assert err.endswith("1 error")


def test_literal_errors_are_located():
    base = LITERALS.replace('h: "0.5 * (M @ z + P * E) - [[0, 1], [1, 0]] @ [0.25, 0.5] @ '
                            '[[1, 0, 0, 0], [0, 0, 0, 1]]"', 'h: "z * LIT"')
    err = _errors(base.replace("LIT", "[[1, 2], [3]]"))
    assert "f.yaml:17:24: error: the rows of a literal differ in length: 1 entry here, 2 in the first row" in err
    err = _errors(base.replace("LIT", "[h, 1, 2, 3]"))
    assert "f.yaml:17:16: error: the entries of a literal must be known before running (numbers, dims and " \
           "arithmetic on them); `h` is not" in err
    assert "use concat" in err
    err = _errors(base.replace("LIT", "[1, 2, 3]"))
    assert "shape mismatch: cannot multiply [4] and [3]" in err
    err = _errors(base.replace("LIT", "[]"))
    assert "an empty literal `[]` has no size" in err
    err = _errors(LITERALS.replace("P: [1, 0, -1, 2]", "P: [[1, 0], [1]]"))
    assert "f.yaml:9:10: error: constant `P` has rows of different lengths [cells.rnn.consts.P.values]" in err
    err = _errors(LITERALS.replace("E: {shape: [H], values: 0.5}", "E: {shape: [H], values: [1, 2]}"))
    assert "literal values have 2 entries at values, where the shape [4] needs 4" in err


def test_a_named_constant_is_shown_by_name():
    program = rnncompile.compile_text(LITERALS)
    shown = shown_nodes(program.checked.main_cell)
    formulas = " ".join(s.formula for s in shown.nodes.values())
    assert "P × E" in formulas and "[1, 2, 3, 4]" in formulas


def test_an_unquoted_literal_gets_a_yaml_hint():
    z = '      z: "[1, 2, 3, 4] * tanh(W @ concat(h, x))"'
    assert z in LITERALS
    err = _errors(LITERALS.replace(z, "      z: [1, 2, 3, 4]"))
    assert "f.yaml:15:10: error: expected an expression, got a YAML list [cells.rnn.let.z]" in err
    assert 'quote the expression (`z: "[1, 0, -1]"`), or name the constant under the cell\'s `consts:`' in err
    err = _errors(LITERALS.replace(z, "      z: [1, 2, 3, 4] * tanh(W @ concat(h, x))"))
    assert "f.yaml:15:24: error: invalid YAML" in err
    assert 'hint: a value that starts with `[` is a YAML list; an expression with a literal vector must be ' \
           'quoted, e.g. z: "[1, 0] * x"' in err


def test_consts_and_functions_in_a_tree_cell():
    text = """\
rnncompile: 1
name: tree_consts
dims: {H: 3}
vocab: {level: word, tokens: [a, b, c, d]}
functions:
  squash(v): v / (1 + abs(v))
cells:
  compose:
    kind: tree
    arity: 2
    inputs: {word: token}
    state: {h: H}
    consts:
      mask: [1, 0, 1]
    params:
      L: {shape: [V, H], init: normal}
      W: {shape: [H, 2 * H]}
    leaf:
      h: embed(word, L) * mask
    node:
      h: squash(W @ concat(children[0].h, children[1].h))
model: {fold: compose, input: {tree: tree}, head: {outputs: {y: h}}}
"""
    program = rnncompile.compile_text(text)
    p = rnncompile.make_params(program, seed=0, dtype="float64")
    assert set(p) == {"L", "W"}
    from rnncompile.trees.api import run_trees

    got = run_trees(program, ["(S b (X c d))"], params=p, dtype="float64")
    leaf = [p["L"][i] * np.array([1.0, 0, 1]) for i in (1, 2, 3)]

    def node(a, b):
        v = p["W"] @ np.concatenate([a, b])
        return v / (1 + np.abs(v))
    np.testing.assert_allclose(got.outputs["y"][0], node(leaf[0], node(leaf[1], leaf[2])), rtol=1e-12)


def test_a_huge_constant_is_refused_before_it_is_built():
    err = _errors(LITERALS.replace("E: {shape: [H], values: 0.5}", "E: {shape: [32768, 32768], values: 0.5}"))
    assert "f.yaml:10:18: error: constant `E` would hold 1.07e+09 numbers; a constant is written out in the graph " \
           "and in generated code, so the limit is 100,000" in err


def test_expansion_is_bounded():
    chain = "".join(f"  f{k}(v): f{k - 1}(v) + f{k - 1}(v)\n" for k in range(1, 16))
    err = _errors(FUNCS.replace("  scale(v, s): s * v\n", "  f0(v): v + v\n" + chain + "  scale(v, s): s * v\n"))
    assert "error: function `f13` expands to about" in err and "the limit is 20,000" in err
    calls = " + ".join(["f10(h)"] * 30)
    err = _errors(FUNCS.replace("  scale(v, s): s * v\n", "  f0(v): v + v\n" + chain[:chain.index("  f11")]
                                + "  scale(v, s): s * v\n").replace(
        "mix(squash(twice(W @ concat(h, x))), tanh(U @ x), w=0.25)", calls))
    assert "error: the calls of spec functions in cell `rnn` expand to more than 50,000 nodes" in err
