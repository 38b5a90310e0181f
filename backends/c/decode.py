"""The exported `<m>_run` of a decoder (an encoder-decoder, or a generator from context vectors).

It runs the encoder's layers over the source as a sequence model's run does, starts the decoder from
the encoder's final state (C), its zeros or a bridge cell, then feeds back each step's own token:
greedy, the first most likely one (as np.argmax), until the end token or <M>_DECODE_STEPS tokens, as
`rnncompile.drivers.Executable.decode` does for one sequence. Steps after the end token are written
as the interpreter writes a finished sequence in a batch: the end token and a zero distribution.
Not written in C: sampling (a spec with `sample: sample` still gets the greedy run) and teacher forcing.
"""
from __future__ import annotations

import math
import textwrap

from rnncompile.drivers import start_and_end_ids
from rnncompile.errors import UsageError

from .cell import IND
from .names import Namer, comment


class DecodeWriter:
    """Writes `<m>_run` for plan kinds seq2seq and generate; `w` is the ModelWriter (cells, layers, state)."""

    def __init__(self, w):
        self.w, self.plan, self.dec = w, w.plan, w.plan.decoder

    def context_read(self) -> list[str]:
        """The context inputs the run reads: the head's, the bridge's and those a decoder state starts from."""
        dec, read = self.dec, set(self.dec.head.use.cell.inputs)
        if not isinstance(dec.init, str):
            read |= set(dec.init.cell.inputs)
        read |= {i.init for i in dec.use.cell.states.values() if i.from_context}
        return [n for n in self.plan.context if n in read]

    def run(self) -> tuple[list[str], dict]:
        w, plan, dec, T, M = self.w, self.plan, self.dec, self.w.c.name, self.w.M
        extra = [n for n in dec.use.cell.inputs if n != dec.token_input]
        if extra:
            raise UsageError(f"decoder cell `{dec.use.cell.name}` reads {', '.join(extra)} besides its token; "
                             "exported C feeds it only the token: export with --backend python")
        args = Namer({"state", "steps", "scratch", "t", "i", "n", "token", "best", "dist"})
        ins = {n: (args.fresh(n), math.prod(s), plan.input_dtypes.get(n) == "token") for n, s in plan.inputs.items()}
        ctx = {n: (args.fresh(n), math.prod(plan.context[n])) for n in self.context_read()}
        (pname,) = dec.head.use.cell.outputs()
        tokens, count, probs = args.fresh("tokens"), args.fresh("count"), args.fresh(pname)
        hcode, hgraph = w.code(dec.head.use), w.program.cell(dec.head.use)
        V = math.prod(hcode.shapes[hgraph.outputs()[pname]])
        lines, summary = [], {}
        if plan.stack is not None:
            lines.append(f"if (steps < 1 || steps > {M}_MAX_STEPS) return -1;")
            _, per_use = w.layers({n: (p, size) for n, (p, size, _) in ins.items()}, False, {}, lines)
            summary = self.summary(per_use, lines)
        lines += self.start(summary, {n: p for n, (p, _) in ctx.items()})
        lines += self.loop(tokens, count, probs, V, {n: p for n, (p, _) in ctx.items()})
        params = ([f"{w.N}_state *state"] + (["int steps"] if plan.stack is not None else [])
                  + [f"const {'int32_t' if tok else T} *{p}" for p, _, tok in ins.values()]
                  + [f"const {T} *{p}" for p, _ in ctx.values()]
                  + [f"int32_t *{tokens}", f"int *{count}", f"{T} *{probs}", f"{w.N}_scratch *scratch"])
        face = {"inputs": [(n, size, tok) for n, (_, size, tok) in ins.items()],
                "context": [(n, size) for n, (_, size) in ctx.items()],
                "outputs": [], "state": w.state_face(),
                "init_context": [(n, math.prod(plan.context[n])) for n in w.init_context()],
                "decode": {"steps": dec.steps, "vocab": V, "output": pname, "args": [tokens, count, probs]}}
        return w._function(f"int {w.N}_run", params, lines), face

    def summary(self, per_use: list, lines: list[str]) -> dict:
        """C: the top layer's final states (name -> pointer), merged like its outputs."""
        w, T = self.w, self.w.c.name
        finals = [{n: (f"state->{w.state[u.key(n)][0]}", math.prod(u.cell.states[n].shape)) for n in u.cell.states}
                  for u, _ in per_use]
        if len(finals) == 1:
            return {n: p for n, (p, _) in finals[0].items()}
        merge, (fwd, rev), out = self.plan.stack.layers[-1].merge, finals, {}
        for n, (f, size) in fwd.items():
            r = rev[n][0]
            if merge == "separate":
                out[f"{n}_forward"], out[f"{n}_reverse"] = f, r
                continue
            dst = w.buffer(f"summary_{n}", 2 * size if merge == "concat" else size, False,
                           f"the encoder's final {n}, both directions merged")
            if merge == "concat":
                lines += [f"memcpy({dst}, {f}, {size} * sizeof({T}));", f"memcpy({dst} + {size}, {r}, {size} * sizeof({T}));"]
            else:
                value = f"{f}[i] + {r}[i]" if merge == "sum" else f"({f}[i] + {r}[i]) * {w.c.lit(0.5)}"
                lines.append(f"for (int i = 0; i < {size}; ++i) {dst}[i] = {value};")
            out[n] = dst
        return out

    def start(self, summary: dict, ctx: dict) -> list[str]:
        w, dec, T = self.w, self.dec, self.w.c.name
        use = dec.use
        how = dec.init if isinstance(dec.init, str) else f"its bridge `{dec.init.cell.name}`"
        lines = [comment(f"decoder: cell `{use.cell.name}`, starting from {how}")]
        if dec.init == "encoder":
            for s in use.cell.states:
                member, size = w.state[use.key(s)][0], math.prod(use.cell.states[s].shape)
                lines.append(f"memcpy(state->{member}, {summary[s]}, {size} * sizeof({T}));  " + comment(f"C: the encoder's {s}"))
            return lines
        lines += [w.start(use.key(s), ctx)[0] for s in use.cell.states]  # its data: <m>_init's
        if dec.init == "zeros":
            return lines
        bridge, code = dec.init, w.code(dec.init)
        src = {f"encoder.{n}": p for n, p in summary.items()} | ctx
        dests = [f"state->{w.state[use.key(o)][0]}" for o in code.outputs]  # each output is a state's start
        call = ([f"&{w.weights_name(bridge)}", "1", "1"] + [src[n] for n in code.inputs] + ["NULL", "0"] + dests
                + [f"&scratch->values_{code.fn}", "NULL"])
        return lines + [comment(f"bridge: cell `{bridge.cell.name}`")] + w._call(f"{code.fn}_scan", call)

    def loop(self, tokens: str, count: str, probs: str, V: int, ctx: dict) -> list[str]:
        w, dec, T, M = self.w, self.dec, self.w.c.name, self.w.M
        start, end = start_and_end_ids(w.program.vocab)
        stop = end is not None and dec.stop_at_end
        code, graph = w.code(dec.use), w.program.cell(dec.use)
        hcode = w.code(dec.head.use)
        outs = {o: w.buffer(f"decoder_{o}", math.prod(code.shapes[graph.outputs()[o]]), False,
                            f"the decoder's {o} at the current step") for o in code.outputs}
        src = outs | ctx
        call = ([f"&{w.weights_name(dec.use)}", "1", "1"] + ["&token" for _ in code.inputs]
                + [f"state->{w.state[dec.use.key(s)][0]}" for s in code.states] + ["NULL", "0"]
                + list(outs.values()) + [f"&scratch->values_{code.fn}", "NULL"])
        hcall = ([f"&{w.weights_name(dec.head.use)}", "1", "1"] + [src[n] for n in hcode.inputs] + ["NULL", "0"]
                 + ["dist"] + [f"&scratch->values_{hcode.fn}", "NULL"])
        fill = end if end is not None else 0
        what = f"; done after the end token ({end})" if stop else ""
        body = ([f"{T} *dist = {probs} + (long)n * {V};", "int32_t best = 0;"]
                + w._call(f"{code.fn}_scan", call) + w._call(f"{hcode.fn}_scan", hcall)
                + [f"for (int i = 1; i < {V}; ++i)  /* greedy: the first most likely token */",
                   f"{IND}if (dist[i] > dist[best]) best = i;",
                   f"{tokens}[n] = best;", f"{count}[0] = n + 1;", "token = best;"]
                + ([f"if (best == {end}) break;"] if stop else []))
        return ([comment(f"feed back each step's token, from the start token ({start}){what}"),
                 f"int32_t token = {start};",
                 f"memset({probs}, 0, (size_t){M}_DECODE_STEPS * {V} * sizeof({T}));  /* steps not taken: zeros */",
                 f"for (int n = 0; n < {M}_DECODE_STEPS; ++n) {tokens}[n] = {fill};",
                 f"{count}[0] = 0;",
                 f"for (int n = 0; n < {M}_DECODE_STEPS; ++n) {{"] + [IND + x for x in body] + ["}", "return 0;"])

    def header(self, face: dict) -> list[str]:
        w, dec, N, M = self.w, self.dec, self.w.N, self.w.M
        tokens, count, probs = face["decode"]["args"]
        ins = [n for n, _, _ in face["inputs"]] + [n for n, _ in face["context"]]
        steps = "steps, " if self.plan.stack is not None else ""
        init = "".join(", " + a for a in w.init_context().values())
        lines = ["Use it from one file with #include \"" + N + ".c\", or compile it on its own",
                 f"(cc -std=c99 -O2 -c {N}.c) and, in the files that call it:",
                 f"    #define {M}_DECLARATIONS_ONLY",
                 f"    #include \"{N}.c\"",
                 "",
                 f"    {N}_state state;       every layer's state: " + ", ".join(f"{k} [{s}]" for k, s in face["state"]),
                 f"    {N}_scratch scratch;   working memory for one call (no malloc)",
                 f"    {N}_init(&state{init});   the start state" + (" of the encoder" if steps else ""),
                 f"    {N}_run(&state, {steps}{', '.join(ins + [tokens, '&' + count, probs])}, &scratch);", ""]
        shapes = [f"{n} [steps]" + (" token ids" if tok else f"[{s}]") for n, s, tok in face["inputs"]]
        shapes += [f"{n} [{s}] (one per sequence)" for n, s in face["context"]]
        V = face["decode"]["vocab"]
        shapes += [f"{tokens} [{M}_DECODE_STEPS] int32_t", f"{count} one int",
                   f"{probs} [{M}_DECODE_STEPS][{V}]"]
        text = "; ".join(shapes) + "."
        if steps:
            text += (f" The encoder reads a source of 1..{M}_MAX_STEPS steps (-D{M}_MAX_STEPS=N for longer ones),"
                     f" starting from the state {N}_init set; its final state (C) starts the decoder.")
        start, end = start_and_end_ids(w.program.vocab)
        stop = f", until it writes the end token ({end})," if end is not None and dec.stop_at_end else ","
        text += (f" The decoder feeds back its own previous token (the first is {start}), greedy: the first most"
                 f" likely token at each step (np.argmax's choice on ties){stop} at most {M}_DECODE_STEPS tokens"
                 f" (the spec's steps: {dec.steps}; -D{M}_DECODE_STEPS=N for another). {count} is how many it wrote"
                 " (the end token counted); the steps after them hold the end token and a zero distribution, as"
                 " the interpreter's batch does. The state ends as every cell's final state. Returns 0"
                 + ("; -1 when steps is out of range" if steps else "") + "; 1 when a token id is beyond its table.")
        lines += textwrap.wrap(text, 100, initial_indent="    ", subsequent_indent="    ")
        sampled = "the spec samples, but " if dec.sample == "sample" else ""
        lines += [""] + textwrap.wrap(
            f"Not written in C: sampling ({sampled}{N}_run is greedy) and teacher forcing (feed: target): "
            "rnncompile.run or the python backend's export does both.", 100)
        return lines
