"""The unrolled chain: one cluster per step, left to right, state edges between them.

As in the lecture's "unrolling the loop" picture: the initial states on the
far left, step t's input below its cell and its output above, each state
passed to the next step along an edge labelled with its value (h₀, c₀, …),
the final states on the far right. Elided steps (see plan.py) become one
"…" node the state edges run through. The weights are the same at every
step, so params are never drawn: they appear in the formulas (full detail)
or not at all (compact), and the caption says they are shared.

Two levels of detail: "full" draws every step's shown ops (shown.py), good
for small cells like Elman's; "compact" draws each step as one box listing
its gates, good for an LSTM. "auto" picks full for cells of a few ops.
"""
from __future__ import annotations

import graphviz

from .. import heads
from ..graph import CellGraph
from . import memory as _memory
from . import style
from .cell import reading_order
from .shown import ShownCell, Shown, shown_nodes
from .plan import Plan, make_plan

FULL_UP_TO_OPS = 4  # auto detail: full when a step has at most this many drawn ops
STEP_CLUSTER = dict(style="rounded,filled", fillcolor="#f8f9fa", color="#ced4da", labelloc="t", labeljust="c",
                    fontsize="13", margin="10")
SUBSCRIPT_DIGITS = "₀₁₂₃₄₅₆₇₈₉₋"  # what style.sub appends to a state's name
STATE_EDGE = dict(color="#e67700", fontcolor="#b35c00", penwidth="1.6", fontsize="11", weight="4")
MERGE_STATES_OVER = 2  # compact steps with more states than this start and end at one node for all of them
STATES_PER_LINE = 3  # an edge's label lists this many states a line (an NTM's five, on two lines)


def to_dot(cell: CellGraph, plan: Plan | int | str, *, detail: str = "auto", title: str | None = None,
           legend: bool = True) -> str:
    """DOT source of `cell` unrolled as `plan` says (a Plan, or an --unroll value like 4 or "3..10")."""
    if not isinstance(plan, Plan):
        plan = make_plan(plan)
    folded = shown_nodes(cell)
    parts = heads.find(cell)
    if detail == "auto":
        small = len(folded.of_kind("activation", "op", "affine", "expr")) <= FULL_UP_TO_OPS
        detail = "full" if small and not parts.heads else "compact"
    if detail not in ("full", "compact"):
        raise ValueError(f"detail must be auto, full or compact, not {detail!r}")
    colours = style.activation_colours(folded.activations)
    g = graphviz.Digraph(f"{cell.name}_unrolled", graph_attr=dict(style.GRAPH_ATTRS, rankdir="LR", newrank="true"),
                         node_attr=style.NODE_ATTRS, edge_attr=style.EDGE_ATTRS)
    step = _FullStep(folded, colours) if detail == "full" else _CompactStep(folded, colours)
    if parts.heads and detail == "compact":  # the memory of every step as a grid, with its heads' edges
        step = _memory.MemoryStep(step, parts, cell)
    memories = parts.memories if parts.heads and detail == "compact" else {}
    states = list(folded.loops)
    vectors = [n for n in states if n not in memories]
    merged = detail == "compact" and len(vectors) > MERGE_STATES_OVER  # one node for all of them, at each end
    last = plan.steps - 1
    if merged:
        _state_column(g, "initial", {**{f"init_{m}": _initial_node(cell, m, True) for m in memories},
                                     "init_states": _initial_states(cell, vectors)})
    else:
        _state_column(g, "initial", {f"init_{n}": _initial_node(cell, n, n in memories) for n in states})
    wires: dict[tuple[str, str], list[str]] = {}  # state edges; parallel ones are drawn as one
    held = _draw_steps(g, step, plan, states, wires, memories, {n: "init_states" for n in vectors} if merged else {})
    if merged:
        names = ", ".join(style.sub(n, last) for n in vectors)
        _state_column(g, "final", {"final_states": dict(_state_node(names, "final", f"the states after step {last}",
                                                                    ""), group="cells")})
    else:
        _state_column(g, "final", {f"final_{n}": _state_node(style.sub(n, last), "final", f"{n} after step {last}",
                                                             cell.states[n].origin) for n in vectors})
    for name in vectors:  # the memory after the last step is the last step's grid
        _wire(wires, held[name], "", "final_states" if merged else f"final_{name}")
    memory_starts = {f"init_{m}" for m in memories}
    for (src, dst), values in wires.items():
        shown = [style.esc(v) for v in values if v]
        per_line = STATES_PER_LINE if len(shown) > STATES_PER_LINE else len(shown) or 1
        text = style.edge_label([", ".join(shown[i:i + per_line]) for i in range(0, len(shown), per_line)])
        tip = ", ".join(v for v in values if v) or None
        if memories and (any(v.rstrip(SUBSCRIPT_DIGITS) in memories for v in values) or src in memory_starts):
            # the memory's row follows the controllers'; its grids name their values (M₀, M₁), the edges need not
            g.edge(src, dst, tooltip=tip, **{**STATE_EDGE, "weight": "4"})
        elif memories:  # the controllers' row: room for a step's memory between steps, labels that do not push it
            g.edge(src, dst, label=text, tooltip=tip, minlen="2", **STATE_EDGE)
        else:
            g.edge(src, dst, label=text, tooltip=tip, **STATE_EDGE)
    if legend:
        g.attr(label=_caption(folded, plan, title, colours, detail, bool(memories)))
    return g.source


