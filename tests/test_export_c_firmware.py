"""Exported C a firmware engineer can use as is: a predictor's vocabulary and completion loop (greedy and seeded
sampling), the streaming API (<m>_init, <m>_step, <m>_reset), the memory stated in the header, and every file
clean under AddressSanitizer and UndefinedBehaviorSanitizer.

The references are independent of the C: `rnncompile complete --greedy` (the interpreter) for greedy
completion; rnncompile.drivers.sample_tokens fed the C generator's own uniform numbers, and the distribution
p ** (1 / T) over the top_k computed here in NumPy, for sampling; a PCG32 written here in Python (checked against
the published first outputs of pcg32-demo) for the generator; the spec's Vocab for text. Skips without a C
compiler; the sanitizer test also skips when the compiler cannot build and run a sanitized program.
"""
from __future__ import annotations

import functools
import re
import struct
import subprocess

import numpy as np
import pytest
from scipy import stats

import rnncompile
from conftest import SPECS
from rnncompile.api import make_params
from rnncompile.backends.c import build
from rnncompile.backends.c.export import ModelWriter
from rnncompile.drivers import sample_tokens
from rnncompile.vocab import Vocab
from test_backends_conformance import SEQUENCE, SHIPPED, program_of, sequence_case
from test_export_c import STRICT, contexts, decoder_main_c

pytestmark = pytest.mark.skipif(build.find_compiler() is None, reason="no C compiler on PATH")
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all", "-g"]
PCG42 = [0xA15C02B7, 0x7B47F409, 0xBA1D3330, 0x83D2F293, 0xBFA4784B, 0xCBED606E]  # pcg32-demo: seed 42, stream 54


# -- building and running ------------------------------------------------------------------------------------
def export(spec, tmp_path, name: str, seed: int = 0, dtype: str = "float32", params=None):
    """The exported file `name`.c in tmp_path (the weights of make_params(seed)), its interface and its writer."""
    program = rnncompile.compile(spec)
    params = make_params(program, seed=seed, dtype=dtype) if params is None else params
    w = ModelWriter(program, params, dtype, spec.name, name, f"seed {seed}")
    result = w.source()
    (tmp_path / f"{name}.c").write_text(result.source)
    return program, params, result, w


