"""Diagrams of cells with explicit memory: controller, memory matrix and heads found from the graph
(rnncompile.heads), the cell view and the unrolled chain that draw them, and edge labels that the
edges never run through (an underscore under the edge made `w_w₀` read as `w  w₀`)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import rnncompile
from rnncompile import heads
from rnncompile.render import dot_source, run_engine
from rnncompile.render.engine import find_engine

from conftest import ROOT, SPECS
from test_memory import _ntm_text

ENGINE = find_engine()
needs_engine = pytest.mark.skipif(ENGINE is None, reason="no layout engine (neither dot nor graphviz-pure) installed")
FACTS = ROOT / "examples" / "memory" / "spec.yaml"


def _checked(source):
    program = rnncompile.compile(source) if not isinstance(source, str) else rnncompile.compile_text(source, "t.yaml")
    return program, program.checked.main_cell


def _labels(cell, parts, group):
    return {cell.node(n).label for n, g in parts.owner.items() if g == group and cell.node(n).label}


# ---- finding the parts ------------------------------------------------------------------------------------

def test_the_ntm_splits_into_controller_memory_and_heads():
    _, cell = _checked(SPECS / "ntm.yaml")
    parts = heads.find(cell)
    assert list(parts.memories) == ["M"]
    assert [(h.title, h.name, h.memory) for h in parts.heads] == [("write head 0", "w_w0", "M"),
                                                                  ("read head 0", "w_r0", "M")]
    write, read = parts.heads
    assert [cell.node(n).label for n in write.erase + write.add] == ["e_w0", "a_w0"]
    assert [cell.node(n).label for n in read.reads] == ["r0"]
    assert {"i", "f", "g", "o", "c_next", "h_next", "y"} <= _labels(cell, parts, heads.CONTROLLER)
    assert {"k_w0", "beta_w0", "g_w0", "s_w0", "gamma_w0", "wc_w0", "wg_w0", "ws_w0", "w_w0_next", "e_w0",
            "a_w0"} <= _labels(cell, parts, "write head 0")
    assert {"k_r0", "wc_r0", "w_r0_next", "r0"} <= _labels(cell, parts, "read head 0")
    assert _labels(cell, parts, "memory M") == {"M", "M_next"}
    nothing_shared = [_labels(cell, parts, g) & _labels(cell, parts, "write head 0")
                      for g in (heads.CONTROLLER, "read head 0")]
    assert nothing_shared == [set(), set()]


def test_every_head_of_a_multi_head_memory_is_found():
    _, cell = _checked(_ntm_text(reads=2, writes=3))
    parts = heads.find(cell)
    assert [h.title for h in parts.heads] == ["write head 0", "write head 1", "write head 2", "read head 0",
                                              "read head 1"]
    for j in range(3):
        assert f"e_w{j}" in _labels(cell, parts, f"write head {j}")


def test_the_fact_memory_moves_its_write_head_with_the_head():
    _, cell = _checked(FACTS)
    write, read = heads.find(cell).heads
    assert (write.title, write.name, read.title, read.name) == ("write head 0", "w_w", "read head 0", "w_r")


def test_attention_without_a_memory_state_is_no_memory_view():
    _, cell = _checked(SPECS / "memn2n.yaml")
    assert heads.find(cell).heads == []
    assert "write head" not in dot_source(rnncompile.compile(SPECS / "memn2n.yaml"))


# ---- the cell view -----------------------------------------------------------------------------------------

def test_the_cell_view_draws_the_memory_as_a_grid_with_labelled_head_edges():
    dot = dot_source(rnncompile.compile(SPECS / "ntm.yaml"))
    assert re.search(r"memory_M \[.*16 slots × 8", dot)
    assert dot.count('bgcolor="#fff3bf"></td>') == 6 * 8  # the first 6 slots × 8 columns, then …
    edges = {}
    for m in re.finditer(r"^\t(\w+ -> \w+) \[(.*)\]$", dot, re.M):
        edges.setdefault(m.group(1), []).append(m.group(2))
    (content, write) = edges["write_head_0 -> memory_M"]
    assert "write head 0 — erase/add" in write and "w, e, a" in write  # the paper's names, not w_w0_next, e_w0
    # memory -> head edges are written head -> memory with dir=back, so the heads stand in one column
    assert "content" in content and "dir=back" in content  # the write head's key against every slot
    (read,) = edges["read_head_0 -> memory_M"]
    assert "read head 0" in read and "r = w @ M_next" in read and "dir=back" in read
    assert "h_next" in edges["controller -> write_head_0"][0]
    (r0,) = edges["read_head_0 -> controller"]  # one edge: the read vector at the next step (y reads it now)
    assert "r0  z⁻¹" in r0
    assert "constraint=false" in edges["memory_M -> memory_M"][0]  # M's own z⁻¹ loop


def test_the_shorthand_draws_the_same_cell():
    long = dot_source(rnncompile.compile(SPECS / "ntm.yaml"))
    short = dot_source(rnncompile.compile(SPECS / "ntm_shorthand.yaml"))
    assert short.replace("ntm_shorthand: ", "") == long.replace("ntm: ", "")


def test_a_memory_that_starts_from_an_input_says_so():
    dot = dot_source(rnncompile.compile(ROOT / "examples" / "memory" / "preloaded.yaml"))
    assert "starts from input M0" in dot


# ---- the unrolled view -------------------------------------------------------------------------------------

def test_the_memory_flows_from_step_to_step_with_every_heads_edges():
    dot = dot_source(rnncompile.compile_text(_ntm_text(reads=2, writes=1), "t.yaml"), "unrolled", "3")
    for t in range(3):
        assert re.search(rf"t{t}_mem_M \[.*M{'₀₁₂'[t]}", dot)
        writes = re.findall(rf"t{t}_cell -> t{t}_mem_M \[.*?write head (\d)", dot)
        reads = re.findall(rf"t{t}_mem_M -> t{t}_cell \[.*?read head (\d)", dot)
        assert (writes, reads) == (["0"], ["0", "1"])
    assert re.search(r"init_M -> t0_mem_M", dot) and re.search(r"t0_mem_M -> t1_mem_M", dot)
    assert re.search(r"t1_mem_M -> t2_mem_M", dot) and "final_M" not in dot  # the last grid is the final memory
    assert "t0_cell -> t1_cell" in dot and "t0_mem_M -> t1_cell" not in dot


def test_an_elided_unroll_gives_the_memory_its_own_ellipsis():
    dot = dot_source(rnncompile.compile(SPECS / "ntm.yaml"), "unrolled", "2..T")
    assert "t1_mem_M -> skip_19_M" in dot and "skip_19_M -> t19_mem_M" in dot
    assert "t1_cell -> skip_19 " in dot


def test_the_compact_boxes_list_only_the_controller():
    dot = dot_source(rnncompile.compile(SPECS / "ntm.yaml"), "unrolled", "2")
    box = re.search(r"t0_cell \[(.*)\]", dot).group(1)
    assert all(f">{g}</td>" in box for g in "ifgo") and "k_w0" not in box


# ---- edge labels clear of their edges (the "w  w₀" bug) --------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def _curve(d: str) -> np.ndarray:
    """Points along an SVG path of cubic Bézier segments (M x,y C x,y x,y x,y ...)."""
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
    p = np.array(list(zip(nums[::2], nums[1::2])))
    t = np.linspace(0, 1, 50)[:, None]
    return np.concatenate([(1 - t) ** 3 * p[i] + 3 * (1 - t) ** 2 * t * p[i + 1] + 3 * (1 - t) * t ** 2 * p[i + 2]
                           + t ** 3 * p[i + 3] for i in range(0, len(p) - 3, 3)])


def label_crossings(svg: str) -> list[str]:
    """Edge label lines that their own edge runs through: between a line's cap height and just below its
    baseline (where an underscore is drawn)."""
    bad = []
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        if g.get("class") != "edge":
            continue
        curve = _curve(g.find(f".//{SVG}path").get("d"))
        for text in g.iter(f"{SVG}text"):
            x, y, size = (float(text.get(k)) for k in ("x", "y", "font-size"))
            width = 0.55 * size * len(text.text or "")
            if text.get("text-anchor") == "middle":
                x -= width / 2
            inside = (curve[:, 0] >= x) & (curve[:, 0] <= x + width)
            if np.any(inside & (curve[:, 1] >= y - 0.75 * size) & (curve[:, 1] <= y + 0.3 * size)):
                bad.append(text.text)
    return bad


def test_the_crossing_check_sees_an_edge_through_its_label():
    svg = ('<svg xmlns="http://www.w3.org/2000/svg"><g class="edge"><path d="M0,-168.8C50,-168.8 100,-168.8 150,'
           '-168.8"/><text x="50" y="-171" font-size="11">w_w₀</text></g></svg>')
    assert label_crossings(svg) == ["w_w₀"]  # the bug as it was: the edge 2 pt under the baseline
    assert label_crossings(svg.replace('y="-171"', 'y="-180"')) == []


@needs_engine
@pytest.mark.parametrize("spec", [FACTS, SPECS / "ntm.yaml", SPECS / "lstm.yaml", SPECS / "elman.yaml"],
                         ids=lambda p: p.stem)
@pytest.mark.parametrize("view,unroll", [("cell", None), ("unrolled", "3"), ("unrolled", "2..T")])
def test_edges_never_run_through_their_labels(spec, view, unroll):
    svg = run_engine(ENGINE, dot_source(rnncompile.compile(spec), view, unroll), "svg").decode("utf-8")
    assert label_crossings(svg) == []
