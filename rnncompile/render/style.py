"""The look shared by every diagram: colours, shapes, symbols, labels and the legend.

Only glyphs the bundled fonts of graphviz-pure can draw are used (σ, ×, −,
÷, ᵀ, ⁻¹, subscript digits, …); ⊙ and ⋯, for one, come out as empty boxes.
"""
from __future__ import annotations

import html
import textwrap

from ..ops import OPS

FONT = "Helvetica"
INK = "#343a40"
MUTED = "#868e96"  # captions and notes on white
SUBTLE = "#495057"  # a node's second line on a light fill (at least 4.5:1 on every fill used)
DELAY = "#c92a2a"  # the recurrence: dashed, marked z⁻¹
DELAY_MARK = "z⁻¹"
ELLIPSIS = "…"
MAX_FORMULA = 44  # longer formulas are cut in labels (tooltips keep them whole)

# fill, border: each activation its own colour (as in the usual LSTM pictures)
ACTIVATION_COLOURS = {
    "sigmoid": ("#ffd166", "#b8860b"),
    "hard_sigmoid": ("#ffe8a3", "#b8860b"),
    "tanh": ("#8ecae6", "#1c6e8c"),
    "relu": ("#95d5b2", "#2d6a4f"),
    "softplus": ("#c7f0d8", "#2d6a4f"),
    "softmax": ("#cdb4db", "#6a4c93"),
}
SPARE_COLOURS = [("#f4a6a6", "#a61e4d"), ("#ffc9de", "#a61e4d"), ("#d0bfff", "#5f3dc4"), ("#ffd8a8", "#d9480f")]

KIND_STYLE = {  # node kind -> dot attributes
    "input": dict(shape="ellipse", style="filled", fillcolor="#d3f9d8", color="#2b8a3e"),
    "state": dict(shape="box", style="rounded,filled", fillcolor="#fff3bf", color="#e67700", penwidth="2",
                  margin="0.16,0.04"),
    "output": dict(shape="ellipse", style="filled", fillcolor="#ffe8cc", color="#d9480f"),
    "op": dict(shape="circle", style="filled", fillcolor="#fde2e4", color="#c2255c", fixedsize="true",
               width="0.38", fontsize="16", margin="0"),
    "op_text": dict(shape="ellipse", style="filled", fillcolor="#fde2e4", color="#c2255c", margin="0.04,0.02"),
    "affine": dict(shape="box", style="filled", fillcolor="#f1f3f5", color="#adb5bd", fontsize="11",
                   margin="0.2,0.05"),
    "expr": dict(shape="box", style="filled", fillcolor="#ffffff", color="#868e96", fontsize="11",
                 margin="0.2,0.05"),
    "function": dict(shape="box", style="rounded,filled", fillcolor="#e6fcf5", color="#087f5b", penwidth="1.6",
                     fontsize="11", margin="0.2,0.05"),
    "param": dict(shape="box", style="filled", fillcolor="#e9ecef", color="#adb5bd", fontsize="9", fontcolor=MUTED),
    "activation": dict(shape="box", style="rounded,filled", margin="0.2,0.05"),
    "cell": dict(shape="box", style="rounded,filled", fillcolor="#f8f9fa", color=INK, penwidth="1.5"),
    "ellipsis": dict(shape="plaintext", fontsize="28", fontcolor=MUTED),
    "controller": dict(shape="box", style="rounded,filled", fillcolor="#f8f9fa", color=INK, penwidth="1.5"),
    "write_head": dict(shape="box", style="rounded,filled", fillcolor="#fff0f6", color="#c2255c", penwidth="1.5"),
    "read_head": dict(shape="box", style="rounded,filled", fillcolor="#e7f5ff", color="#1864ab", penwidth="1.5"),
    "matrix": dict(shape="plaintext", margin="0"),
}
KIND_WORDS = {"input": "input", "state": "state", "output": "output", "op": "pointwise op",
              "affine": "affine map (params folded in)", "expr": "expression (params folded in)",
              "param": "param", "function": "function call (its body folded in)"}

SYMBOLS = {"sigmoid": "σ", "hard_sigmoid": "hard σ", "relu": "ReLU", "matmul": "@", "neg": "−"}

GRAPH_ATTRS = dict(fontname=FONT, fontsize="12", fontcolor=INK, nodesep="0.25", ranksep="0.35",
                   pad="0.2", labeljust="l", labelloc="b", bgcolor="white")
NODE_ATTRS = dict(fontname=FONT, fontsize="12", fontcolor=INK, color=INK, height="0.3", margin="0.1,0.04")
EDGE_ATTRS = dict(fontname=FONT, fontsize="10", color="#495057", arrowsize="0.7")
WRITE_EDGE = dict(color="#c2255c", fontcolor="#a61e4d", penwidth="1.8")
READ_EDGE = dict(color="#1864ab", fontcolor="#1864ab", penwidth="1.8")
ADDRESS_EDGE = dict(color="#adb5bd", fontcolor=MUTED, style="dotted", penwidth="1.4")
MATRIX_FILL, MATRIX_BORDER = "#fff3bf", "#e67700"  # a memory: the colours of a state, as a grid of slots
MATRIX_ROWS, MATRIX_COLUMNS = 6, 8  # slots and columns drawn; more are elided with …
DELAY_EDGE = dict(style="dashed", color=DELAY, fontcolor=DELAY, penwidth="1.4", label=DELAY_MARK,
                  fontsize="12")


