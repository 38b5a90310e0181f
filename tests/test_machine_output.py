"""Machine-readable output (validate/inspect --format json, names in traces, completions as text) and what a
notebook shows (a program as its folded cell, a run as a table)."""
from __future__ import annotations

import json

import numpy as np

import rnncompile
from conftest import SPECS


def test_validate_json_ok(cli):
    code, out, err = cli("validate", SPECS / "lstm.yaml", "--format", "json")
    assert code == 0
    assert json.loads(out) == {"file": str(SPECS / "lstm.yaml"), "ok": True, "errors": 0, "warnings": 0,
                               "diagnostics": []}


def test_validate_json_gives_each_diagnostic_as_an_object(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rnncompile: 1\nname: x\ncells: {}\nmodel: {scan: nope}\n")
    code, out, err = cli("validate", bad, "--format", "json")
    assert code == 1
    assert err == ""
    report = json.loads(out)
    assert report["ok"] is False and report["errors"] == 1
    assert report["diagnostics"] == [{"file": str(bad), "line": 4, "column": 15, "path": "model.scan",
                                      "severity": "error", "message": "no cell named `nope`", "hint": ""}]


def test_validate_json_reports_a_missing_file_with_the_usage_exit_code(cli, tmp_path):
    code, out, err = cli("validate", tmp_path / "nope.yaml", "--format", "json")
    assert code == 2
    (d,) = json.loads(out)["diagnostics"]
    assert d["line"] == 0 and d["message"].endswith("nope.yaml: no such file")


def test_inspect_json_holds_the_report_as_data(cli):
    code, out, err = cli("inspect", SPECS / "seq2seq.yaml", "--format", "json", "--batch", "2", "--steps", "5")
    assert code == 0
    data = json.loads(out)
    assert (data["name"], data["kind"], data["batch"], data["steps"]) == ("seq2seq", "seq2seq", 2, 5)
    assert [u["where"] for u in data["uses"]] == ["encoder", "decoder", "decoder.head"]
    program = rnncompile.compile(SPECS / "seq2seq.yaml")
    assert data["cost"]["params"] == sum(int(np.prod(p.shape)) for p in program.params.values())
    assert data["cost"]["whole_run"]["numbers"] == program.run_values(2, 5)
    assert data["warnings"] == []


def test_a_traced_run_names_every_value():
    program = rnncompile.compile(SPECS / "deep_lstm.yaml")
    result = rnncompile.run(program, batch=2, steps=3, trace=True)
    assert {"layers.0.c_next", "layers.1.c_next", "layers.0.h.prev", "layers.1.x"} <= set(result.values)
    nid = program.cell(program.plan.uses()[1]).by_name("state")["h"]
    assert result.values["layers.1.h.prev"] is result.trace["layers.1."][nid]


def test_run_output_file_writes_the_named_trace(cli, tmp_path):
    out = tmp_path / "run.npz"
    code, _, err = cli("run", SPECS / "lstm.yaml", "--trace", "-o", out)
    assert code == 0, err
    with np.load(out) as f:
        assert {"trace.c_next", "trace.h.prev", "outputs.y", "state.c"} <= set(f.files)


def test_a_completion_comes_back_as_text_too():
    program = rnncompile.compile(SPECS / "char_predictor.yaml")
    result = rnncompile.complete(program, "hello", steps=6, seed=3)
    vocab = program.vocab.tokens
    assert result.text == "".join(vocab[i] for i in result.tokens)
    assert len(result.text) == len(result.tokens) == 6


def test_a_program_shows_its_folded_cell_in_a_notebook():
    svg = rnncompile.compile(SPECS / "gru.yaml")._repr_svg_()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "</svg>" in svg


def test_a_run_shows_a_table_in_a_notebook():
    result = rnncompile.run(rnncompile.compile(SPECS / "lstm.yaml"), batch=2, steps=3)
    html = result._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 1 + 1 + 2  # header, y, h and c
    assert "<code>y</code></td><td>[2, 3, 16]" in html


def test_shell_completion_as_the_readme_documents_it():
    import os
    import subprocess

    env = {**os.environ, "COMP_WORDS": "rnncompile ru", "COMP_CWORD": "1", "_RNNCOMPILE_COMPLETE": "bash_complete"}
    done = subprocess.run(["rnncompile"], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["plain,run"]


def test_run_output_dash_writes_json_alone_on_stdout(cli):
    code, out, err = cli("run", SPECS / "lstm.yaml", "--steps", "3", "--dim", "H=4", "-o", "-")
    assert code == 0
    data = json.loads(out)
    assert sorted(data) == ["outputs.y", "state.c", "state.h"]
    assert np.asarray(data["outputs.y"]).shape == (1, 3, 4)
    assert "lstm: 3 steps, batch 1" in err  # the summary goes to stderr


def test_run_output_dash_for_a_tree_model(cli):
    code, out, err = cli("run", SPECS / "rvnn.yaml", "--tree", "(S (NP he) (VP wins))", "-o", "-")
    assert code == 0
    assert np.asarray(json.loads(out)["nodes.h"]).shape[0] == 3  # S and its two leaves
