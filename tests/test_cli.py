"""The command line, end to end, in-process."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, SPECS

HELLO = ROOT / "examples" / "hello" / "spec.yaml"


def test_validate_ok(cli):
    code, out, err = cli("validate", SPECS / "lstm.yaml")
    assert code == 0
    assert out.strip().endswith("lstm.yaml: ok")


def test_validate_reports_errors_with_exit_1(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rnncompile: 1\nname: x\ncells: {}\nmodel: {scan: nope}\n")
    code, out, err = cli("validate", bad)
    assert code == 1
    assert "bad.yaml:4:15: error: no cell named `nope`" in err


def test_missing_file_is_usage_error(cli, tmp_path):
    code, out, err = cli("validate", tmp_path / "nope.yaml")
    assert code == 2
    assert "no such file" in err


@pytest.mark.parametrize("spec", ["elman", "lstm", "gru"])
def test_run_default(cli, spec):
    code, out, err = cli("run", SPECS / f"{spec}.yaml")
    assert code == 0, err
    assert f"{spec}: 10 steps, batch 1 (numpy, float32, seed 0)" in out
    assert "final state" in out


def test_run_is_seeded(cli):
    _, a, _ = cli("run", SPECS / "lstm.yaml", "--seed", 3)
    _, b, _ = cli("run", SPECS / "lstm.yaml", "--seed", 3)
    _, c, _ = cli("run", SPECS / "lstm.yaml", "--seed", 4)
    assert a == b and a != c


def test_dim_override(cli, tmp_path):
    out_file = tmp_path / "o.npz"
    code, out, err = cli("run", SPECS / "lstm.yaml", "--dim", "H=5", "--batch", 3, "--steps", 7, "-o", out_file)
    assert code == 0, err
    with np.load(out_file) as f:
        assert f["outputs.y"].shape == (3, 7, 5)
        assert f["state.c"].shape == (3, 5)


@pytest.mark.parametrize("bad", ["H", "H=x", "=4", "H=0"])
def test_bad_dim_option(cli, bad):
    code, out, err = cli("run", SPECS / "lstm.yaml", "--dim", bad)
    assert code == 2
    assert "--dim" in err


def test_hello_trace_spells_ello(cli):
    code, out, err = cli("run", HELLO, "--text", "hell", "--trace")
    assert code == 0, err
    steps = out.split("step ")[1:]
    assert len(steps) == 4
    predicted = [s.split("next: ")[1][1] for s in steps]
    assert "".join(predicted) == "ello"
    assert "h (prev)" in out and "h (next)" in out


def test_text_errors(cli):
    code, _, err = cli("run", HELLO, "--text", "help")
    assert code == 1
    assert "'p' (token 4 of the text) is not in the vocabulary: 'h' 'e' 'l' 'o'" in err
    code, _, err = cli("run", HELLO, "--text", "")
    assert code == 1 and "the text is empty" in err
    code, _, err = cli("run", SPECS / "lstm.yaml", "--text", "hi")
    assert code == 2 and "declares no vocabulary" in err.replace("declares none", "declares no vocabulary")


def test_weights_roundtrip_and_mismatch(cli, tmp_path):
    w = tmp_path / "w.npz"
    o1, o2 = tmp_path / "a.json", tmp_path / "b.json"
    assert cli("run", SPECS / "gru.yaml", "--seed", 5, "--save-weights", w, "-o", o1)[0] == 0
    assert cli("run", SPECS / "gru.yaml", "--seed", 5, "--weights", w, "-o", o2)[0] == 0
    assert json.loads(o1.read_text()) == json.loads(o2.read_text())
    with np.load(w) as f:
        params = dict(f)
    params["W_r"] = params["W_r"][:, :3]
    params["extra"] = np.zeros(2)
    del params["b_z"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **params)
    code, _, err = cli("run", SPECS / "gru.yaml", "--weights", bad)
    assert code == 1
    assert "weights do not match the spec" in err
    assert "`W_r` has shape [16, 3], the spec wants [16, 24]" in err
    assert "missing `b_z` [16]" in err
    assert "unexpected `extra` [2]" in err


def test_inputs_from_files(cli, tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 4, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.json").write_text(json.dumps({"x": x.tolist()}))
    np.savez(tmp_path / "x.npz", x=x)
    results = []
    for name in ("x.npy", "x.json", "x.npz"):
        out = tmp_path / f"out_{name}.npz"
        code, _, err = cli("run", SPECS / "lstm.yaml", "--input", tmp_path / name, "-o", out)
        assert code == 0, err
        with np.load(out) as f:
            results.append(f["outputs.y"])
    assert results[0].shape == (2, 4, 16)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_bad_input_shape(cli, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 7)))
    code, _, err = cli("run", SPECS / "lstm.yaml", "--input", tmp_path / "x.npy")
    assert code == 1
    assert "input `x` has shape [2, 4, 7]; expected [batch, steps, 8] or [steps, 8]" in err


def test_failed_run_leaves_no_output_file(cli, tmp_path):
    out = tmp_path / "o.npz"
    code, _, _ = cli("run", SPECS / "lstm.yaml", "--weights", tmp_path / "missing.npz", "-o", out)
    assert code == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_runaway_allocation_refused(cli):
    code, _, err = cli("run", SPECS / "lstm.yaml", "--dim", "H=20000", "--batch", 100000)
    assert code == 1
    assert "the limit is" in err


def test_trace_output_file(cli, tmp_path):
    out = tmp_path / "t.npz"
    code, _, err = cli("run", SPECS / "lstm.yaml", "--trace", "--steps", 3, "--batch", 2, "-o", out)
    assert code == 0, err
    with np.load(out) as f:
        assert f["trace.f"].shape == (2, 3, 16)
        assert f["trace.c_next"].shape == (2, 3, 16)
        np.testing.assert_allclose(f["trace.h"], f["outputs.y"])


def test_inspect(cli):
    code, out, err = cli("inspect", SPECS / "lstm.yaml")
    assert code == 0, err
    assert "param  W_f                    [16, 24]            384  glorot" in out
    assert "params                        1,600 (6.2 KiB)" in out
    assert "FLOPs per step, per example   3.58k" in out
    assert "fuse-gates 46→50" in out
    assert "inside the loop 16" in out  # one add per step, one sigmoid for the i and f gates
    assert "next h = %" in out


def test_schema_is_json_schema(cli, tmp_path):
    code, out, err = cli("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["title"] == "rnncompile spec"
    assert {"rnncompile", "name", "cells", "model"} <= set(schema["properties"])
    cell = schema["$defs"]["CellSpec"]
    assert cell["additionalProperties"] is False
    assert "from" in schema["$defs"]["GateSpec"]["properties"]


def test_backends_listed(cli):
    code, out, _ = cli("backends")
    assert "numpy" in out.split()


def test_unknown_backend(cli):
    code, _, err = cli("run", SPECS / "lstm.yaml", "--backend", "cuda")
    assert code == 2
    assert "unknown backend `cuda`; available: c, fixed, fixed_c, numpy, python" in err
