"""The C renderer of the flow's `decode` op: one sequence decoded greedily inside `<m>_run`.

The ops before it (the encoder's scans, the decoder's start state: its bridge, the
encoder's final state C or its own init) are rendered by run.py; this writes the
loop that feeds back each step's own token: greedy, the first most likely one (as
np.argmax), until the end token or <M>_DECODE_STEPS tokens, as
`rnncompile.drivers.Executable.decode` does for one sequence. Steps after the end
token are written as the interpreter writes a finished sequence in a batch: the end
token and a zero distribution.

The decoder's memory (`Decode.memory`: a bundle's value at every source step, such
as the encoder's top outputs for attention) is one more per-sequence input of the
decoder cell's step: the source's `steps` rows copied into a buffer of the cell's
S rows, zeros after them; `Decode.memory_mask` is 1 at the source's steps, 0 at the
rest. A run refuses a source longer than S.
A decoder whose spec samples (`sample: sample`) has one more argument, `<m>_rng *rng`
(sampling.py's PCG32): each token is drawn by <m>_sample with the spec's temperature
and top_k, one uniform number a step, as the interpreter draws one a step for a
sequence; rng NULL decodes greedily. Not written in C: teacher forcing (`feed:
target`): the target's own length would be a second sequence in the run's
arguments; a spec that asks for it gets the run that feeds back its own tokens.
"""
from __future__ import annotations

import math
import textwrap

from rnncompile.drivers import start_and_end_ids
from rnncompile.errors import UsageError
from rnncompile.flow import Decode

from .bundle import Bundle
from .cell import IND
from .names import comment

DECODE_NAMES = {"n", "token", "best", "dist", "rng"}  # the loop's own names: no argument takes them