def compile_main(tmp_path, main: str, flags=STRICT, out: str = "main"):
    (tmp_path / f"{out}.c").write_text(main)
    done = subprocess.run([*build.compiler(), *flags, "-o", str(tmp_path / out), str(tmp_path / f"{out}.c"), "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tmp_path / out


def run(exe, *args, data: bytes = b"", env=None) -> bytes:
    done = subprocess.run([str(exe), *map(str, args)], input=data, capture_output=True, env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done.stdout


class Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, count: int, dt) -> np.ndarray:
        v = np.frombuffer(self.data, dt, count, self.at)
        self.at += count * np.dtype(dt).itemsize
        return v

    def int(self) -> int:
        return int(self.take(1, np.int32)[0])

    def bytes(self, n: int) -> bytes:
        self.at += n
        return self.data[self.at - n:self.at]


TOOL_HEAD = """#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "{N}.c"

static void get(void *p, size_t n) {{ if (n && fread(p, 1, n, stdin) != n) exit(3); }}
static void put(const void *p, size_t n) {{ fwrite(p, 1, n, stdout); }}
static int32_t get_int(void) {{ int32_t v; get(&v, sizeof v); return v; }}
static void put_int(int32_t v) {{ put(&v, sizeof v); }}
"""

VOCAB_MODES = """
static int vocab_modes(const char *mode)
{{
    static char bytes[1 << 16];
    static int32_t ids[1 << 14];
    if (strcmp(mode, "tokens") == 0) {{  /* every token: its bytes, then them (from {N}_tokens, {N}_token) */
        for (int32_t i = 0; i < {M}_VOCAB; ++i) {{
            put_int((int32_t){N}_token_bytes[i]);
            put({N}_token(i), {N}_token_bytes[i]);
        }}
        put_int({N}_token(-1) == NULL && {N}_token({M}_VOCAB) == NULL);
        return 1;
    }}
    if (strcmp(mode, "decode") == 0) {{  /* n, ids, size -> status, text */
        int32_t n = get_int(), size, status;
        get(ids, (size_t)n * sizeof ids[0]);
        size = get_int();
        status = {N}_tokens_to_text(ids, n, bytes, (size_t)size);
        put_int(status);
        put_int((int32_t)strlen(bytes) == status || status < 0);
        put(bytes, strlen(bytes));
        return 1;
    }}
{ENCODE}    return 0;
}}
"""

ENCODE_MODE = """    if (strcmp(mode, "encode") == 0) {{  /* bytes, text, size -> status, ids */
        int32_t n = get_int(), size, status;
        get(bytes, (size_t)n);
        size = get_int();
        status = {N}_text_to_tokens(bytes, (size_t)n, ids, size);
        put_int(status);
        if (status > 0) put(ids, (size_t)status * sizeof ids[0]);
        return 1;
    }}
"""

PREDICTOR_MODES = """
static {N}_state state;
static {N}_scratch scratch;

static int predictor_modes(const char *mode)
{{
    static {T} p[{M}_VOCAB];
    static int32_t prompt[1 << 12], tokens[1 << 12];
    {N}_rng rng;
    if (strcmp(mode, "random") == 0 || strcmp(mode, "uniform") == 0) {{  /* seed, n -> n numbers */
        uint64_t seed;
        int32_t n;
        get(&seed, sizeof seed);
        n = get_int();
        {N}_seed(&rng, seed);
        for (int32_t i = 0; i < n; ++i) {{
            if (mode[0] == 'r') {{ uint32_t x = {N}_random(&rng); put(&x, sizeof x); }}
            else {{ double u = {N}_uniform(&rng); put(&u, sizeof u); }}
        }}
        return 1;
    }}
    if (strcmp(mode, "sample") == 0) {{  /* p, temperature, top_k, seed, n -> n tokens */
        double temperature;
        uint64_t seed;
        int32_t top_k, n;
        get(p, sizeof p);
        get(&temperature, sizeof temperature);
        top_k = get_int();
        get(&seed, sizeof seed);
        n = get_int();
        {N}_seed(&rng, seed);
        for (int32_t i = 0; i < n; ++i) put_int({N}_sample(p, temperature, top_k, &rng));
        put_int({N}_greedy(p));
        return 1;
    }}
    if (strcmp(mode, "complete") == 0) {{  /* prompt ids, steps, temperature, top_k, seed, greedy -> status, tokens */
        int32_t n = get_int(), steps, top_k, greedy, status, count = -1;
        double temperature;
        uint64_t seed;
        get(prompt, (size_t)n * sizeof prompt[0]);
        steps = get_int();
        get(&temperature, sizeof temperature);
        top_k = get_int();
        get(&seed, sizeof seed);
        greedy = get_int();
        {N}_seed(&rng, seed);
        {N}_init(&state);
        status = {N}_complete(&state, n, prompt, steps, tokens, &count, temperature, top_k, greedy ? NULL : &rng,
                              &scratch);
        put_int(status);
        put_int(count);
        if (count > 0) put(tokens, (size_t)count * sizeof tokens[0]);
        put(&state, sizeof state);
        return 1;
    }}
    return 0;
}}
"""

TOOL_MAIN = """
int main(int argc, char **argv)
{{
    if (argc < 2) return 2;
    if ({VOCAB}vocab_modes(argv[1])) return 0;
    if ({PREDICTOR}predictor_modes(argv[1])) return 0;
    return 2;
}}
"""


def tool_main(N: str, T: str, encodes: bool, predicts: bool) -> str:
    fill = {"N": N, "M": N.upper(), "T": T}
    text = TOOL_HEAD.format(**fill)
    text += VOCAB_MODES.format(ENCODE=ENCODE_MODE.format(**fill) if encodes else "", **fill)
    if predicts:
        text += PREDICTOR_MODES.format(**fill)
    return text + TOOL_MAIN.format(VOCAB="", PREDICTOR="" if predicts else "0 && ")


@functools.lru_cache(maxsize=None)
def _tool(source: str, is_text: bool, name: str, folder: str, flags: tuple, seed: int = 0):
    """A built tool for a spec file, or a spec's text (cached by what it is made from: tests share it)."""
    from pathlib import Path

    tmp_path = Path(folder)
    spec = Path(source)
    if is_text:
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(source)
    program, params, result, w = export(spec, tmp_path, name, seed)
    main = tool_main(name, "float", w.vocab.encodes, w.completer is not None)
    return compile_main(tmp_path, main, list(flags), "tool"), program, params, result


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("firmware")


def tool(folder, spec, name=None, flags=STRICT, seed=0):
    """The tool main (tool_main) built for `spec` (a path, or a spec's text) with the weights of `seed`."""
    name = name or spec.stem
    where = folder / f"{name}-{seed}-{abs(hash(tuple(flags))) % 10**8}"
    where.mkdir(exist_ok=True)
    return _tool(str(spec), not hasattr(spec, "read_text"), name, str(where), tuple(flags), seed)


def complete_in_c(exe, prompt_ids, steps, temperature=1.0, top_k=0, seed=0, greedy=True):
    blob = (struct.pack("<i", len(prompt_ids)) + np.asarray(prompt_ids, np.int32).tobytes()
            + struct.pack("<idiQi", steps, temperature, top_k, seed, int(greedy)))
    r = Reader(run(exe, "complete", data=blob))
    status, count = r.int(), r.int()
    return status, r.take(max(count, 0), np.int32).tolist(), r.data[r.at:]


# -- the predictors: greedy completion as `rnncompile complete --greedy` -------------------------------------
@pytest.mark.parametrize("seed", [0, 3])
def test_greedy_completion_in_c_writes_what_rnncompile_complete_writes(cli, folder, seed):
    """char_predictor: the prompt read by <m>_text_to_tokens, completed by <m>_complete with rng NULL and turned
    back into text by <m>_tokens_to_text, against the CLI's output for the same weights (seed)."""
    exe, program, params, _ = tool(folder, SPECS / "char_predictor.yaml", seed=seed)
    prompt = "The quick brown fox, 'Jumps'?"
    r = Reader(run(exe, "encode", data=struct.pack("<i", len(prompt.encode())) + prompt.encode()
                   + struct.pack("<i", 1000)))
    n = r.int()
    ids = r.take(n, np.int32)
    vocab = Vocab(program.vocab)
    np.testing.assert_array_equal(ids, vocab.encode(prompt))  # (lowercased: `T` and `J` read as `t` and `j`)
    status, tokens, _ = complete_in_c(exe, ids, 80)
    assert status == 0 and len(tokens) == 80
    code, out, err = cli("complete", SPECS / "char_predictor.yaml", "--prompt", prompt, "--steps", 80, "--greedy",
                         "--seed", seed)
    assert code == 0, err
    text = decode_in_c(exe, tokens)
    assert out == prompt + text + "\n"
    want = rnncompile.complete(program, prompt, 80, greedy=True, seed=seed)
    assert tokens == want.tokens.tolist()
    assert len(set(tokens)) > 3  # not one token over and over: the comparison sees the model move


def decode_in_c(exe, ids, size=1 << 15) -> str:
    r = Reader(run(exe, "decode", data=struct.pack("<i", len(ids)) + np.asarray(ids, np.int32).tobytes()
                   + struct.pack("<i", size)))
    status, agrees = r.int(), r.int()
    assert status >= 0 and agrees, status
    return r.data[r.at:].decode("utf-8")


def test_greedy_completion_of_the_word_predictor_stops_after_the_end_token_as_the_interpreter(folder, tmp_path):
    exe, program, params, _ = tool(folder, SPECS / "word_predictor.yaml")
    vocab = Vocab(program.vocab)
    end = vocab.tokens.index(vocab.end)
    for prompt in ("the cat sat on the", "a man of the", "in the"):
        want = rnncompile.complete(program, prompt, 30, greedy=True)
        status, tokens, _ = complete_in_c(exe, vocab.encode(prompt), 30)
        assert status == 0 and tokens == want.tokens.tolist(), prompt
        assert decode_in_c(exe, tokens) == vocab.decode(want.tokens)
    # a head that always prefers the end token: C stops after it, as the interpreter does
    params = {k: v for k, v in params.items()}
    params["head.b_y"] = np.where(np.arange(len(vocab)) == end, 50.0, 0.0).astype(np.float32)
    want = rnncompile.complete(program, "the", 10, greedy=True, params=params)
    assert want.tokens.tolist() == [end]
    export(SPECS / "word_predictor.yaml", tmp_path, "word_predictor", params=params)
    exe = compile_main(tmp_path, tool_main("word_predictor", "float", False, True))
    status, tokens, state = complete_in_c(exe, vocab.encode("the"), 10)
    assert status == 0 and tokens == [end]


def test_a_stepping_program_can_shrink_the_scratch_to_one_step(folder, tmp_path):
    """What the head comment offers: -D<M>_MAX_STEPS=1, and <m>_complete (which only steps) writes the same tokens
    with a scratch of the stated size."""
    exe, program, params, result = tool(folder, SPECS / "char_predictor.yaml")
    small, *_ = tool(folder, SPECS / "char_predictor.yaml", flags=STRICT + ["-DCHAR_PREDICTOR_MAX_STEPS=1"])
    prompt = Vocab(program.vocab).encode("a long prompt, longer than one step")
    for greedy in (True, False):
        assert complete_in_c(small, prompt, 40, 0.7, 3, 1, greedy) == complete_in_c(exe, prompt, 40, 0.7, 3, 1, greedy)
    figure = re.search(r"-DCHAR_PREDICTOR_MAX_STEPS=1: the scratch is then ([\d,]+) bytes", " ".join(
        x.lstrip(" *") for x in result.source.split("*/", 1)[0].splitlines()))
    main = "\n".join(['#include <stdio.h>', '#include "char_predictor.c"', "int main(void)", "{",
                      '    printf("%zu\\n", sizeof(char_predictor_scratch));', "    return 0;", "}", ""])
    (tmp_path / "char_predictor.c").write_text(result.source)
    size = run(compile_main(tmp_path, main, STRICT + ["-DCHAR_PREDICTOR_MAX_STEPS=1"])).decode().strip()
    assert figure and figure.group(1).replace(",", "") == size


def test_completion_refuses_bad_arguments(folder):
    exe, *_ = tool(folder, SPECS / "char_predictor.yaml")
    assert complete_in_c(exe, [], 5)[0] == -1  # no prompt
    assert complete_in_c(exe, [1], -1)[0] == -1
    assert complete_in_c(exe, [1], 5, temperature=0.0, greedy=False)[0] == -1
    assert complete_in_c(exe, [1], 5, temperature=float("nan"), greedy=False)[0] == -1
    assert complete_in_c(exe, [1], 5, top_k=-2, greedy=False)[0] == -1
    assert complete_in_c(exe, [1, 99], 5)[0] == 1  # a token id beyond the embedding table
    status, tokens, _ = complete_in_c(exe, [1], 0)
    assert status == 0 and tokens == []


# -- sampling: the generator, determinism, and the distribution drawn from ------------------------------------
class PCG32:
    """pcg32_random_r and pcg32_srandom_r (pcg-random.org's minimal C implementation), in Python."""

    MASK = 2 ** 64 - 1

    def __init__(self, seed: int, stream: int = 54):
        self.state, self.inc = 0, ((stream << 1) | 1) & self.MASK
        self.next()
        self.state = (self.state + seed) & self.MASK
        self.next()

    def next(self) -> int:
        old = self.state
        self.state = (old * 6364136223846793005 + self.inc) & self.MASK
        x = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((x >> rot) | (x << ((32 - rot) & 31))) & 0xFFFFFFFF

    def uniform(self) -> float:
        a, b = self.next() >> 5, self.next() >> 6
        return (a * 67108864.0 + b + 0.5) / 9007199254740992.0


class GivenUniforms:
    """An rng for drivers.sample_tokens that hands out given numbers in (0, 1)."""

    def __init__(self, us):
        self.us = iter(us)

    def random(self, shape):
        return np.full(shape, next(self.us))


def test_the_generator_is_pcg32(folder):
    exe, *_ = tool(folder, SPECS / "char_predictor.yaml")
    got = np.frombuffer(run(exe, "random", data=struct.pack("<Qi", 42, 6)), np.uint32).tolist()
    assert got == PCG42
    py = PCG32(42)
    assert [py.next() for _ in range(6)] == PCG42  # the Python reference meets the published outputs too
    for seed in (0, 1, 2 ** 64 - 1):
        us = np.frombuffer(run(exe, "uniform", data=struct.pack("<Qi", seed, 1000)), np.float64)
        py = PCG32(seed)
        assert us.tolist() == [py.uniform() for _ in range(1000)]
        assert 0 < us.min() and us.max() < 1


def sample_in_c(exe, p, temperature, top_k, seed, n):
    blob = (np.asarray(p, np.float32).tobytes() + struct.pack("<diQi", temperature, top_k, seed, n))
    out = np.frombuffer(run(exe, "sample", data=blob), np.int32)
    return out[:n], int(out[n])


def _distribution(V: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(V) * 1.5
    p = np.exp(logits - logits.max())
    return (p / p.sum()).astype(np.float32)


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 5), (1.6, 12), (0.35, 0), (1.0, 1)])
def test_sampling_follows_p_to_the_one_over_t_over_the_top_k(folder, temperature, top_k):
    """200,000 draws: each token's frequency within 5 binomial standard errors of q = p^(1/T) over the top_k
    (normalised), a chi-square test of all of them at p-value > 1e-6, no token outside the top_k ever drawn;
    the same seed draws the same tokens, and each draw is the token drivers.sample_tokens picks for the same
    uniform number."""
    exe, program, *_ = tool(folder, SPECS / "char_predictor.yaml")
    V, n = len(program.vocab.tokens), 200_000
    p = _distribution(V, 5)
    tokens, greedy = sample_in_c(exe, p, temperature, top_k, 11, n)
    assert greedy == int(np.argmax(p))
    q = np.exp(np.log(p.astype(np.float64)) / temperature)
    if 0 < top_k < V:
        q[np.argsort(-q)[top_k:]] = 0
    q /= q.sum()
    freq = np.bincount(tokens, minlength=V) / n
    assert not freq[q == 0].any(), "a token outside the top_k was drawn"
    se = np.sqrt(q * (1 - q) / n)
    assert (np.abs(freq - q) <= 5 * se + 1e-12).all(), np.abs(freq - q) / np.maximum(se, 1e-300)
    kept = q > 0
    if kept.sum() > 1:
        assert stats.chisquare(freq[kept] * n, q[kept] * n).pvalue > 1e-6
    again, _ = sample_in_c(exe, p, temperature, top_k, 11, n)
    np.testing.assert_array_equal(again, tokens)  # deterministic for a seed
    other, _ = sample_in_c(exe, p, temperature, top_k, 12, 1000)
    assert top_k == 1 or (other != tokens[:1000]).any()
    py = PCG32(11)
    us = [py.uniform() for _ in range(5000)]
    want = [int(sample_tokens(p[None], "sample", temperature, top_k or None, GivenUniforms([u]))[0]) for u in us]
    assert tokens[:5000].tolist() == want


