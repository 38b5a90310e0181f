"""What makes a training step fast, checked to change no number.

- the backward scan reads the forward's saved gate values instead of recomputing the step: the same gradients as
  recomputing (float64, 1e-12), and no state-to-state matrix product left in the backward cell;
- embedding projection (`W @ embed(ids, T)` -> `embed(ids, T @ W^T)`): the same outputs;
- the NumPy scan writes outputs straight into their rows and shares one array between outputs of one node: the
  same values as its tracing path (which copies every step), padded steps zero, and final states that are no views
  of the outputs;
- the benchmark's eager PyTorch NTM (an independent reference) gives our NTM's loss and every gradient.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile.autodiff import GradProgram, bptt
from rnncompile.autodiff.cellgrad import grad
from rnncompile.backends.numpy import CellRunner
from rnncompile.check import check_file
from rnncompile.graph import stages, verify
from rnncompile.params import make_params
from rnncompile.passes import optimise
from rnncompile.passes.project_embeddings import project_embeddings

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
SMALL = {"H": 5, "T": 5, "I": 3, "E": 3, "O": 2, "N": 4, "W": 3}


def _small(name):
    known = check_file(SPECS / f"{name}.yaml").dims
    return rnncompile.compile(SPECS / f"{name}.yaml", dims={k: v for k, v in SMALL.items() if k in known})


def _batch(program, gp, rng, batch=3, steps=5):
    inputs = {}
    for n, s in program.plan.inputs.items():
        if program.plan.input_dtypes.get(n) == "token":
            inputs[n] = rng.integers(0, len(program.vocab.tokens), (batch, steps))
        else:
            inputs[n] = rng.standard_normal((batch, steps) + s)
    shape = gp._output_shapes()[gp.output]
    if gp.kind == "xent":
        return inputs, rng.integers(0, shape[0], (batch, steps) if gp.per_step else (batch,))
    return inputs, rng.standard_normal(((batch, steps) if gp.per_step else (batch,)) + shape)


@pytest.mark.parametrize("name, kind", [("lstm", "mse"), ("gru", "mse"), ("bigru", "mse"),
                                        pytest.param("ntm", "mse", marks=pytest.mark.slow),
                                        ("char_predictor", "xent"), ("sentiment", "xent")])
def test_saved_forward_values_give_the_recomputed_gradients(name, kind, monkeypatch):
    program = _small(name)
    rng = np.random.default_rng(3)
    fast = GradProgram(program, kind)
    inputs, target = _batch(program, fast, rng)
    start = make_params(program, 0, None, "float64")
    params = {k: v + 0.1 * rng.standard_normal(np.shape(v)) for k, v in start.items()}
    lengths = np.array([5, 2, 4])
    got = fast(inputs, target, params, lengths)
    real = bptt.grad
    monkeypatch.setattr(bptt, "grad", lambda *a, **k: real(*a, **{**k, "saved": False}))
    monkeypatch.setattr(bptt, "project_embeddings", lambda cell: cell)
    want = GradProgram(program, kind)(inputs, target, params, lengths)
    assert got.loss == pytest.approx(want.loss, rel=1e-12)
    for k in params:
        np.testing.assert_allclose(got.grads[k], want.grads[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_the_lstm_backward_multiplies_by_the_recurrent_weights_once_per_step():
    """With the gates saved, the backward step's only matrix product is dh = W_h^T dz: no recomputed W_h @ h."""
    program = rnncompile.compile(SPECS / "char_predictor.yaml", dims={"E": 8, "H": 16})
    (use,) = [u for u in program.plan.uses() if program.cell(u).states]
    back = grad(project_embeddings(program.cell(use)), saved=True)
    assert back.saved, "an LSTM's gates are saved"
    cell, _ = optimise(back.cell)
    verify(cell)
    stage = stages(cell)
    products = [n for n in cell.nodes_of("matmul") if stage[n] != "const"]
    assert len(products) == 1 and stage[products[0]] == "loop"


