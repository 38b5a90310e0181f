"""The model view: the cells of a model composed over time, each cell application one box.

As in the lecture's pictures of composed networks, drawn bottom to top: the
inputs x_t along the bottom, one row of boxes per layer, each box handing
its state right to the next step and its output up to the layer above, and
the outputs (or the head's) along the top. A stateless layer, such as an
embedding, is a thin row.

- A bidirectional layer is two rows: the forward row's states go right, the
  reverse row's go left, from its own initial state on the far right; a
  merge node (concat, sum, mean) joins them at every step.
- A head sits above every step (many-to-many) or only above the last one
  (`at: last`, many-to-one).
- An encoder-decoder is the encoder's grid, its final state as the summary
  node C, then the decoder's row: each step's chosen token is fed back (a
  dashed edge) as the next step's input. A generator (one-to-many) starts
  from its context vector through the init box instead.

A plain one-layer scan is the compact unrolled chain of chain.py. Without an
--unroll plan each chain shows at most DEFAULT_STEPS steps (the first ones,
"…", and the last); a plan given applies to every chain of the picture.

Rows are graphviz ranks (rankdir=BT), so a state edge is a flat edge between
neighbours; a reverse row's edges point left through dir=back, which keeps
every edge of a row in time order for the layout. A step's nodes share a
group and straight edges weigh more, so columns stay straight; the edges
that must pass a box (into a reverse row, from a forward row to its merge,
a token fed back) weigh nothing and bend around it, all on the same side
(ordering=out).
"""
from __future__ import annotations

from itertools import groupby

import graphviz

from ..errors import UsageError
from ..graph import CellGraph
from ..plan import CellUse, Plan as ModelPlan, Stack
from . import annotate, chain, style
from .shown import ShownCell, shown_nodes
from .plan import Plan, make_plan

DEFAULT_STEPS = 4
STATE_EDGE = dict(color="#e67700", penwidth="1.6", weight="4")
DATA_EDGE = dict(weight="3")
BYPASS_EDGE = dict(weight="0")  # passes a box on its way up (into a reverse row, out of a forward one)
FEEDBACK = "#6741d9"
# written from the input up to the token, arrow at the input (dir=back), so it runs between the columns
FEEDBACK_EDGE = dict(style="dashed", color=FEEDBACK, penwidth="1.3", dir="back", weight="0", arrowsize="0.8")
SUMMARY = dict(shape="box", style="rounded,filled", fillcolor="#ffe066", color="#e67700", penwidth="2.4",
               margin="0.18,0.06")
THIN = dict(shape="box", style="filled", fillcolor="#f1f3f5", color="#868e96", fontsize="10", height="0.2",
            margin="0.14,0.01")
MERGE = dict(shape="ellipse", style="filled", fillcolor="#fde2e4", color="#c2255c", fontsize="10", height="0.24",
             margin="0.04,0.01")
CELL = style.KIND_STYLE["cell"]
REVERSE = dict(CELL, fillcolor="#e7f5ff")  # a reverse row's boxes, tinted
HEAD = dict(style.KIND_STYLE["cell"], fillcolor="#f3f0ff", color="#5f3dc4", penwidth="1.2")
MERGE_WORDS = {"concat": "concat", "sum": "+", "mean": "mean"}
ATTENTION = "#0c8599"  # a decoder's memory and its reads
MEMORY = dict(shape="box", style="rounded,filled", fillcolor="#e3fafc", color=ATTENTION, penwidth="2",
              margin="0.16,0.05")
MEMORY_IN_EDGE = dict(color=ATTENTION, penwidth="0.9", style="dotted", weight="0", arrowsize="0.6")
ATTEND_EDGE = dict(color=ATTENTION, penwidth="1.4", weight="0", fontcolor=ATTENTION, fontsize="9")
MATCH = "#2b8a3e"  # a run's prediction that the next input confirms


