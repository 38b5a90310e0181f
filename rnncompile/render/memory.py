"""The memory view of a cell: controller, memory matrix and read and write heads, as in
figure 1 of the Neural Turing Machine paper (Graves, Wayne and Danihelka 2014).

A cell with a matrix state that heads read or write (rnncompile.heads) is drawn
as groups instead of every op: the controller (the rest of the cell) and each
head as a box listing its named steps, each memory as a grid of slots. Edges
between the groups carry the values that cross them: the controller's output
into every head, a write head's erase and add into the memory ("write head 0 —
erase/add"), the memory into each read head ("read head 0"), and the read
vectors back into the controller. Values kept for the next step are the usual
dashed z⁻¹ edges. The unrolled chain (chain.py) uses the same grid for the
memory of every step.
"""
from __future__ import annotations

import re

import graphviz

from .. import heads
from ..graph import CellGraph
from . import style
from .shown import ShownCell, shown_nodes

CHIPS_PER_ROW = 6


def has_memory(cell: CellGraph) -> bool:
    return bool(heads.find(cell).heads)


def group_id(group: str) -> str:
    return group.replace(" ", "_").replace("/", "_")


def to_dot(cell: CellGraph, *, title: str | None = None, legend: bool = True) -> str:
    parts, folded = heads.find(cell), shown_nodes(cell)
    colours = style.activation_colours(folded.activations)
    g = graphviz.Digraph(cell.name, graph_attr=dict(style.GRAPH_ATTRS, rankdir="LR", nodesep="0.5", ranksep="0.9"),
                         node_attr=style.NODE_ATTRS, edge_attr=style.EDGE_ATTRS)
    ends = _draw_groups(g, cell, parts, folded, colours)
    _draw_edges(g, cell, parts, folded, ends)
    if legend:
        text = title or f"{cell.name} cell, one step"
        key = symbol_key(folded, parts)
        row = style.legend(colours, ["input", "output"], "; ".join(w for w in (key, "params are not drawn") if w),
                           delay=bool(folded.loops))
        g.attr(label=f'<<table border="0" cellspacing="0"><tr><td align="left"><b>{style.esc(text)}</b></td></tr>'
                     f'<tr><td>{head_legend()}</td></tr><tr><td>{row}</td></tr></table>>')
    return g.source


def _draw_groups(g, cell: CellGraph, parts: heads.Parts, folded: ShownCell, colours) -> dict[int, str]:
    """Draw inputs, outputs, the controller, the heads and the memories; return each shown node's dot node."""
    ends = {}
    tail = output_side(folded, parts)
    for s in folded.nodes.values():
        if s.kind in ("input", "output"):
            ends[s.nid] = f"{s.kind}_{s.name}"
            attrs = style.node_attrs(s, colours)
            if s.nid in tail.values():  # the output with the formula that makes it, as the paper draws it
                (made,) = [n for n, o in tail.items() if o == s.nid and s.nid in folded.nodes and
                           n in folded.nodes[s.nid].feeders] or [None]
                if made is not None:
                    attrs["label"] = style.label(f"<b>{style.esc(s.name)}</b>", _as_formula(folded.nodes[made]),
                                                 sub_size=9)
            g.node(ends[s.nid], **attrs)
        elif s.nid in tail:
            ends[s.nid] = f"output_{folded.nodes[tail[s.nid]].name}"
        else:
            ends[s.nid] = group_id(parts.group(s.nid))
    chips = {}
    for s in folded.nodes.values():
        if s.kind in ("activation", "op", "affine", "expr", "param") and s.name and s.nid not in tail:
            group = parts.group(s.nid)
            head = next((h for h in parts.heads if h.title == group), None)
            chips.setdefault(group, []).append((paper_name(s.name, head), _fill(s, colours), _tip(s)))
    g.node(group_id(heads.CONTROLLER), **style.group_node("controller", "", chips.get(heads.CONTROLLER, []),
                                                          "controller", CHIPS_PER_ROW))
    for head in parts.heads:
        what = head.kind.split("/")[0]
        ops = {cell.node(n).op for n, o in parts.owner.items() if o == head.title}
        sub = f"weighting {head.name} · {addressing(ops)}" + (f" · memory {head.memory}" if len(parts.memories) > 1
                                                               else "")
        g.node(group_id(head.title), **style.group_node(head.title, sub, chips.get(head.title, []),
                                                        f"{what}_head", CHIPS_PER_ROW))
    for name in parts.memories:
        info = cell.states[name]
        g.node(group_id(f"memory {name}"), **style.matrix_node(name, info.shape, _init_text(info),
                                                                style.tooltip(f"memory {name}: state "
                                                                              f"[{info.shape[0]} slots × "
                                                                              f"{info.shape[1]}]", info.origin)))
    return ends


def addressing(ops: set[str]) -> str:
    """How a head finds its slots, from the ops it uses."""
    content, location = "cosine" in ops, bool(ops & {"shift", "sharpen"})
    if content and location:
        return "content + location"
    return "content" if content else "location" if location else "weighting"