def test_embedding_projection_keeps_the_values():
    program = rnncompile.compile(SPECS / "char_predictor.yaml", dims={"E": 6, "H": 7})
    (use,) = [u for u in program.plan.uses() if program.cell(u).states]
    cell = program.cell(use)
    projected = project_embeddings(cell)
    verify(projected)
    assert not [n for n in projected.nodes_of("matmul") if projected.node(projected.args(n)[1]).op == "embed"]
    assert len(projected.nodes_of("embed")) == 1, "the input's embedding is only looked up in the projected table"
    params = make_params(program, 0, None, "float64")
    local = {n: params[use.key(n)] for n in cell.params}
    ids = np.random.default_rng(4).integers(0, 32, (3, 6))
    want = CellRunner(cell, "float64").bind(local).scan({"ch": ids})
    got = CellRunner(projected, "float64").bind(local).scan({"ch": ids})
    for n in want.outputs:
        np.testing.assert_allclose(got.outputs[n], want.outputs[n], rtol=1e-13, atol=1e-15)
    assert project_embeddings(cell, max_rows=16).nodes_of("embed") == cell.nodes_of("embed"), \
        "a table longer than max_rows is not projected"


def test_the_numpy_scan_writes_outputs_as_its_copying_path_does():
    program = rnncompile.compile(SPECS / "lstm.yaml", dims={"I": 3, "H": 4})
    (use,) = program.plan.uses()
    cell = bptt._with_states(program.cell(use), grad(program.cell(use), saved=True).saved)
    params = make_params(program, 0, None, "float32")
    bound = CellRunner(cell, "float32").bind({n: params[use.key(n)] for n in cell.params})
    x = {"x": np.random.default_rng(5).standard_normal((3, 6, 3)).astype(np.float32)}
    for lengths in (None, np.array([6, 2, 4])):
        fast = bound.scan(x, lengths=lengths)
        copied = bound.scan(x, lengths=lengths, trace=True)
        for n in copied.outputs:
            np.testing.assert_array_equal(fast.outputs[n], copied.outputs[n], err_msg=n)
        for n in copied.final_state:
            np.testing.assert_array_equal(fast.final_state[n], copied.final_state[n], err_msg=n)
        if lengths is not None:
            assert not fast.outputs["y"][1, 2:].any(), "padded steps output zeros"
        fast.outputs["y"][:] = 7.0
        assert not np.any(fast.final_state["h"] == 7.0), "a final state is not a view of an output"


def test_the_numpy_scan_reuses_an_output_array_only_when_no_one_holds_it():
    program = rnncompile.compile(SPECS / "lstm.yaml", dims={"I": 3, "H": 4})
    (use,) = program.plan.uses()
    params = make_params(program, 0, None, "float64")
    bound = CellRunner(program.cell(use), "float64").bind({n: params[use.key(n)] for n in program.cell(use).params})
    rng = np.random.default_rng(7)
    x1, x2 = ({"x": rng.standard_normal((2, 5, 3))} for _ in range(2))
    held = bound.scan(x1).outputs["y"]
    kept = held.copy()
    again = bound.scan(x2).outputs["y"]
    np.testing.assert_array_equal(held, kept)  # the first result was still held: a new array for the second
    assert not np.shares_memory(held, again)
    where = id(again.base)  # not the array itself: holding it would keep it from being reused
    del held, kept, again
    third = bound.scan(x1).outputs["y"]
    assert id(third.base) == where, "an array nobody holds any more is written again"
    np.testing.assert_array_equal(third, bound.scan(x1, trace=True).outputs["y"])


@pytest.mark.slow
def test_the_benchmark_s_pytorch_ntm_gives_our_gradients():
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_train import torch_ntm_grad

    program = rnncompile.compile(SPECS / "ntm.yaml")
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((3, 5, 8)), rng.random((3, 5, 8))
    weights = make_params(program, 0, None, "float64")
    ours = GradProgram(program, "mse")({"x": x}, y, weights)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    loss, grads = torch_ntm_grad(tp, torch.tensor(x), torch.tensor(y))
    assert ours.loss == pytest.approx(loss, rel=1e-12)
    for k, g in grads.items():
        np.testing.assert_allclose(ours.grads[k], g.numpy(), rtol=1e-9, atol=1e-15, err_msg=k)
