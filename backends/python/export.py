"""`rnncompile export --backend python`: a whole model as one standalone module.

The module holds every cell's functions (cell.py) and a `run` that walks the
program's flow (rnncompile.flow) in order: one renderer per flow op name
(`RENDERERS`, the table the drivers' `INTERPRETER` mirrors), each writing the
lines that compute what the drivers compute for that op. Each bundle the flow
names becomes a local of `run` (`layers.0.forward.out` -> `layers_0_forward_out`,
a dict of arrays), and each op is commented with its line of
`rnncompile inspect --flow`. A decoder's flow also takes the decoding knobs
(decode.py); a tree fold's flow is `run_trees(params, trees)` (trees.py). The
helpers the module calls (given states, merging, lengths; sampling in
decode.py, tree flattening in trees.py) are written in this backend once, as
the module's own code: nothing is copied from the drivers. The module imports
only NumPy.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import rnncompile
from rnncompile import flow
from rnncompile.flow import CONTEXT, INPUT, flow_data
from rnncompile.ops import fmt_shape
from rnncompile.plan import CellUse

from .cell import IND, CellCode, CellWriter, wrap
from .decode import DECODE_HELPERS, render_decode
from .module import assemble
from .names import Namer, cell_prefix, comment, docstring, identifier, string
from .trees import TREE_FORMAT, TREE_HELPERS, render_tree_fold, run_trees_head

RUN_HELPERS = {
    "lengths_for": '''
def lengths_for(lengths, names):
    """The lengths of the inputs one scan reads: the one array every input shares, or theirs by name
    (a dict of them by input name); None when there are none (every step is real)."""
    if not isinstance(lengths, dict):
        return None if lengths is None else np.asarray(lengths)
    given = {n: np.asarray(lengths[n]) for n in names if n in lengths}
    if not given:
        return None
    first = next(iter(given.values()))
    if len(given) < len(names) or any(not np.array_equal(first, v) for v in given.values()):
        raise ValueError("inputs " + ", ".join(names) + " are read by one layer, so they need the same "
                         "lengths")
    return first
''',
    "given_state": '''
def given_state(state, prefix, names):
    """A cell's start state from the keys `prefix + name` of `state` (None when none of them is given)."""
    keys = [prefix + n for n in names]
    if not any(key in state for key in keys):
        return None
    missing = [key for key in keys if key not in state]
    if missing:
        raise ValueError("initial state given without " + ", ".join(missing))
    return {n: state[key] for n, key in zip(names, keys)}
''',
    "context_start": '''
def context_start(context, name, key, shape, batch):
    """Check the context input `name` a state (`key`) starts from: given, one value per sequence."""
    if name not in context:
        raise ValueError("state `%s` starts from context input `%s`, which was not given" % (key, name))
    got = np.shape(context[name])
    if got != (batch,) + shape:
        raise ValueError("context input `%s` has shape %s; state `%s` needs %s (one per sequence)"
                         % (name, list(got), key, [batch, *shape]))
''',
    "merge": '''
def merge(forward, reverse, how):
    """The two directions' values, joined the way the layer says."""
    if how == "concat":
        return {n: np.concatenate([forward[n], reverse[n]], axis=-1) for n in forward}
    if how == "sum":
        return {n: forward[n] + reverse[n] for n in forward}
    if how == "mean":
        return {n: (forward[n] + reverse[n]) * 0.5 for n in forward}
    out = {n + "_forward": v for n, v in forward.items()}
    out.update({n + "_reverse": v for n, v in reverse.items()})
    return out
''',
    "last_step": '''
def last_step(v, lengths, reverse):
    """Each sequence's value after its last real step (step 0 for the reverse direction)."""
    if reverse:
        return v[:, 0]
    if lengths is None:
        return v[:, -1]
    return v[np.arange(v.shape[0]), np.maximum(np.asarray(lengths) - 1, 0)]
