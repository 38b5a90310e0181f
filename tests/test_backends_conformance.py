"""Conformance: every shipped spec on every registered backend agrees with the NumPy interpreter.

The interpreter is the reference (it is itself checked against the op table,
PyTorch and ONNX elsewhere). Each backend in `rnncompile.registry.available()`
runs each spec in specs/, specs/cells/ and examples/ with the same params and inputs: a
batch of 3, and for models that read sequences, lengths 1..T so padded steps
are exercised. float32 runs agree to float32 tolerance, float64 runs to 1e-10.
A backend added to pyproject.toml's `rnncompile.backends` joins this suite.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from conftest import ROOT, SPECS
from rnncompile import registry
from rnncompile.api import context_infos, input_infos, make_params
from rnncompile.data import random_inputs

REFERENCE = "numpy"
BACKENDS = [b for b in registry.available() if b != REFERENCE]
TOL = {"float32": {"rtol": 1e-5, "atol": 1e-5}, "float64": {"rtol": 1e-10, "atol": 1e-10}}
BATCH = 3


def _is_spec(path) -> bool:
    return path.read_text().lstrip().startswith("rnncompile:")


SHIPPED = (sorted(SPECS.glob("*.yaml")) + sorted(SPECS.glob("cells/*.yaml"))
           + sorted(p for p in ROOT.glob("examples/*/*.yaml") if _is_spec(p)))
IDS = [str(p.relative_to(ROOT)) for p in SHIPPED]
_PROGRAMS: dict = {}


def program_of(path, optimize=True):
    key = (path, optimize)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = rnncompile.compile(path, optimize=optimize)
    return _PROGRAMS[key]


def require(backend: str, program) -> None:
    """Skip, with the backend's reason, where it says it cannot run this program here (e.g. the c backend
    without a C compiler on PATH)."""
    why = getattr(registry.get(backend), "unsupported", lambda program: None)(program)
    if why:
        pytest.skip(f"backend {backend}: {why}")


def test_backends_beyond_the_reference_are_registered():
    assert "python" in BACKENDS, ("the python backend is not registered: reinstall with `pip install -e .` "
                                  "so pyproject.toml's rnncompile.backends entry points are seen")


def sequence_case(program, dtype, seed=3):
    """Inputs, context and lengths for a non-tree model: a batch of 3, the last sequences cut short."""
    plan = program.plan
    steps = program.checked.steps(None)
    vocab = len(program.vocab.tokens) if program.vocab else None
    inputs = random_inputs(input_infos(program), BATCH, steps, seed, dtype, vocab)
    context = None
    if plan.context:
        context = {n: v[:, 0] for n, v in random_inputs(context_infos(program), BATCH, 1, seed + 1, dtype).items()}
    lengths = None
    if plan.stack is not None and inputs:
        lengths = np.array([steps, max(1, steps // 2), 1])
    return inputs, context, lengths


def assert_same(got: dict, want: dict, dtype: str, what: str):
    assert set(got) == set(want), f"{what}: keys {sorted(got)} != {sorted(want)}"
    for name in want:
        g, w = np.asarray(got[name]), np.asarray(want[name])
        assert g.shape == w.shape, f"{what} `{name}`: shape {g.shape} != {w.shape}"
        np.testing.assert_allclose(g, w, err_msg=f"{what} `{name}`", **TOL[dtype])


def run_both(program, backend, dtype, **kw):
    return [rnncompile.run(program, backend=b, dtype=dtype, **kw) for b in (REFERENCE, backend)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", SHIPPED, ids=IDS)
def test_spec_agrees_with_the_interpreter(spec, dtype, backend):
    program = program_of(spec)
    require(backend, program)
    params = make_params(program, seed=0, dtype=dtype)
    if program.plan.kind == "tree":
        for mode in ("level", "node"):
            want, got = run_both(program, backend, dtype, params=params, batch=BATCH, seed=1, mode=mode)
            assert_same(got.outputs, want.outputs, dtype, f"{mode}: outputs")
            assert_same(got.nodes, want.nodes, dtype, f"{mode}: node values")
        return
    inputs, context, lengths = sequence_case(program, dtype)
    want, got = run_both(program, backend, dtype, inputs=inputs, context=context, lengths=lengths, params=params,
                         batch=BATCH, seed=1)
    assert_same(got.outputs, want.outputs, dtype, "outputs")
    assert_same(got.final_state, want.final_state, dtype, "final state")
    if want.tokens is not None:  # decoders: the same tokens, chosen from the same distributions
        np.testing.assert_array_equal(got.tokens, want.tokens)
        np.testing.assert_array_equal(got.lengths, want.lengths)


SEQUENCE = [p for p in SHIPPED if program_of(p).plan.kind == "sequence"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", SEQUENCE, ids=[str(p.relative_to(ROOT)) for p in SEQUENCE])
def test_given_start_state_agrees(spec, backend):
    """Streaming: every layer starts from a given state instead of its init."""
    program = program_of(spec)
    require(backend, program)
    inputs, context, lengths = sequence_case(program, "float64")
    rng = np.random.default_rng(5)
    state = {u.key(n): rng.standard_normal((BATCH,) + s.shape) * 0.5
             for layer in program.plan.stack.layers for u in layer.uses for n, s in u.cell.states.items()}
    want, got = run_both(program, backend, "float64", inputs=inputs, context=context, lengths=lengths,
                         init_state=state, params=make_params(program, 0, dtype="float64"))
    assert_same(got.outputs, want.outputs, "float64", "outputs")
    assert_same(got.final_state, want.final_state, "float64", "final state")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimize", [True, False], ids=["optimised", "as-written"])
@pytest.mark.parametrize("spec", SHIPPED, ids=IDS)
def test_trace_agrees(spec, optimize, backend):
    """`run --trace`: every node at every step (the previous state at step t is the state before step t)."""
    program = program_of(spec, optimize)
    require(backend, program)
    if program.plan.kind == "tree":
        want, got = run_both(program, backend, "float64", batch=2, trace=True)
        assert [(r, list(n)) for r, n, _ in got.trace] == [(r, list(n)) for r, n, _ in want.trace]
        for (rule, _, g), (_, _, w) in zip(got.trace, want.trace):
            assert_same(g, w, "float64", f"trace of {rule}")
        return
    inputs, context, lengths = sequence_case(program, "float64")
    want, got = run_both(program, backend, "float64", inputs=inputs, context=context, lengths=lengths, trace=True)
    assert set(got.trace) == set(want.trace)
    for prefix in want.trace:
        cell = program.cell(next(u for u in program.plan.uses() if u.prefix == prefix))
        named = {f"{cell.node(n).op} {cell.node(n).label or cell.node(n).attr('name') or ''} %{n}": v
                 for n, v in got.trace[prefix].items()}
        assert_same(named, {f"{cell.node(n).op} {cell.node(n).label or cell.node(n).attr('name') or ''} %{n}": v
                            for n, v in want.trace[prefix].items()}, "float64", f"trace of `{prefix or 'the cell'}`")


LANGUAGE_MODELS = [p for p in SHIPPED if p.stem in ("char_predictor", "word_predictor")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", LANGUAGE_MODELS, ids=[p.stem for p in LANGUAGE_MODELS])
def test_complete_agrees(spec, backend):
    """Generation feeds each token back through single steps (BoundCell.step)."""
    program = program_of(spec)
    require(backend, program)
    prompt = "the" if "char" in spec.stem else "the man"
    want, got = (rnncompile.complete(program, prompt, steps=8, temperature=0.8, seed=2, backend=b, dtype="float64")
                 for b in (REFERENCE, backend))
    np.testing.assert_array_equal(got.tokens, want.tokens)
    np.testing.assert_allclose(got.distributions, want.distributions, **TOL["float64"])
