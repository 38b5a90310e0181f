"""The published cells of specs/cells/ (issue 17), each against hand-written NumPy from its paper's equations
(tests/cells_reference.py) on every backend: float64, a batch of 4 sequences of different lengths, a given
start state where the cell has no learned one. The ONNX-form GRU is also checked against onnx's own
reference evaluator of the GRU operator, and the clockwork RNN and Bahdanau attention, which live in specs/,
are checked in tests/test_step_index.py and tests/test_attention_reference.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import cells_reference as ref
import rnncompile
from rnncompile.backends.c.build import find_compiler

CELLS = Path(__file__).resolve().parents[1] / "specs" / "cells"
BACKENDS = ["numpy", "python"] + (["c"] if find_compiler() else [])
TOL = dict(rtol=1e-10, atol=1e-12)
BATCH, STEPS = 4, 7
LENGTHS = [7, 5, 2, 1]

# spec -> (reference step, its states, whether it is a stack of that many layers)
SEQUENCE = {
    "peephole_lstm": (ref.peephole_lstm, ("h", "c"), None),
    "cifg_lstm": (ref.cifg_lstm, ("h", "c"), None),
    "mgu": (ref.mgu, ("h",), None),
    "indrnn": (ref.indrnn, ("h",), 2),
    "ln_lstm": (ref.ln_lstm, ("h", "c"), None),
    "gru_onnx_lbr": (ref.gru_onnx_lbr, ("h",), None),
    "mlstm": (ref.mlstm, ("h", "c"), None),
    "jordan": (ref.jordan, ("y",), None),
}
_PROGRAMS: dict = {}


def program(name):
    if name not in _PROGRAMS:
        _PROGRAMS[name] = rnncompile.compile(str(CELLS / f"{name}.yaml"))
    return _PROGRAMS[name]


def uniform_params(prog, seed):
    """Seeded uniform values for every param, biases and gains included (not rnncompile's initialisers)."""
    rng = np.random.default_rng(seed)
    return {n: rng.uniform(-0.5, 0.5, info.shape) for n, info in prog.params.items()}


def close(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, err_msg=what, **TOL)


def test_every_cell_spec_validates_without_a_warning(cli):
    for spec in sorted(CELLS.glob("*.yaml")):
        code, out, err = cli("validate", spec)
        assert code == 0 and "warning" not in err + out, (spec.name, out, err)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SEQUENCE))
def test_sequence_cell_matches_its_reference(name, backend):
    step, states, layers = SEQUENCE[name]
    prog = program(name)
    params = uniform_params(prog, seed=11)
    rng = np.random.default_rng(3)
    layer0 = prog.plan.stack.layers[0].uses[0].cell
    x = rng.standard_normal((BATCH, STEPS) + layer0.inputs["x"].shape)
    state0 = {u.key(n): rng.uniform(-1, 1, (BATCH,) + info.shape)  # keyed as run's final state: h, layers.1.h
              for layer in prog.plan.stack.layers for u in layer.uses for n, info in u.cell.states.items()}
    assert sorted(state0) == sorted(f"layers.{k}.{s}" for k in range(layers) for s in states) if layers \
        else sorted(state0) == sorted(states)
    got = rnncompile.run(prog, inputs={"x": x}, lengths=LENGTHS, init_state=state0, params=params,
                         backend=backend, dtype="float64")
    if layers:
        want_out, want_final = ref.stack(step, params, x, state0, layers, LENGTHS)
    else:
        want_out, want_final = ref.scan(step, params, x, state0, LENGTHS)
    assert set(got.outputs) == set(want_out) and set(got.final_state) == set(want_final)
    for k in want_out:
        close(got.outputs[k], want_out[k], f"{name} on {backend}: output {k}")
    for k in want_final:
        close(got.final_state[k], want_final[k], f"{name} on {backend}: final {k}")


def _ntm_case(prog, seed):
    """Params with positive start weightings (a weighting is never negative), and the cell's own start state:
    M = 1e-6 everywhere, zero read vectors, each head's weighting its w_<tag>_init."""
    params = uniform_params(prog, seed)
    rng = np.random.default_rng(seed + 1)
    for tag in ("r0", "r1", "w0"):
        params[f"w_{tag}_init"] = ref.softmax(rng.standard_normal(16))
    state0 = {"h": np.zeros((BATCH, 32)), "c": np.zeros((BATCH, 32)), "M": np.full((BATCH, 16, 8), 1e-6),
              "r0": np.zeros((BATCH, 8)), "r1": np.zeros((BATCH, 8))}
    state0.update({f"w_{tag}": np.tile(params[f"w_{tag}_init"], (BATCH, 1)) for tag in ("r0", "r1", "w0")})
    return params, state0


