"""Backpropagation through time over a model's flow.

The forward pass is the flow interpreted as `rnncompile.drivers` does (its
own methods run every op but `scan`), except that each scan also returns the
state before every step. The backward pass walks the flow ops in reverse
with one method per flow-op name (`BACKWARD`, beside `drivers.INTERPRETER`),
carrying each bundle's adjoint:

    output      the loss: the output bundle (or the head that made it, the
                decoder's head included, with the loss added to its graph)
                against the targets; its adjoint seeds the walk
    apply       the stateless cell's backward step over the same steps
    decode      (teacher forcing only) the decoder's backward scan: the adjoints
                of its start state (to the bridge or the encoder's summary) and
                of the memory attention read, summed over the target steps
    take_last   the adjoint put back at each sequence's last real step
    merge       split (concat), copied (sum), halved (mean), or by name
    scan        the cell's backward step scanned the other way in time from the
                adjoint of the final state: the adjoints of the inputs read, of
                the start state, and of every param (summed over the steps)
    start_state the start state's adjoint goes to the param or context it came
                from (a state the caller gave ends it: truncated BPTT)

Every cell's backward step (cellgrad.grad, then passes.optimise) runs on the
backend given, as any cell does. A scanned cell's forward also outputs what
its backward step reads rather than recomputes: each state before each step
and the saved values (`grad(saved=True)`: gate activations, the new cell
state); an embedding a matrix multiplies is first folded into one table
(passes.project_embeddings), in the forward and the backward alike. Padded
steps (lengths) are masked by the backend's scan: the adjoint carried passes
them unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import flow, registry
from ..drivers import INTERPRETER, Executable, _Run
from ..errors import DataError, UsageError
from ..graph import Node, make_attrs
from ..passes import optimise
from ..passes.project_embeddings import project_embeddings
from ..program import Program
from .cellgrad import GRAD, IN, OUT, SAVED, STATE, STATE_ADJ, SUM, grad
from .losses import LOSS, TARGET, loss_cell, step_weights, train_settings

PREV = "prev."  # the forward scan's extra outputs: each state before each step
DECODER_OUT = "decoder cell outputs"  # the bundle of a decoder cell's own outputs (its head reads them)

NOT_DIFFERENTIATED = {
    "tree_fold": "a tree model's gradient is backpropagation through structure, autodiff.bpts.TreeGradProgram "
                 "(level by level over its trees), not this walk over time",
}


@dataclass
class Gradients:
    loss: float
    grads: dict[str, np.ndarray]  # weight-file key -> d loss / d param
    tokens: float  # the real steps the loss was taken over (sequences, for a loss once per sequence)
    start_state: dict[str, np.ndarray] = field(default_factory=dict)  # weight-style state key -> d loss / d start
    final_state: dict[str, np.ndarray] = field(default_factory=dict)  # the forward's final state (for --bptt)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # float model input -> d loss / d input
    states: dict[str, np.ndarray] = field(default_factory=dict)  # wrt_state: state key -> d loss / d state [B, T, ...]


class GradProgram:
    """A program's loss and its gradient for one backend and dtype; call it with a batch."""

    def __init__(self, program: Program, loss: str | None = None, output: str | None = None,
                 reduction: str | None = None, backend: str = "numpy", dtype: str = "float64", wrt_state: bool = False):
        """`wrt_state`: also the gradient of the loss with respect to every scanned state after every step."""
        loss, output, reduction, self.target_input = train_settings(program, loss, output, reduction)  # spec's train:
        self.program, self.kind, self.reduction, self.dtype = program, loss, reduction, np.dtype(dtype)
        self.wrt_state = wrt_state
        self.flow = program.flow
        for op in self.flow:
            if op.op in NOT_DIFFERENTIATED:
                raise UsageError(f"{program.checked.file}: cannot differentiate `{'.'.join(map(str, op.path))}`: "
                                 f"{NOT_DIFFERENTIATED[op.op]} (issue #10)")
        self.exe = Executable.cached(program, backend, dtype)
        be = registry.get(backend)
        self.backend = backend

        self.backward_cells = {}  # use prefix -> its optimised backward cell

        def runner(back, prefix=None):
            return _BackwardRunner(back, be, dtype, self.backward_cells, prefix)
        self.forward, self.backward = {}, {}
        out = self.flow.output
        self.head = self._producer(out.outputs)
        self.decode = None
        for op in self.flow:
            if isinstance(op, flow.Decode):
                self.decode = op
                dec = op.decoder
                if dec.feed != "target" or dec.target is None:
                    raise UsageError(f"{program.checked.file}: `{'.'.join(map(str, op.path))}` feeds back its own "
                                     f"{dec.sample} tokens, which are not differentiable; train it with teacher "
                                     f"forcing (`feed: target` and `target: <an input>`)")
                cell = project_embeddings(program.cell(dec.use))
                back = grad(cell, state_adjoints=wrt_state, saved=True)
                self.forward[dec.use.prefix] = be.cell_runner(_with_states(cell, back.saved), dtype)
                self.backward[dec.use.prefix] = runner(back, dec.use.prefix)
            elif isinstance(op, flow.Scan):
                cell = project_embeddings(program.cell(op.use))
                back = grad(cell, state_adjoints=wrt_state, saved=True)
                self.forward[op.use.prefix] = be.cell_runner(_with_states(cell, back.saved), dtype)
                self.backward[op.use.prefix] = runner(back, op.use.prefix)
            elif isinstance(op, flow.Apply) and op is not self.head:
                self.backward[op.use.prefix] = runner(grad(program.cell(op.use)), op.use.prefix)
        shapes = self._output_shapes()
        self.output = _pick_output(shapes, output, program)
        head_cell = program.cell(self.loss_use) if self.loss_use is not None else None
        lc = loss_cell(head_cell, self.output, shapes[self.output], loss)
        self.loss_grad = grad(lc, outputs=[LOSS], keep_outputs=True)
        self.loss_runner = runner(self.loss_grad)

    def _producer(self, bundle: str):
        for op in self.flow:
            if isinstance(op, flow.Apply) and op.out == bundle:
                return op
        return None

    @property
    def loss_use(self):
        """The head whose graph the loss is added to: the model's head, or the decoder's."""
        if self.decode is not None:
            return self.decode.decoder.head.use
        return self.head.use if self.head is not None else None

    def _output_shapes(self) -> dict[str, tuple]:
        if self.loss_use is not None:
            cell = self.program.cell(self.loss_use)
            return {n: cell.node(nid).shape for n, nid in cell.outputs().items()}
        return dict(self.program.plan.stack.outputs)

    @property
    def per_step(self) -> bool:
        return self.head is None or self.head.at == "every_step"

    # -- the whole batch ----------------------------------------------------------------------------------
    def __call__(self, inputs: dict, target, params: dict, lengths=None, init_state: dict | None = None,
                 context: dict | None = None) -> Gradients:
        """`target`: token ids or values per step ([B, T, ...]) or per sequence; for an encoder-decoder, None
        (the target it is teacher-forced with)."""
        inputs = {n: np.asarray(v) if self.program.plan.input_dtypes.get(n) == "token" else
                  np.asarray(v, self.dtype) for n, v in inputs.items()}
        params = {k: np.asarray(v, self.dtype) for k, v in params.items()}
        context = context or {}
        batch = next(iter(inputs.values())).shape[0]
        run = _Run(inputs, context, params, init_state, lengths, False, 0, None, None, batch)
        saved = {}
        for op in self.flow.ops[:-1]:
            if op is self.head:
                continue
            if isinstance(op, flow.Scan):
                saved[op.out] = self._scan(op, run)
            elif isinstance(op, flow.Decode):
                saved[op.out] = self._teacher_forced(op, run)
            else:
                INTERPRETER[op.op](self.exe, op, run)
        if target is None and (self.decode is not None or self.target_input is not None):
            target = inputs[self.target_input or self.decode.decoder.target]
        if target is None:
            raise DataError("no target given: the loss compares the model's output with one")
        back = _Back(self, run, saved, np.asarray(target))
        for op in reversed(self.flow.ops):
            if op is not self.head:
                BACKWARD[op.op](back, op)
        final = {use.key(n): v for use, bundle in self.flow.output.finals for n, v in run.env[bundle].items()}
        dinputs = {n: v for n, v in back.adj.get(flow.INPUT, {}).items()}
        return Gradients(back.loss, back.grads, back.count, back.start_state, final, dinputs, back.states)

    def _scan(self, op: flow.Scan, run: _Run) -> dict:
        bound = self.forward[op.use.prefix].bind(_local(op.use, run.params))
        cin = {name: run.read(r) for name, r in op.feed}
        res = bound.scan(cin, run.env[op.state], run.lengths_of(op.lengths), op.reverse)
        run.env[op.out], prev = _split(res.outputs)
        run.env[op.final] = res.final_state
        return prev


    def _teacher_forced(self, op: flow.Decode, run: _Run) -> dict:
        """The decoder over the target's previous tokens (as drivers.Executable.decode runs it with a target),
        keeping what its backward step reads: its inputs, the state before each step, its outputs."""
        from ..drivers import decoder_memory, start_and_end_ids

        dec = op.decoder
        memory = decoder_memory(self.program, op, run, self.dtype)
        target = run.inputs[dec.target]
        start, _ = start_and_end_ids(self.program.vocab)
        prev_tokens = np.concatenate([np.full((run.batch, 1), start, target.dtype), target[:, :-1]], axis=1)
        n = prev_tokens.shape[1]
        x = {dec.token_input: prev_tokens}
        x.update({k: np.broadcast_to(v[:, None], (run.batch, n) + v.shape[1:]) for k, v in memory.items()})
        lengths = run.lengths_of((dec.target,))
        bound = self.forward[dec.use.prefix].bind(_local(dec.use, run.params))
        res = bound.scan(x, run.env[op.state], lengths, False)
        outs, prev = _split(res.outputs)
        run.env[op.final] = res.final_state
        return {"x": x, "prev": prev,
                "outputs": outs, "lengths": lengths,
                "source_steps": run.inputs[self.program.plan.stack.inputs[0]].shape[1] if op.memory else None}


