"""`rnncompile export --backend python`: a standalone module that runs without rnncompile.

The exported modules are imported in a separate, isolated interpreter
(`python -I -S`) whose path holds only the modules and NumPy, and their
`run` must give the interpreter's numbers.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rnncompile
from conftest import ROOT, SPECS
from rnncompile.api import make_params
from test_backends_conformance import SEQUENCE, TOL, sequence_case

CONTEXT_HEAD = """\
rnncompile: 1
name: ctxhead
dims: {I: 3, H: 4, C: 2, K: 5, T: 6}
cells:
  rnn:
    inputs: {x: I}
    state: {h: {shape: H, init: h0}}
    params: {W: {shape: [H, H + I]}, b: {shape: [H], init: zeros}, h0: {shape: [H], init: normal}}
    update: {h: "tanh(W @ concat(h, x) + b)"}
    outputs: {h: h}
model:
  input: {x: [T, I]}
  context: {z: [C]}
  layers:
    - {scan: rnn, direction: bidirectional, merge: sum}
    - {scan: rnn}
  head:
    params: {W_y: {shape: [K, H + C]}}
    outputs: {y: "softmax(W_y @ concat(h, z))"}
    at: last
"""

RUNNER = """\
import importlib, importlib.util, sys
sys.path[:0] = [{numpy!r}, {here!r}]
assert importlib.util.find_spec("rnncompile") is None and importlib.util.find_spec("backends") is None
import numpy as np

for name in {names!r}:
    mod = importlib.import_module(name)
    with np.load(name + ".in.npz") as f:
        data = {{k: f[k] for k in f.files}}
    part = lambda p: {{k[len(p):]: v for k, v in data.items() if k.startswith(p)}}
    try:
        outputs, final = mod.run(part("params."), part("inputs."), part("state.") or None, data.get("lengths"),
                                 part("context.") or None, dtype=str(data["dtype"]))
    except NotImplementedError as e:
        open(name + ".err", "w").write(str(e))
        continue
    np.savez(name + ".out.npz", **{{"outputs." + k: v for k, v in outputs.items()}},
             **{{"state." + k: v for k, v in final.items()}})
"""


def isolated_python(tmp_path, names: list[str]) -> None:
    """Run the exported modules in `tmp_path` with only NumPy importable (no rnncompile, no site-packages)."""
    only = tmp_path / "only_numpy"
    only.mkdir()
    os.symlink(os.path.dirname(np.__file__), only / "numpy")
    script = tmp_path / "runner.py"
    script.write_text(RUNNER.format(numpy=str(only), here=str(tmp_path), names=names))
    done = subprocess.run([sys.executable, "-I", "-S", str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def save_case(path, params, inputs, context, lengths, state, dtype):
    arrays = {f"params.{k}": v for k, v in params.items()}
    arrays.update({f"inputs.{k}": v for k, v in inputs.items()})
    arrays.update({f"context.{k}": v for k, v in (context or {}).items()})
    arrays.update({f"state.{k}": v for k, v in (state or {}).items()})
    if lengths is not None:
        arrays["lengths"] = lengths
    np.savez(path, dtype=np.array(dtype), **arrays)


def test_exported_modules_match_the_interpreter_without_rnncompile(cli, tmp_path):
    (tmp_path / "ctxhead.yaml").write_text(CONTEXT_HEAD)
    cases = [(p, "float32", False) for p in SEQUENCE]
    cases += [(SPECS / "lstm.yaml", "float64", True), (SPECS / "bigru.yaml", "float64", True),
              (tmp_path / "ctxhead.yaml", "float32", False), (tmp_path / "ctxhead.yaml", "float64", True)]
    expected, names = {}, []
    for i, (spec, dtype, with_state) in enumerate(cases):
        name = f"m{i}_{spec.stem}"
        code, out, err = cli("export", spec, "--backend", "python", "-o", tmp_path / f"{name}.py")
        assert code == 0, err
        program = rnncompile.compile(spec)
        params = make_params(program, seed=0, dtype=dtype)
        inputs, context, lengths = sequence_case(program, dtype)
        state = None
        if with_state:
            rng = np.random.default_rng(i)
            state = {u.key(n): rng.standard_normal((3,) + s.shape).astype(dtype)
                     for layer in program.plan.stack.layers for u in layer.uses for n, s in u.cell.states.items()}
        save_case(tmp_path / f"{name}.in.npz", params, inputs, context, lengths, state, dtype)
        expected[name] = (rnncompile.run(program, inputs=inputs, params=params, context=context, lengths=lengths,
                                         init_state=state, dtype=dtype), dtype)
        names.append(name)
    isolated_python(tmp_path, names)
    for name, (want, dtype) in expected.items():
        with np.load(tmp_path / f"{name}.out.npz") as f:
            got = {k: f[k] for k in f.files}
        assert set(got) == {f"outputs.{k}" for k in want.outputs} | {f"state.{k}" for k in want.final_state}, name
        for k, v in want.outputs.items():
            assert got[f"outputs.{k}"].dtype == np.dtype(dtype), name
            np.testing.assert_allclose(got[f"outputs.{k}"], v, err_msg=f"{name}: {k}", **TOL[dtype])
        for k, v in want.final_state.items():
            np.testing.assert_allclose(got[f"state.{k}"], v, err_msg=f"{name}: state {k}", **TOL[dtype])


def test_a_model_run_cannot_export_says_so(cli, tmp_path):
    code, out, err = cli("export", SPECS / "seq2seq.yaml", "-o", tmp_path / "s2s.py")
    assert code == 0, err
    assert "note: `run` is not exported (seq2seq is an encoder-decoder" in err
    text = (tmp_path / "s2s.py").read_text()
    assert "`run` is not exported: seq2seq is an encoder-decoder" in text
    assert "def encoder_lstm_step(" in text and "def decoder_lstm_step(" in text
    save_case(tmp_path / "s2s.in.npz", {}, {}, None, None, None, "float32")
    isolated_python(tmp_path, ["s2s"])
    assert "use `rnncompile run` for the whole model" in (tmp_path / "s2s.err").read_text()


def test_export_docstring_names_shapes_and_params(cli, tmp_path):
    code, out, err = cli("export", SPECS / "sentiment.yaml", "-o", tmp_path / "m.py")
    assert code == 0, err
    assert out.strip() == f"wrote {tmp_path / 'm.py'}"
    doc = (tmp_path / "m.py").read_text().split('"""')[1]
    assert "from sentiment.yaml" in doc and "imports only NumPy" in doc
    assert "import m as model" in doc  # the module's name is the file's
    assert "inputs:  w [B, T] tokens" in doc
    assert "outputs: p [B, 2]" in doc  # many-to-one: one distribution per sequence
    assert "W_i [" in doc and "head.W_y [" in doc