def activation_colours(ops: list[str]) -> dict[str, tuple[str, str]]:
    """Fill and border per activation; unknown ones take spare colours in order."""
    out, spare = {}, iter(SPARE_COLOURS * (1 + len(ops)))
    for op in ops:
        out[op] = ACTIVATION_COLOURS.get(op) or next(spare)
    return out


def symbol(op: str) -> str:
    return SYMBOLS.get(op) or OPS[op].symbol or op


def esc(text) -> str:
    """Text for inside an HTML-like label."""
    return html.escape(str(text), quote=True)


def tooltip(*lines: str) -> str:
    """A tooltip attribute value; DOT reads \\n as a line break."""
    return "\\n".join(line.replace("\\", "\\\\") for line in lines if line)


def label(title: str = "", sub: str = "", *, title_size: int | None = None, sub_size: int = 10,
          sub_colour: str = SUBTLE) -> str:
    """An HTML-like label: a bold-able first line and a smaller, lighter second line."""
    parts = []
    if title:
        parts.append(f'<font point-size="{title_size}">{title}</font>' if title_size else title)
    if sub:
        parts.append(f'<font point-size="{sub_size}" color="{sub_colour}">{esc(sub)}</font>')
    return "<" + "<br/>".join(parts) + ">"


SUBSCRIPTS = str.maketrans("0123456789-", "₀₁₂₃₄₅₆₇₈₉₋")


def sub(name: str, t) -> str:
    """`h` at step 3 -> h₃."""
    return f"{name}{str(t).translate(SUBSCRIPTS)}"


def legend(activations: dict[str, tuple[str, str]], kinds: list[str], extra: str = "", delay: bool = True) -> str:
    """A one-row HTML table: a swatch per activation and node kind, and the z⁻¹ mark."""
    cells = []
    for op, (fill, border) in activations.items():
        word = esc(f"{symbol(op)}  {op}") if symbol(op).lower() not in (op, op.replace("_", " ")) else esc(symbol(op))
        cells.append(f'<td bgcolor="{fill}" color="{border}">{word}</td>')
    for kind in kinds:
        st = KIND_STYLE[kind]
        cells.append(f'<td bgcolor="{st["fillcolor"]}" color="{st["color"]}">{esc(KIND_WORDS[kind])}</td>')
    if delay:
        mark = f'<font color="{DELAY}">- - → {DELAY_MARK}</font>'
        cells.append(f'<td border="0">{mark}  value from the previous step</td>')
    rows = "<tr>" + "".join(cells) + "</tr>"
    if extra:  # wrapped to the swatches' width: graphviz-pure stretches every cell of a table to its widest row
        note = f'<font color="{MUTED}">{wrapped(extra, legend_width(activations, kinds, delay))}</font>'
        rows += f'<tr><td border="0" colspan="{len(cells)}" align="left" balign="left">{note}</td></tr>'
    return f'<table border="0" cellborder="1" cellspacing="3" cellpadding="3">{rows}</table>'


def legend_width(activations, kinds: list[str], delay: bool = True) -> int:
    """About how many characters of caption text the legend's row of swatches is wide."""
    words = [f"{symbol(op)}  {op}" for op in activations] + [KIND_WORDS[k] for k in kinds]
    return sum(len(w) + 4 for w in words) + (32 if delay else 0)


def title(text: str, width: int) -> str:
    """A caption's bold first line, wrapped to `width` characters so it does not stretch the legend below."""
    return f"<b>{wrapped(text, width, 60)}</b>"


def wrapped(text: str, width: int, least: int = 70) -> str:
    """Text for an HTML label, broken into lines of at most `width` characters (at least `least`)."""
    return "<br/>".join(esc(line) for line in textwrap.wrap(text, max(width, least)))


def cell_label(name: str, chips: list[tuple[str, str]]) -> str:
    """A step of the unrolled chain: the cell's name over a row of coloured gate chips."""
    row = "".join(f'<td bgcolor="{fill}" width="18">{esc(text)}</td>' for text, fill in chips)
    span = f' colspan="{len(chips)}"' if chips else ""
    body = f"<tr>{row}</tr>" if chips else ""
    return (f'<<table border="0" cellborder="0" cellspacing="3" cellpadding="3">'
            f'<tr><td{span}><b>{esc(name)}</b></td></tr>{body}</table>>')


