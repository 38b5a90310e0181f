"""The model view: layers × time grids, directions, heads, encoder → C → decoder, and PDFs."""
from __future__ import annotations

import re

import pytest

import rnncompile
from rnncompile.render import VIEWS, chain_dot, dot_source, render, style
from rnncompile.render import engine as engine_mod
from rnncompile.render.engine import Engine, find_engine, run_engine
from rnncompile.render.model import default_plan

from conftest import SPECS

ENGINE = find_engine()
needs_engine = pytest.mark.skipif(ENGINE is None, reason="no layout engine (neither dot nor graphviz-pure) installed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

GRU = (SPECS / "gru.yaml").read_text().split("model:")[0]
SEQ2SEQ = (SPECS / "seq2seq.yaml").read_text()


@pytest.fixture(scope="module")
def dots():
    """Each shipped composition's model view, as drawn by default (no --unroll)."""
    names = ("deep_lstm", "word_predictor", "bigru", "sentiment", "char_predictor", "seq2seq", "captioner", "lstm")
    return {name: dot_source(rnncompile.compile(SPECS / f"{name}.yaml"), "model") for name in names}


def model_dot(name: str, unroll=None) -> str:
    return dot_source(rnncompile.compile(SPECS / f"{name}.yaml"), "model", unroll)


def nodes(dot: str) -> set[str]:
    return set(re.findall(r"^\s*(\w+) \[", dot, re.M))


def edge(dot: str, src: str, dst: str) -> str:
    """The one edge src -> dst (its attribute text)."""
    (line,) = [ln for ln in dot.splitlines() if re.match(rf"\s*{src} -> {dst} ", ln)]
    return line


def has_edge(dot: str, src: str, dst: str) -> bool:
    return any(re.match(rf"\s*{src} -> {dst} ", ln) for ln in dot.splitlines())


def steps_of(dot: str, row: str) -> list[int]:
    return sorted(int(t) for t in re.findall(rf"^\s*{row}_(\d+) \[", dot, re.M))


# ---- deep RNNs: a layers × time grid ----------------------------------------------

def test_deep_rnn_is_a_grid_of_layers_by_steps(dots):
    dot = dots["deep_lstm"]  # T: 10, drawn as 0 1 2 … 9
    assert "rankdir=BT" in dot and "model" in VIEWS
    shown = [0, 1, 2, 9]
    for row in ("in", "L0", "L1", "out"):
        assert steps_of(dot, row) == shown, row
    for t in shown:  # up: input -> layer 1 -> layer 2 -> output
        for src, dst in (("in", "L0"), ("L0", "L1"), ("L1", "out")):
            assert has_edge(dot, f"{src}_{t}", f"{dst}_{t}")
    for layer in ("L0", "L1"):  # right: each layer's states to its next step, through the "…"
        assert "dir=back" not in edge(dot, f"{layer}_init", f"{layer}_0")
        for a, b in ((0, 1), (1, 2), (2, "skip9"), ("skip9", 9)):
            assert "#e67700" in edge(dot, f"{layer}_{a}", f"{layer}_{b}")
    assert "steps 3–8 not drawn" in dot and "each row its own weights" in dot
    assert "layer 2 · size 16 · initial 0" in dot  # each layer's state width (deep_lstm's H)


def test_cells_are_compact_boxes_with_gate_chips(dots):
    dot = dots["deep_lstm"]
    box = re.search(r"^\s*L1_2 \[(.*)\]$", dot, re.M).group(1)
    assert "<b>lstm</b>" in box and all(f">{g}</td>" in box for g in "ifgo")
    assert "W_i" not in dot and "c_next" not in dot  # no cell internals


def test_stateless_layer_is_a_thin_row_without_state_edges(dots):
    dot = dots["word_predictor"]  # embedding -> lstm -> lstm, a head at every step
    embedding = re.search(r"^\s*L0_0 \[(.*)\]$", dot, re.M).group(1)
    assert "embedding" in embedding and "height=0.2" in embedding
    assert "L0_init" not in nodes(dot) and not has_edge(dot, "L0_0", "L0_1")
    assert has_edge(dot, "in_0", "L0_0") and has_edge(dot, "L0_0", "L1_0") and has_edge(dot, "L1_1", "L1_2")
    assert "embedding → 2 stacked lstm layers" in dot


def test_unroll_plans_apply_to_the_model_view():
    dot = model_dot("deep_lstm", "12")
    assert steps_of(dot, "L1") == [0, 1, 2, 10, 11] and "L1_skip10" in nodes(dot)
    assert steps_of(model_dot("deep_lstm", "3"), "L0") == [0, 1, 2]
    assert steps_of(model_dot("deep_lstm", "2..T"), "L0") == [0, 1, 9]


def test_default_plan_draws_at_most_four_steps():
    assert default_plan(3).shown == (0, 1, 2)
    assert default_plan(4).shown == (0, 1, 2, 3)
    plan = default_plan(40)
    assert (plan.steps, plan.shown) == (40, (0, 1, 2, 39))


# ---- bidirectional layers: two opposite rows, merged --------------------------------

def test_bidirectional_layers_are_two_opposite_rows_joined_by_a_merge(dots):
    dot = dots["bigru"]
    shown = [0, 1, 2, 9]
    for i in (0, 1):
        assert steps_of(dot, f"L{i}") == steps_of(dot, f"L{i}r") == steps_of(dot, f"L{i}m") == shown
        # forward: init on the left, edges to the right; reverse: init on the right, arrows to the left
        assert "dir=back" not in edge(dot, f"L{i}_init", f"L{i}_0")
        assert "dir=back" not in edge(dot, f"L{i}_0", f"L{i}_1")
        for a, b in ((0, 1), (1, 2), (2, "skip9"), ("skip9", 9), (9, "init")):
            assert "dir=back" in edge(dot, f"L{i}r_{a}", f"L{i}r_{b}")
        assert "layer 1, reverse · size 16 · initial 0" in dot
        for t in shown:
            assert has_edge(dot, f"L{i}_{t}", f"L{i}m_{t}") and has_edge(dot, f"L{i}r_{t}", f"L{i}m_{t}")
            assert re.search(rf"^\s*L{i}m_{t} \[label=concat", dot, re.M)
    for t in shown:  # the merge feeds both directions of the layer above, and the top one the outputs
        assert has_edge(dot, f"L0m_{t}", f"L1_{t}") and has_edge(dot, f"L0m_{t}", f"L1r_{t}")
        assert has_edge(dot, f"in_{t}", f"L0_{t}") and has_edge(dot, f"in_{t}", f"L0r_{t}")
        assert has_edge(dot, f"L1m_{t}", f"out_{t}")
    assert "← gru" in dot and "gru →" in dot


def test_a_reverse_scan_and_a_separate_merge():
    reverse = dot_source(rnncompile.compile_text(GRU + "model:\n  scan: gru\n  direction: reverse\n"
                                                      "  input: {x: [T, I]}\n", "rev.yaml"), "model", "3")
    assert "dir=back" in edge(reverse, "L0r_2", "L0r_init") and "cluster_step" not in reverse
    separate = GRU + ("model:\n  input: {x: [T, I]}\n  layers:\n    - {scan: gru, direction: bidirectional, "
                      "merge: sum}\n    - {scan: gru, direction: bidirectional, merge: separate}\n")
    dot = dot_source(rnncompile.compile_text(separate, "sep.yaml"), "model", "2")
    assert re.search(r"^\s*L0m_0 \[label=\"\+\"", dot, re.M) and "L1m_0" not in nodes(dot)
    assert has_edge(dot, "L1_0", "out_0") and has_edge(dot, "L1r_0", "out_0")


# ---- heads: many-to-one, many-to-many -------------------------------------------------

def test_many_to_one_has_its_head_after_the_last_step_only(dots):
    dot = dots["sentiment"]  # T: 12
    assert [n for n in nodes(dot) if n.startswith(("head_", "out_"))] in (["head_11", "out_11"],
                                                                           ["out_11", "head_11"])
    assert has_edge(dot, "L0_11", "head_11") and has_edge(dot, "head_11", "out_11")
    assert "many-to-one" in dot


def test_many_to_many_has_a_head_above_every_step(dots):
    dot = dots["char_predictor"]  # T: 40
    assert steps_of(dot, "head") == steps_of(dot, "out") == [0, 1, 2, 39]
    for t in (0, 1, 2, 39):
        assert has_edge(dot, f"L0_{t}", f"head_{t}") and has_edge(dot, f"head_{t}", f"out_{t}")
    assert "many-to-many" in dot and "<b>head</b>" in dot


# ---- encoder-decoder and one-to-many ---------------------------------------------------

def test_seq2seq_is_encoder_then_c_then_a_decoder_fed_its_own_tokens(dots):
    dot = dots["seq2seq"]  # S: 8 encoder steps, T: 8 decoder steps
    assert steps_of(dot, "enc_L0") == steps_of(dot, "dec") == [0, 1, 2, 7]
    assert "C" in nodes(dot) and "final h, c" in dot
    assert has_edge(dot, "enc_L0_7", "C") and "h, c" in edge(dot, "C", "dec_0")
    assert not any(n.startswith("out_") or n.startswith("enc_out") for n in nodes(dot))  # keep: final
    for t in (0, 1, 2, 7):
        assert has_edge(dot, f"dec_in_{t}", f"dec_{t}") and has_edge(dot, f"dec_{t}", f"dec_head_{t}")
        assert has_edge(dot, f"dec_head_{t}", f"dec_out_{t}")
    for t in (1, 2):  # feedback: the token chosen at step t-1 is the input of step t
        line = edge(dot, f"dec_in_{t}", f"dec_out_{t - 1}")
        assert "dashed" in line and "dir=back" in line
    assert not any(re.match(r"\s*dec_in_0 -> dec_out", ln) for ln in dot.splitlines())
    assert not has_edge(dot, "dec_in_7", "dec_out_6")  # step 6 is not drawn
    assert "&lt;s&gt;" in dot  # the vocabulary's start token begins the decoder
    assert "encoder–decoder" in dot
    assert "the encoder and the decoder have their own weights" in dot and "each row" not in dot


def test_teacher_forcing_has_no_feedback_edges():
    text = SEQ2SEQ.replace("input: {src: [S]}", "input: {src: [S], tgt: [S]}").replace(
        "feed: previous_output", "feed: target\n    target: tgt")
    dot = dot_source(rnncompile.compile_text(text, "tf.yaml"), "model", "3")
    assert "dashed" not in dot and "teacher forcing" in dot and "tgt₁" in dot


def test_one_to_many_starts_from_the_context_through_init(dots):
    dot = dots["captioner"]  # 12 steps
    assert has_edge(dot, "ctx_img", "init") and "context" in dot
    assert "h<br/>c = 0" in edge(dot, "init", "dec_0")  # init sets h; c keeps its zeros
    assert steps_of(dot, "dec") == [0, 1, 2, 11]
    assert "dashed" in edge(dot, "dec_in_1", "dec_out_0")
    assert "one-to-many" in dot


def test_a_plain_scan_is_the_compact_chain(dots):
    program = rnncompile.compile(SPECS / "lstm.yaml")
    dot = dots["lstm"]
    assert "rankdir=LR" in dot and "t0_cell" in dot and "t9_cell" in dot and "skip_9" in dot
    assert dot == chain_dot(program.checked.main_cell, "3..10", detail="compact", title="lstm unrolled over 10 steps")


def test_dot_text_is_deterministic():
    assert model_dot("bigru", "12") == model_dot("bigru", "12")


# ---- laying out and writing ---------------------------------------------------------------

@needs_engine
@pytest.mark.parametrize("name", ["deep_lstm", "word_predictor", "bigru", "sentiment", "char_predictor",
                                  "seq2seq", "captioner"])
@pytest.mark.parametrize("unroll", [None, "2", "12"])
def test_every_row_is_laid_out_in_time_order(name, unroll):
    """State edges run left to right in the layout (a reverse row's too: it points back with
    dir=back), so no initial state lands among the steps."""
    dot = model_dot(name, unroll)
    x = {}
    for line in run_engine(ENGINE, dot, "plain").decode().splitlines():
        parts = line.split()
        if parts and parts[0] == "node":
            x[parts[1]] = float(parts[2])
    state_edges = re.findall(r"^\s*(\w+) -> (\w+) \[[^\]]*#e67700", dot, re.M)
    assert state_edges
    for a, b in state_edges:
        assert x[a] < x[b], (a, b)


@needs_engine
def test_render_model_view_to_png(tmp_path):
    program = rnncompile.compile(SPECS / "bigru.yaml")
    out = tmp_path / "bigru.png"
    result = render(program, out, view="model", unroll="4")
    assert result.path == out and out.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_cli_model_view(cli, tmp_path):
    out = tmp_path / "model.dot"
    spec = str(SPECS / "seq2seq.yaml")
    code, stdout, stderr = cli("render", spec, "--view", "model", "--unroll", "3", "-o", str(out))
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and "C -> dec_0" in out.read_text()
    code, stdout, _ = cli("render", "--help")
    assert "model" in stdout


# ---- PDF without dot: a vector PDF painted from graphviz-pure's layout ------------------------------

@needs_engine
def test_pdf_without_dot_keeps_the_drawing_size(tmp_path, monkeypatch):
    no_pdf = Engine(ENGINE.name, ENGINE.path, engine_mod.PURE_FORMATS)  # an engine that cannot write PDF
    monkeypatch.setattr("rnncompile.render.find_engine", lambda prefer=None: no_pdf)
    program = rnncompile.compile(SPECS / "deep_lstm.yaml")
    out = tmp_path / "deep.pdf"
    result = render(program, out, view="model")
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF") and "vector PDF" in result.note and b"/Image" not in pdf
    svg = run_engine(ENGINE, dot_source(program, "model"), "svg").decode("utf-8")
    width, height = (float(v) for v in re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) ([\d.]+)"', svg).groups())
    box = [float(v) for v in re.search(rb"/MediaBox \[([\d.\s]+)\]", pdf).group(1).split()]
    assert box[2:] == pytest.approx([width, height], abs=2)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


# ---- edge labels clear of their edges (the check of test_render_memory, on the model view) ----------------

def test_a_state_edge_label_has_the_spacer_the_edge_is_drawn_under(dots):
    for name, first in (("seq2seq", "C"), ("captioner", "init")):
        assert f'<td height="{style.EDGE_LABEL_GAP}"></td>' in edge(dots[name], first, "dec_0"), name


@needs_engine
@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_model_view_edges_never_run_through_their_labels(spec):
    from test_render_memory import label_crossings

    svg = run_engine(ENGINE, dot_source(rnncompile.compile(spec), "model"), "svg").decode("utf-8")
    assert label_crossings(svg) == []


def test_the_initial_state_box_gives_each_states_width_when_they_differ():
    from rnncompile.graph import CellGraph, StateInfo
    from rnncompile.render.model import state_sizes

    cell = CellGraph("two")
    cell.states = {"h": StateInfo("h", (16,)), "c": StateInfo("c", (32,)), "M": StateInfo("M", (8, 4))}
    assert state_sizes(cell) == "h 16, c 32, M 8×4"
    cell.states = {"h": StateInfo("h", (16,)), "c": StateInfo("c", (16,))}
    assert state_sizes(cell) == "size 16"
