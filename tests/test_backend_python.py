"""The python backend: its emitters against the op table's meanings, and the generated source itself
(deterministic, readable, NumPy only). Whole-spec agreement is in test_backends_conformance.py; the
exported module in test_export.py."""
from __future__ import annotations

import ast
import itertools
import re
import zlib

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.numpy.kernels import KERNELS
from rnncompile.backends.python import PythonBackend, prelude
from rnncompile.backends.python.emitters import EMITTERS, Site, emit
from rnncompile.backends.python.module import cell_module, load
from conftest import SPECS, outputs_under_hash_seeds
from rnncompile.ops import OPS
from test_kernels import CASES, KERNEL_OPS, B, _array, _full_attrs, _meaning


def test_every_op_with_a_numpy_kernel_has_an_emitter():
    """A new op fails here until the python backend can write it."""
    missing = [n for n in OPS if n in KERNELS and n not in EMITTERS]
    assert not missing, f"backends/python/emitters.py has no emitter for: {', '.join(missing)}"
    assert not set(EMITTERS) - set(OPS), f"emitters for unknown ops: {set(EMITTERS) - set(OPS)}"
    assert PythonBackend.emitters is EMITTERS


def _cases():
    for op in KERNEL_OPS:
        for n, (shapes, attrs, kinds) in enumerate(CASES.get(op, [])):
            for flags in itertools.product((False, True), repeat=len(shapes)):
                yield pytest.param(op, shapes, attrs, kinds, flags, id=f"{op}-{n}-{''.join('B-'[not f] for f in flags)}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op,shapes,attrs,kinds,flags", list(_cases()))
def test_emitted_expression_matches_meaning(op, shapes, attrs, kinds, flags, dtype):
    """The same cases and batching patterns as the NumPy kernels' test, on the emitted expression."""
    rng = np.random.default_rng(zlib.crc32(repr((op, shapes, attrs, flags)).encode()))
    attrs = _full_attrs(op, attrs)
    out_shape = OPS[op].shape(list(shapes), attrs)
    args = [_array(rng, ((B,) if f else ()) + s, k, dtype) for s, f, k in zip(shapes, flags, kinds)]
    site = Site([f"a{i}" for i in range(len(args))], flags, list(shapes), attrs, out_shape)
    expr = emit(op, site)
    scope = {"np": np}
    exec(prelude.render(site.needs), scope)
    got = np.asarray(eval(expr, scope, {f"a{i}": a for i, a in enumerate(args)}))
    if any(flags):
        want = np.stack([np.asarray(_meaning(op, [a[b] if f else a for a, f in zip(args, flags)], attrs))
                         for b in range(B)])
    else:
        want = np.asarray(_meaning(op, args, attrs))
    assert got.shape == want.shape, expr
    tol = 1e-12 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=expr)
    if op != "one_hot":
        assert got.dtype == want.dtype, f"{expr} gives {got.dtype}, the meaning {want.dtype}"


def _lstm_source(trace=False):
    program = rnncompile.compile(SPECS / "lstm.yaml")
    return cell_module(program.scan_cell, trace)[0]


def test_lstm_step_reads_like_the_spec():
    src = _lstm_source()
    assert "def lstm_step(k, " in src and "def lstm_scan(k, inputs, state=None, lengths=None, reverse=False):" in src
    assert "c_next = " in src and "# cells.lstm.let.c_next" in src
    assert "h_next = o * " in src  # the update of h is named after its state
    assert all(re.search(rf"^    {gate} = ", src, re.M) for gate in "ifgo")  # and the gates after theirs
    assert "return (y,), (h_next, c_next)" in src
    for part in ("prepare", "hoist", "step"):  # one commented line per node
        body = src.split(f"def lstm_{part}(")[1].split("\n\n")[0]
        assigns = [line for line in body.splitlines() if re.match(r"    \w+ = ", line) and "np.dtype" not in line]
        assert assigns and all(re.search(r"  # cells\.lstm\.[a-z]+\.\w+$", line) for line in assigns), body


def test_generated_source_is_deterministic_across_processes():
    """Byte for byte, whatever the hash seed (no set or dict order leaks into the text)."""
    code = ("import sys; sys.path.insert(0, {root!r}); import rnncompile; from rnncompile import registry; "
            "sys.stdout.write(registry.get('python').export(rnncompile.compile({spec!r}), 'x.yaml').source)")
    outs = outputs_under_hash_seeds(code)
    assert outs[0] == outs[2] and outs[1] == outs[3]
    assert outs[0] != outs[1]


@pytest.mark.parametrize("spec", sorted(p.name for p in SPECS.glob("*.yaml")))
def test_generated_module_imports_only_numpy(spec):
    program = rnncompile.compile(SPECS / spec)
    tree = ast.parse(PythonBackend().export(program, spec).source)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(n) for n in imports] == ["import numpy as np"]
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not calls & {"eval", "exec", "compile", "__import__", "open"}


def test_modules_are_cached_by_source():
    src = _lstm_source()
    assert load(src) is load(src)
    assert load(src) is not load(_lstm_source(trace=True))


def test_a_spec_name_that_shadows_a_helper_is_renamed(tmp_path):
    spec = tmp_path / "shadow.yaml"
    spec.write_text("rnncompile: 1\nname: shadow\ndims: {I: 3, H: 4}\ncells:\n  by:\n    inputs: {x: I}\n"
                    "    state: {h: H}\n    params: {W: {shape: [H, H + I]}}\n"
                    "    let: {sigmoid: \"tanh(W @ concat(h, x))\", k: 2 * sigmoid}\n"
                    "    update: {h: 1 - k}\n    outputs: {y: h}\nmodel: {scan: by, input: {x: [T, I]}}\n")
    program = rnncompile.compile(spec)
    src = cell_module(program.scan_cell)[0]
    assert "sigmoid_ = " in src and "k_ = " in src  # a helper's and the params dict's names are the code's own
    assert "def by_cell_step(" in src  # `by_step` is a helper
    a = rnncompile.run(program, batch=2, steps=3, backend="numpy")
    b = rnncompile.run(program, batch=2, steps=3, backend="python")
    np.testing.assert_allclose(b.outputs["y"], a.outputs["y"], rtol=1e-6, atol=1e-6)


def test_a_traceback_shows_the_generated_line():
    src = _lstm_source()
    mod = load(src)
    k = mod.lstm_prepare({n: np.zeros(s) for n, s in [("W_i", (16, 24)), ("b_i", (16,)), ("W_f", (16, 24)),
                                                       ("b_f", (16,)), ("W_g", (16, 24)), ("b_g", (16,)),
                                                       ("W_o", (16, 24)), ("b_o", (16,))]})
    with pytest.raises(ValueError) as info:
        mod.lstm_scan(k, {"x": np.zeros((2, 3, 5))})  # 5 features where the cell takes 8
    text = "".join(__import__("traceback").format_exception(info.value))
    assert "# cells.lstm" in text


@pytest.mark.parametrize("spec,args", [("lstm.yaml", ["--trace"]), ("bigru.yaml", ["-b", "2"]), ("rvnn.yaml", []),
                                       ("seq2seq.yaml", ["-b", "2"]), ("memn2n.yaml", [])])
def test_cli_runs_every_kind_of_model_on_the_python_backend(cli, spec, args):
    code, out, err = cli("run", SPECS / spec, "--backend", "python", *args)
    assert code == 0, err
    assert "(python, float32, seed 0)" in out
    ref = cli("run", SPECS / spec, *args)[1]
    assert len(out.splitlines()) == len(ref.splitlines())