def node_attrs(shown, colours: dict[str, tuple[str, str]], name: str | None = None) -> dict[str, str]:
    """Dot attributes for one folded node (see shown.Shown); `name` overrides its shown name."""
    name = shown.name if name is None else name
    bold = f"<b>{esc(name)}</b>" if name else ""
    kind = shown.kind
    if kind == "activation":
        fill, border = colours[shown.op]
        title = f"{bold}  {esc(symbol(shown.op))}" if bold else esc(symbol(shown.op))
        attrs = dict(KIND_STYLE["activation"], fillcolor=fill, color=border,
                     label=label(title, _short(shown.formula), sub_colour=INK))  # dark: readable on blue
    elif kind == "op":
        sym = symbol(shown.op)
        if shown.formula or len(sym) > 1:
            attrs = dict(KIND_STYLE["op_text"], label=label(esc(_short(shown.formula) or sym)))
            if name:
                attrs["label"] = label(f"{bold}  {esc(_short(shown.formula) or sym)}")
        else:
            attrs = dict(KIND_STYLE["op"], label=label(esc(sym)))
            if name:  # the name goes under the symbol, in a circle just big enough
                attrs.update(fixedsize="false", width="0.3", fontsize="15",
                             label=label(esc(sym), name, sub_size=9))
    elif kind in ("affine", "expr", "function"):
        text = esc(_short(shown.formula))
        attrs = dict(KIND_STYLE[kind], label=label(f"{bold}<br/>{text}" if bold else text))
    else:  # input | state | output | param
        attrs = dict(KIND_STYLE[kind], label=label(bold or esc(shown.op)))
    what = f"{name or shown.name or shown.op}: {shown.op} {shown.shape_text}"
    attrs["tooltip"] = tooltip(what, shown.formula and f"= {shown.formula}", shown.origin)
    return attrs


def _short(formula: str, limit: int = MAX_FORMULA) -> str:
    return formula if len(formula) <= limit else formula[: limit - 1].rstrip() + ELLIPSIS


def edge_label(lines: list[str], beside: bool = False) -> str:
    """An edge's HTML label: the lines (already HTML), with a spacer below, so the edge, drawn along
    the label's bottom, never runs through the text (it hid underscores: `w_w₀` read as `w  w₀`).
    `beside`: an edge that runs up or down, drawn along the label's left side, gets the spacer there."""
    if not lines:
        return ""
    text = "<br/>".join(lines)
    if beside:
        return (f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="0"><tr>'
                f'<td width="{EDGE_LABEL_GAP}"></td><td>{text}</td></tr></table>>')
    return (f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="0"><tr><td>{text}</td></tr>'
            f'<tr><td height="{EDGE_LABEL_GAP}"></td></tr></table>>')


EDGE_LABEL_GAP = 8  # points between an edge label's last line and the edge


def group_node(title: str, sub: str, chips: list[tuple[str, str, str]], kind: str, per_row: int) -> dict:
    """A box for a part of a cell (the controller, a head): its title, a muted line, and its named steps
    as coloured chips (text, fill, tooltip line), a few per row."""
    rows = [f'<tr><td><b>{esc(title)}</b></td></tr>']
    if sub:
        rows.append(f'<tr><td><font point-size="10" color="{MUTED}">{esc(sub)}</font></td></tr>')
    for i in range(0, len(chips), per_row):
        row = "".join(f'<td bgcolor="{fill}">{esc(text)}</td>' for text, fill, _ in chips[i:i + per_row])
        rows.append(f'<tr><td><table border="0" cellborder="0" cellspacing="3" cellpadding="3"><tr>{row}</tr>'
                    f'</table></td></tr>')
    label = f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="2">{"".join(rows)}</table>>'
    return dict(KIND_STYLE[kind], label=label, tooltip=tooltip(title, *(tip for _, _, tip in chips)))


def matrix_node(name: str, shape: tuple, note: str, tip: str, fill: str = MATRIX_FILL, small: bool = False) -> dict:
    """A memory as a grid: one row per slot, one column per entry (the first few of each), its name and
    size above and `note` below. `small`: the memory at one step of a chain, with narrower cells and no size."""
    n, w = shape
    rows, cols = min(n, MATRIX_ROWS), min(w, MATRIX_COLUMNS)
    cw, ch = (8, 6) if small else (13, 9)
    cell = f'<td width="{cw}" height="{ch}" bgcolor="{fill}"></td>'
    more = f'<td border="0" width="{cw}" height="{ch}"><font point-size="8" color="{MUTED}">{ELLIPSIS}</font></td>'
    body = "".join("<tr>" + cell * cols + (more if w > cols and r == 0 else '<td border="0"></td>' if w > cols
                                             else "") + "</tr>" for r in range(rows))
    if n > rows:
        body += f'<tr><td colspan="{cols}" border="0"><font point-size="8" color="{MUTED}">{ELLIPSIS}</font></td></tr>'
    span = cols + (w > cols)
    size = "" if small else f'  <font point-size="9" color="{MUTED}">{n} slots × {w}</font>'
    head = f'<tr><td colspan="{span}" border="0" cellpadding="2"><b>{esc(name)}</b>{size}</td></tr>'
    foot = (f'<tr><td colspan="{span}" border="0" cellpadding="2"><font point-size="9" color="{MUTED}">'
            f'{esc(note)}</font></td></tr>') if note else ""
    label = (f'<<table border="0" cellborder="1" cellspacing="0" cellpadding="0" color="{MATRIX_BORDER}">'
             f'{head}{body}{foot}</table>>')
    return dict(KIND_STYLE["matrix"], label=label, tooltip=tip)
