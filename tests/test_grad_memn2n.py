"""MemN2N's gradients (Sukhbaatar et al. 2015, specs/memn2n.yaml): the bag of words is a sum over the middle
axis of a [S, L, D] embedding, whose adjoint is spread back along that axis (the `expand` op) and scattered
into the tables through a stack of one-hot products (embed of [S, L] ids).

- against central finite differences of the interpreter's loss (float64), every param;
- against a MemN2N written here in PyTorch from the paper's equations (autograd, the same weights);
- the python and c backends run the same backward cells to the same numbers.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from rnncompile.autodiff.bptt import GradProgram
from rnncompile.autodiff.losses import reference_loss
from rnncompile.drivers import Executable
from rnncompile.params import make_params

from conftest import SPECS
from finite_differences import central_difference

DIMS = {"S": 3, "L": 2, "D": 3, "T": 2}
BATCH = 2


def _case(seed=0):
    program = rnncompile.compile(SPECS / "memn2n.yaml", dims=DIMS)
    rng = np.random.default_rng(seed)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in make_params(program, 0, None, "float64").items()}
    vocab = len(program.vocab.tokens)
    inputs = {"story": rng.integers(0, vocab, (BATCH, DIMS["T"], DIMS["S"], DIMS["L"])),
              "question": rng.integers(0, vocab, (BATCH, DIMS["T"], DIMS["L"]))}
    target = rng.integers(0, vocab, (BATCH, DIMS["T"]))
    return program, params, inputs, target


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-30))


def test_memn2n_gradients_match_finite_differences():
    program, params, inputs, target = _case()
    got = GradProgram(program, "xent", output="answer")(inputs, target, params)
    exe = Executable(program, "numpy", "float64")

    def loss(p):
        return reference_loss(exe.run(inputs, p).outputs["answer"], target, "xent")

    assert got.loss == pytest.approx(loss(params), rel=1e-12)
    eps = 1e-5
    for key, value in params.items():
        num = central_difference(loss, params, key, eps)
        assert np.abs(num).max() > 0, key  # every table and encoding reaches the loss
        assert _rel(got.grads[key], num) < 1e-6, key


def _torch_memn2n(torch, p, story, question, hops=3):
    """The paper's forward pass, section 2 with adjacent tying: A_1 = B = A, A_{k+1} = C_k, W^T = C_K."""
    def bag(table, ids):
        return table[torch.as_tensor(ids)].sum(dim=-2)

    u = bag(p["A"], question)  # [B, T, D]
    memory = bag(p["A"], story) + p["T_A"]  # [B, T, S, D]
    for k in range(1, hops + 1):
        out = bag(p[f"C{k}"], story) + p[f"T_C{k}"]
        attention = torch.softmax((memory * u[..., None, :]).sum(-1), dim=-1)
        u = u + (attention[..., None] * out).sum(-2)
        memory = out
    return u @ p[f"C{hops}"].T  # the answer's logits


@pytest.mark.torch
def test_memn2n_gradients_match_pytorch(request):
    pytest.importorskip("torch", reason="compares against PyTorch autograd")
    torch = request.getfixturevalue("torch_float64")
    program, params, inputs, target = _case(seed=3)
    got = GradProgram(program, "xent", output="answer")(inputs, target, params)
    weights = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    logits = _torch_memn2n(torch, weights, inputs["story"], inputs["question"])
    each = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.as_tensor(target).reshape(-1),
                                             reduction="none")
    loss = each.sum() / BATCH  # the sum over steps, the mean over the batch
    loss.backward()
    assert got.loss == pytest.approx(loss.item(), rel=1e-12)
    for key, w in weights.items():
        assert _rel(got.grads[key], w.grad.numpy()) < 1e-10, key


@pytest.mark.parametrize("backend", ["python", pytest.param("c", marks=pytest.mark.slow)])
def test_memn2n_backward_cells_run_on_every_backend(backend):
    program, params, inputs, target = _case(seed=5)
    ref = GradProgram(program, "xent", output="answer")(inputs, target, params)
    got = GradProgram(program, "xent", output="answer", backend=backend)(inputs, target, params)
    assert got.loss == pytest.approx(ref.loss, rel=1e-12)
    for key in ref.grads:
        np.testing.assert_allclose(got.grads[key], ref.grads[key], rtol=1e-10, atol=1e-12, err_msg=key)