def test_sampling_keeps_the_ties_of_the_top_k_th_as_numpy_does(folder):
    exe, program, *_ = tool(folder, SPECS / "char_predictor.yaml")
    V = len(program.vocab.tokens)
    p = np.full(V, 0.01, np.float32)
    p[[3, 7, 9, 20]] = [0.3, 0.2, 0.2, 0.2]  # the 2nd to 4th most likely tie
    p[0] = 0.0  # a zero probability (log is -inf: 1e-300 stands in, as in sample_tokens)
    tokens, _ = sample_in_c(exe, p, 1.0, 2, 4, 20_000)
    assert set(tokens.tolist()) == {3, 7, 9, 20}  # top_k 2 keeps every token tied with the 2nd
    py = PCG32(4)
    us = [py.uniform() for _ in range(2000)]
    want = [int(sample_tokens(p[None], "sample", 1.0, 2, GivenUniforms([u]))[0]) for u in us]
    assert tokens[:2000].tolist() == want


def test_seeded_completion_is_deterministic_and_draws_from_the_model(folder):
    exe, program, params, _ = tool(folder, SPECS / "char_predictor.yaml")
    vocab = Vocab(program.vocab)
    prompt = vocab.encode("hello wor")
    a = complete_in_c(exe, prompt, 60, 0.8, 4, seed=9, greedy=False)
    b = complete_in_c(exe, prompt, 60, 0.8, 4, seed=9, greedy=False)
    c = complete_in_c(exe, prompt, 60, 0.8, 4, seed=10, greedy=False)
    assert a == b and a[0] == 0 and len(a[1]) == 60 and a[1] != c[1]
    # each drawn token is among the top 4 of the interpreter's distribution after the text before it
    text = np.concatenate([prompt, np.asarray(a[1][:-1])])
    p = rnncompile.run(program, inputs={"ch": text[None]}, params=params).outputs["p"][0, len(prompt) - 1:]
    py = PCG32(9)
    want = [int(sample_tokens(p[i][None], "sample", 0.8, 4, GivenUniforms([py.uniform()]))[0]) for i in range(60)]
    assert a[1] == want  # the C draws what sample_tokens draws from the interpreter's p, given the same numbers