def _draw_edges(g, cell: CellGraph, parts: heads.Parts, folded: ShownCell, ends: dict[int, str]) -> None:
    titles = {group_id(h.title): h for h in parts.heads}
    memories = {group_id(f"memory {m}"): m for m in parts.memories}
    flows: dict[tuple[str, str], list[str]] = {}
    for src, dst in folded.edges():
        a, b = ends[src], ends[dst]
        if a != b:
            flows.setdefault((a, b), [])
            name = _value_name(folded, src)
            if name not in flows[(a, b)]:
                flows[(a, b)].append(name)
    for (a, b), names in flows.items():
        if b in memories and a in titles:  # a write head writes the memory
            head = titles[a]
            g.edge(a, b, label=_edge_label(f"{head.title} — erase/add", [paper_name(n, head) for n in names]),
                   **style.WRITE_EDGE)
        elif a in memories and b in titles and "read" in titles[b].kind:
            head = titles[b]
            read = [paper_formula(_formula(folded, n), head) for n in head.reads]
            # written head -> memory, the arrow turned round: the heads stand in one column, the memory right of them
            g.edge(b, a, label=_edge_label(head.title, read or names), dir="back", **style.READ_EDGE)
        elif a in memories and b in titles:  # a write head compares its key with every slot
            g.edge(b, a, label=_edge_label("", ["content"]), dir="back", **style.ADDRESS_EDGE)
        elif a.startswith("input_") or b.startswith("output_"):
            g.edge(a, b)  # an input or output node names itself
        else:
            g.edge(a, b, label=_edge_label("", names))
    loops: dict[tuple[str, str], list[str]] = {}
    for name, (update, state) in folded.loops.items():
        loops.setdefault((ends[update], ends[state]), []).append(name)
    for (a, b), names in loops.items():
        g.edge(a, b, label=style.edge_label([f"{style.esc(', '.join(names))}  {style.DELAY_MARK}"]),
               tooltip=f"{', '.join(names)} at the next step", constraint="false",
               **{k: v for k, v in style.DELAY_EDGE.items() if k != "label"})


GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "eta": "η", "lambda": "λ", "mu": "μ",
         "rho": "ρ", "sigma": "σ", "tau": "τ"}
WEIGHTINGS = {"wc": "wᶜ", "wg": "wᵍ", "ws": "w̃"}  # the NTM paper's content, gated and shifted weightings
MEANINGS = {"k": "key", "β": "key strength", "g": "interpolation gate", "s": "shift", "γ": "sharpening",
            "wᶜ": "content weighting", "wᵍ": "gated weighting", "w̃": "shifted weighting", "w": "weighting",
            "e": "erase", "a": "add", "r": "read vector"}


def paper_name(name: str, head: heads.Head | None) -> str:
    """A head's value as the paper writes it: without the head's own suffix (`beta_w0` in write head 0
    is β, `w_w0_next` is w, the read vector `r0` is r), Greek letters spelt as letters."""
    if head is None or "_" not in head.name:
        return GREEK.get(name, name)
    tag = head.name.split("_", 1)[1]  # w_w0 -> w0
    stem = name[:-len("_next")] if name.endswith("_next") else name
    if stem == tag:
        stem = "r" if "read" in head.kind else stem
    elif stem.endswith(f"_{tag}"):
        stem = stem[: -len(tag) - 1]
    else:
        return GREEK.get(name, name)
    return GREEK.get(stem) or WEIGHTINGS.get(stem) or stem


def paper_formula(text: str, head: heads.Head) -> str:
    """A formula with the head's values renamed as paper_name does (`r0 = w_r0_next @ M_next` -> `r = w @ M_next`)."""
    return re.sub(r"[A-Za-z_][A-Za-z0-9_]*", lambda m: paper_name(m.group(0), head), text)


def symbol_key(folded: ShownCell, parts: heads.Parts) -> str:
    """What the heads' symbols mean, for those drawn: `k key, β key strength, …`."""
    shown = []
    for s in folded.nodes.values():
        head = next((h for h in parts.heads if h.title == parts.group(s.nid)), None)
        if head is not None and s.name:
            symbol = paper_name(s.name, head)
            if symbol in MEANINGS and symbol != s.name and symbol not in shown:
                shown.append(symbol)
    return ", ".join(f"{sym} {MEANINGS[sym]}" for sym in sorted(shown, key=list(MEANINGS).index))


def output_side(folded: ShownCell, parts: heads.Parts) -> dict[int, int]:
    """Controller nodes that only make an output (the NTM's y = σ(W_y @ [h, r] + b_y)) -> that output:
    drawn as the output node itself, so the values they read (h, this step's r) point at the output."""
    users: dict[int, list[int]] = {n: [] for n in folded.nodes}
    for src, dst in folded.edges():
        users[src].append(dst)
    updates = {u for u, _ in folded.loops.values()}
    out: dict[int, int] = {}
    for nid in reversed(list(folded.nodes)):  # users first
        s = folded.nodes[nid]
        if s.kind == "output":
            out[nid] = nid
            continue
        ends = {out.get(u) for u in users[nid]}
        if (parts.group(nid) == heads.CONTROLLER and s.kind not in ("input", "state") and nid not in updates
                and users[nid] and len(ends) == 1 and None not in ends):
            out[nid] = ends.pop()
    return {n: o for n, o in out.items() if n != o}


