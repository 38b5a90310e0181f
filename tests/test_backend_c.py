"""The c backend: its emitters against the op table's meanings, the generated source (readable,
deterministic, warning-free), the build cache, and the errors a user can meet. Whole-spec agreement is
in test_backends_conformance.py; the exported file in test_export_c.py. Everything here skips without
a C compiler."""
from __future__ import annotations

import ctypes
import itertools
import subprocess
import zlib

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.c import CBackend, CellRunner, assemble, build
from rnncompile.backends.c.cell import CellWriter, cell_prefix
from rnncompile.backends.c.emitters import CTYPES, EMITTERS, UNSUPPORTED, Arg, Site, View, emit, prelude
from rnncompile.backends.numpy.kernels import KERNELS
from conftest import SPECS, outputs_under_hash_seeds
from rnncompile.errors import DataError, UsageError
from rnncompile.ops import OPS
from test_kernels import CASES, KERNEL_OPS, TOKENS, _full_attrs, _meaning, _whole_or_bit
from test_kernels import _mask

pytestmark = pytest.mark.skipif(build.find_compiler() is None, reason="no C compiler on PATH")


def test_every_op_with_a_numpy_kernel_has_an_emitter_or_a_reason():
    """A new op fails here until the c backend can write it, or says why it cannot."""
    missing = [n for n in OPS if n in KERNELS and n not in EMITTERS and n not in UNSUPPORTED]
    assert not missing, f"backends/c/emitters.py has no emitter (and no UNSUPPORTED reason) for: {', '.join(missing)}"
    assert not (set(EMITTERS) | set(UNSUPPORTED)) - set(OPS), "emitters for ops the op table does not have"
    assert all(isinstance(why, str) and why for why in UNSUPPORTED.values())
    assert CBackend.emitters is EMITTERS


# ---- every emitter, compiled, against the op table's meaning --------------------------------------

def _variants():
    """Each case of test_kernels once as is, once with its scalars as literals written into the code, and
    (matmul of a matrix) once reading the matrix from a transposed copy, as a param-only one is read."""
    for op in KERNEL_OPS:
        for n, (shapes, attrs, kinds) in enumerate(CASES.get(op, [])):
            yield op, n, shapes, attrs, kinds, "plain"
            if any(s == () and k != "token" for s, k in zip(shapes, kinds)):
                yield op, n, shapes, attrs, kinds, "literal"
            if op == "matmul" and len(shapes[0]) == 2:
                yield op, n, shapes, attrs, kinds, "transposed"


VARIANTS = list(_variants())
_LIBS: dict = {}


def _values(op, n, shapes, kinds, dtype):
    rng = np.random.default_rng(zlib.crc32(repr((op, n, shapes)).encode()))
    out = []
    for s, k in zip(shapes, kinds):
        if k == "token":
            out.append(rng.integers(0, TOKENS, s).astype(np.int32))
        elif k == "positive":
            out.append(rng.uniform(0.5, 2.0, s).astype(dtype))
        elif k in ("whole", "bit"):
            out.append(_whole_or_bit(rng, s, k, dtype))
        elif k == "mask":
            out.append(_mask(rng, s, dtype))
        else:
            out.append(rng.standard_normal(s).astype(dtype))
    return out


def _case_function(i, case, dtype, helpers):
    op, n, shapes, attrs, kinds, variant = case
    c, attrs = CTYPES[dtype], _full_attrs(op, attrs)
    values = _values(op, n, shapes, kinds, dtype)
    args = []
    for j, (s, k, v) in enumerate(zip(shapes, kinds, values)):
        literal = variant == "literal" and s == () and k != "token"
        args.append(Arg("", (), scalar=c.lit(v)) if literal else Arg(f"a{j}", s))
    out = OPS[op].shape(list(shapes), attrs)
    site = Site(args, attrs, Arg("out", out), c,
                transposed=lambda j: Arg("a0_t", shapes[0][::-1]) if variant == "transposed" and j == 0 else None)
    got = emit(op, site)
    helpers |= site.helpers
    if isinstance(got, View):  # read in place: the test copies the run out
        size = int(np.prod(out))
        got = [f"for (int i = 0; i < {size}; ++i) out[i] = {args[got.arg].at(f'{got.offset} + i')};"]
    params = [f"const {'int32_t' if k == 'token' else c.name} *a{j}" for j, k in enumerate(kinds)]
    params += [f"const {c.name} *a0_t", f"{c.name} *out"]
    text = "\n".join([f"int case_{i}({', '.join(params)})", "{", *("    " + x for x in got), "    return 0;", "}"])
    return text, values, out


