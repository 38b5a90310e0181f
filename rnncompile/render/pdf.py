"""A vector PDF of a laid-out diagram, without Graphviz's dot, cairo or Pillow.

graphviz-pure writes no PDF, but it writes the layout as JSON with xdot
drawing operations (fill and pen colours, line styles, polygons, ellipses,
Bézier curves, and text with its font, size and alignment). This module
paints those operations onto one PDF page, in the diagram's own size in
points. Text uses the PDF viewer's built-in Helvetica (bold for bold labels)
in the WinAnsi encoding, so nothing is embedded; the few other glyphs the
diagrams use are drawn from the built-in Symbol font (σ, β, −, →, …) or made
from Helvetica: subscript digits (h₀) smaller and lowered, superscripts (z⁻¹,
Wᵀ, wᶜ) smaller and raised, a hat or tilde over its letter (ŷ, w̃).
"""
from __future__ import annotations

import json
import zlib

from .engine import Engine, RenderError, run_engine

KAPPA = 0.5523  # control-point distance for a quarter ellipse of Bézier curves
FONTS = {"regular": "Helvetica", "bold": "Helvetica-Bold", "italic": "Helvetica-Oblique",
         "bold_italic": "Helvetica-BoldOblique", "symbol": "Symbol"}
FONT_KEY = {name: f"F{i}" for i, name in enumerate(FONTS, 1)}
SYMBOL = {  # glyphs of the Symbol font, by the byte that selects them
    **dict(zip("αβγδεζηθικλμνξπρστυφχψω", "abgdezhqiklmnxprstufcyw")),
    **dict(zip("ΓΔΘΛΞΠΣΦΨΩ", "GDQLXPSFYW")),
    "−": "-", "→": "\xae", "←": "\xac", "↑": "\xad", "↓": "\xaf", "⊙": "\xc4", "∑": "\xe5", "≤": "\xa3",
    "≥": "\xb3", "∞": "\xa5", "⋯": "\xbc",
}
SUB = dict(zip("₀₁₂₃₄₅₆₇₈₉₋₊", "0123456789-+"))
SUP = {**dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺", "0123456789+")), "⁻": "−", "ᵀ": "T", "ᶜ": "c", "ᵍ": "g", "ˢ": "s", "ⁿ": "n",
       "ᵗ": "t"}
MARKS = {"\u0302": "\u02c6", "\u0303": "\u02dc"}  # combining hat and tilde -> the spacing ones Helvetica has
PRECOMPOSED = {"ŷ": ("y", "\u02c6"), "ŵ": ("w", "\u02c6"), "ĥ": ("h", "\u02c6"), "ỹ": ("y", "\u02dc")}
WIDTHS = {"w": 722, "y": 500, "h": 556, "x": 500, "c": 500, "s": 500, "i": 222, "l": 222, "r": 333, "f": 278,
          "t": 278, "\u02c6": 333, "\u02dc": 333}  # Helvetica's, in thousandths of an em, for centring a mark
SMALL, RISE, DROP = 0.7, 0.38, -0.18  # sub/superscripts: size and baseline shift, in ems


def diagram_pdf(engine: Engine, dot_source: str) -> bytes:
    """Lay out `dot_source` with `engine` (as JSON) and paint it as a one-page vector PDF."""
    layout = run_engine(engine, dot_source, "json")
    try:
        graph = json.loads(layout)
    except ValueError as e:
        raise RenderError(f"{engine.name} wrote a layout that is not JSON ({e}); cannot make a PDF") from None
    return pdf_from_layout(graph)


def pdf_from_layout(graph: dict) -> bytes:
    """A PDF page of a Graphviz JSON layout (xdot 1.7 operations)."""
    x0, y0, x1, y1 = (float(v) for v in str(graph.get("bb", "0,0,1,1")).split(","))
    pad = 72 * float(str(graph.get("pad", "0.0555")).split(",")[0])  # inches around the drawing, as dot's PDF
    x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
    page = _Page(x0, y0)
    objects = graph.get("objects", [])
    clusters = [o for o in objects if "nodes" in o or "subgraphs" in o]  # subgraphs; the rest are nodes
    nodes = [o for o in objects if o not in clusters]
    page.ops(graph.get("_draw_", []))
    for c in clusters:
        page.ops(c.get("_draw_", []))
        page.ops(c.get("_ldraw_", []))
    for e in graph.get("edges", []):
        page.ops(e.get("_draw_", []), edge=True)
        for key in ("_hdraw_", "_tdraw_"):
            page.ops(e.get(key, []))
    for n in nodes:
        page.ops(n.get("_draw_", []))
        page.ops(n.get("_ldraw_", []))
    for e in graph.get("edges", []):
        for key in ("_ldraw_", "_xldraw_", "_hldraw_", "_tldraw_"):
            page.ops(e.get(key, []))
    page.ops(graph.get("_ldraw_", []))
    return _document(page.content(), x1 - x0, y1 - y0)


