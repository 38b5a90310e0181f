"""`rnncompile export --backend c`: one standalone C99 file that builds warning-free and runs like the
interpreter.

Each exported file is compiled with `-std=c99 -Wall -Wextra -pedantic -Werror` together with a small
generated main() that reads sequences from stdin (binary), runs them one by one with <m>_init (or a
given start state) and <m>_run, and writes the outputs and final state to stdout; the numbers must be
the interpreter's on the same batch (cut to each sequence's length). Skips without a C compiler.
"""
from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.c import build
from conftest import SPECS
from rnncompile.api import make_params
from test_backends_conformance import SEQUENCE, TOL, sequence_case
from test_export import CONTEXT_HEAD

pytestmark = pytest.mark.skipif(build.find_compiler() is None, reason="no C compiler on PATH")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1"]


def main_c(name: str, face: dict, dtype: str) -> str:
    """A main() that reads [B, then per sequence: steps, inputs, context, given?, state] from stdin and writes
    [per sequence: status, outputs, state] to stdout, through the exported file's API."""
    T, M = ("float" if dtype == "float32" else "double"), name.upper()
    decl, read, args = [], [], []
    for n, size, tok in face["inputs"]:
        decl.append(f"static {'int32_t' if tok else T} in_{n}[{M}_MAX_STEPS * {size}];")
        read.append(f"get(in_{n}, (size_t)steps * {size} * sizeof in_{n}[0]);")
        args.append(f"in_{n}")
    for n, size in contexts(face):
        decl.append(f"static {T} ctx_{n}[{size}];")
        read.append(f"get(ctx_{n}, sizeof ctx_{n});")
    args += [f"ctx_{n}" for n, _ in face["context"]]
    write = []
    for n, size, per_step in face["outputs"]:
        decl.append(f"static {T} out_{n}[{M}_MAX_STEPS * {size}];")
        args.append(f"out_{n}")
        count = f"(size_t)steps * {size}" if per_step else str(size)
        write.append(f"fwrite(out_{n}, sizeof out_{n}[0], {count}, stdout);")
    init = ", ".join(["&state"] + [f"ctx_{n}" for n, _ in face["init_context"]])
    return "\n".join([
        "#include <stdio.h>", "#include <stdlib.h>", f'#include "{name}.c"', "",
        "static void get(void *p, size_t n) { if (fread(p, 1, n, stdin) != n) exit(3); }", *decl,
        f"static {name}_state state;", f"static {name}_scratch scratch;", "",
        "int main(void)", "{", "    int32_t batch, steps, given, status;", "    get(&batch, sizeof batch);",
        "    for (int b = 0; b < batch; ++b) {", "        get(&steps, sizeof steps);",
        *("        " + x for x in read), "        get(&given, sizeof given);",
        "        if (given) get(&state, sizeof state);", f"        else {name}_init({init});",
        f"        status = {name}_run(&state, steps, {', '.join(args)}, &scratch);",
        "        fwrite(&status, sizeof status, 1, stdout);", *("        " + x for x in write),
        "        fwrite(&state, sizeof state, 1, stdout);", "    }", "    return 0;", "}", ""])


def contexts(face: dict) -> list:
    """Every context input main() reads: those run reads, then those only init reads."""
    return face["context"] + [c for c in face["init_context"] if c not in face["context"]]


