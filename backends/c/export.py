"""`rnncompile export --backend c`: a whole model as one standalone C99 file.

The file holds every cell's C (cell.py), each use's weights as `static const`
data, and, for sequence models (a scan or a stack of layers, either
direction, a head at every step or at the last), the model's API:

    <m>_state      every layer's state, keyed as the weight files key it
    <m>_scratch    working memory for one call (sized by the spec's dims and <M>_MAX_STEPS)
    <m>_init       the start state
    <m>_run        one sequence: the state moves on, the outputs are written
    <m>_step       one step (models without a reverse direction): a run of one step

For encoder-decoders and generators from context vectors, `<m>_run` decodes
one sequence greedily (decode.py): the source (and its length) or the context
in; the token ids, their count and the distributions [<M>_DECODE_STEPS][V]
out. Sampling and teacher forcing are not written in C (the file and the
`export` note say so). Nothing is allocated; the caller owns the state and the
scratch. The text depends only on the spec, the dims and the weights:
exporting twice gives the same bytes. Tree folds get their cells (each with
its scan) but no `_run`: the tree schedule is not written in C.
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
from .cell import IND, CellCode, CellWriter, call_lines
from .consts import const_values, pack
from .decode import DecodeWriter
from .emitters import CTYPES, prelude
from .names import Namer, comment, comment_text, identifier

NOT_RUN = {"tree": "a tree fold: the schedule over each tree's nodes is not written in C"}
DECODE_NOTE = ("note: {N}_run decodes greedily (the first most likely token at each step); sampling and "
               "teacher forcing are not written in C (use --backend python)")
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


class ModelWriter:
    def __init__(self, program, params: dict, dtype: str, source_name: str, module_name: str, weights_from: str):
        self.program, self.plan, self.params = program, program.plan, params
        self.dtype, self.c = np.dtype(dtype), CTYPES[np.dtype(dtype).name]
        self.N = identifier(module_name or program.name)
        self.M = self.N.upper()
        self.source_name, self.weights_from = source_name or str(program.checked.file), weights_from
        self.sequence = self.plan.kind == "sequence"
        self.decodes = self.plan.kind in ("seq2seq", "generate")  # greedy decoding, written by decode.py
        self.runs = self.sequence or self.decodes  # the file has a <m>_run
        self.codes: dict[int, CellCode] = {}
        self.fns: set[str] = set()
        for use in self.plan.uses():
            self.code(use)
        self.buffers: list[tuple[str, str, str]] = []  # scratch members besides the cells' values: name, size, note
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

    # -- the model's state and scratch -----------------------------------------------------------
    def _state_members(self) -> dict[str, tuple[str, CellUse, str]]:
        """weight-style key -> (member, use, state name)."""
        names, out = Namer(), {}
        uses = [use for layer in self.plan.stack.layers for use in layer.uses] if self.plan.stack is not None else []
        if self.decodes:
            uses.append(self.plan.decoder.use)
        for use in uses:
            for s in use.cell.states:
                out[use.key(s)] = (names.fresh(use.key(s)), use, s)
        return out

    def buffer(self, want: str, size: int, per_step: bool, note: str) -> str:
        name = self.scratch_names.fresh(want)
        self.buffers.append((name, f"{self.M}_MAX_STEPS * {size}" if per_step else str(size), note))
        return f"scratch->{name}"

    # -- run --------------------------------------------------------------------------------
    def run(self) -> tuple[list[str], dict]:
        plan, T, stack, head = self.plan, self.c.name, self.plan.stack, self.plan.head
        args = Namer({"state", "steps", "scratch", "t", "i"})
        ins = {n: (args.fresh(n), math.prod(s), plan.input_dtypes.get(n) == "token") for n, s in plan.inputs.items()}
        read = set(self.program.cell(head.use).inputs) if head is not None else set()  # the rest only start a state
        ctx = {n: (args.fresh(n), math.prod(s)) for n, s in plan.context.items() if n in read}
        if head is not None:
            hcode, hgraph = self.code(head.use), self.program.cell(head.use)
            outs = {n: math.prod(hcode.shapes[hgraph.outputs()[n]]) for n in hcode.outputs}
        else:
            outs = {n: math.prod(s) for n, s in stack.outputs.items()}
        per_step = head is None or head.at == "every_step"
        out_args = {n: args.fresh(n) for n in outs}
        lines = [f"if (steps < 1 || steps > {self.M}_MAX_STEPS) return -1;"]
        below, per_use = self.layers({n: (p, size) for n, (p, size, _) in ins.items()}, head is None, out_args, lines)
        ends = self._last(stack.layers[-1], per_use) if head is not None and head.at == "last" else {}
        if head is not None:
            lines += self._head(head, below, ends, ctx, out_args, outs)
        if not self.state:
            lines.insert(0, "(void)state;  /* the model has no state */")
        lines.append("return 0;")
        params = ([f"{self.N}_state *state", "int steps"]
                  + [f"const {'int32_t' if tok else T} *{p}" for p, _, tok in ins.values()]
                  + [f"const {T} *{p}" for p, _ in ctx.values()] + [f"{T} *{out_args[n]}" for n in outs]
                  + [f"{self.N}_scratch *scratch"])
        face = {"inputs": [(n, size, tok) for n, (_, size, tok) in ins.items()],
                "context": [(n, size) for n, (_, size) in ctx.items()],
                "outputs": [(n, size, per_step) for n, size in outs.items()],
                "state": self.state_face(),
                "init_context": [(n, math.prod(plan.context[n])) for n in self.init_context()]}
        return self._function(f"int {self.N}_run", params, lines), face

    def state_face(self) -> list:
        return [(key, math.prod(use.cell.states[s].shape)) for key, (_, use, s) in self.state.items()]

    def layers(self, below: dict, direct_top: bool, out_args: dict, lines: list[str]) -> tuple[dict, list]:
        """The stack's layers over `steps` steps (the top one's outputs written to `out_args` if `direct_top`):
        the top layer's outputs, merged, and per use of it (use, {output: (pointer, size)})."""
        stack, per_use = self.plan.stack, []
        for i, layer in enumerate(stack.layers):
            direct = i == len(stack.layers) - 1 and direct_top  # this layer's outputs are the model's
            per_use = []
            dirs = "both directions, merged by " + layer.merge if len(layer.uses) > 1 else \
                ("reverse" if layer.uses[0].reverse else "forward")
            lines.append(comment(f"layer {i}: cell `{layer.uses[0].cell.name}`, {dirs}"))
            for use in layer.uses:
                code, graph = self.code(use), self.program.cell(use)
                dests = {}
                for o in code.outputs:
                    size = math.prod(code.shapes[graph.outputs()[o]])
                    if direct and len(layer.uses) == 1:
                        dests[o] = (out_args[o], size)
                    else:
                        dests[o] = (self.buffer(f"{use.prefix}{o}", size, True, f"{use.prefix}{o} at every step"), size)
                call = ([f"&{self.weights_name(use)}", "1", "steps"] + [below[layer.feed[n]][0] for n in code.inputs]
                        + [f"state->{self.state[use.key(s)][0]}" for s in code.states]
                        + ["NULL", str(int(use.reverse))] + [dests[o][0] for o in code.outputs]
                        + [f"&scratch->values_{code.fn}", "NULL"])
                lines += self._call(f"{code.fn}_scan", call)
                per_use.append((use, dests))
            below = self._merge(layer, per_use, direct, out_args, lines)
        return below, per_use

    def _call(self, fn: str, args: list[str]) -> list[str]:
        return call_lines(f"if ({fn}(", args, ")) return 1;", WIDTH)

    def _merge(self, layer, per_use, direct: bool, out_args: dict, lines: list[str]) -> dict:
        """The layer's outputs after merging its two directions (written to the model's outputs if `direct`)."""
        if len(per_use) == 1:
            return per_use[0][1]
        (_, fwd), (_, rev) = per_use
        if layer.merge == "separate":
            merged = {f"{o}_forward": fwd[o] for o in fwd} | {f"{o}_reverse": rev[o] for o in rev}
            if direct:
                lines += [f"memcpy({out_args[n]}, {p}, (size_t)steps * {s} * sizeof({self.c.name}));"
                          for n, (p, s) in merged.items()]
            return merged
        out = {}
        for o, (f, size) in fwd.items():
            r = rev[o][0]
            width = 2 * size if layer.merge == "concat" else size
            dst = out_args[o] if direct else self.buffer(f"layer_{o}", width, True, f"{o} of both directions, merged")
            if layer.merge == "concat":
                lines += ["for (int t = 0; t < steps; ++t) {",
                          f"{IND}memcpy({dst} + t * {width}, {f} + t * {size}, {size} * sizeof({self.c.name}));",
                          f"{IND}memcpy({dst} + t * {width} + {size}, {r} + t * {size}, {size} * sizeof({self.c.name}));",
                          "}"]
            else:
                value = f"{f}[i] + {r}[i]" if layer.merge == "sum" else f"({f}[i] + {r}[i]) * {self.c.lit(0.5)}"
                lines.append(f"for (long i = 0; i < (long)steps * {size}; ++i) {dst}[i] = {value};")
            out[o] = (dst, width)
        return out

    def _last(self, layer, per_use) -> dict:
        """Pointers to each direction's output after its last step (step 0 for the reverse one)."""
        return {use.reverse: {o: (p if use.reverse else f"{p} + (steps - 1) * {size}", size)
                              for o, (p, size) in dests.items()} for use, dests in per_use}

    def _head(self, head, below: dict, ends: dict, ctx: dict, out_args: dict, outs: dict) -> list[str]:
        code, T = self.code(head.use), self.c.name
        lines = [comment(f"head: cell `{head.use.cell.name}`, at {head.at.replace('_', ' ')}")]
        if head.at == "every_step":
            src = {n: (f"{p} + t * {size}") for n, (p, size) in below.items()}
            src |= {n: p for n, (p, _) in ctx.items()}
            call = ([f"&{self.weights_name(head.use)}", "1", "1"] + [src[n] for n in code.inputs] + ["NULL", "0"]
                    + [f"{out_args[o]} + t * {outs[o]}" for o in code.outputs] + [f"&scratch->values_{code.fn}", "NULL"])
            return lines + ["for (int t = 0; t < steps; ++t)"] + [IND + x for x in self._call(f"{code.fn}_scan", call)]
        if len(ends) == 1:
            last = next(iter(ends.values()))
        else:  # both directions: merged as the layer merges them
            merge = self.plan.stack.layers[-1].merge
            last = {}
            for o, (f, size) in ends[False].items():
                r = ends[True][o][0]
                if merge == "separate":
                    last[f"{o}_forward"], last[f"{o}_reverse"] = (f, size), (r, size)
                    continue
                width = 2 * size if merge == "concat" else size
                dst = self.buffer(f"last_{o}", width, False, f"{o} after the last step, both directions merged")
                if merge == "concat":
                    lines += [f"memcpy({dst}, {f}, {size} * sizeof({T}));",
                              f"memcpy({dst} + {size}, {r}, {size} * sizeof({T}));"]
                else:
                    value = f"{f}[i] + {r}[i]" if merge == "sum" else f"({f}[i] + {r}[i]) * {self.c.lit(0.5)}"
                    lines.append(f"for (int i = 0; i < {size}; ++i) {dst}[i] = {value};")
                last[o] = (dst, width)
        src = {n: p for n, (p, _) in last.items()} | {n: p for n, (p, _) in ctx.items()}
        call = ([f"&{self.weights_name(head.use)}", "1", "1"] + [src[n] for n in code.inputs] + ["NULL", "0"]
                + [out_args[o] for o in code.outputs] + [f"&scratch->values_{code.fn}", "NULL"])
        return lines + self._call(f"{code.fn}_scan", call)

    def _function(self, head: str, params: list[str], body: list[str]) -> list[str]:
        return call_lines(head + "(", params, ")", WIDTH) + ["{"] + [IND + x for x in body] + ["}"]

    # -- init, step ------------------------------------------------------------------------------
    def init_context(self) -> dict[str, str]:
        """The context inputs a state starts from -> <m>_init's parameter for each."""
        names = Namer({"state", "i"})
        return {n: names.fresh(n) for n in self.plan.context
                if any(u.cell.states[s].from_context and u.cell.states[s].init == n for _, u, s in self.state.values())}

    def init(self) -> tuple[list[str], list[str]]:
        """<m>_init, and the start values it copies from (params a state starts from)."""
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
        """The line that sets state `key` to its start (`ctx`: context input -> the C name it has there),
        and the data it copies from (a param's value), if any."""
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
        return not any(u.reverse for layer in self.plan.stack.layers for u in layer.uses)

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
        if self.decodes:
            return "\n".join(lines + DecodeWriter(self).header(face))
        if face is None:
            why = NOT_RUN[p.plan.kind]
            cells = ", ".join(f"{c.fn}_scan" for c in self.codes.values())
            return "\n".join(lines + [f"There is no {self.N}_run: {p.name} is {why}. The cells are complete: "
                                      f"{cells}", "(each documented where it is defined), with each use's weights "
                                      f"as {self.N}_<use>weights."])
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
        if self.sequence:
            run, face = self.run()  # first: it decides what the scratch holds
            init, data = self.init()
            step = self.step(face) if self.streams() else []
        elif self.decodes:
            run, face = DecodeWriter(self).run()
            init, data = self.init()
        T = self.plan.time_dim
        steps = self.program.checked.steps(None) if T is not None else 1
        decl = [f"#ifndef {self.M}_C_DECLARATIONS", f"#define {self.M}_C_DECLARATIONS", "", INCLUDES, ""]
        if self.runs and self.plan.stack is not None:
            decl += [f"#ifndef {self.M}_MAX_STEPS",
                     f"#define {self.M}_MAX_STEPS {steps}  /* the longest sequence {self.N}_run takes */", "#endif", ""]
        if self.decodes:
            decl += [f"#ifndef {self.M}_DECODE_STEPS",
                     f"#define {self.M}_DECODE_STEPS {self.plan.decoder.steps}  /* the most tokens {self.N}_run writes */",
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
        note = "" if self.sequence else DECODE_NOTE.format(N=self.N) if self.decodes else \
            f"note: there is no {self.N}_run ({self.program.name} is {NOT_RUN[self.plan.kind]}); " \
            "the file holds its cells' scans and weights"
        return Export(source, note, face or {})

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
