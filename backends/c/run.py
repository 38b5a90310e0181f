"""`<m>_run`: the model's flow (rnncompile/flow.py) rendered as C, one renderer per flow op.

RENDERERS maps each flow op's name to its renderer; UNSUPPORTED gives the reason
for each op C does not render (tests/test_export_c_flow.py fails when an op has
neither). `FlowRenderer.run` walks `program.flow` in order. A flow bundle is, in
C, one pointer per member into the run's arguments, the state or the scratch
(bundle.Bundle); a bundle the model returns, or that only starts a state, is
written there directly. A run holds one sequence, so `steps` is its length: a
scan runs `steps` steps (the flow's lengths need no mask) and take_last reads
step `steps - 1`.

The start-state rule (a state the caller gives wins, then the `over` bundle, then
the cell's own init: a constant, a param or a context input) is the start_state
renderer's: a state the caller may give is the one they pass to <m>_run (and
<m>_init sets it to its own init); any other starts in <m>_run, from `over` where
that names the state, else from its own init. The decode op is decode.py's.
FlowRenderer is mixed into export.ModelWriter, which holds the cells (their code
and weights), the state struct and the scratch.
"""
from __future__ import annotations

import math
import re

from rnncompile import flow as F
from rnncompile.errors import UsageError

from .bundle import Bundle
from .cell import IND
from .decode import DECODE_NAMES, DecodeWriter
from .names import Namer, comment

# flow ops C does not render: the reason, as it reads after "<model> is "
UNSUPPORTED = {"tree_fold": "a tree fold: the schedule over each tree's nodes is not written in C"}
BUFFER_PREFIX = {"steps": "layer", "last": "last", "final": "summary"}  # a merge's scratch, by what it merges
MERGED_NOTE = {"steps": "{o} of both directions, merged", "last": "{o} after the last step, both directions merged",
               "final": "the encoder's final {o}, both directions merged"}


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


class FlowRenderer:
    """The flow's ops as the lines of <m>_run (a mixin of export.ModelWriter)."""

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
        lines = []
        for s, (p, size) in states.items():
            if s not in over.members:
                lines.append(self.start(op.use.key(s), self.ctx_names)[0])
            elif over.members[s][0] != p:
                what = f"C: the encoder's {s}" if over.role == "final" else f"{op.over}.{s}"
                lines.append(f"memcpy({p}, {over.members[s][0]}, {size} * sizeof({self.c.name}));  " + comment(what))
        done = "" if lines else " (it wrote them there)"  # the bridge's outputs went straight into the state
        self.lines += [comment(f"{where}: cell `{op.use.cell.name}`, starting from {how}{done}")] + lines

    def scan(self, op: F.Scan) -> None:
        use, code, T = op.use, self.code(op.use), self.c.name
        head = self._layer_comment(op)
        if head:
            self.lines.append(head)
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

    def _layer_comment(self, op: F.Scan) -> str | None:
        """The comment over a layer's scans (those of one spec path: one or two directions), at its first."""
        scans = self.flow.of("scan")
        layer = [s for s in scans if s.path == op.path]
        if op is not layer[0]:
            return None
        index = list(dict.fromkeys(s.path for s in scans)).index(op.path)
        how = next((m.how for m in self.flow.of("merge") if m.path == op.path + ("merge",)), None)
        if len({s.use.cell.name for s in layer}) > 1:  # a cell per direction
            cells = ", ".join(f"cell `{s.use.cell.name}` {'reverse' if s.reverse else 'forward'}" for s in layer)
            return comment(f"layer {index}: {cells}, merged by {how}")
        dirs = f"both directions, merged by {how}" if len(layer) > 1 else "reverse" if op.reverse else "forward"
        return comment(f"layer {index}: cell `{op.use.cell.name}`, {dirs}")

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
                if dst != p:  # a bundle its producer did not write there
                    count = f"(size_t)steps * {size}" if got.per_step else str(size)
                    self.lines.append(f"memcpy({dst}, {p}, {count} * sizeof({T}));")
        for use, bundle in op.finals:
            for s, (p, size) in self.state_of(use).items():
                if self.env[bundle].members[s][0] != p:
                    self.lines.append(f"memcpy({p}, {self.env[bundle].members[s][0]}, {size} * sizeof({T}));")

    # -- run --------------------------------------------------------------------------------
    def _inputs_read(self) -> list[str]:
        """The sequence inputs <m>_run reads (a decoder's target, read only by teacher forcing, is not one): they
        share its `steps`."""
        read = set()
        for op in self.flow:
            for r in _reads(op):
                if r.bundle == F.INPUT:
                    read |= {r.member} if r.member is not None else set(self.flow.inputs)
        names = [n for n in self.flow.inputs if n in read]
        axes = self.flow.time_dims
        if len({str(axes.get(n)) for n in names}) > 1:
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
        for p in [p for p, _ in self.ctx.values()]:  # a context input whose state the `over` bundle started
            if not any(re.search(rf"\b{p}\b", line) for line in self.lines):
                self.lines.insert(0, f"(void){p};  /* its state started from another bundle */")
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


RENDERERS = {
    "start_state": FlowRenderer.start_state,
    "scan": FlowRenderer.scan,
    "merge": FlowRenderer.merge,
    "take_last": FlowRenderer.take_last,
    "apply": FlowRenderer.apply,
    "decode": FlowRenderer.decode,
    "output": FlowRenderer.output,
}
