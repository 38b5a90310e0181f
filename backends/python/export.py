"""`rnncompile export --backend python`: a whole model as one standalone module.

The module holds every cell's functions (cell.py) and a driver that composes
them as `rnncompile.drivers` does: for sequence models (one scan, stacks of
layers, both directions, a head at every step or at the last) a
`run(params, inputs, state, lengths, context)`; for encoder-decoders and
generators a `run` that also decodes (decode.py); for tree folds
`run_trees(params, trees)` (fold.py). The module imports only NumPy.
"""
from __future__ import annotations

from dataclasses import dataclass

import rnncompile
from rnncompile.plan import CellUse, Plan
from rnncompile.ops import fmt_shape

from .cell import IND, CellCode, CellWriter, wrap
from .decode import DECODE_HELPERS, DecodeWriter
from .fold import FOLD_HELPERS, TREE_FORMAT, FoldWriter
from .module import assemble
from .names import cell_prefix, comment, docstring, identifier, string


DRIVER_HELPERS = {
    "given_state": '''
def given_state(state, prefix, names):
    """One layer's start state from the keys `prefix + name` of `state` (None when none is given)."""
    keys = [prefix + n for n in names]
    if not any(key in state for key in keys):
        return None
    missing = [key for key in keys if key not in state]
    if missing:
        raise ValueError("initial state given without " + ", ".join(missing))
    return {n: state[key] for n, key in zip(names, keys)}
''',
    "last_step": '''
def last_step(v, lengths, reverse):
    """Each sequence's output after its last real step (step 0 for the reverse direction)."""
    if reverse:
        return v[:, 0]
    if lengths is None:
        return v[:, -1]
    return v[np.arange(v.shape[0]), np.maximum(np.asarray(lengths) - 1, 0)]
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
    **DECODE_HELPERS,
    **FOLD_HELPERS,
}


@dataclass
class Export:
    source: str
    note: str = ""  # what was not exported, for the command line to say


def _dims(shape, lead: str) -> str:
    return fmt_shape(shape) if not lead else fmt_shape((lead,) + tuple(shape))


class ModelWriter:
    def __init__(self, program, source_name: str = "", module_name: str = ""):
        self.program, self.plan = program, program.plan
        self.source_name = source_name or str(program.checked.file)
        self.module_name = module_name or f"{identifier(program.name)}_model"
        self.cells: dict[int, CellCode] = {}  # id(graph) -> its code
        self.fns: set[str] = set()
        self.helpers = {"given_state"} if self.plan.stack is not None else set()  # DRIVER_HELPERS that run calls
        for use in self.plan.uses():
            self.code(use)

    def code(self, use: CellUse) -> CellCode:
        graph = self.program.cell(use)
        if id(graph) not in self.cells:
            fn = cell_prefix(graph.name)
            if fn in self.fns:  # the same cell lowered for other dims (a deeper layer)
                where = use.prefix.replace(".forward.", ".").replace(".reverse.", ".").strip(".")
                fn = cell_prefix(f"{graph.name}_{where}", self.fns)
            self.fns.add(fn)
            self.cells[id(graph)] = CellWriter(graph, fn).write(rows=self.plan.kind == "tree")
        return self.cells[id(graph)]

    # -- the interface, for the docstring and the module's constants ----------------------
    def interface(self) -> dict[str, dict[str, str]]:
        plan = self.plan
        ins = {n: _dims(s, "B, T") + (" tokens" if plan.input_dtypes.get(n) == "token" else "")
               for n, s in plan.inputs.items()}
        ctx = {n: _dims(s, "B") for n, s in plan.context.items()}
        outs, states = {}, {}
        if plan.kind == "sequence":
            if plan.head is not None:
                cell = self.program.cell(plan.head.use)
                lead = "B, T" if plan.head.at == "every_step" else "B"
                outs = {n: _dims(cell.node(i).shape, lead) for n, i in cell.outputs().items()}
            else:
                outs = {n: _dims(s, "B, T") for n, s in plan.stack.outputs.items()}
        if plan.stack is not None:
            states = {u.key(n): _dims(s.shape, "B") for layer in plan.stack.layers for u in layer.uses
                      for n, s in u.cell.states.items()}
        if plan.decoder is not None:
            cell = self.program.cell(plan.decoder.head.use)
            outs = {n: _dims(cell.node(i).shape, "B, N") for n, i in cell.outputs().items()}
            states.update({plan.decoder.use.key(n): _dims(s.shape, "B")
                           for n, s in plan.decoder.use.cell.states.items()})
        if plan.kind == "tree":
            ins = {plan.fold.input: "a list of B trees (nested token ids, see Trees)"}
            lead = "N" if plan.head is not None and plan.head.at == "every_node" else "B"
            if plan.head is not None:
                cell = self.program.cell(plan.head.use)
                outs = {n: _dims(cell.node(i).shape, lead) for n, i in cell.outputs().items()}
            else:
                outs = {n: _dims(s, "B") for n, s in plan.fold.cell.values.items()}
            states = {n: _dims(s, "B") for n, s in plan.fold.cell.values.items()}
        params = {k: _dims(p.shape, "") for k, p in self.program.params.items()}
        return {"inputs": ins, "context": ctx, "outputs": outs, "state": states, "params": params}

    def docstring(self) -> str:
        p, face = self.program, self.interface()
        cells = [f"{c.fn} ({', '.join(c.parts)})" for c in self.cells.values()]
        lines = [f"{p.name}: standalone NumPy code generated by rnncompile {rnncompile.__version__} "
                 f"(backend python) from {self.source_name}.",
                 "It imports only NumPy; rnncompile need not be installed.", ""]
        if p.plan.kind == "sequence":
            first = next(iter(face["inputs"]), "x")
            lines += ["    import numpy as np",
                      f"    import {self.module_name} as model   # this file",
                      '    params = dict(np.load("weights.npz"))   # rnncompile run SPEC --save-weights weights.npz',
                      f'    outputs, final_state = model.run(params, {{{string(first)}: {first}}}, lengths=None)', "",
                      'run(params, inputs, state=None, lengths=None, context=None, dtype="float32")']
        elif p.plan.decoder is not None:
            dec = p.plan.decoder
            args = (f'{{{string(next(iter(face["inputs"])))}: src}}' if face["inputs"] else "context={"
                    + ", ".join(f'{string(n)}: {n}' for n in face["context"]) + "}")
            lines += ["    import numpy as np",
                      f"    import {self.module_name} as model   # this file",
                      '    params = dict(np.load("weights.npz"))   # rnncompile run SPEC --save-weights weights.npz',
                      f"    outputs, final_state, tokens, token_lengths = model.run(params, {args})", "",
                      "run(params, inputs=None, state=None, lengths=None, context=None, dtype=\"float32\", steps=None,",
                      f'    seed=0, sample={string(dec.sample)}, temperature={dec.temperature!r}, top_k={dec.top_k!r})',
                      "    decodes up to `steps` tokens (default {}): greedy argmax, or with sample=\"sample\" draws from"
                      .format(dec.steps),
                      "    np.random.default_rng(seed) exactly as `rnncompile run --seed` does (same NumPy, same tokens).",
                      "    " + (f"Given the target `{dec.target}` [B, N] (and its lengths), it runs by teacher forcing."
                               if dec.feed == "target" else "Each step reads the token the step before produced."), ""]
        else:
            first = p.plan.fold.input
            lines += ["    import numpy as np",
                      f"    import {self.module_name} as model   # this file",
                      '    params = dict(np.load("weights.npz"))   # rnncompile run SPEC --save-weights weights.npz',
                      f"    outputs, final_state, nodes = model.run_trees(params, [[4, [5, 6]], [7, 8]])", "",
                      'run_trees(params, trees, dtype="float32")   (`run` points here)', "", *TREE_FORMAT.splitlines(), ""]
        for what in ("inputs", "context", "outputs", "state", "params"):
            if face[what]:
                lines += wrap(f"{what + ':':<9}", [f"{n} {s}" for n, s in face[what].items()], "    ", 100)
        if p.plan.kind == "tree":
            lines.append("    (state: each root's values; `nodes` holds every node's, [N, ...] in preorder)")
        elif p.plan.decoder is not None and p.plan.stack is None:
            lines.append("    (state: the decoder's final state, as it comes back)")
        elif p.plan.decoder is not None:
            lines += ["    (state: the encoder's start state, zeros or the spec's init unless given; the final",
                      "    state holds the encoder's and the decoder's)"]
        elif face["state"]:
            lines.append("    (state: zeros or the spec's init unless given; the final state comes back with the same keys)")
        lines += [""] + wrap("Cells and their functions (<cell>_<function>): ", cells, "", 100)
        return "\n".join(lines)

    def constants(self) -> str:
        face = self.interface()
        out = []
        for what in ("inputs", "context", "outputs", "state", "params"):
            body = "".join(f'\n    {string(n)}: {string(s)},' for n, s in face[what].items())
            out.append(f"{what.upper()} = {{{body}\n}}" if body else f"{what.upper()} = {{}}")
        return "\n".join(out)

    # -- run -----------------------------------------------------------------------------
    def run(self) -> str:
        plan: Plan = self.plan
        head = ['def run(params, inputs, state=None, lengths=None, context=None, dtype="float32"):']
        if plan.kind == "tree":
            why = f"{self.program.name} is a tree fold"
            return "\n".join([FoldWriter(self).run_trees(), "", ""] + head + [
                f"{IND}{docstring(why + ': call run_trees(params, trees).')}",
                f"{IND}raise NotImplementedError({string(why + ': call run_trees(params, trees)')})"])
        if plan.decoder is not None:
            return DecodeWriter(self).run()
        lines = head + [f'{IND}"""Run the model on a batch: see the module docstring for the keys and shapes.',
                        f"{IND}Returns (outputs, final_state), keyed as rnncompile's RunResult.",
                        f'{IND}"""',
                        f"{IND}state = {{}} if state is None else state",
                        f"{IND}context = {{}} if context is None else context",
                        f"{IND}lengths = None if lengths is None else np.asarray(lengths)",
                        f"{IND}final = {{}}",
                        f"{IND}below = {{" + ", ".join(f'{string(n)}: inputs[{string(n)}]' for n in plan.stack.inputs) + "}"]
        for i, layer in enumerate(plan.stack.layers):
            lines += self.layer(i, layer)
        if plan.head is None:
            lines.append(f"{IND}return below, final")
        else:
            lines += self.head(plan.head)
        return "\n".join(lines)

    def layer(self, i: int, layer, hands_up: bool = True) -> list[str]:
        """One layer's scans; `hands_up`: its outputs become `below`, the next layer's (or head's) inputs."""
        fns = [self.code(u).fn for u in layer.uses]
        dirs = "both directions, merged by " + layer.merge if len(layer.uses) > 1 else \
            ("reverse" if layer.uses[0].reverse else "forward")
        lines = [f"{IND}# layer {i}: cell `{comment(layer.uses[0].cell.name)}`, {dirs}"]
        feed = "{" + ", ".join(f'{string(c)}: below[{string(s)}]' for c, s in layer.feed.items()) + "}"
        outs = []
        for use, fn in zip(layer.uses, fns):
            d = "reverse" if use.reverse and len(layer.uses) > 1 else "forward" if len(layer.uses) > 1 else ""
            out, fin = (f"out_{d}", f"state_{d}") if d else ("out", "state_out")
            names = ", ".join(string(n) for n in use.cell.states) + ("," if len(use.cell.states) == 1 else "")
            start = f'given_state(state, {string(use.prefix)}, ({names}))'
            if any(s.from_context for s in use.cell.states.values()):
                start = f"{start} or {fn}_initial(k, len(next(iter(below.values()))), context)"
            keyed = f'{{{string(use.prefix)} + n: v for n, v in {fin}.items()}}' if use.prefix else fin
            lines += [f'{IND}k = {fn}_prepare(params, {string(use.key(""))}, dtype)',
                      f"{IND}start = {start}",
                      f"{IND}{out}, {fin} = {fn}_scan(k, {feed}, start, lengths, reverse={use.reverse})",
                      f"{IND}final.update({keyed})"]
            outs.append((out, use.reverse))
        top = layer is self.plan.stack.layers[-1]
        if top and self.plan.head is not None and self.plan.head.at == "last":
            self.helpers.add("last_step")
            ends = [f"{{n: last_step(v, lengths, {rev}) for n, v in {out}.items()}}" for out, rev in outs]
            if len(ends) == 1:
                lines.append(f"{IND}last = {ends[0]}")
            else:
                lines += [f"{IND}last = merge({ends[0]},", f"{IND}             {ends[1]}, \"{layer.merge}\")"]
        if not hands_up:
            return lines
        if len(outs) > 1:
            self.helpers.add("merge")
        if len(outs) == 1:
            lines.append(f"{IND}below = {outs[0][0]}")
        else:
            lines.append(f'{IND}below = merge({outs[0][0]}, {outs[1][0]}, {string(layer.merge)})')
        return lines

    def head(self, head) -> list[str]:
        fn = self.code(head.use).fn
        lines = [f"{IND}# head: cell `{comment(head.use.cell.name)}`, at {head.at.replace('_', ' ')}",
                 f'{IND}k = {fn}_prepare(params, {string(head.use.key(""))}, dtype)']
        if head.at == "last":
            lines += [f"{IND}x = {{n: v[:, None] for n, v in last.items()}}",
                      f"{IND}x.update({{n: np.asarray(v)[:, None] for n, v in context.items()}})",
                      f"{IND}outputs, _ = {fn}_scan(k, x)",
                      f"{IND}return {{n: v[:, 0] for n, v in outputs.items()}}, final"]
        else:
            lines += [f"{IND}steps = next(iter(below.values())).shape[1]",
                      f"{IND}x = dict(below)",
                      f"{IND}x.update({{n: np.repeat(np.asarray(v)[:, None], steps, axis=1) for n, v in context.items()}})",
                      f"{IND}outputs, _ = {fn}_scan(k, x, None, lengths)",
                      f"{IND}return outputs, final"]
        return lines

    def source(self) -> str:
        run = self.run()  # first: it says which helpers it calls
        helpers = "".join("\n\n\n" + DRIVER_HELPERS[n].strip("\n") for n in DRIVER_HELPERS if n in self.helpers)
        tail = self.constants() + helpers + "\n\n\n" + run
        return assemble(self.docstring(), list(self.cells.values()), tail)


def export(program, source_name: str = "", module_name: str = "") -> Export:
    """The module's source; `source_name` (the spec) and `module_name` (how it is imported) go in its docstring."""
    w = ModelWriter(program, source_name, module_name)
    kind = program.plan.kind
    note = ""
    if kind == "tree":
        note = f"note: {program.name} is a tree fold: call run_trees(params, trees); `run` points there"
    elif program.plan.decoder is not None:
        how = "greedily, by seeded sampling" + (" or by teacher forcing" if program.plan.decoder.feed == "target" else "")
        note = f"note: `run` decodes {how}, and also returns the tokens and their lengths"
    return Export(w.source(), note)