def default_plan(steps: int) -> Plan:
    """All of a chain's steps up to DEFAULT_STEPS, else the first ones, "…" and the last."""
    return make_plan(steps if steps <= DEFAULT_STEPS else f"{DEFAULT_STEPS - 1}..{steps}")


def is_plain_scan(model: ModelPlan) -> bool:
    """One forward layer and nothing else: the model view is the compact chain."""
    stack = model.stack
    return (model.kind == "sequence" and model.head is None and stack is not None and len(stack.layers) == 1
            and len(stack.layers[0].uses) == 1 and not stack.layers[0].uses[0].reverse)


def to_dot(model: ModelPlan, unroll: Plan | None = None, *, steps: int, name: str = "model",
           start: str | None = None, legend: bool = True, run=None) -> str:
    """DOT source of the model view. `unroll` applies to every chain drawn; without it the
    sequence (`steps` long, the model's time dim) and the decoder (its `steps`) get default_plan.
    `start` is the vocabulary's start token a decoder begins with. `run` (annotate.Annotations) puts a
    run's tokens on the inputs and its top predictions on the outputs."""
    seq_plan = unroll or default_plan(steps)
    if is_plain_scan(model) and run is None:  # a run's tokens go on the model view's input and output rows
        cell = model.stack.layers[0].uses[0].cell
        what = f"{cell.name} unrolled over {seq_plan.steps} steps"
        return chain.to_dot(cell, seq_plan, detail="compact", legend=legend,
                            title=what if name == cell.name else f"{name}: {what}")
    if model.stack is None and model.decoder is None:
        raise UsageError(f"the model view draws sequences, stacks and decoders, not a {model.kind} model")
    pic = _Picture(model, name, run)
    top, below = 0, {}
    if model.stack is not None:
        top, below = pic.stack(model.stack, seq_plan, "enc_" if model.decoder else "", outputs=not model.decoder)
    if model.decoder is None:
        pic.top(model, seq_plan, top, below)
        shown = [("", seq_plan)]
    else:
        dec_plan = unroll or default_plan(model.decoder.steps)
        pic.decoder(model, dec_plan, max(top - 1, 1), seq_plan, start)
        if model.decoder.memory and model.stack is not None:
            pic.attention(model.decoder, dec_plan, max(top - 1, 1), seq_plan, below)
        shown = [("encoder ", seq_plan), ("decoder ", dec_plan)] if model.stack else [("", dec_plan)]
    if legend:
        pic.g.attr(label=pic.caption(_summary(model, name, seq_plan), shown))
    return pic.source()