def _draw_steps(g, step, plan: Plan, states: list[str], wires: dict, memories=(), starts=None) -> dict[str, str]:
    """Draw the shown steps, with a "…" where steps are elided (a memory has its own, in its row),
    collecting the state edges into `wires`; return the dot node holding each state after the last step.
    `starts`: states whose initial value is drawn by another node than init_<name>."""
    held = {name: (starts or {}).get(name, f"init_{name}") for name in states}  # state -> the node holding it
    value = {name: "" for name in states}  # ... and the name of that value (h₀), shown on the edge
    before = None  # without states nothing links the steps: an invisible edge keeps them in order
    for t in plan.shown:
        if t > 0 and t - 1 not in plan.shown:  # steps were elided just before this one
            skip, first = f"skip_{t}", max(s for s in plan.shown if s < t) + 1
            g.node(skip, label=style.ELLIPSIS, tooltip=f"steps {first} to {t - 1} are not drawn",
                   **style.KIND_STYLE["ellipsis"])
            for name in memories:
                g.node(f"{skip}_{name}", label=style.ELLIPSIS, tooltip=f"{name} over steps {first} to {t - 1}",
                       **style.KIND_STYLE["ellipsis"])
            for name in states:
                into = f"{skip}_{name}" if name in memories else skip
                _wire(wires, held[name], value[name], into)
                held[name], value[name] = into, style.sub(name, t - 1)
            if not states and before:
                g.edge(before, skip, style="invis")
                before = skip
        with g.subgraph(name=f"cluster_step{t}") as c:
            c.attr(label=f"t = {t}", tooltip=f"step {t} of {plan.steps}", **STEP_CLUSTER)
            step.draw(c, t)
        if not states:
            if before:
                g.edge(before, step.entry(t), style="invis")
            before = step.exit(t)
        for name in states:
            _wire(wires, held[name], value[name], step.state_in(t, name))
            held[name], value[name] = step.state_out(t, name), style.sub(name, t)
    return held


def _initial_states(cell: CellGraph, names: list[str]) -> dict:
    """One node for the initial values of many states: their names, then what each starts from."""
    starts: dict[str, list[str]] = {}
    for n in names:
        info = cell.states[n]
        init = f"{info.init:g}" if isinstance(info.init, (int, float)) else str(info.init)
        starts.setdefault(f"input {init}" if info.from_context else init, []).append(n)
    lines = [f"{', '.join(ns)} = {v}" for v, ns in starts.items()]  # one line per start value
    note = "initial " + " · ".join(lines)
    label = style.label(f"<b>{style.esc(', '.join(names))}</b>", "")[:-1] + \
        f'<br/><font point-size="9" color="{style.SUBTLE}">initial {"<br/>".join(map(style.esc, lines))}</font>>'
    return dict(style.KIND_STYLE["state"], label=label, tooltip=style.tooltip("initial values", note),
                group="cells")


def _state_column(g, name: str, nodes: dict) -> None:
    with g.subgraph(name=name) as s:
        s.attr(rank="same")
        for nid, attrs in nodes.items():
            s.node(nid, **attrs)