# -- streaming: <m>_step over a sequence is <m>_run over it, bit for bit ----------------------------------------
def stream_main(name: str, face: dict, dtype: str) -> str:
    """A main() that reads one sequence (steps, inputs, context) and writes: status, the run's outputs and final
    state; then, after <m>_reset, each step's outputs by <m>_step and the final state; whether <m>_reset's state
    is <m>_init's; and the memory: sizeof state, scratch, and the <M>_*_BYTES."""
    T, M = ("float" if dtype == "float32" else "double"), name.upper()
    decl, read, ins, ins_t, ctx = [], [], [], [], []
    for n, size, tok in face["inputs"]:
        decl.append(f"static {'int32_t' if tok else T} in_{n}[{M}_MAX_STEPS * {size}];")
        read.append(f"get(in_{n}, (size_t)steps * {size} * sizeof in_{n}[0]);")
        ins.append(f"in_{n}")
        ins_t.append(f"in_{n} + t * {size}")
    for n, size in contexts(face):
        decl.append(f"static {T} ctx_{n}[{size}];")
        read.append(f"get(ctx_{n}, sizeof ctx_{n});")
    ctx = [f"ctx_{n}" for n, _ in face["context"]]
    outs, outs_t, write, write_t = [], [], [], []
    for n, size, per_step in face["outputs"]:
        decl += [f"static {T} out_{n}[{M}_MAX_STEPS * {size}];", f"static {T} step_{n}[{M}_MAX_STEPS * {size}];"]
        outs.append(f"out_{n}")
        outs_t.append(f"step_{n} + t * {size}")
        count = f"(size_t)steps * {size}" if per_step else str(size)
        write.append(f"put(out_{n}, {count} * sizeof out_{n}[0]);")
        write_t.append(f"put(step_{n} + (size_t)(steps - 1) * {size}, {size} * sizeof step_{n}[0]);" if not per_step
                       else f"put(step_{n}, {count} * sizeof step_{n}[0]);")
    init = ", ".join(["&state"] + [f"ctx_{n}" for n, _ in face["init_context"]])
    return "\n".join([
        "#include <stdio.h>", "#include <stdlib.h>", f'#include "{name}.c"', "",
        "static void get(void *p, size_t n) { if (fread(p, 1, n, stdin) != n) exit(3); }",
        "static void put(const void *p, size_t n) { fwrite(p, 1, n, stdout); }",
        *decl, f"static {name}_state state, start;", f"static {name}_scratch scratch;", "",
        "int main(void)", "{", "    int32_t steps, status = 0;", "    size_t sizes[5];",
        "    get(&steps, sizeof steps);", *("    " + x for x in read),
        f"    {name}_init({init});", "    start = state;",
        f"    status = {name}_run(&state, steps, {', '.join(ins + ctx + outs)}, &scratch);",
        "    put(&status, sizeof status);", *("    " + x for x in write), "    put(&state, sizeof state);",
        "    memset(&state, 0x5A, sizeof state);",
        f"    {name}_reset({init});",
        "    status = memcmp(&state, &start, sizeof state) == 0;", "    put(&status, sizeof status);",
        "    for (int t = 0; t < steps; ++t) {",
        f"        status = {name}_step(&state, {', '.join(ins_t + ctx + outs_t)}, &scratch);",
        "        if (status) break;", "    }",
        "    put(&status, sizeof status);", *("    " + x for x in write_t), "    put(&state, sizeof state);",
        f"    sizes[0] = sizeof({name}_state); sizes[1] = {M}_STATE_BYTES;",
        f"    sizes[2] = sizeof({name}_scratch); sizes[3] = {M}_SCRATCH_BYTES; sizes[4] = {M}_WEIGHTS_BYTES;",
        "    put(sizes, sizeof sizes);", "    return 0;", "}", ""])