def _lib(dtype):
    if dtype not in _LIBS:
        helpers, parts, data = set(), [], []
        for i, case in enumerate(VARIANTS):
            text, values, out = _case_function(i, case, dtype, helpers)
            parts.append(text)
            data.append((values, out))
        source = "\n\n".join(["#include <math.h>\n#include <stdint.h>\n#include <string.h>",
                              prelude(helpers, CTYPES[dtype])] + parts) + "\n"
        _LIBS[dtype] = (build.load(source), data)
    return _LIBS[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("i", range(len(VARIANTS)),
                         ids=[f"{op}-{n}-{variant}" for op, n, _, _, _, variant in VARIANTS])
def test_emitted_c_matches_meaning(i, dtype):
    op, n, shapes, attrs, kinds, variant = VARIANTS[i]
    lib, data = _lib(dtype)
    values, out_shape = data[i]
    out = np.full(out_shape, np.nan, dtype)
    transposed = np.ascontiguousarray(values[0].T) if variant == "transposed" else np.zeros(1, dtype)
    fn = getattr(lib, f"case_{i}")
    fn.argtypes = [ctypes.c_void_p] * (len(values) + 2)
    assert fn(*[np.ascontiguousarray(v).ctypes.data for v in values], transposed.ctypes.data, out.ctypes.data) == 0
    attrs = _full_attrs(op, attrs)
    want = np.asarray(_meaning(op, [v.astype(np.int64) if k == "token" else v for v, k in zip(values, kinds)], attrs))
    tol = 1e-12 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol)


def test_embed_refuses_a_token_beyond_its_table():
    program = rnncompile.compile(SPECS / "char_predictor.yaml")
    ids = np.array([[1, 2, 999]])
    with pytest.raises(DataError, match="holds token id 999 at sequence 0, step 2"):  # api checks every backend
        rnncompile.run(program, inputs={"ch": ids}, backend="c")
    from rnncompile.drivers import Executable  # and the generated C guards its own reads, for exported C

    exe = Executable.cached(program, "c", "float32")
    with pytest.raises(DataError, match="token id is beyond its embedding table"):
        exe.run({"ch": ids}, rnncompile.make_params(program), None, None, {}, False, 0, None)


# ---- the generated source --------------------------------------------------------------------

def _lstm_source(dtype="float32"):
    program = rnncompile.compile(SPECS / "lstm.yaml")
    return CellRunner(program.scan_cell, dtype).compiled(None).source


def test_lstm_step_reads_like_the_spec():
    src = _lstm_source()
    assert "static int lstm_step(const lstm_consts *restrict k, lstm_values *restrict rows, int n)" in src
    # W_h @ h for a block of examples as one matrix product; W_x @ x for all steps before the loop
    assert "static void lstm_fused_rows(int n, int groups, long xg, long og, const float *restrict x, float *restrict o," in src
    assert "lstm_fused_22_rows(ts, n, (long)T * 8, 2048, x + ((long)b0 * T + t0) * 8, pre, k->v21_p);" in src
    assert "int lstm_scan(const lstm_consts *k, int B, int T, const float *x, float *h, float *c," in src
    # one commented block per node, named after the spec, with the spec path it came from
    assert "/* %36 c_next = add(v35, v33) : [16]  cells.lstm.let.c_next */" in src
    assert "v->c_next[i] = v->v35[i] + v->v33[i];" in src
    assert "v->g[i] = rc_tanh(v->v25[32 + i]);" in src  # a slice is read in place, not copied
    assert "tanhf(" not in src and "expf(" not in src  # sigmoid and tanh are the file's own: their loops vectorise
    assert "memcpy(h + b * 16, work->h_next, 16 * sizeof(float));" in src
    assert "malloc" not in src and "double" not in src
    assert "static double rc_tanh(double x)" in _lstm_source("float64")


