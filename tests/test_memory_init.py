"""A memory that starts from a model input: `state: {M: {shape: [N, W], init: M0}}` with
`model: {context: {M0: [N, W]}}` (or `memory: {init: M0}`), one start value per sequence, from the
Python API and from `rnncompile run --input file.npz`, checked against tests/memory_reference.py."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import memory_reference as ref
import rnncompile
from conftest import ROOT, SPECS

DIMS = {"I": 3, "O": 2, "H": 5, "N": 6, "W": 4}
EXAMPLE = ROOT / "examples" / "memory" / "preloaded.yaml"
CONTEXT = "  input: {x: [T, I]}\n"


def _from_context(spec: str, memory_init: str) -> str:
    """specs/<spec> with its memory starting from the context input M0 [N, W]."""
    text = (SPECS / spec).read_text()
    assert memory_init in text and text.endswith(CONTEXT)
    return text.replace(memory_init, memory_init.replace("1.0e-6", "M0")) + "  context: {M0: [N, W]}\n"


LONG = _from_context("ntm.yaml", "M: {shape: [N, W], init: 1.0e-6}")
SHORT = _from_context("ntm_shorthand.yaml", "init: 1.0e-6")


def _params(program, rng):
    out = {}
    for name, info in program.params.items():
        v = rng.uniform(-0.8, 0.8, info.shape)
        out[name] = ref.softmax(2 * v) if name.endswith("_init") else v
    return out


def _spec_start(program, params, batch, M0):
    """The reference's start: zeros, each head on its w_<tag>_init, and the memory M0."""
    state = {}
    for name, info in program.scan_cell.states.items():
        value = M0 if name == "M" else params[info.init] if isinstance(info.init, str) else np.zeros(info.shape)
        state[name] = np.broadcast_to(value, (batch,) + info.shape).copy()
    return state


@pytest.mark.parametrize("text", [LONG, SHORT], ids=["written out", "shorthand"])
def test_memory_starts_from_a_context_input(text):
    program = rnncompile.compile_text(text, "ntm_m0.yaml", dims=DIMS)
    assert program.scan_cell.states["M"].from_context
    rng = np.random.default_rng(2)
    batch, steps = 3, 9
    params = _params(program, rng)
    x = rng.standard_normal((batch, steps, DIMS["I"]))
    M0 = rng.standard_normal((batch, DIMS["N"], DIMS["W"]))  # a different memory for every sequence
    res = rnncompile.run(program, inputs={"x": x}, context={"M0": M0}, params=params, dtype="float64")
    want_y, want_final, _ = ref.ntm(params, x, _spec_start(program, params, batch, M0))
    np.testing.assert_allclose(res.outputs["y"], want_y, rtol=1e-9, atol=1e-9)
    for name, want in want_final.items():
        np.testing.assert_allclose(res.final_state[name], want, rtol=1e-9, atol=1e-9, err_msg=name)
    other = rnncompile.run(program, inputs={"x": x}, context={"M0": M0[::-1]}, params=params, dtype="float64")
    assert not np.allclose(other.outputs["y"][0], res.outputs["y"][0])  # the start memory matters


def test_shorthand_and_written_out_agree_with_a_context_start():
    long = rnncompile.compile_text(LONG, "long.yaml")
    short = rnncompile.compile_text(SHORT, "short.yaml")
    assert long.scan_cell.states == short.scan_cell.states
    params = rnncompile.make_params(long, seed=3)
    a = rnncompile.run(long, params=params, batch=2, steps=6, seed=3)
    b = rnncompile.run(short, params=params, batch=2, steps=6, seed=3)
    np.testing.assert_array_equal(a.final_state["M"], b.final_state["M"])


def test_cli_reads_the_start_memory_from_the_input_file(cli, tmp_path):
    spec = tmp_path / "ntm_m0.yaml"
    spec.write_text(LONG)
    program = rnncompile.compile(spec, dims=DIMS)
    rng = np.random.default_rng(4)
    x, M0 = rng.standard_normal((2, 5, DIMS["I"])), rng.standard_normal((2, DIMS["N"], DIMS["W"]))
    params = _params(program, rng)
    np.savez(tmp_path / "in.npz", x=x, M0=M0)
    np.savez(tmp_path / "w.npz", **params)
    dims = [a for k, v in DIMS.items() for a in ("--dim", f"{k}={v}")]
    code, out, err = cli("run", spec, *dims, "--input", tmp_path / "in.npz", "--weights", tmp_path / "w.npz",
                         "--dtype", "float64", "-o", tmp_path / "out.npz")
    assert code == 0, err
    want_y, want_final, _ = ref.ntm(params, x, _spec_start(program, params, 2, M0))
    with np.load(tmp_path / "out.npz") as got:
        np.testing.assert_allclose(got["outputs.y"], want_y, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got["state.M"], want_final["M"], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("context,message", [
    ({}, "missing context input `M0`"),
    ({"M0": np.zeros((2, 6, 5))}, "context input `M0` has shape [2, 6, 5]; expected [batch, 6, 4] or [6, 4]"),
    ({"M0": np.zeros((3, 6, 4))}, "context input `M0` has shape [3, 6, 4]; state `M` needs [2, 6, 4]"),
])
def test_bad_start_memories_are_refused(context, message):
    program = rnncompile.compile_text(LONG, "ntm_m0.yaml", dims=DIMS)
    x = np.zeros((2, 4, DIMS["I"]))
    with pytest.raises(rnncompile.DataError) as e:
        rnncompile.run(program, inputs={"x": x}, context=context)
    assert message in str(e.value)


# ---- the example: a knowledge base given at run time ------------------------------------------------

def _preload():
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import preload
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    return preload


def test_example_answers_from_the_preloaded_and_the_new_facts():
    preload = _preload()
    program = rnncompile.compile(EXAMPLE)
    tokens = program.vocab.tokens
    memory, free = preload.knowledge_base(tokens, program.dims["N"])
    key, value = preload.sequence(tokens)
    res = rnncompile.run(program, inputs={"key": key, "value": value}, context={"M0": memory, "free": free})
    capital = dict(preload.KNOWN + preload.TOLD)
    answers = res.outputs["answer"][0, len(preload.TOLD):]
    assert [tokens[i] for i in answers.argmax(-1)] == [capital[k] for k in preload.ASKED]
    assert answers.max(-1).min() > 0.999
    empty = rnncompile.run(program, inputs={"key": key, "value": value},
                           context={"M0": np.zeros_like(memory), "free": free})
    known = [i for i, k in enumerate(preload.ASKED) if k in dict(preload.KNOWN)]
    got = empty.outputs["answer"][0, len(preload.TOLD):].argmax(-1)
    assert all(tokens[got[i]] != capital[preload.ASKED[i]] for i in known)  # without M0 nothing is known


def test_example_runs_from_the_command_line(cli, tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE.parent / "preload.py"), str(tmp_path / "kb.npz")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    code, out, err = cli("run", EXAMPLE, "--input", tmp_path / "kb.npz", "-o", tmp_path / "out.npz")
    assert code == 0, err
    assert "top: 'rome':1.000" in out  # the last question: italy ?
    with np.load(tmp_path / "out.npz") as got:
        tokens = rnncompile.compile(EXAMPLE).vocab.tokens
        assert [tokens[i] for i in got["outputs.answer"][0, 2:].argmax(-1)] == ["nairobi", "lima", "paris", "rome"]