class _Page:
    """The content stream: xdot operations turned into PDF operators."""

    def __init__(self, x0: float, y0: float):
        self.x0, self.y0 = x0, y0
        self.out: list[str] = []

    def content(self) -> bytes:
        return "\n".join(self.out).encode("latin-1")

    def ops(self, ops: list, edge: bool = False) -> None:
        """One attribute's operations; each list starts from solid black lines and Helvetica 14."""
        self.out.append("q 1 J 1 j [] 0 d 1 w 0 G 0 g")
        state = dict(pen=(0, 0, 0), fill=(0, 0, 0), pen_on=True, fill_on=True, size=14.0, bold=False, italic=False)
        for op in ops:
            self.op(op, state, edge)
        self.out.append("Q")

    def op(self, op: dict, st: dict, edge: bool) -> None:
        kind = op.get("op")
        if kind in ("c", "C"):
            rgb = _colour(op.get("color", "black"))
            which = "pen" if kind == "c" else "fill"
            st[f"{which}_on"] = rgb is not None
            if rgb is not None:
                st[which] = rgb
                self.out.append(f"{_num(rgb[0])} {_num(rgb[1])} {_num(rgb[2])} {'RG' if kind == 'c' else 'rg'}")
        elif kind == "S":
            self.style(op.get("style", ""))
        elif kind == "F":
            st["size"] = float(op.get("size", 14))
        elif kind == "t":
            flags = int(op.get("fontchar", 0))
            st["bold"], st["italic"] = bool(flags & 1), bool(flags & 2)
        elif kind in ("P", "p", "L"):
            pts = op.get("points", [])
            if pts:
                path = [f"{self.pt(pts[0])} m"] + [f"{self.pt(p)} l" for p in pts[1:]]
                self.paint(path + (["h"] if kind != "L" else []), fill=kind == "P", st=st)
        elif kind in ("B", "b"):
            pts = op.get("points", [])
            if len(pts) >= 4:
                path = [f"{self.pt(pts[0])} m"]
                for i in range(1, len(pts) - 2, 3):
                    path.append(f"{self.pt(pts[i])} {self.pt(pts[i + 1])} {self.pt(pts[i + 2])} c")
                self.paint(path, fill=kind == "B" and not edge, st=st)
        elif kind in ("E", "e"):
            cx, cy, rx, ry = (float(v) for v in op.get("rect", (0, 0, 0, 0)))  # centre and radii
            self.paint(_ellipse(cx - self.x0, cy - self.y0, rx, ry), fill=kind == "E", st=st)
        elif kind == "T":
            self.text(op, st)

    def style(self, style: str) -> None:
        if style.startswith("setlinewidth("):
            self.out.append(f"{_num(float(style[13:-1]))} w")
        elif style == "dashed":
            self.out.append("[4 3] 0 d")
        elif style == "dotted":
            self.out.append("[1 2.5] 0 d")
        elif style == "solid":
            self.out.append("[] 0 d")
        elif style == "bold":
            self.out.append("2 w")

    def pt(self, p) -> str:
        return f"{_num(p[0] - self.x0)} {_num(p[1] - self.y0)}"

    def paint(self, path: list[str], fill: bool, st: dict) -> None:
        do_fill, do_stroke = fill and st["fill_on"], st["pen_on"]
        if not (do_fill or do_stroke):
            return
        self.out.extend(path)
        self.out.append("B" if do_fill and do_stroke else "f" if do_fill else "S")

    def text(self, op: dict, st: dict) -> None:
        if not st["pen_on"] or not op.get("text"):
            return
        x, y = op["pt"]
        width = float(op.get("width", 0))
        x -= {"l": 0, "c": width / 2, "r": width, "-1": 0, "0": width / 2, "1": width}.get(str(op.get("align", "l")), 0)
        style = "bold_italic" if st["bold"] and st["italic"] else "bold" if st["bold"] else \
            "italic" if st["italic"] else "regular"
        size = st["size"]
        r, g, b = st["pen"]  # text is painted with the fill colour; Graphviz gives it as the pen's
        self.out.append(f"q {_num(r)} {_num(g)} {_num(b)} rg BT {_num(x - self.x0)} {_num(y - self.y0)} Td")
        for font, scale, rise, chunk in _runs(op["text"], style):
            key = FONT_KEY[font]
            self.out.append(f"/{key} {_num(size * scale)} Tf {_num(size * rise)} Ts {chunk} TJ")
        self.out.append("ET Q")