class _Picture:
    """The nodes by rank (row, bottom first) and the edges, written out as DOT at the end."""

    def __init__(self, model: ModelPlan, name: str, run=None):
        self.model, self.run = model, run
        self.folded: dict[int, ShownCell] = {}
        for use in model.uses():
            self.folded.setdefault(id(use.cell), shown_nodes(use.cell))
        acts = [op for f in self.folded.values() for op in f.activations]
        self.colours = style.activation_colours(list(dict.fromkeys(acts)))
        layout = dict(rankdir="BT", newrank="true", ordering="out", nodesep="0.3", ranksep="0.32")
        self.g = graphviz.Digraph(f"{name}_model", graph_attr=dict(style.GRAPH_ATTRS, **layout),
                                  node_attr=style.NODE_ATTRS, edge_attr=style.EDGE_ATTRS)
        self.ranks: dict[int, list[tuple[str, dict]]] = {}
        self.edges: list[tuple[str, str, dict]] = []
        self.chained: set[int] = set()  # ranks holding a row of state edges

    # -- primitives -----------------------------------------------------------
    def node(self, rank: int, nid: str, attrs: dict, column: str | None = None, first: bool = False) -> str:
        """A node on row `rank` (at its start when `first`: the layout keeps the order nodes are
        written in where edges allow); nodes of one `column` (a step) share a group."""
        row = self.ranks.setdefault(rank, [])
        row.insert(0 if first else len(row), (nid, dict(attrs, group=column) if column else attrs))
        return nid

    def edge(self, src: str, dst: str, **attrs) -> None:
        self.edges.append((src, dst, attrs))

    def source(self) -> str:
        # rows with state edges go first: graphviz-pure then keeps each row in time order (written
        # bottom up, it can pull a row's initial state in among the steps when edges cross the row)
        for rank in sorted(self.ranks, key=lambda r: (r not in self.chained, r)):
            with self.g.subgraph(name=f"row{rank}") as row:
                row.attr(rank="same")
                for nid, attrs in self.ranks[rank]:
                    row.node(nid, **attrs)
        for src, dst, attrs in self.edges:
            self.g.edge(src, dst, **attrs)
        return self.g.source

    def box(self, cell: CellGraph, tip: str, kind: dict = CELL, name: str | None = None) -> dict:
        """A compact box: the cell's name over its coloured gate chips."""
        chips = chain.gate_chips(self.folded[id(cell)], self.colours)
        return dict(kind, label=style.cell_label(name or cell.name, chips), tooltip=tip)

    def ends(self, names, t: int, kind: str, sub: str = "", tip: str = "") -> dict:
        text = ", ".join(style.sub(n, t) for n in names)
        return dict(style.KIND_STYLE[kind], label=style.label(f"<b>{style.esc(text)}</b>", sub, sub_size=9),
                    tooltip=tip or f"{kind} {text}")

    def input_end(self, names, t: int) -> dict:
        """An input node: x₃, or with a run, the token read at step 3 over ch₃."""
        token = annotate.input_label(self.run, t) if self.run else None
        if token is None:
            return self.ends(names, t, "input")
        text = ", ".join(style.sub(n, t) for n in names)
        return dict(style.KIND_STYLE["input"], label=style.label(f"<b>{style.esc(token)}</b>", text, title_size=15,
                                                                 sub_size=9), tooltip=f"{text} = {token!r}")

    def output_end(self, names, t: int) -> dict:
        """An output node: p₃, or with a run, the most likely next token at step 3 and its probability."""
        top = annotate.output_label(self.run, t) if self.run else None
        if top is None:
            return self.ends(names, t, "output")
        token, prob = top
        attrs = dict(style.KIND_STYLE["output"], label=style.label(f"<b>{style.esc(token)}</b>", prob, title_size=15,
                                                                   sub_size=9),
                     tooltip=f"step {t}: most likely next token {token!r} ({prob})")
        if t in self.run.matches:  # the prediction is the next token read: the lecture's green
            attrs.update(color=MATCH, penwidth="2.2")
        return attrs

    # -- the sequence: inputs and layers --------------------------------------------
    def stack(self, stack: Stack, plan: Plan, prefix: str, outputs: bool = True) -> tuple[int, dict[int, list[str]]]:
        """Draw the inputs and the layers; return the next free rank and, per step, the nodes
        handing that step's outputs up. Without `outputs` (an encoder, summed up by C) the top
        layer's directions are not merged."""
        below = {t: [self.node(0, f"{prefix}in_{t}", self.input_end(stack.inputs, t), f"{prefix}t{t}")]
                 for t in plan.shown}
        rank = 1
        for i, layer in enumerate(stack.layers):
            lid = f"{prefix}L{i}"
            what = f"layer {i + 1}" if len(stack.layers) > 1 else ("encoder" if prefix else "")
            if not layer.uses[0].cell.states:  # stateless: one thin box per step, nothing between steps
                below = self.thin_row(rank, lid, layer.uses[0].cell, plan, below, prefix, what)
                rank += 1
                continue
            rows = []
            for use in layer.uses:
                direction = "reverse" if use.reverse else ("forward" if len(layer.uses) > 1 else "")
                rows.append(self.cell_row(rank, lid + ("r" if use.reverse else ""), use, plan, below, prefix,
                                          ", ".join(w for w in (what, direction) if w), bypass=bool(rows)))
                rank += 1
            if len(rows) == 2:
                for t in plan.shown:  # the reverse row right above the forward one, step over step
                    self.edge(f"{rows[0]}_{t}", f"{rows[1]}_{t}", style="invis", weight="20")
            below = {t: [f"{row}_{t}" for row in rows] for t in plan.shown}
            if len(rows) == 2 and layer.merge in MERGE_WORDS and (outputs or layer is not stack.layers[-1]):
                below = self.merge_row(rank, f"{lid}m", layer.merge, plan, below, prefix, what)
                rank += 1
        return rank, below

    def thin_row(self, rank, row, cell, plan, below, prefix, what) -> dict[int, list[str]]:
        for t in plan.shown:
            nid = self.node(rank, f"{row}_{t}", dict(THIN, label=f"<<b>{style.esc(cell.name)}</b>>",
                                                     tooltip=f"{what or cell.name}: no state, step {t}"),
                            f"{prefix}t{t}")
            self._feed(below[t], nid)
        return {t: [f"{row}_{t}"] for t in plan.shown}

    def cell_row(self, rank, row, use: CellUse, plan, below, prefix, what, bypass: bool) -> str:
        """A row of boxes and its state edges; `bypass`: its inputs pass the row below it."""
        for t in plan.shown:
            tip = f"{what or 'the scan'}: {use.cell.name} at step {t}"
            name = f"← {use.cell.name}" if use.reverse else (f"{use.cell.name} →" if "forward" in what else None)
            nid = self.node(rank, f"{row}_{t}", self.box(use.cell, tip, REVERSE if use.reverse else CELL, name),
                            f"{prefix}t{t}")
            self._feed(below[t], nid, BYPASS_EDGE if bypass else DATA_EDGE)
        self.state_row(rank, row, use.cell, plan, use.reverse, what)
        return row

    def merge_row(self, rank, row, merge, plan, below, prefix, what) -> dict[int, list[str]]:
        """Both directions joined at every step; the forward row's edge passes the reverse box."""
        for t in plan.shown:
            nid = self.node(rank, f"{row}_{t}", dict(MERGE, label=MERGE_WORDS[merge],
                                                     tooltip=f"{what}: {merge} of both directions"), f"{prefix}t{t}")
            forward, reverse = below[t]
            self.edge(forward, nid, **BYPASS_EDGE)
            self.edge(reverse, nid, **DATA_EDGE)
        return {t: [f"{row}_{t}"] for t in plan.shown}

    def _feed(self, srcs: list[str], dst: str, attrs: dict = DATA_EDGE) -> None:
        for src in srcs:
            self.edge(src, dst, **attrs)

    def state_row(self, rank: int, row: str, cell: CellGraph, plan: Plan, reverse: bool, what: str,
                  first: str | None = None, label: str = "") -> None:
        """The state edges along a row, through a "…" where steps are elided. The row starts
        from `first` (a node already drawn) or from a new initial-state node: on the left of a
        forward row, on the right of a reverse one, whose edges point left. `label` (HTML) goes
        on the edge out of `first`."""
        names = ", ".join(cell.states)
        self.chained.add(rank)
        if first is None:
            inits = {f"{s.init:g}" if isinstance(s.init, (int, float)) else str(s.init) for s in cell.states.values()}
            init = "initial " + (inits.pop() if len(inits) == 1 else "values")
            first = self.node(rank, f"{row}_init", dict(
                style.KIND_STYLE["state"], label=style.label(f"<b>{style.esc(names)}</b>",
                                                             " · ".join(w for w in (what, state_sizes(cell), init)
                                                                        if w),
                                                             sub_size=9),
                tooltip=f"initial {names}" + (f" of {what}" if what else "")), first=not reverse)
        line = []
        for t in plan.shown:
            if t > 0 and t - 1 not in plan.shown:
                line.append(self.node(rank, f"{row}_skip{t}", dict(style.KIND_STYLE["ellipsis"], label=style.ELLIPSIS,
                                                                    tooltip="steps not drawn")))
            line.append(f"{row}_{t}")
        line = [*line, first] if reverse else [first, *line]
        for a, b in zip(line, line[1:]):
            tip = f"{names}{f' ({what})' if what else ''}, to the {'previous' if reverse else 'next'} step"
            if first in (a, b):
                tip = f"the initial {names}" + (f" of the {what}" if what else "")
            attrs = dict(STATE_EDGE, dir="back") if reverse else dict(STATE_EDGE)
            if label and a == first:
                attrs.update(label=style.edge_label([label]), fontcolor="#b35c00", fontsize="11")
            self.edge(a, b, tooltip=tip, **attrs)

    # -- the top: outputs or the head -----------------------------------------------
    def top(self, model: ModelPlan, plan: Plan, rank: int, below: dict[int, list[str]]) -> None:
        head = model.head
        if head is None:
            for t in plan.shown:
                self._feed(below[t], self.node(rank, f"out_{t}", self.output_end(model.stack.outputs, t), f"t{t}"))
            return
        last = plan.steps - 1
        for t in plan.shown if head.at == "every_step" else [last]:
            cell = head.use.cell
            nid = self.node(rank, f"head_{t}", self.box(cell, f"head at step {t}", HEAD, "head"), f"t{t}")
            self._feed(below[t], nid)
            out = self.node(rank + 1, f"out_{t}", self.output_end(cell.outputs(), t), f"t{t}")
            self.edge(nid, out, **DATA_EDGE)

    # -- encoder-decoder and generation ---------------------------------------------
    def decoder(self, model: ModelPlan, plan: Plan, rank: int, enc_plan: Plan, start: str | None) -> None:
        """The decoder's row at `rank` (the encoder's top row), started by C or by the init
        box, its inputs on the input row and its head above."""
        dec = model.decoder
        cell = dec.use.cell
        first, label = None, ""
        if model.stack is not None:  # C: the top layer's final states
            first, label = self.summary(model.stack, enc_plan, rank), style.esc(", ".join(cell.states))
        if isinstance(dec.init, CellUse):
            first, label = self.bridge(dec.init, cell, rank, first)
        elif dec.init == "zeros":
            first, label = None, ""
        for t in plan.shown:
            self.decoder_step(dec, rank, t, start)
            if t - 1 in plan.shown and dec.feed == "previous_output":
                self.edge(f"dec_in_{t}", f"dec_out_{t - 1}", tooltip=f"ŷ at step {t - 1} is the input of step {t}",
                          **FEEDBACK_EDGE)
        for a, b in zip(plan.shown, plan.shown[1:]):  # the inputs in time order (no edge between them says so)
            self.edge(f"dec_in_{a}", f"dec_in_{b}", style="invis")
        self.state_row(rank, "dec", cell, plan, False, "decoder", first=first, label=label)

    def attention(self, dec, plan: Plan, rank: int, enc_plan: Plan, below: dict[int, list[str]]) -> None:
        """The decoder's memory: the encoder's top outputs at every source step, read by every decoder step
        through its attention (teal edges)."""
        names = ", ".join(dict.fromkeys(dec.memory.values()))
        nid = self.node(rank + 1, "memory", dict(MEMORY, label=style.label(f"<b>{style.esc(names)}</b>",
                                                                            "every source step · attention",
                                                                            sub_size=9),
                                                 tooltip=f"attention memory: the encoder's {names} at every source "
                                                         f"step, masked by the source lengths"))
        for t in enc_plan.shown:
            for src in below[t]:
                self.edge(src, nid, **MEMORY_IN_EDGE)
        for i, t in enumerate(plan.shown):
            self.edge(nid, f"dec_{t}", **dict(ATTEND_EDGE, **({"xlabel": "attend"} if i == 0 else {})))

    def decoder_step(self, dec, rank: int, t: int, start: str | None) -> None:
        """One column of the decoder: its input, the cell, the head and the token chosen."""
        cell, column = dec.use.cell, f"dec{t}"
        nid = self.node(rank, f"dec_{t}", self.box(cell, f"decoder: {cell.name} at step {t}"), column)
        self.edge(self.node(0, f"dec_in_{t}", self._dec_input(dec, t, start), column), nid, **DATA_EDGE)
        head = self.node(rank + 1, f"dec_head_{t}", self.box(dec.head.use.cell, f"head at step {t}", HEAD, "head"),
                         column)
        self.edge(nid, head, **DATA_EDGE)
        word = "argmax" if dec.sample == "greedy" else "sampled"
        out = self.ends(["ŷ"], t, "output", f"{word} of p" if dec.feed != "target" else "",
                        f"step {t}: the distribution p and the token chosen from it")
        self.edge(head, self.node(rank + 2, f"dec_out_{t}", out, column), **DATA_EDGE)

    def _dec_input(self, dec, t: int, start: str | None) -> dict:
        if t == 0:
            text = start or "start"
            return dict(style.KIND_STYLE["input"], label=style.label(f"<b>{style.esc(text)}</b>", "start token",
                                                                     sub_size=9), tooltip="the start token")
        if dec.feed == "target":
            return self.ends([dec.target], t - 1, "input", "teacher forcing", f"target token {t - 1}")
        return self.ends(["ŷ"], t - 1, "input", "", f"the token chosen at step {t - 1}")

    def summary(self, stack: Stack, plan: Plan, rank: int) -> str:
        """The node C after the encoder, fed by its top layer's final states."""
        top = stack.layers[-1]
        names = ", ".join(stack.final_states())
        nid = self.node(rank, "C", dict(SUMMARY, label=style.label("<b>C</b>", f"final {names}", title_size=18,
                                                                   sub_size=9),
                                        tooltip=f"the summary C: the encoder's final {names}"))
        row, first, last = f"enc_L{len(stack.layers) - 1}", plan.shown[0], plan.shown[-1]
        for use in top.uses:
            self.edge(f"{row}r_{first}" if use.reverse else f"{row}_{last}", nid, **STATE_EDGE)
        if top.uses[-1].reverse:  # C shares the reverse row: keep it right of that row's start
            self.edge(f"{row}r_init", nid, style="invis")
        return nid

    def bridge(self, use: CellUse, cell: CellGraph, rank: int, summary: str | None) -> tuple[str, str]:
        """The init box: each state's first value from C or the context; the rest keep their init."""
        sets = list(use.cell.outputs())
        rest = [n for n in cell.states if n not in sets]
        note = ", ".join(f"{n} = {cell.states[n].init:g}" if isinstance(cell.states[n].init, (int, float))
                         else f"{n}: {cell.states[n].init}" for n in rest)
        tip = f"init: sets {', '.join(sets)}" + (f"; {note}" if note else "")
        nid = self.node(rank, "init", self.box(use.cell, tip, HEAD, "init"))
        read = [name for name, i in use.cell.by_name("input").items() if use.cell.users(i)]
        if summary and any(name.startswith("encoder.") for name in read):
            self.edge(summary, nid, **STATE_EDGE)
        for name in read:
            if not name.startswith("encoder."):
                ctx = self.node(0, f"ctx_{name}", dict(style.KIND_STYLE["input"], fillcolor="#e7f5ff", color="#1971c2",
                                                       label=style.label(f"<b>{style.esc(name)}</b>", "context",
                                                                         sub_size=9),
                                                       tooltip=f"context input {name}"))
                self.edge(ctx, nid, **DATA_EDGE)
        return nid, style.esc(", ".join(sets)) + (f"<br/>{style.esc(note)}" if note else "")

    # -- the caption ----------------------------------------------------------------
    def caption(self, head: str, shown: list[tuple[str, Plan]]) -> str:
        notes = [note for what, plan in shown for note in plan.gap_notes(what)]
        notes.append(_weights_note(self.model))
        text = f"{head} ({'; '.join(notes)})"
        extra = ""
        if self.model.decoder is not None and self.model.decoder.feed == "previous_output":
            extra = "dashed: the token chosen at each step is the next step's input"
        if self.model.decoder is not None and self.model.decoder.memory:
            extra = "; ".join(w for w in (extra, "teal: every decoder step attends over the encoder's outputs at "
                                                 "every source step (masked by the source lengths)") if w)
        if self.run is not None:
            extra = "; ".join(w for w in (extra, f"above each step: the most likely next token and its probability "
                                                 f"({self.run.weights}); green: it is the next token read") if w)
        kinds = ["input", "state", "output"]
        row = style.legend(self.colours, kinds, extra=extra, delay=False)
        head = style.title(text, style.legend_width(self.colours, kinds, False))
        return (f'<<table border="0" cellspacing="0"><tr><td align="left" balign="left">{head}</td></tr>'
                f"<tr><td>{row}</td></tr></table>>")