class DecodeWriter:
    """Renders one Decode op into `w`'s run (export.ModelWriter: its cells, state, bundles and lines), and
    the part of the file's head comment that says how the run decodes."""

    def __init__(self, w, op: Decode):
        self.w, self.op, self.dec = w, op, op.decoder

    def render(self) -> None:
        w, op, dec, T = self.w, self.op, self.dec, self.w.c.name
        code = w.code(dec.use)
        mask = op.memory_mask[0] if op.memory_mask is not None else None
        extra = [n for n in code.inputs if n != dec.token_input and n not in dict(op.memory) and n != mask]
        if extra:
            raise UsageError(f"decoder cell `{dec.use.cell.name}` reads {', '.join(extra)} besides its token and "
                             "its memory; exported C feeds it only those: export with --backend python")
        (pname,) = dec.head.use.cell.outputs()
        tokens, count, probs = w.args.fresh("tokens"), w.args.fresh("count"), w.args.fresh(pname)
        V = w.size(dec.head.use, pname)
        samples = dec.sample == "sample"
        w.decoding = {"params": [f"int32_t *{tokens}", f"int *{count}", f"{T} *{probs}"]
                      + ([f"{w.N}_rng *rng"] if samples else []),
                      "face": {"steps": dec.steps, "vocab": V, "output": pname, "args": [tokens, count, probs],
                               "samples": samples}}
        state, start = w.state_of(dec.use), w.env[op.state].members
        for s, (p, size) in state.items():  # the loop moves the decoder's state on in place
            if start[s][0] != p:
                w.lines.append(f"memcpy({p}, {start[s][0]}, {size} * sizeof({T}));")
        src = {dec.token_input: "&token"} | self.memory()
        w.lines += self.loop(src, tokens, count, probs, V)
        w.env[op.out] = Bundle({pname: (probs, V)}, False, "tokens", dec.head.use.cell.name)
        w.env[op.final] = Bundle(state, False, "final", dec.use.cell.name)
        w.env[op.tokens] = Bundle({}, False, "tokens")

    def memory(self) -> dict[str, str]:
        """The decoder cell's memory inputs (and its mask), filled from the source once per run: input -> pointer."""
        w, op, dec, T = self.w, self.op, self.dec, self.w.c.name
        if not op.memory:
            return {}
        code, inputs = w.code(dec.use), w.program.cell(dec.use).by_name("input")
        out, lines, refused = {}, [comment(f"{dec.use.prefix.rstrip('.')}'s memory: the source's steps, "
                                           "zeros after them")], set()
        for cin, r in op.memory:
            got, shape = w.env[r.bundle], code.shapes[inputs[cin]]
            rows, width = shape[0], math.prod(shape[1:])
            if not got.per_step or got.members[r.member][1] != width:
                raise UsageError(f"{'.'.join(map(str, op.path))}: decoder input `{cin}` {list(shape)} reads `{r}`, "
                                 f"which is not {width} numbers at every source step")
            if rows not in refused:
                refused.add(rows)
                lines.append(f"if (steps > {rows}) return -1;  /* the decoder's `{cin}` holds {rows} source steps */")
            buf = w.buffer(f"memory_{cin}", rows * width, False, f"{r} at each source step, zeros after the last")
            lines += [f"memcpy({buf}, {got.members[r.member][0]}, (size_t)steps * {width} * sizeof({T}));",
                      f"for (long i = (long)steps * {width}; i < {rows * width}; ++i) {buf}[i] = 0;"]
            out[cin] = buf
        if op.memory_mask is not None:
            cin, sources = op.memory_mask
            shape = code.shapes[inputs[cin]]
            buf = w.buffer(f"memory_{cin}", math.prod(shape), False,
                           f"1 at the steps of {', '.join(sources)}, 0 after them")
            lines.append(f"for (int t = 0; t < {math.prod(shape)}; ++t) {buf}[t] = ({T})(t < steps);")
            out[cin] = buf
        w.lines += lines
        return out

    def loop(self, src: dict[str, str], tokens: str, count: str, probs: str, V: int) -> list[str]:
        w, dec, T, M = self.w, self.dec, self.w.c.name, self.w.M
        start, end = start_and_end_ids(w.program.vocab)
        stop = end is not None and dec.stop_at_end
        code = w.code(dec.use)
        hcode = w.code(dec.head.use)
        outs = {o: w.buffer(f"decoder_{o}", w.size(dec.use, o), False, f"the decoder's {o} at the current step")
                for o in code.outputs}
        hsrc = outs | w.ctx_names
        state = w.state_of(dec.use)
        call = ([f"&{w.weights_name(dec.use)}", "1", "1"] + [src[n] for n in code.inputs]
                + [state[s][0] for s in code.states] + ["NULL", "0"]
                + list(outs.values()) + [f"&scratch->values_{code.fn}", "NULL"])
        hcall = ([f"&{w.weights_name(dec.head.use)}", "1", "1"] + [hsrc[n] for n in hcode.inputs] + ["NULL", "0"]
                 + ["dist"] + [f"&scratch->values_{hcode.fn}", "NULL"])
        fill = end if end is not None else 0
        what = f"; done after the end token ({end})" if stop else ""
        if dec.sample == "sample":  # the spec's temperature and top_k; rng NULL: greedy
            choose = [f"best = rng == NULL ? {w.N}_greedy(dist) : {w.N}_sample(dist, {float(dec.temperature)!r}, "
                      f"{dec.top_k or 0}, rng);"]
        else:
            choose = [f"for (int i = 1; i < {V}; ++i)  /* greedy: the first most likely token */",
                      f"{IND}if (dist[i] > dist[best]) best = i;"]
        body = ([f"{T} *dist = {probs} + (long)n * {V};", "int32_t best = 0;"]
                + w._call(f"{code.fn}_scan", call) + w._call(f"{hcode.fn}_scan", hcall) + choose
                + [f"{tokens}[n] = best;", f"{count}[0] = n + 1;", "token = best;"]
                + ([f"if (best == {end}) break;"] if stop else []))
        return ([comment(f"feed back each step's token, from the start token ({start}){what}"),
                 f"int32_t token = {start};",
                 f"memset({probs}, 0, (size_t){M}_DECODE_STEPS * {V} * sizeof({T}));  /* steps not taken: zeros */",
                 f"for (int n = 0; n < {M}_DECODE_STEPS; ++n) {tokens}[n] = {fill};",
                 f"{count}[0] = 0;",
                 f"for (int n = 0; n < {M}_DECODE_STEPS; ++n) {{"] + [IND + x for x in body] + ["}"])

    def start_text(self) -> str:
        """How the decoder's start state comes from the encoder, as the flow's start_state op says."""
        (start,) = [o for o in self.w.flow.of("start_state") if o.out == self.op.state]
        bridge = [o for o in self.w.flow.of("apply") if o.out == start.over]
        if start.over is None:
            return "the decoder starts from its own init"
        if bridge:
            return f"its final state, through the bridge `{bridge[0].use.cell.name}`, starts the decoder"
        return "its final state (C) starts the decoder"

    def header(self, face: dict) -> list[str]:
        w, dec, N, M = self.w, self.dec, self.w.N, self.w.M
        tokens, count, probs = face["decode"]["args"]
        ins = [n for n, _, _ in face["inputs"]] + [n for n, _ in face["context"]]
        steps = "steps, " if face["inputs"] else ""
        init = "".join(", " + a for a in w.init_context().values())
        lines = ["Use it from one file with #include \"" + N + ".c\", or compile it on its own",
                 f"(cc -std=c99 -O2 -c {N}.c) and, in the files that call it:",
                 f"    #define {M}_DECLARATIONS_ONLY",
                 f"    #include \"{N}.c\"",
                 "",
                 f"    {N}_state state;       every layer's state: " + ", ".join(f"{k} [{s}]" for k, s in face["state"]),
                 f"    {N}_scratch scratch;   working memory for one call (no malloc)",
                 f"    {N}_init(&state{init});   the start state" + (" of the encoder" if steps else ""),
                 f"    {N}_run(&state, {steps}{', '.join(ins + [tokens, '&' + count, probs])}"
                 + (", &rng" if dec.sample == "sample" else "") + ", &scratch);", ""]
        shapes = [f"{n} [steps]" + (" token ids" if tok else f"[{s}]") for n, s, tok in face["inputs"]]
        shapes += [f"{n} [{s}] (one per sequence)" for n, s in face["context"]]
        V = face["decode"]["vocab"]
        shapes += [f"{tokens} [{M}_DECODE_STEPS] int32_t", f"{count} one int",
                   f"{probs} [{M}_DECODE_STEPS][{V}]"]
        text = "; ".join(shapes) + "."
        if steps:
            text += (f" The encoder reads a source of 1..{M}_MAX_STEPS steps (-D{M}_MAX_STEPS=N for longer ones),"
                     f" starting from the state {N}_init set; {self.start_text()}.")
        if self.op.memory:
            text += (" At every step the decoder reads " + ", ".join(f"the encoder's {r} at every source step (as `{cin}`)"
                                                                       for cin, r in self.op.memory)
                     + (f", and `{self.op.memory_mask[0]}`: 1 at the source's steps, 0 after them"
                        if self.op.memory_mask else "")
                     + "; a source longer than those inputs hold is refused (-1).")
        start, end = start_and_end_ids(w.program.vocab)
        stop = f", until it writes the end token ({end})," if end is not None and dec.stop_at_end else ","
        how = ("greedy: the first most likely token at each step (np.argmax's choice on ties)"
               if dec.sample != "sample" else
               f"drawn by {N}_sample from p ** (1 / {dec.temperature:g})"
               + (f" over the {dec.top_k} most likely" if dec.top_k else "")
               + f" (the spec's sampling), one {N}_uniform of rng a step (seed it with {N}_seed; rng NULL: greedy,"
               " the first most likely)")
        text += (f" The decoder feeds back its own previous token (the first is {start}), {how}{stop} at most"
                 f" {M}_DECODE_STEPS tokens"
                 f" (the spec's steps: {dec.steps}; -D{M}_DECODE_STEPS=N for another). {count} is how many it wrote"
                 " (the end token counted); the steps after them hold the end token and a zero distribution, as"
                 " the interpreter's batch does. The state ends as every cell's final state. Returns 0"
                 + ("; -1 when steps is out of range" if steps else "") + "; 1 when a token id is beyond its table.")
        lines += textwrap.wrap(text, 100, initial_indent="    ", subsequent_indent="    ")
        forced = "the spec asks for it, but " if dec.feed == "target" else ""
        sampled = "" if dec.sample == "sample" else (
            "sampling (the spec decodes greedily; a spec with `sample: sample` gets a run that samples) and ")
        lines += [""] + textwrap.wrap(
            f"Not written in C: {sampled}teacher forcing ({forced}{N}_run feeds back its own tokens; the target would"
            " be a second sequence with its own length): rnncompile.run or the python backend's export does it. No"
            f" {N}_step: a decoder's run is the encoder's sequence and then the decoder's; {N}_reset starts the next"
            " one.", 100)
        return lines