def run_exported(tmp_path, name, face, dtype, inputs, context, lengths, state):
    """Build <name>.c with main_c, run the batch through it; outputs and final state as arrays [B, ...]."""
    (tmp_path / "main.c").write_text(main_c(name, face, dtype))
    exe = tmp_path / "main"
    done = subprocess.run([*build.compiler(), *STRICT, "-o", str(exe), str(tmp_path / "main.c"), "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    real = np.dtype(dtype)
    b = next(iter(inputs.values())).shape[0]
    steps = lengths if lengths is not None else [next(iter(inputs.values())).shape[1]] * b
    blob = [struct.pack("<i", b)]
    for i in range(b):
        blob.append(struct.pack("<i", int(steps[i])))
        for n, _, tok in face["inputs"]:
            blob.append(np.ascontiguousarray(inputs[n][i, :steps[i]], np.int32 if tok else real).tobytes())
        for n, _ in contexts(face):
            blob.append(np.ascontiguousarray(context[n][i], real).tobytes())
        blob.append(struct.pack("<i", state is not None))
        if state is not None:
            blob.append(np.concatenate([np.ravel(state[k][i]) for k, _ in face["state"]]).astype(real).tobytes())
    out = subprocess.run([str(exe)], input=b"".join(blob), capture_output=True, check=True).stdout
    got, at = [], 0

    def take(count, dt=real):
        nonlocal at
        v = np.frombuffer(out, dt, count, at)
        at += count * np.dtype(dt).itemsize
        return v

    for i in range(b):
        assert take(1, np.int32)[0] == 0, f"sequence {i}: run returned an error"
        outs = {n: take(steps[i] * size if per_step else size) for n, size, per_step in face["outputs"]}
        if not face["state"]:  # a model without state: the struct is one char
            at += 1
            got.append((outs, {}))
            continue
        flat = take(sum(max(1, s) for _, s in face["state"]))
        st, pos = {}, 0
        for k, size in face["state"]:
            st[k], pos = flat[pos:pos + size], pos + max(1, size)
        got.append((outs, st))
    assert at == len(out)
    return got


CASES = [(p, "float32", False) for p in SEQUENCE] + [(SPECS / "lstm.yaml", "float64", True),
                                                     (SPECS / "bigru.yaml", "float64", True),
                                                     ("ctxhead", "float32", False), ("ctxhead", "float64", True)]


@pytest.mark.parametrize("spec,dtype,with_state", CASES,
                         ids=[f"{getattr(p, 'stem', p)}-{d}{'-state' if s else ''}" for p, d, s in CASES])
def test_exported_file_builds_strictly_and_runs_like_the_interpreter(cli, tmp_path, spec, dtype, with_state):
    if spec == "ctxhead":
        spec = tmp_path / "ctxhead.yaml"
        spec.write_text(CONTEXT_HEAD)
    program = rnncompile.compile(spec)
    params = make_params(program, seed=0, dtype=dtype)
    weights = tmp_path / "weights.npz"
    np.savez(weights, **params)
    name = spec.stem
    code, out, err = cli("export", spec, "--backend", "c", "--weights", weights, "--dtype", dtype,
                         "-o", tmp_path / f"{name}.c")
    assert code == 0, err
    face = rnncompile.registry.get("c").export(program, spec.name, name, params, dtype).interface
    inputs, context, lengths = sequence_case(program, dtype)
    state = None
    if with_state:
        rng = np.random.default_rng(4)
        state = {k: rng.standard_normal((3, size)).astype(dtype) for k, size in face["state"]}
    want = rnncompile.run(program, inputs=inputs, params=params, context=context, lengths=lengths, dtype=dtype,
                          init_state=None if state is None else
                          {k: v.reshape((3,) + s.shape) for (k, v), s in zip(state.items(), _state_infos(program))})
    got = run_exported(tmp_path, name, face, dtype, inputs, context, lengths, state)
    steps = lengths if lengths is not None else [next(iter(inputs.values())).shape[1]] * 3
    for i, (outs, st) in enumerate(got):
        for n, size, per_step in face["outputs"]:
            w = want.outputs[n][i, :steps[i]] if per_step else want.outputs[n][i]
            np.testing.assert_allclose(outs[n].reshape(w.shape), w, err_msg=f"sequence {i}: {n}", **TOL[dtype])
        for k, _ in face["state"]:
            np.testing.assert_allclose(st[k], np.ravel(want.final_state[k][i]), err_msg=f"sequence {i}: state {k}",
                                       **TOL[dtype])


def _state_infos(program):
    return [u.cell.states[s] for layer in program.plan.stack.layers for u in layer.uses for s in u.cell.states]


def test_exported_file_compiles_on_its_own_and_links(cli, tmp_path):
    """The firmware way: the file compiled alone, its declarations included elsewhere."""
    assert cli("export", SPECS / "bigru.yaml", "--backend", "c", "-o", tmp_path / "bigru.c")[0] == 0
    (tmp_path / "app.c").write_text("\n".join([
        "#define BIGRU_DECLARATIONS_ONLY", '#include "bigru.c"', "#include <stdio.h>",
        "int main(void)", "{", "    static float x[4 * 8], y[4 * 32];", "    bigru_state s;", "    bigru_scratch w;",
        "    for (int i = 0; i < 4 * 8; ++i) x[i] = (float)i / 32;", "    bigru_init(&s);",
        '    printf("%d %d ", bigru_run(&s, 4, x, y, &w), bigru_run(&s, BIGRU_MAX_STEPS + 1, x, y, &w));',
        '    printf("%.6f\\n", (double)y[3 * 32 + 31]);', "    return 0;", "}", ""]))
    for args in (["-c", "bigru.c", "-o", "bigru.o"], ["-c", "app.c", "-o", "app.o"], ["app.o", "bigru.o", "-o", "app", "-lm"]):
        done = subprocess.run([*build.compiler(), *STRICT, *args], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    status, too_long, last = subprocess.run([str(tmp_path / "app")], capture_output=True, text=True,
                                            check=True).stdout.split()
    assert (status, too_long) == ("0", "-1")  # a sequence beyond BIGRU_MAX_STEPS is refused, not overrun
    program = rnncompile.compile(SPECS / "bigru.yaml")
    x = (np.arange(32, dtype=np.float32) / 32).reshape(1, 4, 8)
    want = rnncompile.run(program, inputs={"x": x}, params=make_params(program, 0)).outputs["h"][0, 3, 31]
    assert abs(float(last) - want) < 1e-5


def test_export_is_the_same_bytes_each_time_and_reads_like_the_spec(cli, tmp_path):
    for where in ("a", "b"):
        assert cli("export", SPECS / "lstm.yaml", "--backend", "c", "-o", tmp_path / where / "lstm.c")[0] == 0
    text = (tmp_path / "a" / "lstm.c").read_text()
    assert (tmp_path / "b" / "lstm.c").read_text() == text
    assert "lstm.c: C99 generated by rnncompile" in text and "from lstm.yaml" in text
    assert "weights: seeded random, as `rnncompile run --seed 0` makes them" in text
    assert "static const lstm_lstm_consts lstm_weights = {" in text
    assert "/* v23 [64] = concat(b_i, b_f, b_g, b_o, axis=0) */" in text  # where each array comes from
    assert "int lstm_run(lstm_state *state, int steps, const float *x, float *y, lstm_scratch *scratch);" in text
    assert "int lstm_step(lstm_state *state, const float *x, float *y, lstm_scratch *scratch);" in text
    assert "/* %36 c_next = add(v35, v33) : [16]  cells.lstm.let.c_next */" in text
    assert "malloc(" not in text


def test_export_weights_come_from_the_file(cli, tmp_path):
    program = rnncompile.compile(SPECS / "elman.yaml")
    params = make_params(program, seed=5)
    params = {k: np.full_like(v, 0.25) for k, v in params.items()}
    np.savez(tmp_path / "w.npz", **params)
    assert cli("export", SPECS / "elman.yaml", "--backend", "c", "--weights", tmp_path / "w.npz",
               "-o", tmp_path / "elman.c")[0] == 0
    text = (tmp_path / "elman.c").read_text()
    assert "weights: w.npz" in text and "0.25f" in text
    assert cli("export", SPECS / "elman.yaml", "--backend", "c", "--seed", "3", "-o", tmp_path / "s.c")[0] == 0
    assert "0.25f" not in (tmp_path / "s.c").read_text() and "--seed 3" in (tmp_path / "s.c").read_text()


def decoder_main_c(name: str, face: dict, dtype: str) -> str:
    """A main() that reads [B, then per sequence: steps (with an encoder), inputs, context] from stdin and writes
    [per sequence: status, count, tokens, distributions, state] to stdout, through <m>_init and <m>_run."""
    T, M = ("float" if dtype == "float32" else "double"), name.upper()
    encoder = bool(face["inputs"])
    decl, read, args = [], [], ["&state"] + (["steps"] if encoder else [])
    for n, size, tok in face["inputs"]:
        decl.append(f"static {'int32_t' if tok else T} in_{n}[{M}_MAX_STEPS * {size}];")
        read.append(f"get(in_{n}, (size_t)steps * {size} * sizeof in_{n}[0]);")
        args.append(f"in_{n}")
    for n, size in contexts(face):
        decl.append(f"static {T} ctx_{n}[{size}];")
        read.append(f"get(ctx_{n}, sizeof ctx_{n});")
    args += [f"ctx_{n}" for n, _ in face["context"]] + ["tokens", "&count", "dist", "&scratch"]
    decl += [f"static int32_t tokens[{M}_DECODE_STEPS];", f"static {T} dist[{M}_DECODE_STEPS * {face['decode']['vocab']}];"]
    init = ", ".join(["&state"] + [f"ctx_{n}" for n, _ in face["init_context"]])
    return "\n".join([
        "#include <stdio.h>", "#include <stdlib.h>", f'#include "{name}.c"', "",
        "static void get(void *p, size_t n) { if (fread(p, 1, n, stdin) != n) exit(3); }", *decl,
        f"static {name}_state state;", f"static {name}_scratch scratch;", "",
        "int main(void)", "{", "    int32_t batch, steps = 0, status, count;", "    get(&batch, sizeof batch);",
        "    for (int b = 0; b < batch; ++b) {", *(["        get(&steps, sizeof steps);"] if encoder else []),
        *("        " + x for x in read), f"        {name}_init({init});",
        f"        status = {name}_run({', '.join(args)});", "        (void)steps;",
        "        fwrite(&status, sizeof status, 1, stdout);", "        fwrite(&count, sizeof count, 1, stdout);",
        "        fwrite(tokens, sizeof tokens, 1, stdout);", "        fwrite(dist, sizeof dist, 1, stdout);",
        "        fwrite(&state, sizeof state, 1, stdout);", "    }", "    return 0;", "}", ""])


# weight seeds whose batch (below) has sequences that end on the end token and sequences that run out of steps
DECODERS = [("seq2seq", 1, "float32"), ("seq2seq", 7, "float32"), ("seq2seq", 4, "float64"), ("seq2seq", "ties", "float32"),
            ("captioner", 6, "float32"), ("captioner", 4, "float32"), ("captioner", 7, "float64"),
            ("captioner", "ties", "float64"), ("biseq2seq", 1, "float32")]
BIDIRECTIONAL = ("  encoder: {scan: encoder_lstm, input: src, keep: final}    # C = its final (h, c)",
                 "  encoder: {scan: encoder_lstm, input: src, direction: bidirectional, merge: mean, keep: final}")


@pytest.mark.parametrize("spec,seed,dtype", DECODERS, ids=[f"{s}-{w}-{d}" for s, w, d in DECODERS])
def test_exported_decoder_builds_strictly_and_decodes_like_the_interpreter(cli, tmp_path, spec, seed, dtype):
    """Greedy decoding, one sequence at a time in C, against the interpreter's batch: the same tokens, the
    same count, the distributions to TOL (zeros after a sequence's end token) and the same final state."""
    path = SPECS / f"{spec}.yaml"
    if spec == "biseq2seq":  # C: both directions' final states, averaged
        path = tmp_path / "biseq2seq.yaml"
        path.write_text((SPECS / "seq2seq.yaml").read_text().replace(*BIDIRECTIONAL))
        assert "bidirectional" in path.read_text()
    program = rnncompile.compile(path)
    params = make_params(program, seed=0 if seed == "ties" else seed, dtype=dtype)
    if seed == "ties":  # a head of zeros: every token equally likely at every step; the first one wins
        params = {k: np.zeros_like(v) if k.startswith("decoder.head.") else v for k, v in params.items()}
    np.savez(tmp_path / "weights.npz", **params)
    code, out, err = cli("export", path, "--backend", "c", "--weights", tmp_path / "weights.npz",
                         "--dtype", dtype, "-o", tmp_path / f"{spec}.c")
    assert code == 0, err
    assert f"note: {spec}_run decodes greedily" in err and "sampling and teacher forcing are not written in C" in err
    face = rnncompile.registry.get("c").export(program, f"{spec}.yaml", spec, params, dtype).interface
    rng, b, real = np.random.default_rng(11), 6, np.dtype(dtype)
    inputs, context, lengths = {}, {}, None
    if face["inputs"]:
        inputs = {"src": rng.integers(0, len(program.vocab.tokens), (b, 8))}
        lengths = np.array([8, 5, 3, 1, 8, 6])
    else:
        context = {"img": (rng.standard_normal((b, 32)) * 2).astype(dtype)}
    want = rnncompile.run(program, inputs=inputs, params=params, context=context, lengths=lengths, dtype=dtype)

    (tmp_path / "main.c").write_text(decoder_main_c(spec, face, dtype))
    done = subprocess.run([*build.compiler(), *STRICT, "-o", str(tmp_path / "main"), str(tmp_path / "main.c"), "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    blob = [struct.pack("<i", b)]
    for i in range(b):
        if inputs:
            blob += [struct.pack("<i", int(lengths[i])), inputs["src"][i, :lengths[i]].astype(np.int32).tobytes()]
        blob += [np.ascontiguousarray(context[n][i], real).tobytes() for n, _ in contexts(face)]
    out = subprocess.run([str(tmp_path / "main")], input=b"".join(blob), capture_output=True, check=True).stdout
    N, V, end = face["decode"]["steps"], face["decode"]["vocab"], program.vocab.tokens.index(program.vocab.end)
    per = 8 + 4 * N + real.itemsize * (N * V + sum(s for _, s in face["state"]))
    assert len(out) == b * per
    width = want.tokens.shape[1]  # the interpreter stops when every sequence has ended
    counts = []
    for i in range(b):
        row = out[i * per:(i + 1) * per]
        status, count = np.frombuffer(row, np.int32, 2)
        tokens = np.frombuffer(row, np.int32, N, 8)
        dist = np.frombuffer(row, real, N * V, 8 + 4 * N).reshape(N, V)
        state = np.frombuffer(row, real, sum(s for _, s in face["state"]), 8 + 4 * N + real.itemsize * N * V)
        assert status == 0 and count == want.lengths[i], f"sequence {i}"
        np.testing.assert_array_equal(tokens[:width], want.tokens[i], err_msg=f"sequence {i}: tokens")
        assert (tokens[width:] == end).all() and not dist[width:].any()
        np.testing.assert_allclose(dist[:width], want.outputs["p"][i], err_msg=f"sequence {i}: p", **TOL[dtype])
        assert not dist[count:].any()  # after the end token: zeros
        pos = 0
        for k, size in face["state"]:
            np.testing.assert_allclose(state[pos:pos + size], np.ravel(want.final_state[k][i]),
                                       err_msg=f"sequence {i}: state {k}", **TOL[dtype])
            pos += size
        counts.append(int(count))
    if seed == "ties":
        assert (want.tokens == 0).all()  # np.argmax's first maximum: the start token, every step
    else:  # the case meets both ways a sequence ends: the end token, and running out of steps
        assert min(counts) < N and N in counts and len({tuple(t) for t in want.tokens}) > 2


def test_export_of_a_decoder_says_what_c_does_not_do(cli, tmp_path):
    code, out, err = cli("export", SPECS / "seq2seq.yaml", "--backend", "c", "-o", tmp_path / "s2s.c")
    assert code == 0, err
    assert "note: s2s_run decodes greedily" in err and "sampling and teacher forcing are not written in C" in err
    text = (tmp_path / "s2s.c").read_text()
    assert "int s2s_run(s2s_state *state, int steps, const int32_t *src, int32_t *tokens, int *count, float *p," in text
    assert "#define S2S_DECODE_STEPS 8" in text and "Not written in C: sampling" in text and "malloc(" not in text
    assert cli("export", SPECS / "seq2seq.yaml", "--backend", "c", "-o", tmp_path / "again" / "s2s.c")[0] == 0
    assert (tmp_path / "again" / "s2s.c").read_text() == text
    done = subprocess.run([*build.compiler(), *STRICT, "-c", "s2s.c"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_export_of_a_tree_with_any_number_of_children_is_refused(cli, tmp_path):
    code, out, err = cli("export", SPECS / "treelstm_childsum.yaml", "--backend", "c", "-o", tmp_path / "t.c")
    assert code == 2
    assert "takes any number of children" in err and "exported C needs fixed sizes" in err
    assert not (tmp_path / "t.c").exists()


def test_weight_options_are_for_backends_that_embed_weights(cli, tmp_path):
    code, out, err = cli("export", SPECS / "lstm.yaml", "--seed", "2", "-o", tmp_path / "m.py")
    assert code == 2 and "backend `python` writes none" in err
    assert not (tmp_path / "m.py").exists()