class _BackwardRunner:
    """One backward step on a backend: its scan, and the once-per-batch graph from its sums to the params."""

    def __init__(self, back, be, dtype, cells: dict, prefix: str | None):
        self.back = back
        cell = optimise(back.cell)[0]
        if prefix is not None:
            cells[prefix] = cell
        self.step = be.cell_runner(cell, dtype)
        self.to_params = be.cell_runner(optimise(back.param_graph)[0], dtype) if back.sums else None

    def bind(self, params: dict):
        return self.step.bind(params)

    def param_grads(self, params: dict, outputs: dict) -> dict:
        """grad.<param> from one backward scan's outputs (each [B, T, ...])."""
        if self.to_params is None:
            return {}
        totals = {f"d.{SUM}{s.k}": s.total(outputs)[None, None] for s in self.back.sums}
        res = self.to_params.bind(params).scan(totals)
        return {n[len(GRAD):]: v[0, 0] for n, v in res.outputs.items()}


def _local(use, params: dict) -> dict:
    return {name: params[use.key(name)] for name in use.cell.params}


def _with_states(cell, saved: dict):
    """The forward cell with one more output per state, its value before the step (`prev.<state>`), and one
    per value its backward step reads instead of recomputing it (`fwd.<j>`: Backward.saved)."""
    out = cell.copy()
    for name, sid in cell.by_name("state").items():
        node = cell.node(sid)
        out.add(Node("output", node.shape, make_attrs({"name": PREV + name}), "float", node.origin), [sid])
    for name, nid in saved.items():
        node = cell.node(nid)
        out.add(Node("output", node.shape, make_attrs({"name": name}), node.dtype, node.origin), [nid])
    return out


