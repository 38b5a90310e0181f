"""The exported C is a rendering of the model's flow (rnncompile.flow): one renderer per flow op, a stated
reason for each op it does not render, the one start-state rule (a given state, then the `over` bundle, then
the cell's own init: a constant, a param or a context input), and a decoder's memory (attention over the
encoder's outputs, masked by the source length). Each exported file is built with the strict flags and run
one sequence at a time against the interpreter's batch. Skips without a C compiler.
"""
from __future__ import annotations

import dataclasses
import re
import struct
import subprocess

import numpy as np
import pytest

import rnncompile
from conftest import SPECS
from rnncompile import flow
from rnncompile.api import make_params
from rnncompile.backends.c import build
from rnncompile.backends.c.export import RENDERERS, UNSUPPORTED
from rnncompile.errors import RnnCompileError, UsageError
from test_backends_conformance import TOL
from test_export_c import STRICT, contexts, decoder_main_c, run_exported

needs_cc = pytest.mark.skipif(build.find_compiler() is None, reason="no C compiler on PATH")


def test_every_flow_op_has_a_c_renderer_or_a_stated_reason():
    missing = [op for op in flow.OP_NAMES if op not in RENDERERS and op not in UNSUPPORTED]
    assert not missing, f"backends/c/export.py renders none of (and states no reason for): {', '.join(missing)}"
    assert not set(RENDERERS) & set(UNSUPPORTED), "an op is both rendered and refused"
    assert set(RENDERERS) | set(UNSUPPORTED) <= set(flow.OP_NAMES), "a renderer for an op the flow does not have"
    assert all(isinstance(why, str) and why.strip() for why in UNSUPPORTED.values())


def test_an_op_c_does_not_render_is_named_with_its_reason(cli, tmp_path):
    code, out, err = cli("export", SPECS / "rvnn.yaml", "--backend", "c", "-o", tmp_path / "rvnn.c")
    assert code == 0, err
    assert f"note: there is no rvnn_run (rvnn is {UNSUPPORTED['tree_fold']})" in err
    assert "rvnn_run" not in (tmp_path / "rvnn.c").read_text().split("*/", 1)[1]


def test_the_run_renders_the_flow_in_order(tmp_path):
    """bigru's run: its four scans in the flow's order (direction by direction, layer by layer), each layer's
    merge after its two scans, and nothing the flow does not hold."""
    program = rnncompile.compile(SPECS / "bigru.yaml")
    source = rnncompile.registry.get("c").export(program, "bigru.yaml", "bigru").source
    run = source[source.index("int bigru_run(bigru_state *state, int steps, const float *x, float *h, "
                              "bigru_scratch *scratch)\n{"):]
    want = [f"&bigru_{op.use.prefix.replace('.', '_')}weights" for op in program.flow.of("scan")]
    at = [run.index(w) for w in want]
    assert at == sorted(at)
    merges = [i for i in range(len(run)) if run.startswith("for (int t = 0; t < steps; ++t) {", i)]
    assert len(merges) == len(program.flow.of("merge")) == 2
    assert at[1] < merges[0] < at[2] and at[3] < merges[1]


def test_a_start_state_c_cannot_write_is_refused_where_it_is(cli, tmp_path):
    """A state the caller may give that otherwise comes from a bundle: C's run takes the caller's state as
    given, so it cannot tell; the export says which op, and what to use instead."""
    program = rnncompile.compile(SPECS / "seq2seq.yaml")
    ops = [dataclasses.replace(op, given=True) if op.op == "start_state" and op.over else op for op in program.flow]
    program.__dict__["flow"] = dataclasses.replace(program.flow, ops=ops)
    with pytest.raises(UsageError) as e:
        rnncompile.registry.get("c").export(program, "seq2seq.yaml", "s2s")
    assert str(e.value) == ("model.decoder: a start state that the caller may give and that otherwise comes from "
                            "`encoder.final` is not written in C; export with --backend python")


# -- the start-state rule, with a state that starts from a context input -----------------------------------
NTM_M0 = ((SPECS / "ntm.yaml").read_text().replace("M: {shape: [N, W], init: 1.0e-6}", "M: {shape: [N, W], init: M0}")
          + "  context: {M0: [N, W]}\n")
# the captioner's `c` from a context input, its `h` from the bridge (the `over` bundle): both rules in one run
CAPTIONER_C0 = ((SPECS / "captioner.yaml").read_text()
                .replace("    state: {h: H, c: H}\n", "    state: {h: H, c: {shape: H, init: c0}}\n")
                .replace("  context: {img: [F]}", "  context: {img: [F], c0: [H]}"))
# seq2seq's decoder `c` names a context input, but the encoder's final state (the `over` bundle) wins
SEQ2SEQ_C0 = ((SPECS / "seq2seq.yaml").read_text()
              .replace("  decoder_lstm:\n    inputs: {y_prev: token}\n    state: {h: H, c: H}\n",
                       "  decoder_lstm:\n    inputs: {y_prev: token}\n    state: {h: H, c: {shape: H, init: c0}}\n")
              .replace("\nmodel:\n", "\nmodel:\n  context: {c0: [H]}\n"))