''',
    **DECODE_HELPERS,
    **TREE_HELPERS,
}

# the locals `run` uses for its own purposes; a bundle never takes one of these names
SCRATCH = {"params", "inputs", "state", "lengths", "context", "dtype", "steps", "seed", "sample", "temperature",
           "top_k", "batch", "final_state", "x", "x_steps", "got", "target_steps", "memory", "target",
           "target_lengths", "prev", "token", "done", "token_lengths", "drawn", "probs", "new_state", "step_out", "p",
           "rng", "source_steps", "np"}


@dataclass
class Export:
    source: str
    note: str = ""  # what was not exported, for the command line to say


def _dims(shape, lead: str) -> str:
    return fmt_shape(shape) if not lead else fmt_shape((lead,) + tuple(shape))


class FlowRenderer:
    """Writes the exported module: its cells, then `run` from the program's flow, one op at a time."""

    def __init__(self, program, source_name: str = "", module_name: str = ""):
        self.program, self.flow = program, program.flow
        self.source_name = source_name or str(program.checked.file)
        self.module_name = module_name or f"{identifier(program.name)}_model"
        self.cells: dict[int, CellCode] = {}  # id(graph) -> its code, in the order the flow first runs it
        self.fns: set[str] = set()
        self.helpers: set[str] = set()  # RUN_HELPERS that run calls
        self.locals: dict[str, str] = {}  # bundle -> the local of run that holds it
        self.namer = Namer(SCRATCH | set(RUN_HELPERS))
        self.prepared_k: dict[str, str] = {}  # use prefix -> its prepared params' local
        self.types: dict[str, dict[str, str]] = {}  # bundle -> member -> its shape, as the docstring shows it
        self.pending: list[str] = []  # lines an op needs before its own (a cell's _prepare, a lengths local)
        self.lengths_locals: dict[tuple, str] = {}
        self.is_tree = bool(self.flow.of("tree_fold"))
        self.decodes = self.flow.of("decode")

    # -- what the renderers share ---------------------------------------------------------
    def code(self, use: CellUse, rows: bool = False) -> CellCode:
        """The functions of the graph `use` runs (written once per graph); `rows`: a tree rule or head, which
        runs on rows of tree nodes and never over time."""
        graph = self.program.cell(use)
        if id(graph) not in self.cells:
            fn = cell_prefix(graph.name)
            if fn in self.fns:  # the same cell lowered for other dims (a deeper layer)
                where = use.prefix.replace(".forward.", ".").replace(".reverse.", ".").strip(".")
                fn = cell_prefix(f"{graph.name}_{where}", self.fns)
            self.fns.add(fn)
            self.namer.taken |= {f"{fn}_{part}" for part in ("prepare", "initial", "hoist", "step", "scan")}
            self.cells[id(graph)] = CellWriter(graph, fn).write(rows=rows)
        return self.cells[id(graph)]

    def prepared(self, use: CellUse) -> str:
        """The local holding `use`'s prepared params (its _prepare runs once, before the first op that needs it)."""
        if use.prefix not in self.prepared_k:
            fn = self.code(use).fn
            local = self.namer.fresh("k_" + (use.prefix.strip(".") or fn))
            self.pending.append(f'{local} = {fn}_prepare(params, {string(use.key(""))}, dtype)')
            self.prepared_k[use.prefix] = local
        return self.prepared_k[use.prefix]

    def define(self, bundle: str, members: dict[str, str] | None = None) -> str:
        """A new local for `bundle` (with the shapes of its members, for the docstring)."""
        self.locals[bundle] = self.namer.fresh(bundle)
        if members is not None:
            self.types[bundle] = members
        return self.locals[bundle]

    def bundle(self, name: str) -> str:
        return {INPUT: "inputs", CONTEXT: "context"}.get(name) or self.locals[name]

    def member(self, read: flow.Read) -> str:
        return f"{self.bundle(read.bundle)}[{string(read.member)}]"

    def lengths(self, names: tuple) -> str:
        """The lengths of the model inputs `names`, as a local (None without any)."""
        if not names:
            return "None"
        if names not in self.lengths_locals:
            local = self.namer.fresh("_".join(names) + "_lengths", "seq_lengths")
            self.helpers.add("lengths_for")
            self.pending.append(f"{local} = lengths_for(lengths, [{', '.join(string(n) for n in names)}])")
            self.lengths_locals[names] = local
        return self.lengths_locals[names]

    def local(self, name: str) -> str:
        """A scratch local (one of SCRATCH: an op may reuse it, no bundle takes it)."""
        if name not in SCRATCH:
            raise ValueError(f"`{name}` is not one of run's scratch locals")
        return name

    def states_of(self, use: CellUse) -> dict[str, str]:
        return {n: _dims(s.shape, "B") for n, s in use.cell.states.items()}

    def outputs_of(self, use: CellUse, lead: str) -> dict[str, str]:
        cell = self.program.cell(use)
        return {n: _dims(cell.node(i).shape, lead) for n, i in cell.outputs().items()}

    # -- the flow's ops, one renderer each (RENDERERS below names them) ----------------------------
    def start_state(self, op: flow.StartState) -> list[str]:
        """The one start-state rule: a state the caller gives wins (when `given`), then the values of `over`,
        then the cell's own init (constant, param, or a context input, checked as the drivers check it)."""
        use = op.use
        out = self.define(op.out, self.states_of(use))
        if not use.cell.states:
            return [f"{out} = {{}}  # no state"]
        fn, k = self.code(use).fn, self.prepared(use)
        init = []
        ctx = {n: s for n, s in use.cell.states.items() if s.from_context}
        for name, info in ctx.items():
            self.helpers.add("context_start")
            init.append(f"context_start(context, {string(info.init)}, {string(use.key(name))}, {tuple(info.shape)!r}, "
                        "batch)")
        init.append(f"{out} = {fn}_initial({k}, batch{', context' if ctx else ''})")
        if op.over is not None:
            init.append(f"{out}.update({{n: v for n, v in {self.bundle(op.over)}.items() if n in {out}}})")
        if not op.given:
            return init
        self.helpers.add("given_state")
        names = ", ".join(string(n) for n in use.cell.states) + ("," if len(use.cell.states) == 1 else "")
        return [f'{out} = given_state(state, {string(use.key(""))}, ({names}))',
                f"if {out} is None:"] + [IND + line for line in init]

    def scan(self, op: flow.Scan) -> list[str]:
        use, fn = op.use, self.code(op.use).fn
        k, lengths, start = self.prepared(use), self.lengths(op.lengths), self.bundle(op.state)
        feed = "{" + ", ".join(f"{string(cin)}: {self.member(r)}" for cin, r in op.feed) + "}"
        out = self.define(op.out, self.outputs_of(use, "B, T"))
        final = self.define(op.final, self.states_of(use))
        return call(f"{out}, {final}", f"{fn}_scan", [k, feed, start, lengths, f"reverse={op.reverse}"])

    def merge(self, op: flow.Merge) -> list[str]:
        self.helpers.add("merge")
        a, b = self.types.get(op.a, {}), self.types.get(op.b, {})
        if op.how == "concat":
            members = {n: _concat_dims(a[n], b[n]) for n in a if n in b}
        elif op.how == "separate":
            members = {**{f"{n}_forward": s for n, s in a.items()}, **{f"{n}_reverse": s for n, s in b.items()}}
        else:
            members = dict(a)
        a_local, b_local = self.bundle(op.a), self.bundle(op.b)
        return [f"{self.define(op.out, members)} = merge({a_local}, {b_local}, {string(op.how)})"]

    def take_last(self, op: flow.TakeLast) -> list[str]:
        self.helpers.add("last_step")
        members = {n: s.replace("[B, T", "[B", 1) for n, s in self.types.get(op.src, {}).items()}
        src, lengths = self.bundle(op.src), self.lengths(op.lengths)
        return [f"{self.define(op.out, members)} = {{n: last_step(v, {lengths}, {op.reverse}) "
                f"for n, v in {src}.items()}}"]

    def apply(self, op: flow.Apply) -> list[str]:
        use, fn = op.use, self.code(op.use).fn
        k, cell = self.prepared(use), self.program.cell(use)
        x, lines = self.local("x"), []

        def rows(r: flow.Read, value: str) -> str:
            key = f"{string(r.rename)} + n" if r.rename else "n"
            return f"{{{key}: {value} for n, v in {self.bundle(r.bundle)}.items()}}"

        no_inputs = ", batch=batch, steps=1" if not cell.inputs else ""
        if op.at == "once":  # one row per sequence: a scan of one step
            for i, r in enumerate(op.feed):
                value = rows(r, "np.asarray(v)[:, None]")
                lines.append(f"{x} = {value}" if i == 0 else f"{x}.update({value})")
            out = self.define(op.out, self.outputs_of(use, "B"))
            lines += [f"{out}, _ = {fn}_scan({k}, {x}{no_inputs})",
                      f"{out} = {{n: v[:, 0] for n, v in {out}.items()}}"]
            return lines
        steps = self.local("x_steps")
        lines.append(f"{x} = {{}}")
        for r in op.feed:
            if r.bundle != CONTEXT:
                lines.append(f"{x}.update({rows(r, 'v')})")
        lines.append(f"{steps} = next(iter({x}.values())).shape[1]")
        for r in op.feed:
            if r.bundle == CONTEXT:  # one value per sequence, repeated at every step
                lines.append(f"{x}.update({rows(r, f'np.repeat(np.asarray(v)[:, None], {steps}, axis=1)')})")
        out = self.define(op.out, self.outputs_of(use, "B, T"))
        lines.append(f"{out}, _ = {fn}_scan({k}, {x}, None, {self.lengths(op.lengths)})")
        return lines

    def decode(self, op: flow.Decode) -> list[str]:
        lines = render_decode(self, op)
        self.types[op.out] = self.outputs_of(op.decoder.head.use, "B, N")
        self.types[op.final] = self.states_of(op.use)
        return lines

    def tree_fold(self, op: flow.TreeFold) -> list[str]:
        return render_tree_fold(self, op)

    def output(self, op: flow.Output) -> list[str]:
        if self.is_tree:  # the fold's bundle is the whole result, as the drivers' TreeRunResult
            return [f"return {self.bundle(op.outputs)}"]
        final = self.local("final_state")
        lines = [f"{final} = {{}}"]
        for use, bundle in op.finals:
            keyed = (f'{{{string(use.key(""))} + n: v for n, v in {self.bundle(bundle)}.items()}}' if use.key("")
                     else self.bundle(bundle))
            lines.append(f"{final}.update({keyed})")
        back = f"{self.bundle(op.outputs)}, {final}"
        if op.tokens:
            tokens = self.bundle(op.tokens)
            back += f', {tokens}["tokens"], {tokens}["lengths"]'
        return lines + [f"return {back}"]

    # -- run -----------------------------------------------------------------------------
    def body(self) -> list[str]:
        """Every flow op's lines, in order, each under its spec path and its line of `inspect --flow`."""
        lines = []
        for op, data in zip(self.flow.ops, flow_data(self.flow)["ops"]):
            self.pending = []
            own = RENDERERS[op.op](self, op)
            writes = ", ".join(op.writes())
            lines += _comment_lines(f"{data['path']}: {writes + ' = ' if writes else ''}{data['text']}")
            lines += self.pending + own
        return lines

    def run(self) -> str:
        body = [IND + line if line else "" for line in self.body()]
        if self.is_tree:
            (fold,) = self.flow.of("tree_fold")
            why = f"{self.program.name} is a tree fold: call run_trees(params, trees)"
            head = run_trees_head(self.program.plan.fold.cell.name, fold.head_at if fold.head else None)
            return "\n".join(head + body + ["", "", 'def run(params, inputs, state=None, lengths=None, context=None, '
                                                    'dtype="float32"):',
                                            f"{IND}{docstring(why + '.')}",
                                            f"{IND}raise NotImplementedError({string(why)})"])
        head = self.decoding_head() if self.decodes else [
            'def run(params, inputs, state=None, lengths=None, context=None, dtype="float32"):',
            f'{IND}"""Run the model on a batch: see the module docstring for the keys and shapes.',
            f"{IND}Returns (outputs, final_state), keyed as rnncompile's RunResult.",
            f'{IND}"""']
        head += [f"{IND}state = {{}} if state is None else state",
                 f"{IND}context = {{}} if context is None else context",
                 f"{IND}batch = next((len(v) for v in list(inputs.values()) + list(context.values())), 1)"]
        return "\n".join(head + body)

    def decoding_head(self) -> list[str]:
        """The signature and docstring of a decoder's `run`: its decoding knobs default to the spec's."""
        (op,) = self.decodes
        dec = op.decoder
        feeds = f" (or, given `{dec.target}`, teacher forcing)" if dec.feed == "target" else ""
        return ['def run(params, inputs=None, state=None, lengths=None, context=None, dtype="float32", steps=None,',
                f"        seed=0, sample={string(dec.sample)}, temperature={dec.temperature!r}, "
                f"top_k={dec.top_k!r}):",
                f'{IND}"""Decode a batch: see the module docstring for the keys and shapes. Feeds back each '
                "step's",
                f"{IND}token{feeds}; `steps` tokens at most (default {dec.steps}); sample: greedy or sample (drawn",
                f"{IND}with np.random.default_rng(seed), temperature and top_k, as `rnncompile run --seed` draws).",
                f"{IND}Returns (outputs, final_state, tokens [B, N], token_lengths [B]), keyed as rnncompile's",
                f"{IND}RunResult (token_lengths count the end token).",
                f'{IND}"""',
                f'{IND}if sample not in ("greedy", "sample"):',
                f'{IND * 2}raise ValueError("sample must be greedy or sample, not %r" % (sample,))',
                f"{IND}inputs = {{}} if inputs is None else inputs"]

    # -- the interface, for the docstring and the module's constants ----------------------
    def interface(self) -> dict[str, dict[str, str]]:
        """Keys and shapes of run's arguments and results, from the flow's bundles (run() first)."""
        program, out = self.program, self.flow.output
        tokens = {n for n, dtype in program.plan.input_dtypes.items() if dtype == "token"}
        ins = {n: _dims(s, f"B, {self.flow.time_dims.get(n, 'T')}") + (" tokens" if n in tokens else "")
               for n, s in self.flow.inputs.items()}
        ctx = {n: _dims(s, "B") for n, s in self.flow.context.items()}
        outs = dict(self.types.get(out.outputs, {}))
        states = {use.key(n): s for use, bundle in out.finals for n, s in self.types.get(bundle, {}).items()}
        if self.is_tree:
            (fold,) = self.flow.of("tree_fold")
            values = program.plan.fold.cell.values
            ins = {fold.input: "a list of B trees (nested token ids, see Trees)"}
            outs = (self.outputs_of(fold.head, "N" if fold.head_at == "every_node" else "B") if fold.head
                    else {n: _dims(s, "B") for n, s in values.items()})
            states = {n: _dims(s, "B") for n, s in values.items()}
        params = {k: _dims(p.shape, "") for k, p in program.params.items()}
        return {"inputs": ins, "context": ctx, "outputs": outs, "state": states, "params": params}

    def docstring(self) -> str:
        p, face = self.program, self.interface()
        cells = [f"{c.fn} ({', '.join(c.parts)})" for c in self.cells.values()]
        lines = [f"{p.name}: standalone NumPy code generated by rnncompile {rnncompile.__version__} "
                 f"(backend python) from {self.source_name}.",
                 "It imports only NumPy; rnncompile need not be installed.", "",
                 "    import numpy as np",
                 f"    import {self.module_name} as model   # this file",
                 '    params = dict(np.load("weights.npz"))   # rnncompile run SPEC --save-weights weights.npz']
        scanned = self.flow.of("scan")
        if self.is_tree:
            lines += ["    outputs, final_state, nodes = model.run_trees(params, [[4, [5, 6]], [7, 8]])", "",
                      'run_trees(params, trees, dtype="float32")   (`run` points here)', "", *TREE_FORMAT.splitlines(),
                      ""]
        elif self.decodes:
            dec = self.decodes[0].decoder
            args = (f'{{{string(next(iter(face["inputs"])))}: src}}' if face["inputs"] else "context={"
                    + ", ".join(f'{string(n)}: {n}' for n in face["context"]) + "}")
            lines += [f"    outputs, final_state, tokens, token_lengths = model.run(params, {args})", "",
                      "run(params, inputs=None, state=None, lengths=None, context=None, dtype=\"float32\", steps=None,",
                      f'    seed=0, sample={string(dec.sample)}, temperature={dec.temperature!r}, top_k={dec.top_k!r})',
                      f"    decodes up to `steps` tokens (default {dec.steps}): greedy argmax, or with sample=\"sample\" "
                      "draws from",
                      "    np.random.default_rng(seed) exactly as `rnncompile run --seed` does (same NumPy, same tokens).",
                      "    " + (f"Given the target `{dec.target}` [B, N] (and its lengths), it runs by teacher forcing."
                               if dec.feed == "target" else "Each step reads the token the step before produced."), ""]
        else:
            first = next(iter(face["inputs"]), "x")
            lines += [f'    outputs, final_state = model.run(params, {{{string(first)}: {first}}}, lengths=None)', "",
                      'run(params, inputs, state=None, lengths=None, context=None, dtype="float32")']
        for what in ("inputs", "context", "outputs", "state", "params"):
            if face[what]:
                lines += wrap(f"{what + ':':<9}", [f"{n} {s}" for n, s in face[what].items()], "    ", 100)
        if self.is_tree:
            lines.append("    (state: each root's values; `nodes` holds every node's, [N, ...] in preorder)")
        elif self.decodes and not scanned:
            lines.append("    (state: the decoder's final state, as it comes back)")
        elif self.decodes:
            lines += ["    (state: the encoder's start state, zeros or the spec's init unless given; the final",
                      "    state holds the encoder's and the decoder's)"]
        elif face["state"]:
            lines.append("    (state: zeros or the spec's init unless given; the final state comes back with the same keys)")
        lines += [""] + wrap("Cells and their functions (<cell>_<function>): ", cells, "", 100)
        lines += [""] + wrap("The model as flow ops (rnncompile inspect --flow), each a commented block of run: ",
                             [op.op for op in self.flow.ops], "", 100)
        return "\n".join(lines)

    def constants(self) -> str:
        face = self.interface()
        out = []
        for what in ("inputs", "context", "outputs", "state", "params"):
            body = "".join(f'\n    {string(n)}: {string(s)},' for n, s in face[what].items())
            out.append(f"{what.upper()} = {{{body}\n}}" if body else f"{what.upper()} = {{}}")
        return "\n".join(out)

    def source(self) -> str:
        run = self.run()  # first: it writes the cells and says which helpers it calls
        helpers = "".join("\n\n\n" + RUN_HELPERS[n].strip("\n") for n in RUN_HELPERS if n in self.helpers)
        tail = self.constants() + helpers + "\n\n\n" + run
        return assemble(self.docstring(), list(self.cells.values()), tail)


def call(lhs: str, fn: str, args: list[str], width: int = 96) -> list[str]:
    """`lhs = fn(args)` on one line, or with the arguments on the next (or one a line) when it would be longer
    than `width`."""
    one = f"{lhs} = {fn}({', '.join(args)})"
    if len(one) <= width:
        return [one]
    if len(IND + ", ".join(args)) < width:
        return [f"{lhs} = {fn}(", f"{IND}{', '.join(args)})"]
    return [f"{lhs} = {fn}("] + [f"{IND}{a}," for a in args[:-1]] + [f"{IND}{args[-1]})"]


def _comment_lines(text: str, width: int = 96) -> list[str]:
    """`text` as `#` lines of at most `width` characters, continued lines indented."""
    return ["# " + line for line in textwrap.wrap(comment(text), width - 2, subsequent_indent="    ",
                                                  break_on_hyphens=False)]


def _concat_dims(a: str, b: str) -> str:
    """The shape text of two values joined on their last axis ([B, T, 4] and [B, T, 4] -> [B, T, 8])."""
    head_a, _, last_a = a[1:-1].rpartition(", ")
    _, _, last_b = b[1:-1].rpartition(", ")
    try:
        last = str(int(last_a) + int(last_b))
    except ValueError:
        last = f"{last_a} + {last_b}"
    return f"[{head_a}, {last}]" if head_a else f"[{last}]"


RENDERERS = {
    "start_state": FlowRenderer.start_state,
    "scan": FlowRenderer.scan,
    "merge": FlowRenderer.merge,
    "take_last": FlowRenderer.take_last,
    "apply": FlowRenderer.apply,
    "decode": FlowRenderer.decode,
    "tree_fold": FlowRenderer.tree_fold,
    "output": FlowRenderer.output,
}


def export(program, source_name: str = "", module_name: str = "") -> Export:
    """The module's source; `source_name` (the spec) and `module_name` (how it is imported) go in its docstring."""
    w = FlowRenderer(program, source_name, module_name)
    note = ""
    if w.is_tree:
        note = f"note: {program.name} is a tree fold: call run_trees(params, trees); `run` points there"
    elif w.decodes:
        how = "greedily, by seeded sampling" + (" or by teacher forcing" if w.decodes[0].decoder.feed == "target"
                                                else "")
        note = f"note: `run` decodes {how}, and also returns the tokens and their lengths"
    return Export(w.source(), note)
