"""Bad data files and output paths (issue 16, item 4): what input, state and weights files may hold, and
outputs that cannot be written, refused before the run (exit 2) with a clean message."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SPECS

LSTM = SPECS / "lstm.yaml"  # input x: [T, 8], T = 10; states h, c: [16]


def assert_clean(code, err, *phrases, exit_code=1):
    assert code == exit_code, err
    assert "internal error" not in err and "Traceback" not in err and "Warning:" not in err, err
    for phrase in phrases:
        assert phrase in err, err


@pytest.fixture
def weights(tmp_path):
    from rnncompile import api, compile

    return api.make_params(compile(str(LSTM)))


# ---- input and state files -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, what", [
    (np.full((1, 10, 8), "0.5"), "holds text, not numbers"),
    (np.zeros((1, 10, 8), "datetime64[s]"), "holds dates or times, not numbers"),
    (np.zeros((1, 10, 8), complex), "holds complex numbers, not numbers"),
    (np.zeros((1, 10, 8), [("a", "f4"), ("b", "f4")]), "holds a structured record (named fields), not numbers"),
])
def test_non_numeric_npz_inputs_are_refused(tmp_path, cli, value, what):
    path = tmp_path / "x.npz"
    np.savez(path, x=value)
    code, out, err = cli("run", LSTM, "--input", path)
    assert_clean(code, err, f"x.npz: member `x.npy`: {what}")
    assert "ComplexWarning" not in err


@pytest.mark.parametrize("value, what", [
    ([[["a"] * 8] * 10], "`x` holds text, not numbers"),
    ([[[10**30] * 8] * 10], "`x` holds Python objects (mixed types, null, or integers too large for 64 bits)"),
    ([[[None] * 8] * 10], "`x` holds Python objects"),
    ([[[0.5] * 8] * 9 + [[0.5] * 7]], "`x` is not a rectangular array of numbers"),
    (json.loads("[" * 100 + "]" * 100), "`x` is not a rectangular array of numbers (ragged lists, or nested deeper "
                                        "than 64 axes)"),
])
def test_bad_json_inputs_are_refused(tmp_path, cli, value, what):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"x": value}))
    code, out, err = cli("run", LSTM, "--input", path)
    assert_clean(code, err, f"x.json: {what}")


def test_json_integer_beyond_python_limit_is_refused(tmp_path, cli):
    path = tmp_path / "x.json"
    path.write_text('{"x": [' + "9" * 5000 + "]}")
    code, out, err = cli("run", LSTM, "--input", path)
    assert_clean(code, err, "x.json: Exceeds the limit (4300 digits)")


@pytest.mark.parametrize("shape", [(0, 10, 8), (1, 0, 8)])
def test_zero_batch_or_zero_steps_is_refused(tmp_path, cli, shape):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.zeros(shape, np.float32))
    code, out, err = cli("run", LSTM, "--input", path)
    assert_clean(code, err, f"x.npz: `x` is empty (shape {list(shape)}); give at least one sequence and one step")


def test_init_state_with_strings_is_refused(tmp_path, cli):
    path = tmp_path / "s.npz"
    np.savez(path, **{"state.h": np.full((1, 16), "0"), "state.c": np.zeros((1, 16))})
    code, out, err = cli("run", LSTM, "--init-state", path)
    assert_clean(code, err, "s.npz: member `state.h.npy`: holds text, not numbers (<U1)")


def test_non_finite_input_warns_once(tmp_path, cli):
    path = tmp_path / "x.npz"
    x = np.zeros((1, 10, 8), np.float32)
    x[0, 3, :2] = np.nan
    np.savez(path, x=x)
    code, out, err = cli("run", LSTM, "--input", path)
    assert code == 0, err
    assert err.count("warning:") == 1, err
    assert "x.npz: arrays hold NaN or infinite values: `x` (2 values)" in err


# ---- weights files ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("convert, what", [
    (lambda a: a.astype("U12"), "holds text, not numbers"),
    (lambda a: a.astype("S12"), "holds bytes, not numbers"),
    (lambda a: a.astype([("v", "f4")]), "holds a structured record (named fields), not numbers"),
    (lambda a: a.astype(object), "holds Python objects"),
    (lambda a: a.astype(complex), "holds complex numbers, not numbers"),
])
def test_non_numeric_weights_are_refused(tmp_path, cli, weights, convert, what):
    path = tmp_path / "w.npz"
    np.savez(path, **{**weights, "W_i": convert(weights["W_i"])}, allow_pickle=True)
    code, out, err = cli("run", LSTM, "--weights", path)
    assert_clean(code, err, f"w.npz: member `W_i.npy`: {what}")


def test_npy_given_as_weights_is_refused(tmp_path, cli, weights):
    path = tmp_path / "w.npz"
    with open(path, "wb") as f:
        np.save(f, weights["W_i"])
    code, out, err = cli("run", LSTM, "--weights", path)
    assert_clean(code, err, "w.npz: is a .npy file (one unnamed array); weights come in an .npz keyed by name")


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e300])
def test_non_finite_weights_warn_once_and_cleanly(tmp_path, cli, weights, value):
    path = tmp_path / "w.npz"
    bad = weights["W_i"].astype(np.float64)
    bad[0, :3] = value
    np.savez(path, **{**weights, "W_i": bad})
    code, out, err = cli("run", LSTM, "--weights", path)
    assert code == 0, err
    assert err.count("warning:") == 1, err
    assert "Warning" not in err, err  # no raw RuntimeWarning from the kernels
    assert "w.npz: weights hold NaN or infinite values (or values too large for float32): `W_i` (3 values)" in err


# ---- outputs ---------------------------------------------------------------------------------------------

@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "somefile.txt"
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize("option", ["-o", "--save-weights"])
def test_run_output_below_a_file_is_refused_before_running(cli, a_file, option):
    code, out, err = cli("run", LSTM, option, a_file / "out.npz")
    assert_clean(code, err, f"{option if option != '-o' else '--output'} {a_file / 'out.npz'}: cannot write below "
                            f"`{a_file}`, which is a file, not a directory", exit_code=2)
    assert "steps, batch" not in out  # nothing ran


def test_unknown_output_format_is_refused_before_running(cli, tmp_path):
    code, out, err = cli("run", LSTM, "-o", tmp_path / "out.txt")
    assert_clean(code, err, "--output", "out.txt: unknown output format (`.txt`); use .npz or .json", exit_code=2)
    assert out == ""


@pytest.mark.parametrize("command", [("schema",), ("export", LSTM), ("render", LSTM)])
def test_file_outputs_below_a_file_are_refused(cli, a_file, command):
    code, out, err = cli(*command, "-o", a_file / "out.svg")
    assert_clean(code, err, f"cannot write below `{a_file}`, which is a file, not a directory", exit_code=2)


def test_codegen_into_a_file_is_refused(cli, a_file):
    code, out, err = cli("codegen", LSTM, "-o", a_file / "build")
    assert_clean(code, err, f"--output {a_file / 'build'}: cannot write below `{a_file}`", exit_code=2)


def test_read_only_folder_is_refused_before_running(cli, tmp_path, monkeypatch):
    import rnncompile.files

    real = rnncompile.files.os.access
    monkeypatch.setattr(rnncompile.files.os, "access", lambda p, mode: False if str(p) == str(tmp_path) else
                        real(p, mode))  # root may write anywhere: pretend tmp_path is read-only
    code, out, err = cli("run", LSTM, "-o", tmp_path / "out.npz")
    assert_clean(code, err, f"cannot write into `{tmp_path}` (permission denied)", exit_code=2)
    assert "steps, batch" not in out


def test_missing_output_folder_is_made_and_said(cli, tmp_path):
    out_file = tmp_path / "runs" / "today" / "out.json"
    code, out, err = cli("run", LSTM, "-o", out_file)
    assert code == 0, err
    assert f"created directory {tmp_path / 'runs' / 'today'}" in err
    assert json.loads(out_file.read_text())["outputs.y"]