def _export(cli, tmp_path, path, dtype, params):
    np.savez(tmp_path / "weights.npz", **params)
    code, out, err = cli("export", path, "--backend", "c", "--weights", tmp_path / "weights.npz", "--dtype", dtype,
                         "-o", tmp_path / f"{path.stem}.c")
    assert code == 0, err
    return err


@needs_cc
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_state_from_a_context_input_starts_as_the_interpreter_starts_it(cli, tmp_path, dtype):
    """NTM's memory M from the context input M0: <m>_init takes M0 (a state the caller does not give)."""
    path = tmp_path / "ntm_m0.yaml"
    path.write_text(NTM_M0)
    program = rnncompile.compile(path)
    assert program.scan_cell.states["M"].from_context
    params = make_params(program, seed=2, dtype=dtype)
    _export(cli, tmp_path, path, dtype, params)
    face = rnncompile.registry.get("c").export(program, path.name, path.stem, params, dtype).interface
    assert face["init_context"] == [("M0", 16 * 8)] and face["context"] == []  # the run itself never reads M0
    rng = np.random.default_rng(5)
    steps = program.checked.steps(None)
    inputs = {"x": rng.standard_normal((3, steps, 8)).astype(dtype)}
    context = {"M0": rng.uniform(-0.5, 0.5, (3, 16, 8)).astype(dtype)}
    lengths = np.array([steps, 3, 1])
    want = rnncompile.run(program, inputs=inputs, params=params, context=context, lengths=lengths, dtype=dtype)
    flat = {"M0": context["M0"].reshape(3, -1)}
    got = run_exported(tmp_path, path.stem, face, dtype, inputs, flat, lengths, None)
    for i, (outs, st) in enumerate(got):
        for n, size, _ in face["outputs"]:
            np.testing.assert_allclose(outs[n].reshape(lengths[i], size), want.outputs[n][i, :lengths[i]],
                                       err_msg=f"sequence {i}: {n}", **TOL[dtype])
        for k, _ in face["state"]:
            np.testing.assert_allclose(st[k], np.ravel(want.final_state[k][i]), err_msg=f"sequence {i}: {k}",
                                       **TOL[dtype])
    other = rnncompile.run(program, inputs=inputs, params=params, context={"M0": context["M0"][::-1]},
                           lengths=lengths, dtype=dtype)
    assert not np.allclose(other.final_state["M"], want.final_state["M"])  # M0 matters