def _split(outputs: dict) -> tuple[dict, dict]:
    """A forward scan's outputs: the cell's own, and what its backward step reads (each state before each
    step under the state's name, the saved values under theirs)."""
    own, kept = {}, {}
    for n, v in outputs.items():
        if n.startswith(PREV):
            kept[n[len(PREV):]] = v
        elif n.startswith(SAVED):
            kept[n] = v
        else:
            own[n] = v
    return own, kept


def _pick_output(shapes: dict, output: str | None, program) -> str:
    if output is None:
        if len(shapes) != 1:
            raise UsageError(f"{program.checked.file}: the model has outputs {', '.join(shapes)}; say which one the "
                             f"loss reads (--output-name NAME, or `output:` under the spec's `train:`)")
        return next(iter(shapes))
    if output not in shapes:
        raise UsageError(f"the model has no output `{output}`; outputs: {', '.join(shapes)}")
    return output


class _Back:
    """One backward walk: each bundle's adjoint, the param gradients, the start states' adjoints."""

    def __init__(self, gp: GradProgram, run: _Run, saved: dict, target: np.ndarray):
        self.gp, self.run, self.saved, self.target = gp, run, saved, target
        self.loss = self.count = 0.0
        self.adj: dict[str, dict[str, np.ndarray]] = {}
        self.grads = {k: np.zeros(np.shape(v), gp.dtype) for k, v in run.params.items()}
        self.start_state: dict[str, np.ndarray] = {}
        self.states: dict[str, np.ndarray] = {}  # wrt_state: each scanned state's adjoint after every step

    def keep_states(self, use, outputs: dict) -> None:
        for s in use.cell.states:
            if STATE_ADJ + s in outputs:
                self.states[use.key(s)] = outputs[STATE_ADJ + s]

    def add(self, bundle: str, member: str, value: np.ndarray) -> None:
        got = self.adj.setdefault(bundle, {})
        got[member] = value if member not in got else got[member] + value

    def add_grads(self, use, runner: "_BackwardRunner", outputs: dict) -> None:
        """The params' gradients from one backward scan of `use` (its sums over steps and batch)."""
        for name, v in runner.param_grads(_local(use, self.run.params), outputs).items():
            key = use.key(name)
            self.grads[key] = self.grads[key] + v

    # -- the loss ------------------------------------------------------------------------------------------
    def output(self, op: flow.Output) -> None:
        """The loss of the output bundle (computed in the head's graph when a head made it) and its adjoint."""
        gp, run, target = self.gp, self.run, self.target
        head = gp.head
        if gp.decode is not None:
            use, saved = gp.loss_use, self.saved[gp.decode.out]
            lengths = saved["lengths"]
            first = next(iter(saved["outputs"].values()))
            x = {**saved["outputs"], **{n: np.repeat(v[:, None], first.shape[1], axis=1)
                                        for n, v in run.context.items()}}
            x = {k: x[k] for k in use.cell.inputs}
        elif head is not None:
            use, lengths = head.use, run.lengths_of(head.lengths) if head.at == "every_step" else None
            x = self._apply_inputs(head)
        else:
            use, lengths = None, run.lengths_of(op_lengths(gp.flow))
            x = {gp.output: run.env[op.outputs][gp.output]}
        per_step = gp.per_step
        if not per_step:
            x = {n: v[:, None] for n, v in x.items()}
        first = next(iter(x.values()))
        batch, steps = first.shape[:2]
        want = (batch, steps) if per_step else (batch,)
        if target.shape[:len(want)] != want:
            raise DataError(f"the target has shape {list(target.shape)}; the loss of output `{gp.output}` needs "
                            f"[{', '.join(map(str, want))}{', ...' if gp.kind != 'xent' else ''}]"
                            + (" (one per step)" if per_step else " (one per sequence)"))
        if gp.kind == "xent":
            n = _classes(gp)
            bad = np.argwhere((target < 0) | (target >= n))
            if len(bad):
                at = tuple(int(i) for i in bad[0])
                raise DataError(f"target token ids must be 0..{n - 1} (output `{gp.output}` has {n} classes); "
                                f"target{list(at)} is {int(target[at])}")
        weights, count = step_weights(batch, steps if per_step else None, lengths, gp.reduction)
        tgt = target if per_step else target[:, None]
        seeds = {TARGET: tgt, OUT + LOSS: (weights if per_step else weights[:, None]).astype(gp.dtype)}
        bound = gp.loss_runner.bind(_local(use, run.params) if use is not None else {})
        res = bound.scan({**x, **seeds}, None, lengths, True)
        self.loss, self.count = float((res.outputs[LOSS] * seeds[OUT + LOSS]).sum()), count
        if gp.decode is not None:
            self.add_grads(use, gp.loss_runner, res.outputs)
            for n in self.saved[gp.decode.out]["outputs"]:
                if IN + n in res.outputs:
                    self.add(DECODER_OUT, n, res.outputs[IN + n])
        elif use is not None:
            self.add_grads(use, gp.loss_runner, res.outputs)
            self._to_feed(head, res.outputs, per_step)
        else:
            self.add(op.outputs, gp.output, res.outputs[IN + gp.output])

    def _apply_inputs(self, op: flow.Apply) -> dict:
        run, x, steps = self.run, {}, None
        for r in op.feed:
            if r.bundle != flow.CONTEXT:
                x.update(run.bundle(r))
                steps = next(iter(x.values())).shape[1] if op.at == "every_step" else None
        for r in op.feed:
            if r.bundle == flow.CONTEXT:
                ctx = run.bundle(r)
                x.update({n: np.repeat(v[:, None], steps, axis=1) if steps else v for n, v in ctx.items()})
        return {k: x[k] for k in op.use.cell.inputs}

    def _to_feed(self, op: flow.Apply, outputs: dict, per_step: bool) -> None:
        """The adjoints of an apply's cell inputs back onto the bundles it read (context: dropped)."""
        for r in op.feed:
            if r.bundle == flow.CONTEXT:
                continue
            for member in self.run.env[r.bundle]:
                d = outputs.get(IN + r.rename + member)
                if d is not None:
                    self.add(r.bundle, member, d if per_step else d[:, 0])

    # -- one method per flow op ----------------------------------------------------------------------------
    def apply(self, op: flow.Apply) -> None:
        seeds = self.adj.get(op.out)
        if not seeds:
            return
        run = self.run
        once = op.at == "once"
        x = self._apply_inputs(op)
        cell = self.gp.program.cell(op.use)
        outs = {n: cell.node(nid).shape for n, nid in cell.outputs().items()}
        first = next(iter(x.values()))
        lead = (first.shape[0],) if once else first.shape[:2]
        d = {OUT + n: seeds.get(n, np.zeros(lead + s, self.gp.dtype)) for n, s in outs.items()}
        if once:
            x, d = {n: v[:, None] for n, v in x.items()}, {n: v[:, None] for n, v in d.items()}
        bound = self.gp.backward[op.use.prefix].bind(_local(op.use, run.params))
        res = bound.scan({**x, **d}, None, None if once else run.lengths_of(op.lengths), True)
        self.add_grads(op.use, self.gp.backward[op.use.prefix], res.outputs)
        self._to_feed(op, res.outputs, not once)

    def take_last(self, op: flow.TakeLast) -> None:
        seeds = self.adj.get(op.out, {})
        lengths = self.run.lengths_of(op.lengths)
        for n, d in seeds.items():
            v = self.run.env[op.src][n]
            full = np.zeros(v.shape, self.gp.dtype)
            if op.reverse:
                full[:, 0] = d
            else:
                idx = np.full(v.shape[0], v.shape[1] - 1) if lengths is None else np.maximum(np.asarray(lengths) - 1, 0)
                full[np.arange(v.shape[0]), idx] = d
            self.add(op.src, n, full)

    def merge(self, op: flow.Merge) -> None:
        seeds = self.adj.get(op.out, {})
        a = self.run.env[op.a]
        for n, d in seeds.items():
            if op.how == "concat":
                w = a[n].shape[-1]
                self.add(op.a, n, d[..., :w])
                self.add(op.b, n, d[..., w:])
            elif op.how in ("sum", "mean"):
                half = d * 0.5 if op.how == "mean" else d
                self.add(op.a, n, half)
                self.add(op.b, n, half)
            else:  # separate: <name>_forward, <name>_reverse
                base, _, side = n.rpartition("_")
                self.add(op.a if side == "forward" else op.b, base, d)

    def scan(self, op: flow.Scan) -> None:
        gp, run = self.gp, self.run
        cell = gp.program.cell(op.use)
        outs = run.env[op.out]
        cin = {name: run.read(r) for name, r in op.feed}
        seeds = self.adj.get(op.out, {})
        d = {OUT + n: seeds.get(n, np.zeros(v.shape, gp.dtype)) for n, v in outs.items()}
        prev = self.saved[op.out]
        bound = gp.backward[op.use.prefix].bind(_local(op.use, run.params))
        state = self._carried(op.use, op.final)
        res = bound.scan({**cin, **prev, **d}, state, run.lengths_of(op.lengths), not op.reverse)
        self.add_grads(op.use, gp.backward[op.use.prefix], res.outputs)
        self.keep_states(op.use, res.outputs)
        for name, r in op.feed:
            dx = res.outputs.get(IN + name)
            if dx is not None:
                self.add(r.bundle, r.member, dx)
        self.adj[op.state] = {s: res.final_state[STATE + s] for s in cell.states if STATE + s in res.final_state}

    def decode(self, op: flow.Decode) -> None:
        """The teacher-forced decoder's backward scan: the adjoints of its start state and of the memory it read
        at every step (summed over the target steps, the source's padding dropped)."""
        gp, run, saved = self.gp, self.run, self.saved[op.out]
        dec = op.decoder
        seeds = self.adj.get(DECODER_OUT, {})
        d = {OUT + n: seeds.get(n, np.zeros(v.shape, gp.dtype)) for n, v in saved["outputs"].items()}
        bound = gp.backward[dec.use.prefix].bind(_local(dec.use, run.params))
        res = bound.scan({**saved["x"], **saved["prev"], **d}, self._carried(dec.use, op.final),
                         saved["lengths"], True)
        self.add_grads(dec.use, gp.backward[dec.use.prefix], res.outputs)
        self.keep_states(dec.use, res.outputs)
        for cin, r in op.memory:
            dm = res.outputs[IN + cin].sum(axis=1)[:, :saved["source_steps"]]
            self.add(r.bundle, r.member, dm)
        self.adj[op.state] = {s: res.final_state[STATE + s] for s in dec.use.cell.states
                              if STATE + s in res.final_state}

    def _carried(self, use, final: str) -> dict:
        """The backward scan's start: each state's adjoint after the last step (zero unless something read the
        final state), every param's sum zero."""
        carried, state = self.adj.get(final, {}), {}
        for name, info in self.gp.backward_cells[use.prefix].states.items():
            src = name[len(STATE):] if name.startswith(STATE) else None
            if src is not None and src in carried:
                state[name] = np.asarray(carried[src], self.gp.dtype)
            else:
                state[name] = np.zeros((self.run.batch,) + info.shape, self.gp.dtype)
        return state

    def start_state(self, op: flow.StartState) -> None:
        d = self.adj.get(op.out)
        if not d:
            return
        given = op.given and self.run.init_state and any(op.use.key(n) in self.run.init_state for n in d)
        for name, v in d.items():
            info = op.use.cell.states[name]
            if given:
                self.start_state[op.use.key(name)] = v
            elif op.over is not None and name in self.run.env.get(op.over, {}):
                self.add(op.over, name, v)
            elif info.from_context:
                self.add(flow.CONTEXT, info.init, v)
            elif isinstance(info.init, str):  # a learned start state
                key = op.use.key(info.init)
                self.grads[key] = self.grads[key] + v.reshape((-1,) + self.grads[key].shape).sum(axis=0)
            else:
                self.start_state[op.use.key(name)] = v


def op_lengths(fl: flow.Flow) -> tuple:
    scans = fl.of("scan")
    return scans[-1].lengths if scans else ()


def _classes(gp: GradProgram) -> int:
    if gp.loss_use is not None:
        cell = gp.program.cell(gp.loss_use)
        return cell.node(cell.outputs()[gp.output]).shape[0]
    return gp.program.plan.stack.outputs[gp.output][0]


BACKWARD = {
    "start_state": _Back.start_state,
    "scan": _Back.scan,
    "merge": _Back.merge,
    "take_last": _Back.take_last,
    "apply": _Back.apply,
    "decode": _Back.decode,
    "output": _Back.output,
}
