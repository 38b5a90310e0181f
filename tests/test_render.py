"""Diagrams: the DOT text of both views, the --unroll syntax, and writing files through an engine."""
from __future__ import annotations

import os
import re
import stat

import pytest

import rnncompile
from rnncompile.errors import UsageError
from rnncompile.render import RenderError, cell_dot, chain_dot, dot_source, make_plan, render
from rnncompile.render import engine as engine_mod
from rnncompile.render.engine import Engine, find_engine, quiet
from rnncompile.render.shown import shown_nodes
from rnncompile.render.style import ACTIVATION_COLOURS, DELAY_MARK

from conftest import SPECS

ENGINE = find_engine()
needs_engine = pytest.mark.skipif(ENGINE is None, reason="no layout engine (neither dot nor graphviz-pure) installed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MISC = """
rnncompile: 1
name: misc
dims: {I: 4, H: 6, T: 8}
cells:
  misc:
    inputs: {x: I}
    state: {h: H, s: H, k: H}
    params:
      W: {shape: [H, I]}
      U: {shape: [H, H]}
      b: {shape: [H], init: zeros}
    let:
      a: relu(W @ x + b)
      p: softmax(U @ h)
    update:
      h: a * p + h
      s: s
      k: b
    outputs: {y: softmax(h), z: x}
model:
  scan: misc
  input: {x: [T, I]}
"""


@pytest.fixture(scope="module")
def programs():
    return {name: rnncompile.compile(SPECS / f"{name}.yaml") for name in ("lstm", "gru", "elman")}


def cell_of(program):
    return program.checked.main_cell


def node_line(dot: str, node_id: str) -> str:
    (line,) = [ln for ln in dot.splitlines() if re.match(rf"\s*{node_id} \[", ln)]
    return line


def edge_lines(dot: str, src: str, dst: str) -> list[str]:
    return [ln for ln in dot.splitlines() if re.match(rf"\s*{src} -> {dst}\b", ln)]


# ---- the folded cell -------------------------------------------------------------

@pytest.mark.parametrize("name", ["lstm", "gru", "elman"])
def test_every_state_has_a_delay_loop(programs, name):
    cell = cell_of(programs[name])
    dot = cell_dot(cell)
    for state, sid in cell.by_name("state").items():
        (edge,) = edge_lines(dot, f"n{cell.update_of(sid)}", f"n{sid}")
        assert DELAY_MARK in edge and "dashed" in edge and "constraint=false" in edge, state


def test_lstm_cell_shows_the_lecture_nodes_not_the_params(programs):
    cell = cell_of(programs["lstm"])
    folded = shown_nodes(cell)
    drawn = {(s.kind, s.name) for s in folded.nodes.values()}
    assert {("input", "x"), ("state", "h"), ("state", "c"), ("output", "y")} <= drawn
    assert {name for kind, name in drawn if kind == "activation"} >= {"i", "f", "g", "o"}
    assert not any(s.op in ("param", "matmul", "concat") for s in folded.nodes.values())
    dot = cell_dot(cell)
    assert "W_i @ [h, x] + b_i" in dot
    assert not re.search(r'label=<<b>W_i</b>>', dot)
    gate_i = node_line(dot, f"n{_labelled(cell, 'i')}")
    assert "cells.lstm.gates.i" in gate_i and "[16]" in gate_i  # tooltip: origin and shape


def _labelled(cell, label):
    (nid,) = [n for n in cell.g.nodes if cell.node(n).label == label]
    return nid


def test_gates_are_coloured_by_activation(programs):
    cell = cell_of(programs["lstm"])
    dot = cell_dot(cell)
    sigmoid, tanh = ACTIVATION_COLOURS["sigmoid"][0], ACTIVATION_COLOURS["tanh"][0]
    assert sigmoid != tanh
    for gate in "ifo":
        assert f'fillcolor="{sigmoid}"' in node_line(dot, f"n{_labelled(cell, gate)}")
    assert f'fillcolor="{tanh}"' in node_line(dot, f"n{_labelled(cell, 'g')}")
    assert "sigmoid" in dot and "tanh" in dot  # the legend


def test_gru_folds_constants_and_keeps_affine_boxes(programs):
    folded = shown_nodes(cell_of(programs["gru"]))
    formulas = {s.formula for s in folded.nodes.values()}
    assert {"1 − z", "W_hn @ h + b_hn", "W_in @ x + b_in"} <= formulas


def test_other_activations_updates_to_params_and_self_loops():
    program = rnncompile.compile_text(MISC, "misc.yaml")
    cell = cell_of(program)
    dot = cell_dot(cell)
    relu, softmax = ACTIVATION_COLOURS["relu"][0], ACTIVATION_COLOURS["softmax"][0]
    assert f'fillcolor="{relu}"' in dot and f'fillcolor="{softmax}"' in dot
    states = cell.by_name("state")
    assert edge_lines(dot, f"n{states['s']}", f"n{states['s']}")  # s: s is a loop on itself
    k_update = cell.update_of(states["k"])
    assert cell.node(k_update).op == "param" and f"n{k_update} [" in dot  # k: b draws b once
    assert len(edge_lines(dot, f"n{k_update}", f"n{states['k']}")) == 1


def test_dot_text_is_deterministic(programs):
    cell = cell_of(programs["lstm"])
    assert cell_dot(cell) == cell_dot(cell)
    assert chain_dot(cell, 12) == chain_dot(cell, 12)


# ---- the unrolled chain ------------------------------------------------------------

def test_unrolled_has_one_cluster_per_step_left_to_right(programs):
    cell = cell_of(programs["lstm"])
    dot = chain_dot(cell, 4)
    assert "rankdir=LR" in dot
    assert re.findall(r"subgraph (cluster_\w+)", dot) == [f"cluster_step{t}" for t in range(4)]
    for t in range(4):
        assert f'label="t = {t}"' in dot
    for name in ("h", "c"):  # initial states on the far left, final ones on the right
        assert f"init_{name} [" in dot and f"final_{name} [" in dot
    (between,) = edge_lines(dot, "t0_cell", "t1_cell")
    assert "h₀" in between and "c₀" in between
    assert "W_i" not in dot  # weights are not drawn per step
    assert "the same weights at every step" in dot


def test_small_cells_unroll_in_full_detail(programs):
    cell = cell_of(programs["elman"])
    dot = chain_dot(cell, 3)
    h_next = cell.update_of(cell.by_name("state")["h"])
    (edge,) = edge_lines(dot, f"t0_n{h_next}", f"t1_n{h_next}")  # tanh feeds the next step's tanh
    assert "h₀" in edge
    assert "W_xh @ x + W_hh @ h + b_h" in dot


def test_long_unrolls_elide_the_middle(programs):
    cell = cell_of(programs["gru"])
    dot = chain_dot(cell, "12")
    steps = [int(t) for t in re.findall(r"subgraph cluster_step(\d+)", dot)]
    assert steps == [0, 1, 2, 10, 11]
    assert re.search(r'skip_10 \[label="…"', dot)
    assert edge_lines(dot, "t2_cell", "skip_10") and edge_lines(dot, "skip_10", "t10_cell")
    assert "steps 3–9 not drawn" in dot
    assert "final_h [" in dot and "h₁₁" in dot


def test_unrolled_view_through_the_program_resolves_the_time_dim(programs):
    dot = dot_source(programs["lstm"], "unrolled", "3..T")  # T: 10 in the spec
    assert [int(t) for t in re.findall(r"subgraph cluster_step(\d+)", dot)] == [0, 1, 2, 9]
    assert "cluster_step0" in dot_source(programs["lstm"], "cell", "4")  # unroll implies unrolled


@pytest.mark.parametrize("text, steps, shown", [
    ("4", 4, (0, 1, 2, 3)),
    (4, 4, (0, 1, 2, 3)),
    ("6", 6, tuple(range(6))),
    ("12", 12, (0, 1, 2, 10, 11)),
    ("3..10", 10, (0, 1, 2, 9)),
    ("1..5", 5, (0, 4)),
    ("9..10", 10, tuple(range(10))),
    ("3..T", 10, (0, 1, 2, 9)),
    ("T", 10, (0, 1, 2, 8, 9)),
    ("2..H", 16, (0, 1, 15)),
])
def test_unroll_syntax(text, steps, shown):
    plan = make_plan(text, dims={"H": 16}, time_dim="T", time_steps=10)
    assert (plan.steps, plan.shown) == (steps, shown)


@pytest.mark.parametrize("text, says", [
    ("0", "at least one step"),
    ("5..3", "first 5 of only 3"),
    ("3..Q", "`Q` is neither a number nor a dim"),
    ("..T", "how many steps to draw"),
    ("three", "neither a number nor a dim"),
    ("3...", "is not an unroll"),
    ("100..200", "at most 64"),
])
def test_bad_unrolls_are_usage_errors(text, says):
    with pytest.raises(UsageError, match=re.escape(says)):
        make_plan(text, dims={"H": 16}, time_dim="T", time_steps=10)


def test_views_are_checked(programs):
    with pytest.raises(UsageError, match="needs a number of steps"):
        dot_source(programs["lstm"], "unrolled")
    with pytest.raises(UsageError, match="unknown view"):
        dot_source(programs["lstm"], "grid")


# ---- writing files -----------------------------------------------------------------

def test_dot_needs_no_engine(programs, tmp_path, monkeypatch):
    monkeypatch.setattr("rnncompile.render.find_engine", lambda prefer=None: pytest.fail("no engine needed"))
    result = render(programs["lstm"], tmp_path / "lstm.dot")
    assert result.engine is None and result.note == ""
    assert result.path.read_text().startswith("digraph lstm")


def test_unknown_suffix_is_a_usage_error(programs, tmp_path):
    for name in ("lstm.jpg", "lstm"):
        with pytest.raises(UsageError, match=r"use \.dot, \.svg, \.png or \.pdf"):
            render(programs["lstm"], tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@needs_engine
@pytest.mark.parametrize("suffix, view, unroll", [(".svg", "cell", None), (".png", "unrolled", "12")])
def test_render_with_the_engine_found(programs, tmp_path, suffix, view, unroll):
    out = tmp_path / f"lstm{suffix}"
    result = render(programs["lstm"], out, view=view, unroll=unroll)
    assert result.path == out and result.engine == ENGINE.name
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(PNG_MAGIC)
    else:
        text = data.decode()
        assert "<svg" in text and DELAY_MARK in text and "cells.lstm.gates.i" in text  # z⁻¹ and tooltips
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable by others, like any file the user writes
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp files left behind


@pytest.mark.skipif(engine_mod._find_pure() is None, reason="graphviz-pure not installed")
def test_graphviz_pure_is_found_beside_python_when_not_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a venv's bin is often not on PATH
    found = find_engine()
    assert found is not None and found.name == "graphviz-pure"
    beside_python = [str(p) for p in engine_mod.pure_candidates()[1:] if p]
    assert found.path in beside_python


def test_no_engine_writes_dot_and_says_so(programs, tmp_path, monkeypatch):
    monkeypatch.setattr("rnncompile.render.find_engine", lambda prefer=None: None)
    result = render(programs["gru"], tmp_path / "gru.svg", unroll="4")
    assert result.path == tmp_path / "gru.dot" and result.engine is None
    assert "no Graphviz layout engine" in result.note and "gru.dot" in result.note
    assert not (tmp_path / "gru.svg").exists()
    assert "cluster_step3" in result.path.read_text()


def _fake_engine(tmp_path, body: str) -> str:
    path = tmp_path / "bin" / "dot"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.skipif(os.name == "nt", reason="uses a shell script as a fake engine")
def test_failing_engine_is_a_clean_error_and_writes_nothing(programs, tmp_path):
    fake = _fake_engine(tmp_path, "cat >/dev/null; echo 'Error: syntax error in line 3' >&2; exit 3")
    out = tmp_path / "out" / "lstm.svg"
    with pytest.raises(RenderError, match=r"exit code 3\):\nError: syntax error in line 3"):
        render(programs["lstm"], out, engine=fake)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.skipif(os.name == "nt", reason="uses a shell script as a fake engine")
def test_engine_that_hangs_times_out(programs, tmp_path, monkeypatch):
    monkeypatch.setattr(engine_mod, "TIMEOUT", 0.3)
    fake = _fake_engine(tmp_path, "exec sleep 10")
    with pytest.raises(RenderError, match="took more than 0.3 s"):
        render(programs["elman"], tmp_path / "elman.png", engine=fake)
    assert not (tmp_path / "elman.png").exists()


def test_missing_engine_asked_for_by_name(programs, tmp_path):
    with pytest.raises(UsageError, match="not found"):
        render(programs["lstm"], tmp_path / "x.svg", engine=str(tmp_path / "no-such-dot"))


@needs_engine
def test_pdf_without_dot_is_a_vector_pdf(programs, tmp_path, monkeypatch):
    no_pdf = Engine(ENGINE.name, ENGINE.path, engine_mod.PURE_FORMATS)  # an engine that cannot write PDF
    monkeypatch.setattr("rnncompile.render.find_engine", lambda prefer=None: no_pdf)
    result = render(programs["lstm"], tmp_path / "lstm.pdf")
    data = (tmp_path / "lstm.pdf").read_bytes()
    assert data.startswith(b"%PDF") and b"/Image" not in data and b"/BaseFont /Helvetica" in data
    assert "vector PDF" in result.note
    assert [p.name for p in tmp_path.iterdir()] == ["lstm.pdf"]


def test_harmless_engine_warnings_are_dropped():
    stderr = (b"Warning: Warning: no value for width of non-ASCII character 226. Falling back to width of space\n"
              b"Error: real trouble\n")
    assert quiet(stderr) == "Error: real trouble"


@pytest.mark.skipif(not (SPECS / "word_predictor.yaml").exists(), reason="needs specs/word_predictor.yaml")
def test_a_stack_draws_its_recurrent_cell_and_stateless_steps_stay_in_order():
    program = rnncompile.compile(SPECS / "word_predictor.yaml")
    dot = dot_source(program)
    assert "word_predictor: lstm cell, one step" in dot and DELAY_MARK in dot  # not the embedding layer
    embedding = program.checked.plan.uses()[0].cell
    assert not embedding.states
    dot = chain_dot(embedding, 8)
    assert len(re.findall(r"style=invis", dot)) == 5  # 0→1→2→…→6→7, laid out left to right


def test_a_long_chain_draws_without_recursion(tmp_path):
    """`h[0:8][0:8]…` and `h + h + …` nest one node per term; folding them into labels is a loop."""
    from rnncompile.render import render

    for chain in ("h" + "[0:8]" * 1500, " + ".join(["h"] * 1500)):
        spec = tmp_path / "chain.yaml"
        spec.write_text("rnncompile: 1\nname: chain\ndims: {I: 8, H: 8, T: 3}\ncells:\n  rnn:\n"
                        "    inputs: {x: I}\n    state: {h: H}\n    params: {W: {shape: [H, H + I]}}\n"
                        f"    let:\n      s: {chain}\n    update:\n      h: tanh(W @ concat(s, x))\n"
                        "    outputs: {y: h}\nmodel: {scan: rnn, input: {x: [T, I]}}\n")
        out = render(rnncompile.compile(spec), tmp_path / "chain.dot")
        assert out.path.read_text().count("[0:8]") >= (1500 if "[" in chain else 0)