def test_export_is_the_same_bytes_each_time(cli, tmp_path):
    for where in ("a", "b"):
        assert cli("export", SPECS / "ntm.yaml", "-o", tmp_path / where / "ntm_model.py")[0] == 0
    assert (tmp_path / "a" / "ntm_model.py").read_bytes() == (tmp_path / "b" / "ntm_model.py").read_bytes()


def test_export_needs_a_backend_that_writes_code(cli, tmp_path):
    code, out, err = cli("export", SPECS / "lstm.yaml", "--backend", "numpy", "-o", tmp_path / "m.py")
    assert code == 2
    assert err.strip() == "error: backend `numpy` cannot export standalone code; use --backend c or python"
    assert not (tmp_path / "m.py").exists()


def test_codegen_writes_into_a_folder_named_after_the_spec(cli, tmp_path):
    build = tmp_path / "build"
    code, out, err = cli("codegen", SPECS / "lstm.yaml", "--target", "python", "-o", build)
    assert (code, err) == (0, "")
    assert out.strip() == f"wrote {build / 'lstm_model.py'}"
    assert cli("export", SPECS / "lstm.yaml", "-o", tmp_path / "lstm_model.py")[0] == 0
    assert (build / "lstm_model.py").read_bytes() == (tmp_path / "lstm_model.py").read_bytes()


def test_codegen_of_a_backend_without_code_writes_nothing(cli, tmp_path):
    code, out, err = cli("codegen", SPECS / "lstm.yaml", "--target", "numpy", "-o", tmp_path / "build")
    assert code == 2
    assert err.strip() == "error: backend `numpy` cannot export standalone code; use --target c or python"
    assert not (tmp_path / "build").exists()


def test_export_of_a_bad_spec_writes_nothing(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rnncompile: 1\nname: x\ncells: {}\nmodel: {scan: nope}\n")
    code, out, err = cli("export", bad, "-o", tmp_path / "m.py")
    assert code == 1 and "no cell named `nope`" in err
    assert list(tmp_path.iterdir()) == [bad]


@pytest.mark.parametrize("spec", ["rvnn.yaml", "captioner.yaml"])
def test_export_of_trees_and_generators_compiles(cli, tmp_path, spec):
    code, out, err = cli("export", SPECS / spec, "-o", tmp_path / "m.py")
    assert code == 0 and "not exported" in err
    compile((tmp_path / "m.py").read_text(), "m.py", "exec")


def test_readme_example_runs(tmp_path):
    """The snippet in the module docstring, as a user would run it."""
    subprocess.run([sys.executable, "-m", "rnncompile.cli", "export", str(SPECS / "lstm.yaml"), "-o",
                    str(tmp_path / "lstm_model.py")], check=True, cwd=ROOT, capture_output=True)
    subprocess.run([sys.executable, "-m", "rnncompile.cli", "run", str(SPECS / "lstm.yaml"), "--save-weights",
                    str(tmp_path / "weights.npz")], check=True, cwd=ROOT, capture_output=True)
    code = textwrap.dedent("""
        import numpy as np
        import lstm_model as model
        params = dict(np.load("weights.npz"))
        x = np.ones((2, 5, 8), np.float32)
        outputs, final_state = model.run(params, {"x": x}, lengths=None)
        print(outputs["y"].shape, sorted(final_state))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "(2, 5, 16) ['c', 'h']"