@pytest.mark.parametrize("batch", [1, 3, 4, 7, 13, 21, 29])  # the 12-, 4- and 1-row blocks, one and two blocks
def test_blocked_step_gives_the_numbers_of_one_example_at_a_time(batch):
    """The simulation steps blocks of examples (matrix products over the block, the input projection of each
    run of 32 steps before them); the sums run in the same order as the one-example code the export writes, so the
    outputs are the same bits."""
    from rnncompile.backends.c import Compiled, assemble
    from rnncompile.backends.c.consts import const_values, pack
    from rnncompile.backends.c.emitters import FLOAT

    program = rnncompile.compile(SPECS / "lstm.yaml", dims={"I": 6, "H": 19})  # 4H = 76: a tile and a tail
    cell = program.scan_cell
    rng = np.random.default_rng(batch)
    params = {k: rng.uniform(-0.5, 0.5, info.shape).astype(np.float32) for k, info in program.params.items()}
    steps = 70  # runs of 32 steps (STEPS) and a tail, in reverse
    x = rng.standard_normal((batch, steps, 6)).astype(np.float32)
    lengths = rng.integers(1, steps + 1, batch).astype(np.int32)
    h0 = rng.uniform(-1, 1, (batch, 19)).astype(np.float32)
    c0 = rng.uniform(-1, 1, (batch, 19)).astype(np.float32)
    got = {}
    for rows, reverse in itertools.product((1, 24), (0, 1)):
        code = CellWriter(cell, "lstm", FLOAT, rows=rows).write()
        comp = Compiled(code, assemble("/* test */", [code], FLOAT))
        k = pack(code, const_values(cell, params, np.float32), np.float32)
        h, c, y = h0.copy(), c0.copy(), np.empty((batch, steps, 19), np.float32)
        work = np.empty(rows * code.v_size, np.float32)
        trace = np.empty((batch, steps, code.v_size), np.float32)
        pre_buffer = np.empty(max(1, code.pre_size), np.float32)  # kept alive until the call returns
        pre = [pre_buffer.ctypes.data] if rows > 1 else []
        assert comp.scan(k.ctypes.data, batch, steps, x.ctypes.data, h.ctypes.data, c.ctypes.data, lengths.ctypes.data,
                         reverse, y.ctypes.data, work.ctypes.data, trace.ctypes.data, *pre) == 0
        got[rows, reverse] = (y, h, c, trace)
    for reverse in (0, 1):
        for one, blocked in zip(got[1, reverse], got[24, reverse]):
            np.testing.assert_array_equal(one, blocked)
    assert np.abs(got[1, 0][0]).max() > 0.01 and not np.array_equal(got[1, 0][0], got[1, 1][0])


def test_generated_source_is_deterministic_across_processes():
    code = ("import sys; sys.path.insert(0, {root!r}); import rnncompile; from rnncompile.backends.c import CellRunner; "
            "p = rnncompile.compile({spec!r}); "
            "sys.stdout.write(''.join(CellRunner(p.cell(u)).compiled(None).source for u in p.plan.uses()))")
    outs = outputs_under_hash_seeds(code)
    assert outs[0] == outs[2] and outs[1] == outs[3]
    assert outs[0] != outs[1]


def _spec_cells():
    for spec in sorted(SPECS.glob("*.yaml")):
        program = rnncompile.compile(spec)
        for use in program.plan.uses():
            cell = program.cell(use)
            if not any(0 in cell.node(n).shape for n in cell.g.nodes):
                yield spec.name, cell


