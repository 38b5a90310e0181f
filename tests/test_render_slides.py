"""Diagrams fit for slides (issue 16, item 11): the LSTM's gates in the lecture's order, readable formulas,
--dpi, --cell and the unrolled view of composed models, compact tree recursion, the NTM and MemN2N
cells in the papers' terms, the NTM chain in straight rows, and labels that parse back to the spec's
expressions (no "affine map" for what is not one)."""
from __future__ import annotations

import re

import pytest

import rnncompile
from rnncompile import expr
from rnncompile.errors import UsageError
from rnncompile.render import choose, dot_source, render, style
from rnncompile.render import engine as engine_mod
from rnncompile.render.cell import reading_order
from rnncompile.render.engine import find_engine
from rnncompile.render.shown import shown_nodes

from conftest import SPECS

ENGINE = find_engine()
needs_engine = pytest.mark.skipif(ENGINE is None, reason="no layout engine (neither dot nor graphviz-pure) installed")


def compiled(name: str):
    return rnncompile.compile(SPECS / f"{name}.yaml")


def node_ids(dot: str) -> list[str]:
    """Node statements in the order they are written (the order the layout keeps, with ordering=out)."""
    return re.findall(r"^\s*(\w+) \[", dot, re.M)


def edges(dot: str) -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(2), m.group(3) or "") for m in
            re.finditer(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$", dot, re.M)]


def labelled(cell, name: str) -> int:
    (nid,) = [n for n in cell.g.nodes if cell.node(n).label == name]
    return nid


# ---- the LSTM cell: f, i, g, o, through one junction ------------------------------------------

def test_the_lstm_gates_read_f_i_g_o_as_the_updates_read_them():
    program = compiled("lstm")  # the spec declares them i, f, g, o
    cell = program.checked.main_cell
    order = [shown_nodes(cell).nodes[n].name for n in reading_order(shown_nodes(cell)) if shown_nodes(cell).nodes[n].kind == "activation"]
    assert order[:4] == ["f", "i", "g", "o"]
    dot = dot_source(program)
    gates = [f"n{labelled(cell, g)}" for g in "figo"]
    written = node_ids(dot)
    assert [written.index(g) for g in gates] == sorted(written.index(g) for g in gates)
    assert "ordering=out" in dot


def test_h_and_x_join_once_and_fan_out_to_the_gates():
    program = compiled("lstm")
    cell = program.checked.main_cell
    dot = dot_source(program)
    h, x = (f"n{cell.by_name(kind)[name]}" for kind, name in (("state", "h"), ("input", "x")))
    gates = [f"n{labelled(cell, g)}" for g in "figo"]
    joins = [dst for src, dst, _ in edges(dot) if src == h and dst.startswith("j")]
    assert len(joins) == 1
    (junction,) = joins
    assert (x, junction) in [(s, d) for s, d, _ in edges(dot)]
    assert [d for s, d, _ in edges(dot) if s == junction] == gates  # in the lecture's order
    assert not [d for s, d, _ in edges(dot) if s in (h, x) and d in gates]  # no crossing h and x edges
    assert re.search(rf"{{\s*rank=same\s*{gates[0]}\s*{gates[1]}\s*{gates[2]}\s*{gates[3]}", dot)


def test_a_gates_formula_is_dark_on_its_fill():
    dot = dot_source(compiled("lstm"))
    (g_line,) = [ln for ln in dot.splitlines() if "W_g @ [h, x] + b_g" in ln]
    assert f'color="{style.INK}">W_g @ [h, x] + b_g' in g_line and style.MUTED not in g_line.split("tooltip")[0]


# ---- --dpi -----------------------------------------------------------------------------------------------

def test_dpi_goes_to_the_engine_for_png_and_is_refused_for_vector_output(tmp_path, monkeypatch):
    asked = {}

    def fake_run(engine, source, fmt, timeout=None, dpi=None):
        asked[fmt] = dpi
        return b"\x89PNG\r\n\x1a\n" if fmt == "png" else b"<svg/>"

    monkeypatch.setattr("rnncompile.render.find_engine", lambda prefer=None: engine_mod.Engine(
        "graphviz-pure", "graphviz-pure", engine_mod.PURE_FORMATS))
    monkeypatch.setattr("rnncompile.render.run_engine", fake_run)
    program = compiled("gru")
    render(program, tmp_path / "g.png", dpi=300)
    render(program, tmp_path / "g.svg")
    assert asked == {"png": 300, "svg": None}
    for bad, out in ((300, "g.svg"), (300, "g.dot"), (0, "g.png"), (5000, "g.png")):
        with pytest.raises(UsageError, match="--dpi"):
            render(program, tmp_path / out, dpi=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g.svg"]


@needs_engine
def test_cli_dpi_scales_the_png(cli, tmp_path):
    sizes = []
    for dpi in (48, 96):
        out = tmp_path / f"e{dpi}.png"
        code, _, stderr = cli("render", SPECS / "elman.yaml", "--dpi", dpi, "-o", out)
        assert code == 0, stderr
        sizes.append(int.from_bytes(out.read_bytes()[16:20], "big"))
    assert 1.8 < sizes[1] / sizes[0] < 2.2
    code, _, stderr = cli("render", SPECS / "elman.yaml", "--dpi", "300", "-o", tmp_path / "e.svg")
    assert code == 2 and "--dpi" in stderr and not (tmp_path / "e.svg").exists()


# ---- composed models: unrolled means the model; --cell picks one -------------------------------------------

@pytest.mark.parametrize("name", ["captioner", "seq2seq", "bigru", "deep_lstm"])
def test_unrolling_a_composed_model_draws_the_composition(name):
    dot, note = choose(compiled(name), "unrolled", "4")
    assert dot == dot_source(compiled(name), "model", "4")
    assert name in note and "--cell" in note


def test_the_unrolled_captioner_starts_from_the_image():
    dot, _ = choose(compiled("captioner"), "unrolled", "4")
    pairs = [(s, d) for s, d, _ in edges(dot)]
    assert ("ctx_img", "init") in pairs and ("init", "dec_0") in pairs
    assert "initial 0" not in dot  # not the plain cell's zero start


def test_a_plain_scan_still_unrolls_its_cell_without_a_note():
    dot, note = choose(compiled("lstm"), "unrolled", "4")
    assert note == "" and "cluster_step3" in dot


def test_cell_picks_the_seq2seq_decoder_by_name_or_place():
    program = compiled("seq2seq")
    for name in ("decoder_lstm", "decoder"):
        dot, note = choose(program, "cell", cell=name)
        assert "decoder_lstm cell, one step" in dot and "y_prev" in dot and note == ""
    chain, _ = choose(program, "unrolled", "3", cell="decoder")
    assert "decoder_lstm unrolled over 3 steps" in chain and "cluster_step2" in chain
    _, note = choose(program, "cell")
    assert "drew cell encoder_lstm" in note and "decoder_lstm" in note


def test_a_bad_cell_name_gets_did_you_mean(cli, tmp_path):
    with pytest.raises(UsageError, match=r"did you mean `decoder_lstm`\?.*cells: encoder_lstm, decoder_lstm"):
        choose(compiled("seq2seq"), "cell", cell="decodr_lstm")
    with pytest.raises(UsageError, match="a tree model draws both its rules"):
        choose(compiled("treelstm_nary"), "cell", cell="node")
    out = tmp_path / "x.dot"
    code, _, stderr = cli("render", SPECS / "seq2seq.yaml", "--cell", "decodr", "-o", out)
    assert code == 2 and "did you mean" in stderr and not out.exists()
    code, stdout, stderr = cli("render", SPECS / "captioner.yaml", "--unroll", "4", "-o", out)
    assert code == 0 and "the unrolled view draws the whole model" in stderr and "ctx_img -> init" in out.read_text()


# ---- tree cells: the recursion where it starts --------------------------------------------------------------

@pytest.mark.parametrize("name", ["treelstm_childsum", "treelstm_nary"])
def test_tree_recursion_edges_are_short_stubs_inside_each_rule(name):
    dot = dot_source(compiled(name))
    assert "constraint=false" not in dot  # no loops swept across the figure
    stubs = [(s, d) for s, d, attrs in edges(dot) if "_up_" in d]
    assert sorted(d for _, d in stubs) == ["leaf_up_c", "leaf_up_h", "node_up_c", "node_up_h"]
    for src, dst in stubs:
        assert src.split("_")[0] == dst.split("_")[0]  # from the rule's own output, in its own cluster
    assert not [d for _, d, _ in edges(dot) if d.startswith("node_n") and _ and "dashed" in _]
    assert "from the children&#x27;s h" in dot and "to the parent:<br/>children.h" in dot


# ---- the NTM and MemN2N cells ------------------------------------------------------------------------------

def chips(dot: str, node: str) -> list[str]:
    (line,) = [ln for ln in dot.splitlines() if re.match(rf"\s*{node} \[", ln)]
    return re.findall(r'<td bgcolor="#\w+">([^<]*)</td>', line)


def test_the_ntm_cell_uses_the_papers_symbols_and_no_tooltips():
    dot = dot_source(compiled("ntm"))
    assert chips(dot, "write_head_0") == ["k", "β", "g", "s", "γ", "wᶜ", "wᵍ", "w̃", "w", "e", "a"]
    assert chips(dot, "read_head_0") == ["k", "β", "g", "s", "γ", "wᶜ", "wᵍ", "w̃", "w", "r"]
    assert "y" not in chips(dot, "controller")  # the output is drawn as the output, with its formula
    assert re.search(r"output_y \[.*σ\(W_y @ \[h_next, r0\] \+ b_y\)", dot)
    assert "tooltips" not in dot.split("tooltip=")[0] and "(tooltips)" not in dot
    assert "β key strength" in dot and "wᶜ content weighting" in dot


def test_the_ntm_read_vector_goes_back_to_the_controller_once():
    pairs = [(s, d) for s, d, _ in edges(dot_source(compiled("ntm")))]
    assert pairs.count(("read_head_0", "controller")) == 1  # only r0 at the next step
    assert ("read_head_0", "output_y") in pairs and ("controller", "output_y") in pairs


def test_memn2n_reads_bottom_to_top_without_a_previous_step_entry():
    dot = dot_source(compiled("memn2n"))
    assert "rankdir=BT" in dot
    assert "previous step" not in dot and style.DELAY_MARK not in dot
    assert "expression (params folded in)" in dot and "affine map" not in dot
    assert "sum(embed(story, A), axis=1) + T_A" in dot  # the memory vectors in one box


def test_a_recurrent_cell_keeps_the_previous_step_entry_and_left_to_right():
    dot = dot_source(compiled("gru"))
    assert "rankdir=LR" in dot and "value from the previous step" in dot and "affine map (params folded in)" in dot


# ---- the NTM chain -----------------------------------------------------------------------------------------

def test_the_ntm_chain_keeps_straight_rows_and_short_labels():
    dot = dot_source(compiled("ntm"), "unrolled", "4")
    assert re.search(r"init_states \[.*h, c, r0, w_r0, w_w0", dot)
    assert [d for s, d, _ in edges(dot) if s == "init_states"] == ["t0_cell"]
    assert [s for s, d, _ in edges(dot) if d == "final_states"] == ["t3_cell"]  # one arrow, nothing to cross
    assert "final_h" not in dot
    for t in range(4):
        assert re.search(rf"t{t}_cell \[.*group=cells", dot) and re.search(rf"t{t}_mem_M \[.*group=memory_M", dot)
    (label,) = [a for s, d, a in edges(dot) if (s, d) == ("t0_cell", "t1_cell")]
    assert label.count("<br/>") == 1 and "h₀, c₀, r0₀" in label  # two lines, not five
    assert "write head 0" not in re.sub(r'tooltip="[^"]*"', "", dot)  # one head of each kind: the colours say it


def test_a_two_state_chain_keeps_one_node_per_state():
    dot = dot_source(compiled("lstm"), "unrolled", "3")
    assert "init_h" in dot and "init_c" in dot and "init_states" not in dot


# ---- labels: the parentheses the precedence needs; "affine" only for affine maps ------------------------------

PREC = """
rnncompile: 1
name: prec
dims: {I: 4, H: 4, T: 3}
cells:
  prec:
    inputs: {x: I}
    state: {h: H}
    params:
      A: {shape: [H, I]}
      B: {shape: [H, H]}
    let:
      a: tanh((A @ x) * (B @ h))
      b: tanh(A @ x * B @ h)
      c: tanh(x - (h - x))
      d: tanh((x + h) * x - h / (x * h))
      e: tanh(x - h - x + (h + x))
      f: tanh(B.T @ (h + x) + sum(B, axis=0))
    update: {h: a + b + c + d + e + f}
    outputs: {y: h}
model: {scan: prec, input: {x: [T, I]}}
"""
LETS = dict(re.findall(r"^      (\w): tanh\((.*)\)$", PREC, re.M))
GLYPHS = {"×": "*", "÷": "/", "−": "-", "^": "**", "ᵀ": ".T"}


def label_to_spec(text: str) -> str:
    """A drawn formula back in the spec's syntax: the glyphs as operators, a list [a, b] as concat(a, b)
    (an index x[0] stays), and `·`, a drawn node's value arriving on an edge, as a name."""
    for glyph, op in GLYPHS.items():
        text = text.replace(glyph, op)
    out, lists = [], []
    for i, ch in enumerate(text):
        if ch == "[":
            is_list = i == 0 or text[i - 1] in " (,["
            lists.append(is_list)
            out.append("concat(" if is_list else "[")
        elif ch == "]":
            out.append(")" if lists.pop() else "]")
        else:
            out.append(ch)
    return "".join(out).replace("·", "edge_value")


@pytest.mark.parametrize("name", sorted(LETS))
def test_a_label_parses_back_to_the_same_expression(name):
    cell = rnncompile.compile_text(PREC, "prec.yaml").checked.main_cell
    (shown,) = [s for s in shown_nodes(cell).nodes.values() if s.name == name]
    back = expr.to_text(expr.parse(label_to_spec(shown.formula)))
    assert back == expr.to_text(expr.parse(LETS[name])), shown.formula


def shipped_cells():
    specs = sorted(SPECS.glob("*.yaml")) + sorted((SPECS / "cells").glob("*.yaml")) + \
        sorted((SPECS.parent / "examples").glob("*/*.yaml"))
    for spec in specs:
        plan = rnncompile.compile(spec).checked.plan
        cells = list(plan.fold.cell.rules.values()) if plan.kind == "tree" else [u.cell for u in plan.uses()]
        for cell in cells:
            yield spec, cell


def test_every_shipped_formula_parses_back():
    for spec, cell in shipped_cells():
        for s in shown_nodes(cell).nodes.values():
            if s.formula:
                expr.parse(label_to_spec(s.formula))  # raises ExprSyntaxError on a label the spec could not hold


def test_attributes_are_drawn_as_the_spec_writes_them():
    cell = rnncompile.compile(SPECS / "cells" / "ln_lstm.yaml").checked.main_cell
    formulas = {s.formula for s in shown_nodes(cell).nodes.values() if s.formula}
    assert any("chunk(z, 4, 1)" in f for f in formulas), formulas  # 4 parts, part 1: not swapped
    assert not any("axis=None" in f for f in formulas)  # a default attribute is not drawn


def test_products_of_matmuls_are_drawn_differently():
    cell = rnncompile.compile_text(PREC, "prec.yaml").checked.main_cell
    formulas = {s.name: s.formula for s in shown_nodes(cell).nodes.values()}
    assert formulas["a"] == "(A @ x) × (B @ h)"
    assert formulas["b"] == "((A @ x) × B) @ h"  # `@` next to `×` keeps its brackets for the reader


def test_only_affine_maps_are_called_affine():
    kinds = {s.formula: s.kind for s in shown_nodes(compiled("gru").checked.main_cell).nodes.values()}
    assert kinds["W_hn @ h + b_hn"] == kinds["W_in @ x + b_in"] == "affine"
    memn2n = {s.formula: s.kind for s in shown_nodes(compiled("memn2n").checked.main_cell).nodes.values()}
    assert memn2n["u1 + p1 @ c1"] == "expr"  # attention times memory: bilinear
    assert memn2n["sum(embed(story, A), axis=1) + T_A"] == "expr"  # a lookup
    nary = shown_nodes(compiled("treelstm_nary").checked.plan.fold.cell.rules["node"])
    assert {s.formula: s.kind for s in nary.nodes.values()}["children.c[0]"] == "expr"


# ---- a run drawn on the chain: the lecture's "hello" picture ---------------------------------------------

HELLO = SPECS.parent / "examples" / "hello" / "spec.yaml"


def node_label(dot: str, node: str) -> str:
    (line,) = [ln for ln in dot.splitlines() if re.match(rf"\s*{node} \[", ln)]
    return line


def test_the_hello_run_reads_hell_and_predicts_ello():
    dot, _ = choose(rnncompile.compile(HELLO), "unrolled", text="hell")
    assert [re.search(r"<b>(\w)</b>", node_label(dot, f"in_{t}")).group(1) for t in range(4)] == list("hell")
    assert [re.search(r"<b>(\w)</b>", node_label(dot, f"out_{t}")).group(1) for t in range(4)] == list("ello")
    assert all('color="#2b8a3e"' in node_label(dot, f"out_{t}") for t in range(3))  # each confirmed by the next
    assert re.search(r"y = 0\.\d\d", node_label(dot, "out_3")) and "own weights" in dot and "untrained" not in dot


def test_a_run_on_the_char_predictor_says_its_weights_are_untrained(cli, tmp_path):
    out = tmp_path / "hello.dot"
    code, _, stderr = cli("render", SPECS / "char_predictor.yaml", "--text", "hell", "--unroll", "4", "-o", out)
    assert code == 0, stderr
    dot = out.read_text()
    caption = dot.replace("<br/>", " ")
    assert "seeded random weights (seed 0), untrained" in caption and "head_3" in dot and "out_3" in dot
    code, _, stderr = cli("render", SPECS / "char_predictor.yaml", "--text", "hell", "--unroll", "5", "-o", out)
    assert code == 2 and "--text has 4 tokens but --unroll 5 draws 5 steps" in stderr


def test_text_needs_a_token_model_and_a_run_view():
    with pytest.raises(UsageError, match="needs a vocabulary"):
        choose(compiled("lstm"), "unrolled", text="hell")
    with pytest.raises(UsageError, match="--text draws a run of the whole model over time.*not with --view cell"):
        choose(compiled("char_predictor"), "cell", text="hell")
    with pytest.raises(UsageError, match="not with --cell"):
        choose(compiled("char_predictor"), "unrolled", text="hell", cell="lstm")
    with pytest.raises(UsageError, match="one token sequence"):
        choose(compiled("sentiment"), "unrolled", text="a good film")