STREAMING = [p for p in SEQUENCE]


def c_name(spec) -> str:
    return re.sub(r"\W", "_", spec.stem)


def _stream_case(tmp_path, spec, dtype, flags=STRICT):
    name = c_name(spec)
    program, params, result, w = export(spec, tmp_path, name, 0, dtype)
    face = result.interface
    if f"int {name}_step(" not in result.source:
        return None
    inputs, context, lengths = sequence_case(program, dtype)
    exe = compile_main(tmp_path, stream_main(name, face, dtype), flags)
    real = np.dtype(dtype)
    steps = next(iter(inputs.values())).shape[1]
    blob = [struct.pack("<i", steps)]
    for n, _, tok in face["inputs"]:
        blob.append(np.ascontiguousarray(inputs[n][0], np.int32 if tok else real).tobytes())
    for n, _ in contexts(face):
        blob.append(np.ascontiguousarray(context[n][0], real).tobytes())
    return program, w, face, run(exe, data=b"".join(blob)), steps


@pytest.mark.parametrize("spec", STREAMING, ids=[str(p.relative_to(SPECS.parent)) for p in STREAMING])
def test_streaming_step_by_step_is_the_whole_run_bit_for_bit_and_the_memory_is_as_stated(tmp_path, spec):
    case = _stream_case(tmp_path, spec, "float32")
    if case is None:
        source = (tmp_path / f"{c_name(spec)}.c").read_text()
        assert re.search(r"No \w+_step: (a scan runs in reverse|a cell reads the step index)", source)
        return
    program, w, face, out, steps = case
    state_bytes = max(1, sum(max(1, s) for _, s in face["state"]) * 4)
    per_seq = {n: (size * steps if every else size) * 4 for n, size, every in face["outputs"]}
    r = Reader(out)
    assert r.int() == 0
    whole = {n: r.bytes(b) for n, b in per_seq.items()}
    whole_state = r.bytes(state_bytes)
    assert r.int() == 1, "the state after <m>_reset is not <m>_init's"
    assert r.int() == 0
    stepped = {n: r.bytes(size * 4 * (steps if every else 1)) for n, size, every in face["outputs"]}
    for n in per_seq:  # (an output once per sequence: the last step's is the run's)
        assert stepped[n] == whole[n], f"{n}: step by step is not the run"
    assert r.bytes(state_bytes) == whole_state, "the final state differs"
    sizes = r.take(5, np.uint64).tolist()
    assert r.at == len(out)
    mem = w.memory()
    assert sizes[0] == sizes[1] == mem["state"]
    assert sizes[2] == sizes[3] == mem["scratch"] + mem["scratch_per_step"] * w.max_steps(face["inputs"][0][0])
    assert sizes[4] == mem["weights"]
    head = (tmp_path / f"{w.N}.c").read_text().split("*/", 1)[0]
    flat = " ".join(x.lstrip(" *") for x in head.splitlines())
    assert f"state {sizes[0]:,} (RAM" in flat and f"scratch {sizes[2]:,}" in flat and f"weights {sizes[4]:,} " in flat
    assert f"{w.N}_reset(&state" in head and f"{w.N}_step(&state" in head and f"{w.N}_init(&state" in head