def _initial_node(cell: CellGraph, name: str, memory: bool = False) -> dict:
    info = cell.states[name]
    init = f"{info.init:g}" if isinstance(info.init, (int, float)) else str(info.init)
    init = f"input {init}" if info.from_context else init
    if memory:
        return dict(style.matrix_node(name, info.shape, f"initial {init}", style.tooltip(f"initial value of {name}",
                                                                                          info.origin)),
                    group=f"memory_{name}")
    return _state_node(name, f"initial {init}", f"initial value of {name}", info.origin)


def _wire(wires: dict, src: str, value: str, dst: str) -> None:
    """One more state on the edge src -> dst (parallel state edges are drawn as one)."""
    wires.setdefault((src, dst), []).append(value)


def _state_node(name: str, note: str, what: str, origin: str) -> dict:
    return dict(style.KIND_STYLE["state"], label=style.label(f"<b>{style.esc(name)}</b>", note, sub_size=9),
                tooltip=style.tooltip(what, origin))


class _CompactStep:
    """A step as one box listing its gates, its inputs below and its outputs above
    (several inputs or outputs share one node, so the column stays straight)."""

    def __init__(self, folded: ShownCell, colours):
        self.folded, self.colours = folded, colours
        self.chips = gate_chips(folded, colours)

    def draw(self, c, t: int) -> None:
        cell = self.folded.cell
        box = f"t{t}_cell"
        outs, ins = self.folded.of_kind("output"), self.folded.of_kind("input")
        with c.subgraph(name=f"column{t}") as col:  # outputs, cell, inputs: one vertical column
            col.attr(rank="same")
            if outs:
                col.node(f"t{t}_out", **_ends(outs, t, "output"))
            col.node(box, label=style.cell_label(cell.name, self.chips), tooltip=f"cell {cell.name} at step {t}",
                     group="cells", **style.KIND_STYLE["cell"])  # one group: the boxes in a straight row
            if ins:
                col.node(f"t{t}_in", **_ends(ins, t, "input"))
        if outs:
            c.edge(box, f"t{t}_out")
        if ins:
            c.edge(f"t{t}_in", box)

    def state_in(self, t: int, name: str) -> str:
        return f"t{t}_cell"

    state_out = state_in

    def entry(self, t: int) -> str:
        return f"t{t}_cell"

    exit = entry


def gate_chips(folded: ShownCell, colours) -> list[tuple[str, str]]:
    """(text, fill) per gate of a compact box: the named activations, else every activation, in the
    order the folded cell draws them (an LSTM's f, i, g, o)."""
    acts = [folded.nodes[n] for n in reading_order(folded) if folded.nodes[n].kind == "activation"]
    gates = [s for s in acts if s.name] or acts
    return [(s.name or style.symbol(s.op), colours[s.op][0]) for s in gates]


def _ends(shown: list[Shown], t: int, kind: str) -> dict:
    """One node for all of a step's inputs (or outputs): x₃, or x₃, m₃."""
    names = ", ".join(style.sub(s.name, t) for s in shown)
    tips = [f"{style.sub(s.name, t)}: {kind} {s.shape_text}  ({s.origin}@{t})" for s in shown]
    return dict(style.KIND_STYLE[kind], label=style.label(f"<b>{style.esc(names)}</b>"), tooltip=style.tooltip(*tips))


