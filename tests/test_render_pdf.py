"""The vector PDF painted from a Graphviz JSON layout (render/pdf.py): page size, shapes, colours,
and text in the PDF's built-in fonts, with the diagrams' Greek letters, sub- and superscripts."""
from __future__ import annotations

import re
import zlib

import pytest

import rnncompile
from rnncompile.render import dot_source
from rnncompile.render.engine import find_engine
from rnncompile.render.pdf import _runs, diagram_pdf, pdf_from_layout

from conftest import SPECS

ENGINE = find_engine()
needs_engine = pytest.mark.skipif(ENGINE is None, reason="no layout engine (neither dot nor graphviz-pure) installed")

LAYOUT = {
    "bb": "0,0,200,100", "pad": "0",
    "_draw_": [{"op": "c", "color": "#fffffe00"}, {"op": "C", "color": "#ffffff"},
               {"op": "P", "points": [[0, 0], [0, 100], [200, 100], [200, 0]]}],
    "objects": [{"_gvid": 0, "name": "a", "_draw_": [{"op": "c", "color": "#c92a2a"}, {"op": "C", "color": "#ffd166"},
                                                      {"op": "E", "rect": [50, 50, 30, 20]}],
                 "_ldraw_": [{"op": "F", "size": 12, "face": "Helvetica"}, {"op": "c", "color": "#343a40"},
                             {"op": "t", "fontchar": 1},
                             {"op": "T", "pt": [50, 46], "align": "c", "width": 20, "text": "σ h₀"}]}],
    "edges": [{"_gvid": 0, "tail": 0, "head": 0,
               "_draw_": [{"op": "S", "style": "dashed"}, {"op": "c", "color": "#c92a2a"},
                          {"op": "b", "points": [[80, 50], [100, 60], [120, 60], [140, 50]]}]}],
}


def content(pdf: bytes) -> str:
    stream = re.search(rb"stream\n(.*)\nendstream", pdf, re.S).group(1)
    return zlib.decompress(stream).decode("latin-1")


def test_a_layout_becomes_one_vector_page_of_its_size():
    pdf = pdf_from_layout(LAYOUT)
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/MediaBox [0 0 200 100]" in pdf and b"/Image" not in pdf
    assert b"/BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding" in pdf and b"/BaseFont /Symbol" in pdf
    text = content(pdf)
    assert "0.79 0.16 0.16 RG" in text and "1 0.82 0.4 rg" in text  # pen and fill colours
    assert text.count(" c\n") >= 4 and "\nB\n" in text  # the ellipse, filled and stroked
    assert "[4 3] 0 d" in text and text.rstrip().endswith("Q")  # the dashed edge, stroked only
    assert "BT 40 46 Td" in text  # centred: x minus half the width Graphviz measured


def test_the_page_offsets_are_consistent():
    pdf = pdf_from_layout(LAYOUT)
    xref = int(re.search(rb"startxref\n(\d+)", pdf).group(1))
    assert pdf[xref:xref + 4] == b"xref"
    offsets = [int(o) for o in re.findall(rb"(\d{10}) 00000 n", pdf)]
    for i, offset in enumerate(offsets, 1):
        assert pdf[offset:].startswith(b"%d 0 obj" % i)


def test_glyphs_outside_helvetica_come_from_symbol_or_are_made_from_it():
    (sigma,) = _runs("σ", "regular")
    assert sigma == ("symbol", 1.0, 0.0, "[(s)]")
    h0 = _runs("h₀", "bold")
    assert h0 == [("bold", 1.0, 0.0, "[(h)]"), ("bold", 0.7, -0.18, "[(0)]")]
    z = _runs("z⁻¹", "regular")
    assert z[1][0] == "symbol" and z[1][2] > 0 and z[2] == ("regular", 0.7, 0.38, "[(1)]")  # raised minus, one
    (yhat,) = _runs("ŷ", "regular")
    assert yhat[3].startswith("[(y) ") and "\\210" in yhat[3]  # y, back up, the hat (WinAnsi 0x88)
    assert _runs("a × b…", "regular") == [("regular", 1.0, 0.0, "[(a) ( ) (\\327) ( ) (b) (\\205)]")]


@needs_engine
@pytest.mark.parametrize("name,view,unroll", [("lstm", "cell", None), ("ntm", "cell", None),
                                              ("seq2seq", "model", None), ("ntm", "unrolled", "3")])
def test_shipped_diagrams_paint_every_label(name, view, unroll):
    source = dot_source(rnncompile.compile(SPECS / f"{name}.yaml"), view, unroll)
    text = content(diagram_pdf(ENGINE, source))
    assert text.count("BT ") > 10 and "Tf" in text
    title = re.search(r'label=<<table border="0" cellspacing="0"><tr><td align="left"[^>]*><b>(\w)', source)
    assert f"({title.group(1)})" in text  # the caption's first letter is painted