def test_generated_cells_compile_without_a_warning(tmp_path):
    """Every shipped spec's cells, float and double, under -Wall -Wextra -pedantic -Werror."""
    sources = {}
    for (name, cell), dtype in itertools.product(list(_spec_cells()), ("float32", "float64")):
        sources.setdefault(_source_only(cell, dtype), name)
    for i, (source, name) in enumerate(sources.items()):
        path = tmp_path / f"cell{i}.c"
        path.write_text(source)
        done = subprocess.run([*build.compiler(), "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror",
                               "-fsyntax-only", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{name}:\n{done.stderr}"


def _source_only(cell, dtype):
    """A cell's C, as the backend writes it, without building it."""
    code = CellWriter(cell, cell_prefix(cell.name), CTYPES[dtype]).write()
    return assemble("/* test */", [code], CTYPES[dtype])


# ---- build: cache, compiler errors, no compiler -------------------------------------------------

SMALL = "int answer(void) { return 42; }\n"


def test_builds_are_cached_by_content_and_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = build.build(SMALL)
    assert first.parent.parent == tmp_path / "rnncompile" / "c" and first.name == "module.so"
    assert (first.parent / "module.c").read_text() == SMALL
    monkeypatch.setattr(build.subprocess, "run", lambda *a, **k: pytest.fail("compiled again"))
    assert build.build(SMALL) == first  # found, not compiled
    monkeypatch.setenv("CC", f"{build.compiler()[0]} -DX=1")
    assert build.key(SMALL) != first.parent.name  # another compiler command: another build


def test_a_compile_error_is_a_usage_error_and_leaves_no_library(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(UsageError) as info:
        build.build("int broken(void) { return nope; }\n")
    text = str(info.value)
    assert "the C compiler" in text and "failed on" in text and "nope" in text
    assert len(text.splitlines()) <= 14  # the compiler's first lines, not all of them
    (where,) = (tmp_path / "rnncompile" / "c").iterdir()
    assert sorted(p.name for p in where.iterdir()) == ["module.c"]  # no module.so, no temporary


def test_no_compiler_is_a_clear_error(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    code, out, err = cli("run", SPECS / "elman.yaml", "--backend", "c", "--dim", "H=7")
    assert code == 2, err
    assert err.strip() == ("error: the c backend needs a C compiler, and `/nonexistent/cc` was not found; "
                           "install one (e.g. `apt install gcc`) or set CC to one")
    assert CBackend().unsupported(None) == "no C compiler (`/nonexistent/cc`) on PATH"


def test_an_op_without_c_says_which_and_where(cli, monkeypatch):
    monkeypatch.setitem(UNSUPPORTED, "shift", "circular shifts are not written in C yet")
    code, out, err = cli("run", SPECS / "ntm.yaml", "--backend", "c", "--dim", "H=9")
    assert code == 2 and "Traceback" not in err
    assert err.strip() == ("error: the c backend cannot run `shift` in cell `ntm` [cells.ntm.let.ws_w0]: circular "
                           "shifts are not written in C yet; run this spec with --backend numpy")


# ---- the command line ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec,args", [("lstm.yaml", ["--trace"]), ("bigru.yaml", ["-b", "2"]), ("rvnn.yaml", []),
                                       ("treelstm_childsum.yaml", ["--per-node"]), ("seq2seq.yaml", ["-b", "2"]),
                                       ("memn2n.yaml", [])])
def test_cli_runs_every_kind_of_model_on_the_c_backend(cli, spec, args):
    code, out, err = cli("run", SPECS / spec, "--backend", "c", *args)
    assert code == 0, err
    assert "(c, float32, seed 0)" in out
    ref = cli("run", SPECS / spec, *args)[1]
    assert len(out.splitlines()) == len(ref.splitlines())
    assert out.splitlines()[0] == ref.splitlines()[0].replace("(numpy, ", "(c, ")
