"""`rnncompile export --backend c`: a whole model as one standalone C99 file, rendered from its flow.

The file holds every cell's C (cell.py), each use's weights as `static const`
data, and the model's API, written by walking `program.flow` (rnncompile/flow.py)
in order, one renderer per flow op (RENDERERS; UNSUPPORTED says which ops C does
not render, and why):

    <m>_state      every use's state, keyed as the weight files key it
    <m>_scratch    working memory for one call (sized by the spec's dims and <M>_MAX_STEPS)
    <m>_init       the start state: each state's own init (a constant, a param or a context input)
    <m>_run        one sequence: the state moves on, the outputs are written
    <m>_step       one step (no reverse scan, no decoder, no cell reading `t`): a run of one step

A run holds one sequence, so `steps` is its length: a scan runs `steps` steps
(the flow's lengths need no mask) and take_last reads step `steps - 1`. A flow
bundle is, in C, one pointer per member into the run's arguments, the state or
the scratch (Bundle); a bundle the model returns, or that only starts a state, is
written there directly. The start-state rule (a state the caller gives wins,
then the `over` bundle, then the cell's own init) is the start_state renderer's:
a state the caller may give is the one they pass to <m>_run (<m>_init sets its
own init); any other is set in <m>_run, from `over` where it names the state.
The decode op (decode.py) decodes one sequence greedily; sampling and teacher
forcing are not written in C (the file and the `export` note say so). Nothing is
allocated; the caller owns the state and the scratch. The text depends only on
the spec, the dims and the weights: exporting twice gives the same bytes. A
flow with an op C does not render (a tree fold) gets its cells, each with its
scan, and no `_run`.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import numpy as np

import rnncompile
from rnncompile import flow as F
from rnncompile.errors import UsageError
from rnncompile.plan import CellUse

from . import INCLUDES
from .bundle import Bundle
from .cell import IND, CellCode, CellWriter, call_lines
from .consts import const_values, pack
from .decode import DECODE_NAMES, DecodeWriter
from .emitters import CTYPES, prelude
from .names import Namer, comment, comment_text, identifier

# flow ops C does not render: the reason, as it reads after "<model> is "
UNSUPPORTED = {"tree_fold": "a tree fold: the schedule over each tree's nodes is not written in C"}
DECODE_NOTE = ("note: {N}_run decodes greedily (the first most likely token at each step); sampling and "
               "teacher forcing are not written in C (use --backend python)")
WIDTH = 110
BUFFER_PREFIX = {"steps": "layer", "last": "last", "final": "summary"}  # a merge's scratch, by what it merges
MERGED_NOTE = {"steps": "{o} of both directions, merged", "last": "{o} after the last step, both directions merged",
               "final": "the encoder's final {o}, both directions merged"}


@dataclass
class Export:
    source: str
    note: str = ""  # what was not exported, for the command line to say
    interface: dict = field(default_factory=dict)  # run's arguments in order: inputs, context, outputs, state


def _wrap(items: list[str], indent: str, width: int = WIDTH) -> list[str]:
    lines, line = [], indent
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += piece + " "
    return lines + [line.rstrip()] if line.strip() else lines


def _const_text(cell, nid, depth: int = 0) -> str:
    """A param-only node as an expression of the params it reads (for the comment over its data)."""
    node = cell.node(nid)
    if node.op == "param":
        return node.attr("name")
    if node.op == "const":
        value = node.attr("value")
        return repr(float(value)) if not isinstance(value, (list, tuple)) else "[...]"
    if depth > 4:
        return "..."
    args = [_const_text(cell, a, depth + 1) for a in cell.args(nid)]
    attrs = dict(node.attrs)
    if node.op == "slice":
        axis = attrs.get("axis", 0) % len(cell.node(cell.args(nid)[0]).shape)
        bounds = f"{'' if attrs.get('start') is None else attrs['start']}:{'' if attrs.get('stop') is None else attrs['stop']}"
        return f"{args[0]}[{':, ' * axis}{bounds}]"
    if node.op == "transpose":
        return f"{args[0]}.T"
    if node.op == "index":
        return f"{args[0]}[{attrs['i']}]"
    shown = [f"{k}={v}" for k, v in node.attrs if k not in ("shape", "name") and not (node.op == "concat" and v == -1)]
    return f"{node.op}({', '.join(args + shown)})"


def _reads(op) -> list[F.Read]:
    """The bundle members (or whole bundles) a flow op reads at run time."""
    if isinstance(op, F.Scan):
        return [r for _, r in op.feed]
    if isinstance(op, F.Apply):
        return list(op.feed)
    if isinstance(op, F.Decode):
        return [r for _, r in op.memory]
    return []


def _where(path: tuple) -> str:
    return ".".join(str(p) for p in path)


class ModelWriter:
    def __init__(self, program, params: dict, dtype: str, source_name: str, module_name: str, weights_from: str):
        self.program, self.plan, self.flow, self.params = program, program.plan, program.flow, params
        self.dtype, self.c = np.dtype(dtype), CTYPES[np.dtype(dtype).name]
        self.N = identifier(module_name or program.name)
        self.M = self.N.upper()
        self.source_name, self.weights_from = source_name or str(program.checked.file), weights_from
        self.missing = [(op, UNSUPPORTED[op.op]) for op in self.flow if op.op in UNSUPPORTED]
        self.runs = not self.missing  # the file has a <m>_run
        decodes = self.flow.of("decode")
        self.decode_op = decodes[0] if decodes else None  # greedy decoding, written by decode.py
        self.codes: dict[int, CellCode] = {}
        self.fns: set[str] = set()
        for use in self.plan.uses():
            self.code(use)
        self.buffers: list[tuple[str, str, str]] = []  # scratch members besides the cells' values: name, size, note
        self.scratch_names = Namer({f"values_{c.fn}" for c in self.codes.values()})
        self.state = self._state_members() if self.runs else {}
        self.layers = self._layers()

    # -- cells and their weights -------------------------------------------------------------
    def code(self, use: CellUse) -> CellCode:
        graph = self.program.cell(use)
        if id(graph) not in self.codes:
            if any(0 in graph.node(n).shape for n in graph.g.nodes):
                raise UsageError(f"cell `{graph.name}` takes any number of children (children.* is [K, ...]); "
                                 "exported C needs fixed sizes: give the cell a fixed `arity`, or export with "
                                 "--backend python")
            fn = f"{self.N}_{identifier(graph.name)}"
            if fn in self.fns:  # the same cell lowered for other dims (a deeper layer)
                where = use.prefix.replace(".forward.", ".").replace(".reverse.", ".").strip(".")
                fn = f"{fn}_{identifier(where)}"
            self.fns.add(fn)
            self.codes[id(graph)] = CellWriter(graph, fn, self.c).write(static_scan=self.runs)
        return self.codes[id(graph)]

    def weights_name(self, use: CellUse) -> str:
        return f"{self.N}_{identifier(use.prefix) if use.prefix else ''}weights"

    def weights(self, use: CellUse) -> str:
        graph, code = self.program.cell(use), self.code(use)
        local = {name: self.params[use.key(name)] for name in graph.params}
        k = pack(code, const_values(graph, local, self.dtype), self.dtype)
        head = [comment(f"The param-only values of `{use.prefix.rstrip('.') or graph.name}` (cell `{graph.name}`)."),
                f"{'static ' if self.runs else ''}const {code.fn}_consts {self.weights_name(use)} = {{"]
        if not code.consts:
            return "\n".join(head + [f"{IND}0", "};"])
        body = []
        for i, f in enumerate(code.consts):
            what = _const_text(graph, f.nid) + (" transposed" if f.transposed else "")
            note = f"{f.name} {list(f.shape)}" + ("" if what == f.name else f" = {what}")
            if len(note) > WIDTH - 10:
                note = note[:WIDTH - 14] + " ..."
            numbers = [self._number(x) for x in k[f.offset:f.offset + f.length]]
            body += [f"{IND}{comment(note)}", f"{IND}{{"] + _wrap(numbers, IND * 2) + [f"{IND}}}" + ("," if i < len(code.consts) - 1 else "")]
        return "\n".join(head + body + ["};"])

    def _number(self, x) -> str:
        text = self.c.lit(x)
        return text[1:-1] if text.startswith("(") else text

    def size(self, use: CellUse, output: str) -> int:
        """Numbers in one step of a cell use's output."""
        code = self.code(use)
        return math.prod(code.shapes[self.program.cell(use).outputs()[output]])

    # -- the model's state and scratch -----------------------------------------------------------
    def _state_members(self) -> dict[str, tuple[str, CellUse, str]]:
        """weight-style key -> (member, use, state name): every state a start_state op starts, in flow order."""
        names, out = Namer(), {}
        for op in self.flow.of("start_state"):
            for s in op.use.cell.states:
                out[op.use.key(s)] = (names.fresh(op.use.key(s)), op.use, s)
        return out

    def _layers(self) -> dict[tuple, tuple[int, int, str | None]]:
        """The scans of one spec path (a layer: one or two directions): path -> (its index, its scans, the merge
        of their outputs), for the comment over each layer's scans."""
        merges = {op.path[:-1]: op.how for op in self.flow.of("merge") if op.path[-1:] == ("merge",)}
        out: dict = {}
        for op in self.flow.of("scan"):
            i, n, _ = out.get(op.path, (len(out), 0, None))
            out[op.path] = (i, n + 1, merges.get(op.path))
        return out

    def buffer(self, want: str, size: int, per_step: bool, note: str) -> str:
        name = self.scratch_names.fresh(want)
        self.buffers.append((name, f"{self.M}_MAX_STEPS * {size}" if per_step else str(size), note))
        return f"scratch->{name}"

    def state_of(self, use: CellUse) -> dict[str, tuple[str, int]]:
        """The state members of one use: name -> (pointer, numbers)."""
        return {s: (f"state->{self.state[use.key(s)][0]}", math.prod(info.shape)) for s, info in use.cell.states.items()}

    # -- where a bundle is written -----------------------------------------------------------------
    def destination(self, bundle: str, member: str, size: int, per_step: bool) -> str | None:
        """Where a member of `bundle` is written when not in the scratch: the model's output argument when it is
        what the model returns, or the state it starts when only a start state not given by the caller reads it."""
        if bundle == self.output_op.outputs and not self.output_op.tokens:
            return self.out_arg(member, size, per_step)
        starts = [op for op in self.flow.of("start_state") if op.over == bundle and not op.given]
        readers = [op for op in self.flow if op.op != "output" and bundle in op.reads()]
        if len(starts) == 1 and len(readers) == 1 and not per_step:
            states = self.state_of(starts[0].use)
            if member in states and states[member][1] == size:
                return states[member][0]
        return None

    def out_arg(self, name: str, size: int, per_step: bool) -> str:
        if name not in self.outs:
            self.outs[name] = (self.args.fresh(name), size, per_step)
        return self.outs[name][0]

    def into(self, bundle: str, member: str, size: int, per_step: bool, want: str, note: str) -> str:
        """The pointer a member of `bundle` is written to: its destination, else a new scratch buffer."""
        return self.destination(bundle, member, size, per_step) or self.buffer(want, size, per_step, note)

    # -- the flow's ops, one renderer each (RENDERERS below names them) --------------------------------
    def start_state(self, op: F.StartState) -> None:
        """A state the caller may give is the one passed to <m>_run (<m>_init sets it to its cell's own init);
        any other starts here: from `over` where that names the state, else from its own init."""
        states = self.state_of(op.use)
        self.env[op.out] = Bundle(states, False, "state", op.use.cell.name)
        if op.given:
            if op.over is not None:
                raise UsageError(f"{_where(op.path)}: a start state that the caller may give and that otherwise "
                                 f"comes from `{op.over}` is not written in C; export with --backend python")
            return
        over = self.env[op.over] if op.over is not None else Bundle({}, False)
        how = ("encoder" if over.role == "final" else f"its bridge `{over.cell}`" if op.over is not None else
               "zeros" if all(not isinstance(i.init, str) and float(i.init) == 0 for i in op.use.cell.states.values())
               else "its own init")
        where = op.use.prefix.rstrip(".") or op.use.cell.name
        self.lines.append(comment(f"{where}: cell `{op.use.cell.name}`, starting from {how}"))
        for s, (p, size) in states.items():
            if s not in over.members:
                self.lines.append(self.start(op.use.key(s), self.ctx_names)[0])
            elif over.members[s][0] != p:
                what = f"C: the encoder's {s}" if over.role == "final" else f"{op.over}.{s}"
                self.lines.append(f"memcpy({p}, {over.members[s][0]}, {size} * sizeof({self.c.name}));  "
                                  + comment(what))

    def scan(self, op: F.Scan) -> None:
        use, code, T = op.use, self.code(op.use), self.c.name
        index, count, how = self.layers[op.path]
        if op is self._first_scan(op.path):
            scans = [s for s in self.flow.of("scan") if s.path == op.path]
            if len({s.use.cell.name for s in scans}) > 1:  # a cell per direction
                cells = ", ".join(f"cell `{s.use.cell.name}` {'reverse' if s.reverse else 'forward'}" for s in scans)
                what = f"{cells}, merged by {how}"
            else:
                dirs = "both directions, merged by " + how if count > 1 else ("reverse" if op.reverse else "forward")
                what = f"cell `{use.cell.name}`, {dirs}"
            self.lines.append(comment(f"layer {index}: {what}"))
        feed = dict(op.feed)
        ins = []
        for name in code.inputs:
            got = self.env[feed[name].bundle]
            if not got.per_step:
                raise UsageError(f"{_where(op.path)}: cell `{use.cell.name}` reads `{feed[name]}` at every step, "
                                 "which holds one value per sequence; exported C cannot scan it")
            ins.append(got.members[feed[name].member][0])
        states = self.state_of(use)
        start = self.env[op.state].members
        for s, (p, size) in states.items():  # the scan moves its use's state on in place
            if start[s][0] != p:
                self.lines.append(f"memcpy({p}, {start[s][0]}, {size} * sizeof({T}));")
        dests = {}
        for o in code.outputs:
            size = self.size(use, o)
            dests[o] = (self.into(op.out, o, size, True, f"{use.prefix}{o}", f"{use.prefix}{o} at every step"), size)
        call = ([f"&{self.weights_name(use)}", "1", "steps"] + ins + [states[s][0] for s in code.states]
                + ["NULL", str(int(op.reverse))] + [dests[o][0] for o in code.outputs]
                + [f"&scratch->values_{code.fn}", "NULL"])
        self.lines += self._call(f"{code.fn}_scan", call)
        self.env[op.out] = Bundle(dests, True, "steps", use.cell.name)
        self.env[op.final] = Bundle(states, False, "final", use.cell.name)

    def _first_scan(self, path: tuple) -> F.Scan:
        return next(op for op in self.flow.of("scan") if op.path == path)

    def merge(self, op: F.Merge) -> None:
        a, b, T = self.env[op.a], self.env[op.b], self.c.name
        every = a.per_step
        if op.how == "separate":
            merged = {f"{o}_forward": a.members[o] for o in a.members} | {f"{o}_reverse": b.members[o] for o in b.members}
            out = {}
            for n, (p, s) in merged.items():
                dst = self.destination(op.out, n, s, every)
                if dst is not None:
                    count = f"(size_t)steps * {s}" if every else str(s)
                    self.lines.append(f"memcpy({dst}, {p}, {count} * sizeof({T}));")
                out[n] = (dst or p, s)
            self.env[op.out] = Bundle(out, every, a.role)
            return
        out = {}
        for o, (f, size) in a.members.items():
            r, rsize = b.members[o]  # the directions may run different cells: a concat's halves may differ
            width = size + rsize if op.how == "concat" else size
            dst = self.into(op.out, o, width, every, f"{BUFFER_PREFIX.get(a.role, 'merged')}_{o}",
                            MERGED_NOTE.get(a.role, "{o} of both directions, merged").format(o=o))
            if op.how == "concat" and every:
                self.lines += ["for (int t = 0; t < steps; ++t) {",
                               f"{IND}memcpy({dst} + t * {width}, {f} + t * {size}, {size} * sizeof({T}));",
                               f"{IND}memcpy({dst} + t * {width} + {size}, {r} + t * {rsize}, {rsize} * sizeof({T}));",
                               "}"]
            elif op.how == "concat":
                self.lines += [f"memcpy({dst}, {f}, {size} * sizeof({T}));",
                               f"memcpy({dst} + {size}, {r}, {rsize} * sizeof({T}));"]
            else:
                value = f"{f}[i] + {r}[i]" if op.how == "sum" else f"({f}[i] + {r}[i]) * {self.c.lit(0.5)}"
                loop = f"for (long i = 0; i < (long)steps * {size}; ++i)" if every else f"for (int i = 0; i < {size}; ++i)"
                self.lines.append(f"{loop} {dst}[i] = {value};")
            out[o] = (dst, width)
        self.env[op.out] = Bundle(out, every, a.role)

    def take_last(self, op: F.TakeLast) -> None:
        """The run's sequence ends at step `steps - 1` (a reverse scan's at step 0)."""
        src = self.env[op.src]
        last = {o: (p if op.reverse else f"{p} + (steps - 1) * {size}", size) for o, (p, size) in src.members.items()}
        self.env[op.out] = Bundle(last, False, "last", src.cell)

    def apply(self, op: F.Apply) -> None:
        use, code = op.use, self.code(op.use)
        every = op.at == "every_step"
        seen = [self.env[r.bundle] for r in op.feed]
        lead = next((b.role for b, r in zip(seen, op.feed) if r.bundle != F.CONTEXT), "")
        where = use.prefix.rstrip(".") or use.cell.name
        at = "at every step" if every else "at last" if lead == "last" else "once per sequence"
        lines = [comment(f"{where}: cell `{use.cell.name}`, {at}")]
        src = {}
        for r, got in zip(op.feed, seen):
            if got.per_step and not every:
                raise UsageError(f"{_where(op.path)}: cell `{use.cell.name}` runs once per sequence but reads "
                                 f"`{r}` at every step; exported C cannot apply it")
            src.update({r.rename + n: (f"{p} + t * {size}" if got.per_step else p) for n, (p, size) in got.members.items()})
        dests = {}
        for o in code.outputs:
            size = self.size(use, o)
            dests[o] = (self.into(op.out, o, size, every, f"{use.prefix}{o}",
                                  f"{use.prefix}{o}" + (" at every step" if every else "")), size)
        call = ([f"&{self.weights_name(use)}", "1", "1"] + [src[n] for n in code.inputs] + ["NULL", "0"]
                + [f"{p} + t * {size}" if every else p for p, size in (dests[o] for o in code.outputs)]
                + [f"&scratch->values_{code.fn}", "NULL"])
        if every:
            lines += ["for (int t = 0; t < steps; ++t)"] + [IND + x for x in self._call(f"{code.fn}_scan", call)]
        else:
            lines += self._call(f"{code.fn}_scan", call)
        self.lines += lines
        self.env[op.out] = Bundle(dests, every, "steps" if every else "once", use.cell.name)

    def decode(self, op: F.Decode) -> None:
        DecodeWriter(self, op).render()

    def output(self, op: F.Output) -> None:
        """The model's outputs are its output arguments (its producers wrote them there), its final states the
        state the caller passed."""
        T = self.c.name
        if not op.tokens:
            got = self.env[op.outputs]
            for n, (p, size) in got.members.items():
                dst = self.out_arg(n, size, got.per_step)
                if dst != p:  # a bundle no producer could write to the outputs (the model's own input)
                    count = f"(size_t)steps * {size}" if got.per_step else str(size)
                    self.lines.append(f"memcpy({dst}, {p}, {count} * sizeof({T}));")
        for use, bundle in op.finals:
            for s, (p, size) in self.state_of(use).items():
                if self.env[bundle].members[s][0] != p:
                    self.lines.append(f"memcpy({p}, {self.env[bundle].members[s][0]}, {size} * sizeof({T}));")

    # -- run --------------------------------------------------------------------------------
    def _inputs_read(self) -> list[str]:
        read = set()
        for op in self.flow:
            for r in _reads(op):
                if r.bundle == F.INPUT:
                    read |= {r.member} if r.member is not None else set(self.flow.inputs)
        names = [n for n in self.flow.inputs if n in read]
        axes = getattr(self.plan, "time_dims", {})
        if len({str(axes.get(n, self.plan.time_dim)) for n in names}) > 1:
            raise UsageError(f"inputs {', '.join(names)} have their own time axes; an exported C run takes one "
                             "sequence length (`steps`): export with --backend python")
        return names

    def _context_read(self) -> set[str]:
        """The context inputs <m>_run reads: those the applied cells and a decoder's head read, and those a state
        that starts in the run (not given by the caller) starts from."""
        read = set()
        for op in self.flow:
            if isinstance(op, F.Apply):
                read |= {n[len(r.rename):] for r in op.feed if r.bundle == F.CONTEXT for n in op.use.cell.inputs
                         if n.startswith(r.rename)}
            elif isinstance(op, F.Decode):
                read |= set(op.decoder.head.use.cell.inputs)
            elif isinstance(op, F.StartState) and not op.given:
                read |= {i.init for i in op.use.cell.states.values() if i.from_context}
        return read & set(self.flow.context)

    def max_steps(self, names: list[str]) -> int:
        steps_of = getattr(self.plan, "steps_of", None)
        if steps_of is not None and names:
            return steps_of(self.program.dims)[names[0]]
        return self.program.checked.steps(None)

    def run(self) -> tuple[list[str], dict]:
        """<m>_run: every flow op rendered in order (the body first: it decides the outputs and the scratch)."""
        T, flow = self.c.name, self.flow
        self.output_op = flow.output
        self.args = Namer({"state", "steps", "scratch", "t", "i"} | (DECODE_NAMES if self.decode_op else set()))
        self.ins = {n: (self.args.fresh(n), math.prod(flow.inputs[n]), self.plan.input_dtypes.get(n) == "token")
                    for n in self._inputs_read()}
        read = self._context_read()
        self.ctx = {n: (self.args.fresh(n), math.prod(s)) for n, s in flow.context.items() if n in read}
        self.ctx_names = {n: p for n, (p, _) in self.ctx.items()}
        self.outs: dict[str, tuple[str, int, bool]] = {}
        self.decoding: dict = {}  # the decode op's arguments and sizes (decode.py)
        self.env = {F.INPUT: Bundle({n: (p, size) for n, (p, size, _) in self.ins.items()}, True, "input"),
                    F.CONTEXT: Bundle({n: (p, size) for n, (p, size) in self.ctx.items()}, False, "context")}
        self.lines = [f"if (steps < 1 || steps > {self.M}_MAX_STEPS) return -1;"] if self.ins else []
        for op in flow:
            RENDERERS[op.op](self, op)
        if not self.state:
            self.lines.insert(0, "(void)state;  /* the model has no state */")
        self.lines.append("return 0;")
        params = ([f"{self.N}_state *state"] + (["int steps"] if self.ins else [])
                  + [f"const {'int32_t' if tok else T} *{p}" for p, _, tok in self.ins.values()]
                  + [f"const {T} *{p}" for p, _ in self.ctx.values()]
                  + ([f"{T} *{p}" for p, _, _ in self.outs.values()] if not self.decoding else self.decoding["params"])
                  + [f"{self.N}_scratch *scratch"])
        face = {"inputs": [(n, size, tok) for n, (_, size, tok) in self.ins.items()],
                "context": [(n, size) for n, (_, size) in self.ctx.items()],
                "outputs": [(n, size, every) for n, (_, size, every) in self.outs.items()],
                "state": self.state_face(),
                "init_context": [(n, math.prod(self.plan.context[n])) for n in self.init_context()]}
        if self.decoding:
            face["decode"] = self.decoding["face"]
        return self._function(f"int {self.N}_run", params, self.lines), face

    def state_face(self) -> list:
        return [(key, math.prod(use.cell.states[s].shape)) for key, (_, use, s) in self.state.items()]

    def _call(self, fn: str, args: list[str]) -> list[str]:
        return call_lines(f"if ({fn}(", args, ")) return 1;", WIDTH)

    def _function(self, head: str, params: list[str], body: list[str]) -> list[str]:
        return call_lines(head + "(", params, ")", WIDTH) + ["{"] + [IND + x for x in body] + ["}"]

    # -- init, step ------------------------------------------------------------------------------
    def init_context(self) -> dict[str, str]:
        """The context inputs a state starts from -> <m>_init's parameter for each."""
        names = Namer({"state", "i"})
        return {n: names.fresh(n) for n in self.plan.context
                if any(u.cell.states[s].from_context and u.cell.states[s].init == n for _, u, s in self.state.values())}

    def init(self) -> tuple[list[str], list[str]]:
        """<m>_init: every state at its cell's own init, and the start values it copies from (params a state
        starts from)."""
        T, ctx = self.c.name, self.init_context()
        data, body = [], []
        for key in self.state:
            line, start = self.start(key, ctx)
            body.append(line)
            data += start
        params = [f"{self.N}_state *state"] + [f"const {T} *{p}" for p in ctx.values()]
        if not body:
            body = ["(void)state;"]
        return self._function(f"void {self.N}_init", params, body), data

    def start(self, key: str, ctx: dict[str, str]) -> tuple[str, list[str]]:
        """The line that sets state `key` to its cell's own init (`ctx`: context input -> the C name it has
        there), and the data it copies from (a param's value), if any."""
        T, (member, use, s) = self.c.name, self.state[key]
        info, size = use.cell.states[s], math.prod(use.cell.states[s].shape)
        if info.from_context:
            return f"memcpy(state->{member}, {ctx[info.init]}, {size} * sizeof({T}));  {comment(info.origin)}", []
        if isinstance(info.init, str):
            name = f"{self.N}_start_{identifier(key)}"
            value = np.broadcast_to(np.asarray(self.params[use.key(info.init)], self.dtype), info.shape).ravel()
            data = [comment(f"the start of state `{key}`: param {use.key(info.init)}"),
                    f"static const {T} {name}[{max(1, size)}] = {{"] + _wrap([self._number(x) for x in value] or ["0"], IND) + ["};"]
            return f"memcpy(state->{member}, {name}, {size} * sizeof({T}));  {comment(info.origin)}", data
        if float(info.init) == 0:
            return f"memset(state->{member}, 0, {size} * sizeof({T}));  {comment(info.origin)}", []
        return (f"for (int i = 0; i < {size}; ++i) state->{member}[i] = {self.c.lit(info.init)};"
                f"  {comment(info.origin)}", [])

    def streams(self) -> bool:
        """A run of one step is one step of a longer sequence: no scan runs in reverse, no decoder restarts, and
        no cell reads the step index or the length (a run of one starts at t = 0)."""
        return (self.decode_op is None and not any(op.reverse for op in self.flow.of("scan"))
                and not any(c.reads_time for c in self.codes.values() if hasattr(c, "reads_time")))

    def step(self, face: dict) -> list[str]:
        T = self.c.name
        names = [n for n, _, _ in face["inputs"]] + [n for n, _ in face["context"]] + [n for n, _, _ in face["outputs"]]
        args = Namer({"state", "steps", "scratch"})
        params = [args.fresh(n) for n in names]
        kinds = ([f"const {'int32_t' if tok else T} *" for _, _, tok in face["inputs"]]
                 + [f"const {T} *"] * len(face["context"]) + [f"{T} *"] * len(face["outputs"]))
        decl = [f"{self.N}_state *state"] + [k + p for k, p in zip(kinds, params)] + [f"{self.N}_scratch *scratch"]
        call = call_lines(f"return {self.N}_run(", ["state", "1"] + params + ["scratch"], ");", WIDTH)
        return self._function(f"int {self.N}_step", decl, call)

    # -- the file ------------------------------------------------------------------------------
    def structs(self) -> list[str]:
        T = self.c.name
        state = [f"{IND}{T} {m}[{max(1, math.prod(u.cell.states[s].shape))}];  "
                 + comment(f"{key} {list(u.cell.states[s].shape)}  {u.cell.states[s].origin}") for key, (m, u, s) in self.state.items()]
        scratch = [f"{IND}{c.fn}_values values_{c.fn};  /* the values of one step of cell `{c.fn}` */"
                   for c in self.codes.values()]
        scratch += [f"{IND}{T} {name}[{size}];  {comment(note)}" for name, size, note in self.buffers]
        return (["/* The state of every layer, keyed as weight files key it. */", "typedef struct {"]
                + (state or [f"{IND}char none;  /* the model has no state */"]) + [f"}} {self.N}_state;", "",
                f"/* Working memory for one call of {self.N}_run (its contents do not outlive the call). */",
                "typedef struct {"] + scratch + [f"}} {self.N}_scratch;"])

    def header(self, face: dict | None) -> str:
        p = self.program
        dims = ", ".join(f"{k}={v}" for k, v in p.dims.items())
        lines = [f"{self.N}.c: C99 generated by rnncompile {rnncompile.__version__} (backend c) from {self.source_name}.",
                 ""]
        if p.spec.description:
            lines += textwrap.wrap(" ".join(p.spec.description.split()), 100) + [""]
        lines += [f"Numbers are {self.c.name} ({self.dtype.name}); dims {dims}; weights: {self.weights_from}.",
                  "No allocation and nothing beyond C99's math.h, stdint.h and string.h (link with -lm).", ""]
        if face is None:
            why = self.missing[0][1]
            cells = ", ".join(f"{c.fn}_scan" for c in self.codes.values())
            return "\n".join(lines + [f"There is no {self.N}_run: {p.name} is {why}. The cells are complete: "
                                      f"{cells}", "(each documented where it is defined), with each use's weights "
                                      f"as {self.N}_<use>weights."])
        if self.decode_op is not None:
            return "\n".join(lines + DecodeWriter(self, self.decode_op).header(face))
        sig = lambda xs: ", ".join(xs)  # noqa: E731
        ins = [n for n, _, _ in face["inputs"]] + [n for n, _ in face["context"]]
        outs = [n for n, _, _ in face["outputs"]]
        shapes = [f"{n} [steps][{s}]" + (" token ids" if tok else "") for n, s, tok in face["inputs"]]
        shapes += [f"{n} [{s}] (one per sequence)" for n, s in face["context"]]
        shapes += [f"{n} [steps][{s}]" if every else f"{n} [{s}]" for n, s, every in face["outputs"]]
        lines += ["Use it from one file with #include \"" + self.N + ".c\", or compile it on its own",
                  f"(cc -std=c99 -O2 -c {self.N}.c) and, in the files that call it:",
                  f"    #define {self.M}_DECLARATIONS_ONLY",
                  f"    #include \"{self.N}.c\"",
                  "",
                  *textwrap.wrap(f"{self.N}_state state;       every layer's state: " + (", ".join(
                      f"{k} [{s}]" for k, s in face["state"]) or "none"), 100, initial_indent="    ",
                      subsequent_indent=" " * (len(self.N) + 30)),
                  f"    {self.N}_scratch scratch;   working memory for one call (no malloc)",
                  f"    {self.N}_init(&state{''.join(', ' + a for a in self.init_context().values())});"
                  "         the start state: zeros, or the spec's init",
                  f"    {self.N}_run(&state, steps, {sig(ins + outs)}, &scratch);"]
        if self.streams():
            lines.append(f"    {self.N}_step(&state, {sig(ins + outs)}, &scratch);   one step: a run of one")
        lines += ["", "    " + "; ".join(shapes) + ".",
                  f"    A run reads one sequence of 1..{self.M}_MAX_STEPS steps (the spec's T; compile with",
                  f"    -D{self.M}_MAX_STEPS=N for longer ones); the state moves on to the end of it.",
                  "    Returns 0; -1 when steps is out of range; 1 when a token id is beyond its table."]
        return "\n".join(lines)

    def source(self) -> Export:
        cells = list(self.codes.values())
        face, run, init, data, step = None, [], [], [], []
        if self.runs:
            run, face = self.run()  # first: it decides what the scratch holds
            init, data = self.init()
            step = self.step(face) if self.streams() else []
        decl = [f"#ifndef {self.M}_C_DECLARATIONS", f"#define {self.M}_C_DECLARATIONS", "", INCLUDES, ""]
        if self.runs and face["inputs"]:
            steps = self.max_steps([n for n, _, _ in face["inputs"]])
            decl += [f"#ifndef {self.M}_MAX_STEPS",
                     f"#define {self.M}_MAX_STEPS {steps}  /* the longest sequence {self.N}_run takes */", "#endif", ""]
        if self.runs and self.decode_op is not None:
            decl += [f"#ifndef {self.M}_DECODE_STEPS",
                     f"#define {self.M}_DECODE_STEPS {self.decode_op.decoder.steps}  /* the most tokens {self.N}_run writes */",
                     "#endif", ""]
        decl += ["\n\n".join(c.structs for c in cells)]
        protos = []
        if self.runs:
            decl += ["", *self.structs()]
            protos = [_signature(init), _signature(run)] + ([_signature(step)] if step else [])
        elif cells:  # no run: the scans, and the weights to call them with, are the file's interface
            protos = [c.scan_signature + ";" for c in cells]
            protos += [f"extern const {self.code(u).fn}_consts {self.weights_name(u)};" for u in self._uses()]
        decl += ["", *protos, "", f"#endif  /* {self.M}_C_DECLARATIONS */"]
        helpers = prelude(set().union(*(c.helpers for c in cells)), self.c)
        impl = [f"#ifndef {self.M}_DECLARATIONS_ONLY", helpers, *(c.functions for c in cells),
                *(self.weights(u) for u in self._uses()), "\n".join(data), "\n".join(init), "\n".join(run),
                "\n".join(step), f"#endif  /* {self.M}_DECLARATIONS_ONLY */"]
        text = "/*\n" + "\n".join((" * " + x).rstrip() for x in comment_text(self.header(face)).split("\n")) + "\n */"
        source = "\n\n".join(x for x in [text, "\n".join(decl)] + impl if x.strip()) + "\n"
        if self.missing:
            note = (f"note: there is no {self.N}_run ({self.program.name} is {self.missing[0][1]}); "
                    "the file holds its cells' scans and weights")
        else:
            note = DECODE_NOTE.format(N=self.N) if self.decode_op is not None else ""
        return Export(source, note, face or {})

    def _uses(self) -> list[CellUse]:
        seen, out = set(), []
        for use in self.plan.uses():
            if self.weights_name(use) not in seen:
                seen.add(self.weights_name(use))
                out.append(use)
        return out


RENDERERS = {
    "start_state": ModelWriter.start_state,
    "scan": ModelWriter.scan,
    "merge": ModelWriter.merge,
    "take_last": ModelWriter.take_last,
    "apply": ModelWriter.apply,
    "decode": ModelWriter.decode,
    "output": ModelWriter.output,
}


def _signature(function: list[str]) -> str:
    head = []
    for line in function:
        if line == "{":
            break
        head.append(line)
    return "\n".join(head) + ";"


def export(program, source_name: str = "", module_name: str = "", params: dict | None = None,
           dtype: str = "float32", weights_from: str = "") -> Export:
    """The file's source; `params` default to make_params' seeded random values (seed 0)."""
    from rnncompile.api import make_params

    if params is None:
        params = make_params(program, 0, None, dtype)
        weights_from = weights_from or "seeded random (seed 0), as `rnncompile run` uses"
    return ModelWriter(program, params, dtype, source_name, module_name, weights_from or "given").source()
