"""Every shipped spec in specs/ has a gradient test against central finite differences (float64).

tests/test_autodiff.py checks the sequence specs of its SEQUENCE_SPECS, the teacher-forced encoder-decoders and
the tree models; tests/test_grad_memn2n.py checks MemN2N. This file checks every other spec in specs/ (a spec
added there is picked up here by itself), shrunk to small dims, with a decoder that feeds back its own tokens
switched to teacher forcing (sampling is not differentiable). One test fails when a spec has no gradient test.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from rnncompile.autodiff.bptt import GradProgram
from rnncompile.autodiff.losses import default_loss, reference_loss
from rnncompile.check import check_file
from rnncompile.drivers import Executable
from rnncompile.params import make_params
from test_autodiff import SEQUENCE_SPECS

from conftest import SPECS
from finite_differences import central_difference

TEACHER_FORCED_ELSEWHERE = {"seq2seq", "attention_luong", "attention_bahdanau"}  # test_autodiff.py
TREES_ELSEWHERE = {"rvnn", "treelstm_childsum", "treelstm_nary"}  # test_autodiff.py
ELSEWHERE = set(SEQUENCE_SPECS) | TEACHER_FORCED_ELSEWHERE | TREES_ELSEWHERE | {"memn2n"}  # memn2n: test_grad_memn2n
SHIPPED = sorted(p.stem for p in SPECS.glob("*.yaml"))
HERE = [n for n in SHIPPED if n not in ELSEWHERE]
STEPS, BATCH, LENGTHS = 4, 3, np.array([4, 2, 3])


def test_every_shipped_spec_has_a_gradient_test():
    assert HERE, "every spec is checked elsewhere: this file checks none"
    assert set(HERE) | ELSEWHERE >= set(SHIPPED)
    assert "lstm_proj" in HERE and "captioner" in HERE and "ntm_shorthand" in HERE


def _teacher_forced(text: str) -> str:
    """A decoder that feeds back its own tokens, fed the target input `tgt` instead."""
    text = text.replace("feed: previous_output", "feed: target\n    target: tgt")
    if "  input:" in text:
        return text.replace("  input: {", "  input: {tgt: [T], ", 1)
    return text.replace("model:\n", "model:\n  input: {tgt: [T]}\n", 1)


def _small(name):
    """The spec with every declared dim at most 4 and STEPS time steps (the time axis of every shipped spec's
    inputs is T)."""
    path = SPECS / f"{name}.yaml"
    checked = check_file(path)
    vocab_dim = checked.spec.vocab.dim if checked.spec.vocab is not None else None
    dims = {k: min(v, 4) for k, v in checked.spec.dims.items() if k != vocab_dim}
    text = path.read_text()
    if checked.plan.decoder is not None and checked.plan.decoder.feed != "target":
        text = _teacher_forced(text)
    return rnncompile.compile_text(text, str(path), {**dims, "T": STEPS})


def _data(program, gp, rng, kind):
    plan = program.plan
    inputs = {}
    for n, shape in plan.inputs.items():
        if plan.input_dtypes.get(n) == "token":
            inputs[n] = rng.integers(0, len(program.vocab.tokens), (BATCH, STEPS) + tuple(shape))
        else:
            inputs[n] = rng.standard_normal((BATCH, STEPS) + tuple(shape))
    context = {n: rng.standard_normal((BATCH,) + tuple(s)) for n, s in plan.context.items()} or None
    if gp.decode is not None:
        return inputs, context, None
    shape = gp._output_shapes()[gp.output]
    lead = (BATCH, STEPS) if gp.per_step else (BATCH,)
    if kind == "xent":
        target = rng.integers(0, shape[0], lead)
    elif kind == "bce":
        target = rng.uniform(0, 1, lead + shape)
    else:
        target = rng.standard_normal(lead + shape)
    return inputs, context, target


@pytest.mark.parametrize("name", HERE)
def test_gradients_match_finite_differences(name):
    program = _small(name)
    kind = default_loss(program, None)
    gp = GradProgram(program, kind)
    rng = np.random.default_rng(2)
    inputs, context, target = _data(program, gp, rng, kind)
    lengths = {n: LENGTHS for n in program.plan.inputs} if len(program.plan.inputs) > 1 else LENGTHS
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in make_params(program, 0, None, "float64").items()}
    got = gp(inputs, target, params, lengths, context=context)
    exe = Executable(program, "numpy", "float64")
    compared = inputs[gp.decode.decoder.target] if gp.decode is not None else target
    steps = LENGTHS if gp.per_step else None

    def loss(p):
        out = exe.run(inputs, p, lengths=lengths, context=context).outputs[gp.output]
        return reference_loss(out, compared, kind, steps, gp.reduction, gp.per_step)

    assert got.loss == pytest.approx(loss(params), rel=1e-12)
    eps = 1e-5
    worst, nums = 0.0, {}
    for key, value in params.items():
        num = nums[key] = central_difference(loss, params, key, eps)
        err = _rel(got.grads[key], num)
        worst = max(worst, err)
        # an NTM's key gradients are ~5e-6 against a loss of ~4: float64 rounding of the loss alone leaves
        # ~1e-10 of error in central differences, so a param's gradient that small is held to that instead
        assert err < 1e-6 or np.linalg.norm(got.grads[key] - num) < 1e-9, key
    whole = [np.concatenate([np.ravel(g[k]) for k in params]) for g in (got.grads, nums)]
    assert _rel(*whole) < 1e-6
    print(f"{name}: {kind} loss {got.loss:.6g}, worst relative gradient error {worst:.1e} over {len(params)} params")


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-30))