@pytest.mark.parametrize("backend", BACKENDS)
def test_ntm_with_two_read_heads_matches_its_reference(backend):
    prog = program("ntm_two_reads")
    params, state0 = _ntm_case(prog, seed=5)
    x = np.random.default_rng(4).standard_normal((BATCH, STEPS, 8))
    got = rnncompile.run(prog, inputs={"x": x}, lengths=LENGTHS, params=params, backend=backend, dtype="float64")
    want_out, want_final = ref.scan(ref.ntm, params, x, state0, LENGTHS)
    close(got.outputs["y"], want_out["y"], f"ntm on {backend}: y")
    assert set(got.final_state) == set(want_final)
    for k in want_final:
        close(got.final_state[k], want_final[k], f"ntm on {backend}: final {k}")
    assert np.allclose(got.final_state["w_r0"].sum(axis=1), 1) and not np.allclose(got.final_state["w_r0"],
                                                                                     got.final_state["w_r1"])


TREES = [[["the", "movie"], ["was", ["not", "good"]]],
         [["a", "plot"], "dull"],                        # dull: not in the vocabulary, read as <unk>
         ["fun", "acting"],
         [[["the", "acting"], "is"], ["very", ["very", "great"]]]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["level", "node"])
def test_tree_gru_matches_its_reference(backend, mode):
    prog = program("tree_gru")
    params = uniform_params(prog, seed=8)
    got = rnncompile.run(prog, trees=TREES, params=params, backend=backend, dtype="float64", mode=mode)
    words = yaml.safe_load((CELLS / "tree_gru.yaml").read_text())["vocab"]["file"]
    ids = {w: i for i, w in enumerate((CELLS / words).read_text().split())}
    roots = np.stack([ref.tree_gru(params, tree, ids) for tree in TREES])
    close(got.final_state["h"], roots, f"tree_gru on {backend} ({mode}): root h")
    close(got.outputs["p"], ref.softmax(roots @ params["head.W_s"].T + params["head.b_s"]),
          f"tree_gru on {backend} ({mode}): p")


def test_the_onnx_form_gru_matches_onnx_reference_evaluator():
    """The spec's weights in ONNX's layout, run by onnx's reference GRU (linear_before_reset=1), float64."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    prog = program("gru_onnx_lbr")
    params = uniform_params(prog, seed=2)
    H, I = params["R_h"].shape[0], params["W_n"].shape[1]
    W, R, B = ref.onnx_gru_params(params, H)
    x = np.random.default_rng(6).standard_normal((BATCH, STEPS, I))
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=H, linear_before_reset=1)
    f64 = TensorProto.DOUBLE
    graph = helper.make_graph([node], "gru", [helper.make_tensor_value_info(n, f64, None) for n in "XWRB"],
                              [helper.make_tensor_value_info(n, f64, None) for n in ("Y", "Y_h")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    Y, _ = ReferenceEvaluator(model).run(None, {"X": x.transpose(1, 0, 2), "W": W[None], "R": R[None], "B": B[None]})
    want = Y[:, 0].transpose(1, 0, 2)  # [T, 1, B, H] -> [B, T, H]
    for backend in BACKENDS:
        got = rnncompile.run(prog, inputs={"x": x}, params=params, backend=backend, dtype="float64")
        close(got.outputs["h"], want, f"gru_onnx_lbr on {backend} vs onnx.reference")
    assert onnx is not None


DOC = CELLS.parents[1] / "docs" / "cells.md"


def test_every_run_command_in_docs_cells_runs(cli):
    import shlex

    commands = [line.strip() for line in DOC.read_text().splitlines() if line.startswith("    rnncompile run ")]
    assert len(commands) >= 12
    for line in commands:
        code, out, err = cli(*shlex.split(line)[1:], cwd=CELLS.parents[1])
        assert code == 0, (line, err)


def test_every_cell_spec_has_its_diagram_and_its_section_in_docs_cells():
    text = DOC.read_text()
    for spec in sorted(CELLS.glob("*.yaml")):
        assert (DOC.parent / "cells" / f"{spec.stem}.png").is_file(), spec.stem
        assert f"(../specs/cells/{spec.name})" in text and f"(cells/{spec.stem}.png)" in text, spec.stem