def _runs(text: str, style: str) -> list[tuple[str, float, float, str]]:
    """(font, size factor, rise in ems, TJ array) pieces of a label line, in order."""
    pieces: list[tuple[str, float, float, list]] = []

    def put(font, scale, rise, item) -> None:
        if pieces and pieces[-1][:3] == (font, scale, rise):
            pieces[-1][3].append(item)
        else:
            pieces.append((font, scale, rise, [item]))

    last = ""
    for ch in text:
        if ch in PRECOMPOSED:
            base, mark = PRECOMPOSED[ch]
            put(style, 1.0, 0.0, _pdf_string(base))
            _overprint(put, style, base, mark)
        elif ch in MARKS:
            _overprint(put, style, last, MARKS[ch])
        elif ch in SUB:
            put(style, SMALL, DROP, _pdf_string(SUB[ch]))
        elif ch in SUP:
            sup = SUP[ch]
            put("symbol", SMALL, RISE, _pdf_string(SYMBOL[sup], "latin-1")) if sup in SYMBOL else \
                put(style, SMALL, RISE, _pdf_string(sup))
        elif ch in SYMBOL:
            put("symbol", 1.0, 0.0, _pdf_string(SYMBOL[ch], "latin-1"))
        else:
            put(style, 1.0, 0.0, _pdf_string(ch))
        last = ch
    return [(font, scale, rise, "[" + " ".join(items) + "]") for font, scale, rise, items in pieces]


def _overprint(put, style: str, base: str, mark: str) -> None:
    """A mark centred over the glyph just drawn: back up, draw it, move on to where the glyph ended."""
    wb, wm = WIDTHS.get(base, 556), WIDTHS.get(mark, 333)
    put(style, 1.0, 0.0, str((wb + wm) // 2))
    put(style, 1.0, 0.0, _pdf_string(mark))
    put(style, 1.0, 0.0, str(-((wb - wm) // 2)))


def _pdf_string(text: str, codec: str = "cp1252") -> str:
    data = text.encode(codec, "replace")  # cp1252 is PDF's WinAnsiEncoding
    out = "".join(f"\\{b:03o}" if b > 126 or b < 32 or chr(b) in "()\\" else chr(b) for b in data)
    return f"({out})"


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> list[str]:
    kx, ky = rx * KAPPA, ry * KAPPA
    n = _num
    return [f"{n(cx + rx)} {n(cy)} m",
            f"{n(cx + rx)} {n(cy + ky)} {n(cx + kx)} {n(cy + ry)} {n(cx)} {n(cy + ry)} c",
            f"{n(cx - kx)} {n(cy + ry)} {n(cx - rx)} {n(cy + ky)} {n(cx - rx)} {n(cy)} c",
            f"{n(cx - rx)} {n(cy - ky)} {n(cx - kx)} {n(cy - ry)} {n(cx)} {n(cy - ry)} c",
            f"{n(cx + kx)} {n(cy - ry)} {n(cx + rx)} {n(cy - ky)} {n(cx + rx)} {n(cy)} c", "h"]


NAMED = {"black": (0, 0, 0), "white": (1, 1, 1), "red": (1, 0, 0), "green": (0, 0.5, 0), "blue": (0, 0, 1),
         "grey": (0.5, 0.5, 0.5), "gray": (0.5, 0.5, 0.5), "lightgrey": (0.83, 0.83, 0.83)}


def _colour(text: str):
    """(r, g, b) in 0..1, or None for a transparent colour."""
    text = text.strip().lower()
    if text in ("transparent", "none", "invis"):
        return None
    if text.startswith("#") and len(text) in (7, 9):
        if len(text) == 9 and int(text[7:9], 16) < 8:
            return None
        return tuple(int(text[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return NAMED.get(text, (0, 0, 0))


def _num(v: float) -> str:
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _document(content: bytes, width: float, height: float) -> bytes:
    """A one-page PDF around a content stream, with the base-14 fonts it names."""
    stream = zlib.compress(content, 9)
    fonts = " ".join(f"/{FONT_KEY[k]} {5 + i} 0 R" for i, k in enumerate(FONTS))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_num(width)} {_num(height)}] "
         f"/Resources << /Font << {fonts} >> >> /Contents 4 0 R >>").encode(),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    for key, name in FONTS.items():
        encoding = "" if key == "symbol" else " /Encoding /WinAnsiEncoding"
        objs.append(f"<< /Type /Font /Subtype /Type1 /BaseFont /{name}{encoding} >>".encode())
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)