def test_the_memory_defines_follow_a_longer_max_steps(tmp_path):
    program, params, result, w = export(SPECS / "deep_lstm.yaml", tmp_path, "lstm")  # (a scratch per step)
    main = "\n".join(['#include <stdio.h>', '#include "lstm.c"', "int main(void)", "{",
                      '    printf("%zu %zu\\n", sizeof(lstm_scratch), LSTM_SCRATCH_BYTES);', "    return 0;", "}", ""])
    exe = compile_main(tmp_path, main, STRICT + ["-DLSTM_MAX_STEPS=1000"])
    got = run(exe).decode().split()
    mem = w.memory()
    assert got[0] == got[1] == str(mem["scratch"] + 1000 * mem["scratch_per_step"])
    assert mem["scratch_per_step"] > 0
    # and a wrong figure does not compile: the check is real
    source = (tmp_path / "lstm.c").read_text()
    (tmp_path / "lstm.c").write_text(source.replace(f"#define LSTM_STATE_BYTES ((size_t){mem['state']})",
                                                    f"#define LSTM_STATE_BYTES ((size_t){mem['state'] + 4})"))
    done = subprocess.run([*build.compiler(), *STRICT, "-c", "lstm.c"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and "lstm_state_bytes_ok" in done.stderr


def test_every_function_keeps_a_small_bounded_stack_frame(tmp_path):
    """What the head comment says: no recursion, no arrays on the stack (gcc's -fstack-usage, where the compiler
    has it: every frame static or bounded, under 512 bytes at -O1)."""
    for spec in (SPECS / "char_predictor.yaml", SPECS / "word_predictor.yaml", SPECS / "ntm.yaml"):
        export(spec, tmp_path, spec.stem)
        done = subprocess.run([*build.compiler(), "-std=c99", "-O1", "-fstack-usage", "-c", f"{spec.stem}.c"],
                              cwd=tmp_path, capture_output=True, text=True)
        if done.returncode != 0 or not (tmp_path / f"{spec.stem}.su").exists():
            pytest.skip("the compiler has no -fstack-usage")
        for line in (tmp_path / f"{spec.stem}.su").read_text().splitlines():
            where, size, kind = line.split("\t")
            assert kind in ("static", "dynamic,bounded") and int(size) < 512, line


# -- the vocabulary: strings that survive C --------------------------------------------------------------------
HOSTILE_CHARS = [" ", "a", "b", "é", "中", "🙂", '"', "\\", "?", "*", "/", "\n", "\t", "ß", "<unk>", "\x7f", "'"]
HOSTILE_WORDS = ["<unk>", "<eos>", "*/", "/*", "\\", '"', "??/", "??=", "naïve", "日本語", "a\\", "x*/y", "'s", "%d",
                 "\\n", "line\\", "tab\there", "e\u0301", "\u2028"]


def _predictor_with(tokens: list[str], level: str, unknown: str | None = "<unk>") -> str:
    """char_predictor with another vocabulary."""
    import yaml

    text = (SPECS / "char_predictor.yaml").read_text()
    start, stop = text.index("vocab:"), text.index("dims:")
    vocab = {"level": level, "lowercase": True, "unknown": unknown, "tokens": tokens}
    if unknown is None:
        del vocab["unknown"]
    if level == "word":
        vocab["end"] = "<eos>"
    flow = yaml.safe_dump(vocab, default_flow_style=True, allow_unicode=True, width=10 ** 6, sort_keys=False)
    return text[:start] + "vocab: " + flow.strip() + "\n" + text[stop:]


def test_hostile_tokens_come_out_of_c_as_they_went_in(folder):
    for tokens, level in ((HOSTILE_CHARS, "char"), (HOSTILE_WORDS, "word")):
        exe, program, _, result = tool(folder, _predictor_with(tokens, level), f"hostile_{level}")
        assert program.vocab.tokens == tokens
        r = Reader(run(exe, "tokens"))
        got = [r.bytes(r.int()).decode("utf-8") for _ in tokens]
        assert got == tokens and r.int() == 1 and r.at == len(r.data)
        ids = list(range(len(tokens))) * 2
        assert decode_in_c(exe, ids) == Vocab(program.vocab).decode(ids)
        head, body = result.source.split("*/", 1)
        assert "*/" not in head[2:] and "??/" not in result.source  # no token ends a comment or makes a trigraph


def _encode_in_c(exe, data: bytes, size=1000):
    r = Reader(run(exe, "encode", data=struct.pack("<i", len(data)) + data + struct.pack("<i", size)))
    status = r.int()
    return status, r.take(max(status, 0), np.int32).tolist()


def test_char_text_to_tokens_reads_text_as_vocab_encode_reads_it(folder):
    exe, program, *_ = tool(folder, _predictor_with(HOSTILE_CHARS, "char"), "hostile_char")
    vocab = Vocab(program.vocab)
    for text in ["ab é中🙂\"\\?*/\n\tß'", "ÉÄ ABC XYZ", "ẞ Σ ǅ ﬀ", "\x7f\x00\x01 \U0010FFFF", "a" * 300]:
        status, ids = _encode_in_c(exe, text.encode("utf-8"))
        assert status == len(ids) and ids == vocab.encode(text).tolist(), text
    assert _encode_in_c(exe, "abc".encode(), size=2)[0] == -2
    assert _encode_in_c(exe, b"")[0] == 0
    unk = vocab.tokens.index("<unk>")
    for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe4\xb8"):  # not UTF-8: unknown
        status, ids = _encode_in_c(exe, b"a" + bad + b"b")
        assert ids[0] == vocab.tokens.index("a") and ids[-1] == vocab.tokens.index("b") and unk in ids, bad
    # without an unknown token, a character not in the vocabulary is refused
    text = _predictor_with(["a", "b", " "], "char", unknown=None)
    exe2, program2, *_ = tool(folder, text, "no_unknown")
    assert _encode_in_c(exe2, b"ab a")[1] == [0, 1, 2, 0] and _encode_in_c(exe2, b"abc")[0] == -1


def test_tokens_to_text_refuses_what_does_not_fit_or_is_not_a_token(folder):
    exe, program, *_ = tool(folder, _predictor_with(HOSTILE_WORDS, "word"), "hostile_word")
    n = len(HOSTILE_WORDS)
    blob = lambda ids, size: struct.pack("<i", len(ids)) + np.asarray(ids, np.int32).tobytes() + struct.pack("<i", size)  # noqa: E731
    for ids, size, want in (([n], 100, -1), ([-1], 100, -1), ([2, 2], 5, -2), ([2, 2], 6, 5), ([], 1, 0)):
        r = Reader(run(exe, "decode", data=blob(ids, size)))
        status, agrees = r.int(), r.int()
        assert status == want and agrees, (ids, size, status)
        if want == -2:
            assert r.data[r.at:] == b"*/"  # the whole tokens that fit, NUL-terminated


# -- sanitizers ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def sanitizers_work() -> bool:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "t.c").write_text("#include <stdlib.h>\nint main(void) { char *p = malloc(4); p[0] = 1; "
                                     "free(p); return 0; }\n")
        done = subprocess.run([*build.compiler(), *SANITIZE, "-o", str(Path(d) / "t"), str(Path(d) / "t.c")],
                              capture_output=True)
        return done.returncode == 0 and subprocess.run([str(Path(d) / "t")], capture_output=True).returncode == 0


DECODERS = [p for p in SHIPPED if program_of(p).plan.kind in ("seq2seq", "generate")]
SANITIZED = SEQUENCE + DECODERS


@pytest.mark.parametrize("spec", SANITIZED, ids=[str(p.relative_to(SPECS.parent)) for p in SANITIZED])
def test_every_exported_sequence_model_is_clean_under_asan_and_ubsan(tmp_path, spec):
    if not sanitizers_work():
        pytest.skip("the C compiler cannot build and run with -fsanitize=address,undefined")
    flags = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1", *SANITIZE]
    program = program_of(spec)
    if program.plan.kind != "sequence":
        name = c_name(spec)
        program, params, result, w = export(spec, tmp_path, name)
        face = result.interface
        exe = compile_main(tmp_path, decoder_main_c(name, face, "float32"), flags)
        rng, real = np.random.default_rng(2), np.float32
        blob = [struct.pack("<i", 3)]
        for i, steps in enumerate((1, 3, 6)):
            if face["inputs"]:
                steps = min(steps, w.max_steps(face["inputs"][0][0]))
                blob += [struct.pack("<i", steps), rng.integers(0, len(program.vocab.tokens), steps).astype(np.int32).tobytes()]
            blob += [rng.standard_normal(size).astype(real).tobytes() for _, size in contexts(face)]
        out = run(exe, data=b"".join(blob), env=_san_env())
        assert len(out) > 0
        return
    case = _stream_case(tmp_path, spec, "float32", flags)
    if case is None:  # no _step: the run alone, by test_export_c's main
        from test_export_c import main_c  # (its main, built here with the sanitizers)

        name = c_name(spec)
        program, params, result, w = export(spec, tmp_path, name)
        inputs, context, lengths = sequence_case(program, "float32")
        face = result.interface
        exe = compile_main(tmp_path, main_c(name, face, "float32"), flags)
        steps = lengths if lengths is not None else [next(iter(inputs.values())).shape[1]] * 3
        blob = [struct.pack("<i", 3)]
        for i in range(3):
            blob.append(struct.pack("<i", int(steps[i])))
            for n, _, tok in face["inputs"]:
                blob.append(np.ascontiguousarray(inputs[n][i, :steps[i]], np.int32 if tok else np.float32).tobytes())
            for n, _ in contexts(face):
                blob.append(np.ascontiguousarray(context[n][i], np.float32).tobytes())
            blob.append(struct.pack("<i", 0))
        run(exe, data=b"".join(blob), env=_san_env())


def _san_env():
    import os

    return {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS": "halt_on_error=1"}


@pytest.mark.parametrize("spec", ["char_predictor", "word_predictor", "hostile_char"])
def test_the_predictors_completion_sampling_and_text_are_clean_under_asan_and_ubsan(folder, spec):
    if not sanitizers_work():
        pytest.skip("the C compiler cannot build and run with -fsanitize=address,undefined")
    flags = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1", *SANITIZE]
    path = SPECS / f"{spec}.yaml" if spec != "hostile_char" else _predictor_with(HOSTILE_CHARS, "char")
    exe, program, *_ = tool(folder, path, spec, flags)
    vocab = Vocab(program.vocab)
    prompt = vocab.encode("the end of the" if vocab.level == "word" else "The end of it")
    assert complete_in_c(exe, prompt, 50)[0] == 0
    assert complete_in_c(exe, prompt, 50, 0.9, 3, 5, greedy=False)[0] == 0
    assert complete_in_c(exe, prompt, 50, 1e6, 0, 5, greedy=False)[0] == 0
    assert complete_in_c(exe, prompt, 50, 1e-6, 0, 5, greedy=False)[0] == 0
    V = len(vocab)
    for p in (_distribution(V, 1), np.zeros(V, np.float32), np.full(V, np.nan, np.float32)):
        sample_in_c(exe, p, 0.5, 3, 1, 100)
    decode_in_c(exe, list(range(V)), 1 << 15)
    r = Reader(run(exe, "decode", data=struct.pack("<iiii", 2, 1, 2, 2)))  # two tokens, room for one byte and a NUL
    assert r.int() == -2
    if vocab.level == "char":
        for data in ("ÀB€🙂 abc".encode(), b"\xf0\x9f", b"\xe2", bytes(range(256))):
            _encode_in_c(exe, data)


# -- a decoder that samples ------------------------------------------------------------------------------------
SAMPLING_DECODER = ("    feed: previous_output               # greedy decoding",
                    "    feed: previous_output\n    sample: sample\n    temperature: 0.8\n    top_k: 5")


def sampling_decoder_main(name: str, face: dict) -> str:
    M = name.upper()
    V = face["decode"]["vocab"]
    return "\n".join([
        "#include <stdio.h>", "#include <stdlib.h>", f'#include "{name}.c"', "",
        "static void get(void *p, size_t n) { if (fread(p, 1, n, stdin) != n) exit(3); }",
        "static void put(const void *p, size_t n) { fwrite(p, 1, n, stdout); }",
        f"static int32_t src[{M}_MAX_STEPS], tokens[{M}_DECODE_STEPS];", f"static float dist[{M}_DECODE_STEPS * {V}];",
        f"static {name}_state state;", f"static {name}_scratch scratch;", "",
        "int main(void)", "{", "    int32_t n, steps, greedy, status, count;", "    uint64_t seed;",
        f"    {name}_rng rng;", "    get(&n, sizeof n);", "    for (int32_t i = 0; i < n; ++i) {",
        "        get(&steps, sizeof steps);", "        get(src, (size_t)steps * sizeof src[0]);",
        "        get(&seed, sizeof seed);", "        get(&greedy, sizeof greedy);",
        f"        {name}_seed(&rng, seed);", f"        {name}_init(&state);",
        f"        status = {name}_run(&state, steps, src, tokens, &count, dist, greedy ? NULL : &rng, &scratch);",
        "        put(&status, sizeof status);", "        put(&count, sizeof count);", "        put(tokens, sizeof tokens);",
        "        put(dist, sizeof dist);", "    }", "    return 0;", "}", ""])


def test_a_decoder_that_samples_draws_in_c_what_the_interpreter_draws_for_the_same_numbers(cli, tmp_path, monkeypatch):
    """seq2seq with `sample: sample` (temperature 0.8, top_k 5): <m>_run takes an rng; each sequence's tokens are
    those the interpreter draws when its generator hands out the C generator's uniform numbers (one a step), the
    distributions agree to float32 tolerance, and rng NULL decodes as the greedy interpreter."""
    text = (SPECS / "seq2seq.yaml").read_text()
    assert SAMPLING_DECODER[0] in text
    (tmp_path / "s2s.yaml").write_text(text.replace(*SAMPLING_DECODER))
    (tmp_path / "greedy.yaml").write_text(text)
    program, params, result, w = export(tmp_path / "s2s.yaml", tmp_path, "s2s")
    face = result.interface
    code, out, err = cli("export", tmp_path / "s2s.yaml", "--backend", "c", "-o", tmp_path / "cli" / "s2s.c")
    assert code == 0 and "note: s2s_run samples as the spec says" in err and "teacher forcing is not written" in err
    assert "s2s_rng *rng, s2s_scratch *scratch);" in result.source
    exe = compile_main(tmp_path, sampling_decoder_main("s2s", face), STRICT + SANITIZE if sanitizers_work() else STRICT)
    rng = np.random.default_rng(3)
    cases = [(rng.integers(0, len(program.vocab.tokens), n), seed, greedy)
             for n, seed, greedy in [(8, 1, 0), (5, 2, 0), (3, 3, 0), (1, 4, 0), (8, 5, 0), (6, 6, 1), (4, 7, 1)]]
    blob = [struct.pack("<i", len(cases))]
    for src, seed, greedy in cases:
        blob += [struct.pack("<i", len(src)), src.astype(np.int32).tobytes(), struct.pack("<Qi", seed, greedy)]
    got = Reader(run(exe, data=b"".join(blob)))
    N, V = face["decode"]["steps"], face["decode"]["vocab"]
    greedy_program = rnncompile.compile(tmp_path / "greedy.yaml")
    drawn = set()
    for src, seed, greedy in cases:
        status, count = got.int(), got.int()
        tokens, dist = got.take(N, np.int32), got.take(N * V, np.float32).reshape(N, V)
        assert status == 0
        if greedy:
            want = rnncompile.run(greedy_program, inputs={"src": src[None]}, params=params)
        else:
            py = PCG32(seed)
            with monkeypatch.context() as m:
                m.setattr(np.random, "default_rng", lambda *_: GivenUniforms(py.uniform() for _ in iter(int, 1)))
                want = rnncompile.run(program, inputs={"src": src[None]}, params=params)
            drawn.add(tuple(tokens[:count]))
        assert count == want.lengths[0]
        np.testing.assert_array_equal(tokens[:count], want.tokens[0, :count])
        np.testing.assert_allclose(dist[:count], want.outputs["p"][0, :count], rtol=1e-5, atol=1e-5)
    assert len(drawn) > 2


def test_the_readme_example_builds_strictly_and_completes(cli, tmp_path):
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```c\n(.*?)```", readme, re.S) if "char_predictor_complete(" in b]
    assert cli("export", SPECS / "char_predictor.yaml", "--backend", "c", "-o", tmp_path / "char_predictor.c")[0] == 0
    exe = compile_main(tmp_path, example, STRICT + SANITIZE if sanitizers_work() else STRICT, "app")
    out = run(exe).decode()
    assert out.startswith("the cat ") and len(out) == len("the cat ") + 80 + 1
