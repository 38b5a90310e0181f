"""`rnncompile export --backend c`: a whole model as one standalone C99 file, rendered from its flow.

The file holds every cell's C (cell.py), each use's weights as `static const`
data, and the model's API:

    <m>_state      every use's state, keyed as the weight files key it
    <m>_scratch    working memory for one call (sized by the spec's dims and <M>_MAX_STEPS)
    <m>_init       the start state: each state's own init (a constant, a param or a context input)
    <m>_run        one sequence: the state moves on, the outputs are written (run.py renders it from
                   `program.flow`, one renderer per flow op: run.RENDERERS, and run.UNSUPPORTED for
                   the ops C does not render, with the reason)
    <m>_step       one step (no reverse scan, no decoder, no cell reading `t`): a run of one step
    <m>_reset      a new stream: the start state again (what <m>_init sets; init once, reset per stream)
    <M>_STATE_BYTES, <M>_SCRATCH_BYTES, <M>_WEIGHTS_BYTES
                   the memory it needs (memory.py), computed here and checked by the compiler against sizeof
                   (a typedef that fails to compile when they differ)

A model with a vocabulary carries it (vocab_table.py: the token strings, ids to text,
and text to ids for char level); a predictor (what `rnncompile complete` runs) also
gets a seeded generator and the ways to choose a token (sampling.py) and its
completion loop, <m>_complete (complete.py).

A decoder's `<m>_run` (decode.py) decodes one sequence greedily, or, when its spec
samples, draws each token with the file's generator (an `rng` argument); teacher
forcing is not written in C (the file and the `export` note say so).
Nothing is allocated; the caller owns the state and the scratch. The text
depends only on the spec, the dims and the weights: exporting twice gives the
same bytes. A flow with an op C does not render (a tree fold) gets its cells,
each with its scan, and their weights, but no `_run`.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import numpy as np

import rnncompile
from rnncompile.errors import UsageError
from rnncompile.plan import CellUse

from . import INCLUDES
from . import memory, sampling
from .cell import IND, CellCode, CellWriter, call_lines
from .complete import Completer, why_not
from .consts import const_values, pack
from .decode import DecodeWriter
from .emitters import CTYPES, prelude
from .names import Namer, comment, comment_text, identifier
from .run import RENDERERS, UNSUPPORTED, FlowRenderer  # the flow's renderers (run.py)
from .vocab_table import VocabTable

__all__ = ["RENDERERS", "UNSUPPORTED", "Export", "ModelWriter", "export"]

DECODE_NOTE = ("note: {N}_run decodes greedily (the first most likely token at each step), as the spec says; "
               "sampling and teacher forcing are not written in C for it (a spec with `sample: sample` gets a run "
               "that samples; for teacher forcing use --backend python)")
SAMPLING_NOTE = ("note: {N}_run samples as the spec says, with the generator in the file ({N}_seed; rng NULL: greedy); "
                 "teacher forcing is not written in C (use --backend python)")
WIDTH = 110


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


class ModelWriter(FlowRenderer):
    """One model's file: its cells, their weights, the state and scratch structs, <m>_init, <m>_step, the head
    comment; its <m>_run is FlowRenderer's (run.py)."""

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
        self.buffers: list[tuple[str, str, str, int, bool]] = []  # scratch members besides the cells' values:
        # name, size (C text), note, numbers (per step when the last is True)
        self.vocab = VocabTable(self.N, program.vocab) if program.vocab is not None else None
        self.completer: Completer | None = None
        self.no_completion = ""  # why a model with a vocabulary has no <m>_complete
        self.face: dict = {}  # the run's interface, once it is rendered
        self.scratch_names = Namer({f"values_{c.fn}" for c in self.codes.values()})
        self.state = self._state_members() if self.runs else {}

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

    def buffer(self, want: str, size: int, per_step: bool, note: str) -> str:
        name = self.scratch_names.fresh(want)
        self.buffers.append((name, f"{self.M}_MAX_STEPS * {size}" if per_step else str(size), note, size, per_step))
        return f"scratch->{name}"

    def state_of(self, use: CellUse) -> dict[str, tuple[str, int]]:
        """The state members of one use: name -> (pointer, numbers)."""
        return {s: (f"state->{self.state[use.key(s)][0]}", math.prod(info.shape)) for s, info in use.cell.states.items()}

    # -- where a bundle is written -----------------------------------------------------------------
    def max_steps(self, name: str) -> int:
        """The longest sequence <m>_run takes: the spec's size of the time axis of the inputs it reads."""
        return self.plan.steps_of(self.program.dims)[name]

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
            body = ["state->none = 0;  /* the model has no state: its one byte, set */"]
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
                and not any(getattr(c, "reads_time", False) for c in self.codes.values()))

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

    def reset(self) -> list[str]:
        """<m>_reset: a new stream starts from the start state (<m>_init's, with the same arguments)."""
        T, ctx = self.c.name, list(self.init_context().values())
        params = [f"{self.N}_state *state"] + [f"const {T} *{p}" for p in ctx]
        return self._function(f"void {self.N}_reset", params, [f"{self.N}_init({', '.join(['state'] + ctx)});"])

    # -- the memory it needs (memory.py) -------------------------------------------------------------
    def memory(self) -> dict[str, int]:
        return memory.footprint(self)

    # -- the file ------------------------------------------------------------------------------
    def structs(self) -> list[str]:
        T = self.c.name
        state = [f"{IND}{T} {m}[{max(1, math.prod(u.cell.states[s].shape))}];  "
                 + comment(f"{key} {list(u.cell.states[s].shape)}  {u.cell.states[s].origin}") for key, (m, u, s) in self.state.items()]
        scratch = [f"{IND}{c.fn}_values values_{c.fn};  /* the values of one step of cell `{c.fn}` */"
                   for c in self.codes.values()]
        scratch += [f"{IND}{T} {name}[{size}];  {comment(note)}" for name, size, note, _, _ in self.buffers]
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
            return "\n".join(lines + DecodeWriter(self, self.decode_op).header(face) + self.header_tail(face))
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
        lines.append(f"    {self.N}_reset(&state{''.join(', ' + a for a in self.init_context().values())});"
                     "        a new stream: the start state again")
        lines += ["", "    " + "; ".join(shapes) + ".",
                  f"    A run reads one sequence of 1..{self.M}_MAX_STEPS steps (the spec's T; compile with",
                  f"    -D{self.M}_MAX_STEPS=N for longer ones); the state moves on to the end of it.",
                  "    Returns 0; -1 when steps is out of range; 1 when a token id is beyond its table."]
        lines += self.stream_text()
        return "\n".join(lines + self.header_tail(face))

    def stream_text(self) -> list[str]:
        """How to stream: what <m>_step is, or why there is none."""
        N = self.N
        if self.streams():
            text = (f"Streaming: {N}_init once, then {N}_step as each step's input arrives (its outputs are that"
                    f" step's); runs and steps continue the same state, so {N}_run over a sequence and {N}_step over"
                    f" its steps give the same numbers, bit for bit. {N}_reset before a new stream.")
            mem = self.memory()
            if mem["scratch_per_step"]:
                text += (f" A program that only steps can compile with -D{self.M}_MAX_STEPS=1: the scratch is then"
                         f" {mem['scratch'] + mem['scratch_per_step']:,} bytes.")
        else:
            why = ("a scan runs in reverse (it needs the whole sequence)" if any(op.reverse for op in self.flow.of("scan"))
                   else "a cell reads the step index or the length (a step of a run is not a run of one)")
            text = f"No {N}_step: {why}; {N}_run over whole sequences, {N}_reset before each."
        return [""] + textwrap.wrap(text, 100)

    def header_tail(self, face: dict) -> list[str]:
        """The vocabulary, the completion loop and the memory: the parts of the head comment after the run's."""
        N, M, lines = self.N, self.M, []
        if self.vocab is not None:
            v = self.program.vocab
            lines += [""] + textwrap.wrap(f"The vocabulary ({v.level} level, {M}_VOCAB = {len(v.tokens)} tokens" + "".join(
                f", {what} {name!r} = {M}_{what.upper()}_TOKEN" for what, name in
                (("end", v.end), ("start", v.start), ("unknown", v.unknown)) if name is not None) + "):", 100) + [
                f"    {N}_tokens[id], {N}_token_bytes[id]   each token as UTF-8, and its bytes",
                f"    {N}_token(id)                       the same, NULL beyond the table",
                f"    {N}_tokens_to_text(ids, count, text, size)   ids to text, joined as the spec's vocabulary joins"
                " them"]
            if self.vocab.encodes:
                lines.append(f"    {N}_text_to_tokens(text, bytes, ids, size)   UTF-8 text to ids, as `rnncompile"
                             " complete` reads a prompt")
            else:
                lines.append("    (word level: text to ids is not written in C; the splitting is a Unicode regex)")
        if self.completer is not None:
            lines += self.completer.header()
        return lines + memory.text(self, self.memory())

    def source(self) -> Export:
        cells = list(self.codes.values())
        face, run, init, data, step, reset, completion = None, [], [], [], [], [], []
        if self.runs:
            run, face = self.run()  # first: it decides what the scratch holds
            self.face = face
            init, data = self.init()
            step = self.step(face) if self.streams() else []
            reset = self.reset()
            if self.vocab is not None:
                self.no_completion = why_not(self, face) or ""
                if not self.no_completion:
                    self.completer = Completer(self, face)  # (its distribution is a scratch buffer)
                    completion = self.completer.function()
        decl = [f"#ifndef {self.M}_C_DECLARATIONS", f"#define {self.M}_C_DECLARATIONS", "", INCLUDES, ""]
        if self.runs and face["inputs"]:
            steps = self.max_steps(face["inputs"][0][0])
            decl += [f"#ifndef {self.M}_MAX_STEPS",
                     f"#define {self.M}_MAX_STEPS {steps}  /* the longest sequence {self.N}_run takes */", "#endif", ""]
        if self.runs and self.decode_op is not None:
            decl += [f"#ifndef {self.M}_DECODE_STEPS",
                     f"#define {self.M}_DECODE_STEPS {self.decode_op.decoder.steps}  /* the most tokens {self.N}_run writes */",
                     "#endif", ""]
        if self.runs:
            decl += [*memory.defines(self, self.memory()), ""]
        decl += ["\n\n".join(c.structs for c in cells)]
        protos = []
        if self.runs:
            decl += ["", *self.structs(), "", *memory.checks(self)]
            protos = [_signature(init), _signature(run)] + ([_signature(step)] if step else []) + [_signature(reset)]
        elif cells:  # no run: the scans, and the weights to call them with, are the file's interface
            protos = [c.scan_signature + ";" for c in cells]
            protos += [f"extern const {self.code(u).fn}_consts {self.weights_name(u)};" for u in self._uses()]
        if self.vocab is not None:
            decl += ["", *self.vocab.declarations()]
        if self.chooses():
            decl += ["", *sampling.declarations(self.N)]
            protos += [*sampling.prototypes(self.N, self.c.name)] + ([_signature(completion)] if completion else [])
        decl += ["", *protos, "", f"#endif  /* {self.M}_C_DECLARATIONS */"]
        helpers = prelude(set().union(*(c.helpers for c in cells)), self.c)
        impl = [f"#ifndef {self.M}_DECLARATIONS_ONLY", helpers, *(c.functions for c in cells),
                *(self.weights(u) for u in self._uses()), "\n".join(data), memory.weights_check(self) if self.runs else "",
                "\n".join(init), "\n".join(run), "\n".join(step), "\n".join(reset),
                "\n".join(self.vocab.functions()) if self.vocab is not None else "",
                "\n".join(sampling.functions(self.N, self.c.name, self.chooses())) if self.chooses() else "",
                "\n".join(completion), f"#endif  /* {self.M}_DECLARATIONS_ONLY */"]
        text = "/*\n" + "\n".join((" * " + x).rstrip() for x in comment_text(self.header(face)).split("\n")) + "\n */"
        source = "\n\n".join(x for x in [text, "\n".join(decl)] + impl if x.strip()) + "\n"
        if self.missing:
            note = (f"note: there is no {self.N}_run ({self.program.name} is {self.missing[0][1]}); "
                    "the file holds its cells' scans and weights")
        else:
            note = "" if self.decode_op is None else (
                SAMPLING_NOTE if self.decode_op.decoder.sample == "sample" else DECODE_NOTE).format(N=self.N)
        return Export(source, note, face or {})

    def chooses(self) -> int:
        """The number of tokens the file's generator and samplers choose among (0: it has none): a predictor's
        vocabulary, or the distribution of a decoder whose spec samples."""
        if self.completer is not None:
            return self.completer.V
        if self.runs and self.decode_op is not None and self.decode_op.decoder.sample == "sample":
            return self.decoding["face"]["vocab"]
        return 0

    def _uses(self) -> list[CellUse]:
        seen, out = set(), []
        for use in self.plan.uses():
            if self.weights_name(use) not in seen:
                seen.add(self.weights_name(use))
                out.append(use)
        return out


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