def _summary(model: ModelPlan, name: str, plan: Plan) -> str:
    """What the picture shows, in words: the caption's first line."""
    dec = model.decoder
    if model.kind == "generate":
        source = " and ".join(model.context) or "zeros"
        return f"{name}: one-to-many, {source} → init → {dec.use.cell.name} writing up to {dec.steps} tokens"
    words = _stack_words(model.stack)
    if model.kind == "seq2seq":
        return f"{name}: encoder–decoder, {words} over {plan.steps} steps → C → {dec.use.cell.name} " \
               f"writing up to {dec.steps} tokens"
    if model.head is not None:
        words += ", a head after the last step (many-to-one)" if model.head.at == "last" else \
            ", a head after every step (many-to-many)"
    return f"{name}: {words}, unrolled over {plan.steps} steps"


def _stack_words(stack: Stack) -> str:
    """embedding → 2 stacked lstm layers; 2 stacked bidirectional gru layers (concat)."""
    kinds = []
    for layer in stack.layers:
        cell = layer.uses[0].cell
        if len(layer.uses) == 2:
            kinds.append((f"bidirectional {cell.name}", f" ({layer.merge})"))
        else:
            kinds.append(("reverse " * layer.uses[0].reverse + cell.name, ""))
    groups = [(kind, len(list(same))) for kind, same in groupby(kinds)]
    return " → ".join(f"{n} stacked {w} layers{merge}" if n > 1 else f"{w}{merge}" for (w, merge), n in groups)


def _weights_note(model: ModelPlan) -> str:
    rows = sum(len(layer.uses) for layer in model.stack.layers if layer.uses[0].cell.states) if model.stack else 0
    if model.kind == "seq2seq":  # encoder and decoder share one row: say whose weights differ
        encoder = "the encoder" if rows == 1 else "each encoder row"
        return f"{encoder} and the decoder have their own weights, the same at every step"
    rows += model.decoder is not None
    return "each row its own weights, the same at every step" if rows > 1 else "the same weights at every step"


def state_sizes(cell: CellGraph) -> str:
    """A row's state widths, for the initial-state box: `size 32` when every state has one shape, else each
    state's (`h 16, c 32`); a matrix state is `8×4`."""
    shapes = {name: "×".join(str(n) for n in s.shape) or "1" for name, s in cell.states.items()}
    if len(set(shapes.values())) == 1:
        return f"size {next(iter(shapes.values()))}"
    return ", ".join(f"{name} {shape}" for name, shape in shapes.items())