class _FullStep:
    """A step as its folded ops, laid out like the lecture's picture: the path
    from the states to their next values runs left to right, and every other
    node sits in the column of the path node it feeds (inputs, below) or is fed
    by (outputs, above). A state read by several ops gets a small node of its
    own where it enters the step; one read by a single op is wired straight in."""

    def __init__(self, folded: ShownCell, colours):
        self.folded, self.colours = folded, colours
        users: dict[int, list[int]] = {n: [] for n in folded.nodes}
        for src, dst in folded.edges():
            users[src].append(dst)
        updates = {u for u, _ in folded.loops.values()}
        self.direct = {name: users[sid][0] for name, (_, sid) in folded.loops.items()
                       if len(users[sid]) == 1 and sid not in updates}
        skipped = {folded.loops[name][1] for name in self.direct}
        self.drawn = [s for s in folded.nodes.values() if s.nid not in skipped]
        self.columns = _columns(folded, users, skipped)

    def draw(self, c, t: int) -> None:
        for s in self.drawn:
            c.node(f"t{t}_n{s.nid}", **_at_step(s, t, self.colours))
        for anchor, column in self.columns.items():
            with c.subgraph(name=f"column{t}_{anchor}") as col:
                col.attr(rank="same")
                for nid in column:
                    col.node(f"t{t}_n{nid}")
        skipped = {self.folded.loops[name][1] for name in self.direct}
        for src, dst in self.folded.edges():
            if src not in skipped:
                c.edge(f"t{t}_n{src}", f"t{t}_n{dst}")

    def state_in(self, t: int, name: str) -> str:
        return f"t{t}_n{self.direct.get(name, self.folded.loops[name][1])}"

    def state_out(self, t: int, name: str) -> str:
        return f"t{t}_n{self.folded.loops[name][0]}"

    def entry(self, t: int) -> str:
        return f"t{t}_n{self.drawn[0].nid}"

    def exit(self, t: int) -> str:
        return f"t{t}_n{self.drawn[-1].nid}"


def _columns(folded: ShownCell, users, skipped) -> dict[int, list[int]]:
    """anchor (a node on a state's path) -> the nodes drawn in its column, top to bottom.

    A column only holds simple chains: below the anchor, nodes whose one user is the node
    above them (x -> tanh); above it, nodes whose one argument is the node below them
    (tanh -> W_hy @ h + b_y -> y). Anything else keeps its own rank: flat edges that
    branch or cross make dot's edge routing fail."""
    args: dict[int, list[int]] = {n: [] for n in folded.nodes}
    for src, dst in folded.edges():
        args[dst].append(src)
    from_state = _reach([sid for _, sid in folded.loops.values()], users)
    to_update = _reach([u for u, _ in folded.loops.values()], args)
    path = [n for n in folded.nodes if n in from_state and n in to_update and n not in skipped]
    taken = set(path) | set(skipped)
    columns = {}
    for anchor in path:
        above = _chain(anchor, users, args, taken)
        below = _chain(anchor, args, users, taken)
        if above or below:
            columns[anchor] = above[::-1] + [anchor] + below
    return columns


def _chain(start: int, onward, back, taken: set) -> list[int]:
    """Follow single links from `start` through nodes whose only link back is the previous one."""
    out, at = [], start
    while True:
        nxt = [m for m in onward[at] if m not in taken and back[m] == [at]]
        if not nxt or (at != start and len(onward[at]) != 1):
            return out
        taken.add(nxt[0])
        out.append(nxt[0])
        at = nxt[0]


def _reach(starts, edges) -> set[int]:
    seen, todo = set(starts), list(starts)
    while todo:
        for m in edges[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def _at_step(s: Shown, t: int, colours) -> dict:
    name = style.sub(s.name, t) if s.kind in ("input", "output") else None
    attrs = style.node_attrs(s, colours, name)
    attrs["tooltip"] = attrs["tooltip"].replace(s.origin, f"{s.origin}@{t}") if s.origin else attrs["tooltip"]
    return attrs


def _caption(folded: ShownCell, plan: Plan, title: str | None, colours, detail: str, memory: bool = False) -> str:
    name = folded.cell.name
    head = title or f"{name} unrolled over {plan.steps} step{'s' if plan.steps != 1 else ''}"
    notes = plan.gap_notes()
    if folded.params:
        notes.append("the same weights at every step")
    text = head + (f" ({'; '.join(notes)})" if notes else "")
    kinds = ["input", "state", "output"] if folded.loops else ["input", "output"]
    if detail == "full":
        at = kinds.index("output")
        kinds[at:at] = [k for k in ("op", "affine", "expr") if folded.of_kind(k)]
    row = style.legend(colours, kinds, delay=False)
    heads_row = f"<tr><td>{_memory.head_legend(content=False)}</td></tr>" if memory else ""
    head = style.title(text, style.legend_width(colours, kinds, False))
    return (f'<<table border="0" cellspacing="0"><tr><td align="left" balign="left">{head}</td></tr>'
            f"{heads_row}<tr><td>{row}</td></tr></table>>")