def _as_formula(s) -> str:
    """An activation with its argument: σ(W_y @ [h_next, r0] + b_y)."""
    if s.kind == "activation":
        return f"{style.symbol(s.op)}({s.formula})" if s.formula else style.symbol(s.op)
    return s.formula or s.name


def _value_name(folded: ShownCell, nid: int) -> str:
    s = folded.nodes[nid]
    return s.name or s.formula or s.op


def _formula(folded: ShownCell, nid: int) -> str:
    s = folded.nodes.get(nid)
    if s is None:
        return ""
    return f"{s.name} = {s.formula}" if s.name and s.formula else s.name or s.formula


def _edge_label(title: str, names: list[str]) -> str:
    """Bold title over the values that cross; an empty line below keeps the text clear of the edge."""
    lines = [f"<b>{style.esc(title)}</b>"] if title else []
    shown = [n for n in names if n][:4] + ([style.ELLIPSIS] if len(names) > 4 else [])
    if shown:
        lines.append(f'<font point-size="9">{style.esc(", ".join(shown))}</font>')
    return style.edge_label(lines)


def _fill(s, colours) -> str:
    if s.kind == "activation":
        return colours[s.op][0]
    return style.KIND_STYLE["op" if s.kind == "op" else s.kind if s.kind == "expr" else "affine"]["fillcolor"]


def _tip(s) -> str:
    return f"{s.name} = {s.formula}" if s.formula else f"{s.name}: {s.op}"


def _init_text(info) -> str:
    if info.from_context:
        return f"starts from input {info.init}"
    return f"starts from {info.init:g}" if isinstance(info.init, (int, float)) else f"starts from {info.init}"


def head_legend(content: bool = True) -> str:
    """Swatches for the heads and the memory, and the colours of their edges."""
    cells = [f'<td bgcolor="{style.KIND_STYLE[k]["fillcolor"]}" color="{style.KIND_STYLE[k]["color"]}">{word}</td>'
             for k, word in (("write_head", "write head"), ("read_head", "read head")) if content]
    cells.append(f'<td bgcolor="{style.MATRIX_FILL}" color="{style.MATRIX_BORDER}">memory: N slots × W</td>')
    arrows = (f'<font color="{style.WRITE_EDGE["color"]}">→ write (erase, add)</font>  '
              f'<font color="{style.READ_EDGE["color"]}">→ read</font>')
    if content:
        arrows += f'  <font color="{style.ADDRESS_EDGE["color"]}">→ content addressing</font>'
    cells.append(f'<td border="0">{arrows}</td>')
    return f'<table border="0" cellborder="1" cellspacing="3" cellpadding="3"><tr>{"".join(cells)}</tr></table>'


class MemoryStep:
    """A step of the unrolled chain for a cell with memory: the compact cell box (chain.py) and, beside
    it, the memory after this step as a grid, with one write edge and one read edge per head. The
    memory flows from step to step along its own row."""

    def __init__(self, compact, parts: heads.Parts, cell: CellGraph):
        self.compact, self.parts, self.cell = compact, parts, cell
        named = {s.name for s in compact.folded.nodes.values()
                 if s.kind == "activation" and parts.group(s.nid) == heads.CONTROLLER}
        compact.chips = [c for c in compact.chips if c[0] in named]  # the heads are the edges to the memory

    def draw(self, c, t: int) -> None:
        self.compact.draw(c, t)
        box = self.compact.state_in(t, "")
        for name in self.parts.memories:
            info, mem = self.cell.states[name], self.state_in(t, name)
            tip = style.tooltip(f"memory {name} after step {t}", f"{info.origin}@{t}")
            c.node(mem, group=f"memory_{name}", **style.matrix_node(style.sub(name, t), info.shape, "", tip,
                                                                                    small=True))
            for head in self.parts.heads:
                if head.memory != name:
                    continue
                # the colours say read or write (see the legend); a label, which takes room between the steps,
                # only says which head when there are several of a kind
                several = sum(h.kind == head.kind for h in self.parts.heads) > 1
                if "write" in head.kind:
                    c.edge(box, mem, label=style.edge_label([style.esc(head.title)]) if several else "",
                           tooltip=f"{head.title} ({head.name}) erases and adds", weight="0", **style.WRITE_EDGE)
                if "read" in head.kind:
                    c.edge(mem, box, label=style.edge_label([style.esc(head.title)]) if several else "",
                           tooltip=f"{head.title} ({head.name}) reads", constraint="false", **style.READ_EDGE)

    def state_in(self, t: int, name: str) -> str:
        return f"t{t}_mem_{name}" if name in self.parts.memories else self.compact.state_in(t, name)

    state_out = state_in

    def entry(self, t: int) -> str:
        return self.compact.entry(t)

    def exit(self, t: int) -> str:
        return self.compact.exit(t)