def run_decoder(tmp_path, name, face, dtype, inputs, context, lengths) -> list[dict]:
    """Build <name>.c with test_export_c's decoder main(), decode the batch one sequence at a time: per sequence
    its status, count, tokens, distributions [N, V] and final state (by key)."""
    real = np.dtype(dtype)
    (tmp_path / "main.c").write_text(decoder_main_c(name, face, dtype))
    done = subprocess.run([*build.compiler(), *STRICT, "-o", str(tmp_path / "main"), str(tmp_path / "main.c"), "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    b = next(iter((inputs or context).values())).shape[0]
    blob = [struct.pack("<i", b)]
    for i in range(b):
        for n, _, tok in face["inputs"]:
            blob += [struct.pack("<i", int(lengths[i])), inputs[n][i, :lengths[i]].astype(np.int32).tobytes()]
        blob += [np.ascontiguousarray(context[n][i], real).tobytes() for n, _ in contexts(face)]
    out = subprocess.run([str(tmp_path / "main")], input=b"".join(blob), capture_output=True, check=True).stdout
    N, V = face["decode"]["steps"], face["decode"]["vocab"]
    sizes = [s for _, s in face["state"]]
    per = 8 + 4 * N + real.itemsize * (N * V + sum(sizes))
    assert len(out) == b * per
    got = []
    for i in range(b):
        row = out[i * per:(i + 1) * per]
        status, count = np.frombuffer(row, np.int32, 2)
        flat = np.frombuffer(row, real, sum(sizes), 8 + 4 * N + real.itemsize * N * V)
        state = dict(zip([k for k, _ in face["state"]], np.split(flat, np.cumsum(sizes)[:-1])))
        got.append({"status": int(status), "count": int(count), "tokens": np.frombuffer(row, np.int32, N, 8),
                    "dist": np.frombuffer(row, real, N * V, 8 + 4 * N).reshape(N, V), "state": state})
    return got


def assert_decodes_alike(got: list[dict], want, face, end: int, dtype: str) -> None:
    width = want.tokens.shape[1]  # the interpreter stops when every sequence has ended
    for i, g in enumerate(got):
        assert g["status"] == 0 and g["count"] == want.lengths[i], f"sequence {i}"
        np.testing.assert_array_equal(g["tokens"][:width], want.tokens[i], err_msg=f"sequence {i}: tokens")
        assert (g["tokens"][width:] == end).all() and not g["dist"][width:].any()
        np.testing.assert_allclose(g["dist"][:width], want.outputs[face["decode"]["output"]][i],
                                   err_msg=f"sequence {i}: distributions", **TOL[dtype])
        for k, _ in face["state"]:
            np.testing.assert_allclose(g["state"][k], np.ravel(want.final_state[k][i]),
                                       err_msg=f"sequence {i}: state {k}", **TOL[dtype])


@needs_cc
@pytest.mark.parametrize("case", ["captioner_c0", "seq2seq_c0"])
def test_a_decoder_state_from_a_context_input_follows_the_start_state_rule(cli, tmp_path, case):
    """captioner_c0: `h` from the bridge (the over bundle), `c` from the context input c0 (its own init);
    seq2seq_c0: `c` names c0, but the encoder's final state starts it: the over bundle wins."""
    dtype = "float64"
    path = tmp_path / f"{case}.yaml"
    path.write_text(CAPTIONER_C0 if case == "captioner_c0" else SEQ2SEQ_C0)
    program = rnncompile.compile(path)
    params = make_params(program, seed=4, dtype=dtype)
    err = _export(cli, tmp_path, path, dtype, params)
    assert "sampling and teacher forcing are not written in C" in err
    face = rnncompile.registry.get("c").export(program, path.name, path.stem, params, dtype).interface
    assert ("c0", 32) in face["context"]  # the run starts the decoder, so the run reads c0
    rng, b = np.random.default_rng(8), 5
    context = {"c0": rng.standard_normal((b, 32)).astype(dtype)}
    inputs, lengths = {}, None
    if case == "captioner_c0":
        context["img"] = (rng.standard_normal((b, 32)) * 2).astype(dtype)
    else:
        inputs = {"src": rng.integers(0, len(program.vocab.tokens), (b, 8))}
        lengths = np.array([8, 5, 3, 1, 6])
    want = rnncompile.run(program, inputs=inputs, params=params, context=context, lengths=lengths, dtype=dtype)
    got = run_decoder(tmp_path, path.stem, face, dtype, inputs, context, lengths)
    assert_decodes_alike(got, want, face, program.vocab.tokens.index(program.vocab.end), dtype)
    other = rnncompile.run(program, inputs=inputs, params=params, context={**context, "c0": -context["c0"]},
                           lengths=lengths, dtype=dtype)
    moved = not np.allclose(other.outputs["p"][:, :1], want.outputs["p"][:, :1])
    assert moved == (case == "captioner_c0")  # seq2seq_c0: c0 is overridden by the encoder's c


# -- a decoder's memory: attention over the encoder's outputs ----------------------------------------------
ATTENTION = sorted(SPECS.glob("attention_*.yaml"))


@needs_cc
@pytest.mark.parametrize("spec", ATTENTION, ids=[p.stem for p in ATTENTION])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_attention_decodes_in_c_as_the_interpreter_decodes(cli, tmp_path, spec, dtype):
    """Greedy decoding in C against the interpreter's: the memory is the encoder's top outputs at every source
    step, and its mask (1 at real source steps) comes from each source's length, several of them short."""
    text = spec.read_text()
    forced = re.search(r"^    feed: target\b.*\n    target: (\w+).*\n", text, re.M)
    if forced:  # C decodes greedily: compare with the greedy interpreter, the target input gone
        text = text.replace(forced.group(0), "    feed: previous_output\n")
        text = re.sub(rf"(input: {{.*?), {forced.group(1)}: \[\w+\]", r"\1", text)
        spec = tmp_path / spec.name
        spec.write_text(text)
    try:
        program = rnncompile.compile(spec)
    except RnnCompileError as e:  # the model level of attention lands separately
        pytest.skip(f"{spec.name} does not compile yet: {str(e).splitlines()[0]}")
    (decode,) = program.flow.of("decode")
    assert decode.decoder.feed == "previous_output"
    assert decode.memory and decode.memory_mask
    params = make_params(program, seed=3, dtype=dtype)
    err = _export(cli, tmp_path, spec, dtype, params)
    assert "sampling and teacher forcing are not written in C" in err
    face = rnncompile.registry.get("c").export(program, spec.name, spec.stem, params, dtype).interface
    (src, _, _), = face["inputs"]  # the target (teacher forcing) is not read by the C run
    steps = program.plan.steps_of(program.dims)[src]
    rng, b = np.random.default_rng(6), 6
    inputs = {src: rng.integers(3, len(program.vocab.tokens), (b, steps))}
    lengths = np.array([steps, steps - 2, 3, 1, steps, 2])
    context = {n: rng.standard_normal((b, size)).astype(dtype) for n, size in contexts(face)}
    try:
        want = rnncompile.run(program, inputs=inputs, params=params, context=context or None,
                              lengths={src: lengths}, dtype=dtype)
    except RnnCompileError as e:
        pytest.skip(f"{spec.name} does not run yet: {str(e).splitlines()[0]}")
    got = run_decoder(tmp_path, spec.stem, face, dtype, inputs, context, lengths)
    assert_decodes_alike(got, want, face, program.vocab.tokens.index(program.vocab.end), dtype)
    text = (tmp_path / f"{spec.stem}.c").read_text()
    assert f"if (steps > {steps}) return -1;" in text  # a source longer than the memory holds is refused
