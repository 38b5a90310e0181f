"""Drivers: time, direction, stacking, heads and decoding, written once.

A backend only knows how to scan one cell over a batch of sequences (and
take single steps); everything a model composes out of cells happens here,
the same for every backend.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import flow, registry
from .registry import ScanResult
from .errors import DataError
from .plan import CellUse
from .program import SCAN_CHUNK, Program


@dataclass
class RunResult:
    outputs: dict[str, np.ndarray]  # the head's outputs (or the top layer's): [B, T, ...], or [B, ...] at: last
    final_state: dict[str, np.ndarray]  # weight-style keys: "h", "layers.1.reverse.c", "decoder.h"
    trace: dict[str, dict] = field(default_factory=dict)  # use prefix -> node id -> [B, T, ...]
    tokens: np.ndarray | None = None  # decoders: the produced token ids [B, N]
    lengths: np.ndarray | None = None  # decoders: tokens per sequence, the end token included
    steps: int | None = None  # time steps of the input sequences (padded length); None without any
    values: dict[str, np.ndarray] = field(default_factory=dict)  # traced runs: every node's value by name (api.run)

    def _repr_html_(self) -> str:
        """A notebook shows a run as a table: each output and final state, its shape and its first values."""
        from html import escape

        from .show import fmt_values

        rows = [("output", k, v) for k, v in self.outputs.items()] + \
               [("final state", k, v) for k, v in self.final_state.items()]
        body = "".join(f"<tr><td>{kind}</td><td><code>{escape(k)}</code></td><td>{list(v.shape)}</td>"
                       f"<td><code>{escape(fmt_values(v.reshape(-1)[:8]))}</code></td></tr>" for kind, k, v in rows)
        return ("<table><thead><tr><th></th><th>name</th><th>shape</th><th>first values</th></tr></thead>"
                f"<tbody>{body}</tbody></table>")


def start_and_end_ids(vocab) -> tuple[int, int | None]:
    """The token a decoder starts from (the start token, else the end token, else id 0) and the end token's
    id (None without one). Code generators use this too, so a generated decoder starts the same way."""
    end = vocab.tokens.index(vocab.end) if vocab.end is not None else None
    start = vocab.tokens.index(vocab.start) if vocab.start is not None else (end if end is not None else 0)
    return start, end


def sample_tokens(p: np.ndarray, how: str, temperature: float, top_k: int | None, rng) -> np.ndarray:
    """One token per row of a batch of distributions p [B, V]: the most likely (greedy), or one drawn
    from p ** (1 / temperature) over the top_k most likely (sample; one rng.random per row, in float64)."""
    p = np.asarray(p, dtype=np.float64)
    if how == "greedy":
        return p.argmax(axis=-1)
    logp = np.log(np.maximum(p, 1e-300)) / temperature
    if top_k is not None and top_k < p.shape[-1]:
        kth = np.sort(logp, axis=-1)[:, -top_k][:, None]
        logp = np.where(logp >= kth, logp, -np.inf)
    q = np.exp(logp - logp.max(axis=-1, keepdims=True))
    q /= q.sum(axis=-1, keepdims=True)
    u = rng.random((p.shape[0], 1))
    return np.minimum((q.cumsum(axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)


def scan_in_chunks(bound, inputs: dict, state, lengths, reverse: bool, want_trace: bool, progress=None):
    """A scan over the whole sequence as scans of SCAN_CHUNK steps, carrying the state from one to the next
    (in reverse order for a reverse scan): what a backend computes for all steps before its loop is then
    held for one chunk at a time, and a progress bar (a tqdm) ticks as each chunk ends. A traced or
    variable-length scan, or a short one, runs as one call. Whether a bar is shown never changes a number.
    Each chunk is told its first step's index and the whole length, so `t` and `seq_len` read as unchunked."""
    t = next(iter(inputs.values())).shape[1] if inputs else 0
    if want_trace or lengths is not None or t <= SCAN_CHUNK:
        res = bound.scan(inputs, state, lengths, reverse, want_trace)
        if progress is not None:
            progress.update(t)
        return res
    starts = list(range(0, t, SCAN_CHUNK))
    pieces = []
    for s in reversed(starts) if reverse else starts:
        res = bound.scan({n: v[:, s:s + SCAN_CHUNK] for n, v in inputs.items()}, state, None, reverse, False,
                         start=s, total=t)  # the step index `t` of the chunk's first step, and the length
        state = res.final_state
        pieces.append(res.outputs)
        if progress is not None:
            progress.update(min(SCAN_CHUNK, t - s))
    if reverse:
        pieces.reverse()
    return ScanResult({n: np.concatenate([p[n] for p in pieces], axis=1) for n in pieces[0]}, state)


class Executable:
    """A program prepared for one backend and dtype; `run` it as often as you like."""

    def __init__(self, program: Program, backend: str = "numpy", dtype: str = "float32"):
        self.program, self.dtype = program, np.dtype(dtype)
        be = registry.get(backend)
        self.runners = {use.prefix: be.cell_runner(program.cell(use), dtype) for use in program.plan.uses()}

    @classmethod
    def cached(cls, program: Program, backend: str = "numpy", dtype: str = "float32") -> "Executable":
        """The program's Executable for this backend and dtype, planned once and kept on the program (a
        program's graphs never change after compile), so repeated runs do not plan again."""
        key = (backend, np.dtype(dtype).name)
        if key not in program.executables:
            program.executables[key] = cls(program, backend, dtype)
        return program.executables[key]

    def bind(self, use: CellUse, params: dict):
        local = {name: params[use.key(name)] for name in use.cell.params}
        return self.runners[use.prefix].bind(local)

    # -- the flow's ops, one method each (INTERPRETER below names them) ---------------------------
    def start_state(self, op: flow.StartState, run: "_Run") -> None:
        """The one start-state rule: a state the caller gives wins, then the values of `over` (the encoder's
        summary, a bridge's outputs), then the cell's own init (constant, param, context input)."""
        given = _state_for(op.use, run.init_state) if op.given else None
        if given is not None:
            run.env[op.out] = given
            return
        state = self.initial_state(op.use, run.params, run.context, run.batch)
        if op.over is not None:
            state.update({n: v for n, v in run.env[op.over].items() if n in state})
        run.env[op.out] = state

    def scan(self, op: flow.Scan, run: "_Run") -> None:
        bound = self.bind(op.use, run.params)
        cin = {name: run.read(r) for name, r in op.feed}
        res = scan_in_chunks(bound, cin, run.env[op.state], run.lengths_of(op.lengths), op.reverse, run.want_trace,
                             run.progress)
        if run.want_trace:
            run.trace[op.use.prefix] = res.trace
        run.env[op.out], run.env[op.final] = res.outputs, res.final_state

    def merge(self, op: flow.Merge, run: "_Run") -> None:
        run.env[op.out] = _merge([run.env[op.a], run.env[op.b]], op.how)

    def take_last(self, op: flow.TakeLast, run: "_Run") -> None:
        lengths = run.lengths_of(op.lengths)
        run.env[op.out] = {n: _final_step(v, lengths, op.reverse) for n, v in run.env[op.src].items()}

    def apply(self, op: flow.Apply, run: "_Run") -> None:
        bound = self.bind(op.use, run.params)
        if op.at == "once":  # one row per sequence: a scan of one step
            x = {n: v[:, None] for r in op.feed for n, v in run.bundle(r).items()}
            res = bound.scan({k: x[k] for k in op.use.cell.inputs}, None, None, False, run.want_trace)
            run.env[op.out] = {n: v[:, 0] for n, v in res.outputs.items()}
        else:
            x, steps = {}, None
            for r in op.feed:
                if r.bundle != flow.CONTEXT:
                    x.update(run.bundle(r))
                    steps = next(iter(x.values())).shape[1]
            for r in op.feed:
                if r.bundle == flow.CONTEXT:
                    x.update({n: np.repeat(v[:, None], steps, axis=1) for n, v in run.bundle(r).items()})
            res = bound.scan({k: x[k] for k in op.use.cell.inputs}, None, run.lengths_of(op.lengths), False,
                             run.want_trace)
            run.env[op.out] = res.outputs
        if run.want_trace:
            run.trace[op.use.prefix] = res.trace

    def decode(self, op: flow.Decode, run: "_Run") -> None:
        """Teacher forcing (a target given) or feeding back each step's own token; the head's outputs
        [B, N, ...], the final state, and the tokens [B, N] with their count per sequence."""
        dec = op.decoder
        bound, head = self.bind(dec.use, run.params), self.bind(dec.head.use, run.params)
        state, context, batch = run.env[op.state], run.context, run.batch
        memory = decoder_memory(self.program, op, run, self.dtype)
        start, end = start_and_end_ids(self.program.vocab)
        want = run.want_trace
        target = run.inputs.get(dec.target) if dec.target else None
        if dec.feed == "target" and target is not None:
            # padded target steps keep the state and give zeros, as padded source steps do in the encoder
            target_lengths = run.lengths_of((dec.target,))
            prev = np.concatenate([np.full((batch, 1), start, target.dtype), target[:, :-1]], axis=1)
            n = prev.shape[1]
            x = {dec.token_input: prev}
            x.update({k: np.broadcast_to(v[:, None], (batch, n) + v.shape[1:]) for k, v in memory.items()})
            res = bound.scan(x, state, target_lengths, False, want)
            ctx = {k: np.repeat(v[:, None], n, axis=1) for k, v in context.items()}
            hres = head.scan({**res.outputs, **ctx}, None, target_lengths, False, want)
            if want:
                run.trace[dec.use.prefix], run.trace[dec.head.use.prefix] = res.trace, hres.trace
            counts = np.full(batch, n, np.int64) if target_lengths is None else np.asarray(target_lengths)
            run.env[op.out], run.env[op.final] = hres.outputs, res.final_state
            run.env[op.tokens] = {"tokens": target, "lengths": counts}
            return
        rng = np.random.default_rng(run.seed)
        token = np.full(batch, start, np.int64)
        done = np.zeros(batch, bool)
        lengths = np.zeros(batch, np.int64)
        tokens, probs = [], []
        (pname,) = dec.head.use.cell.outputs()
        cell_trace, head_trace = [], []
        for _ in range(run.decode_steps or dec.steps):
            x = {dec.token_input: token, **memory}
            if want:  # a one-step scan records every node, as a scan of the whole sequence would
                res = bound.scan({k: v[:, None] for k, v in x.items()}, state, None, False, True)
                outs, new_state = {n: v[:, 0] for n, v in res.outputs.items()}, res.final_state
                cell_trace.append(res.trace)
            else:
                outs, new_state = bound.step(x, state)
            hx = {n: v[:, None] for n, v in outs.items()}
            hx.update({n: v[:, None] for n, v in context.items()})
            hres = head.scan(hx, None, None, False, want)
            head_trace.append(hres.trace)
            p = hres.outputs[pname][:, 0]
            token = sample_tokens(p, dec.sample, dec.temperature, dec.top_k, rng)
            token = np.where(done, end if end is not None else 0, token)
            if run.progress is not None:
                run.progress.update(1)
            state = {n: np.where(done.reshape((-1,) + (1,) * (v.ndim - 1)), state[n], v) for n, v in new_state.items()}
            probs.append(np.where(done[:, None], 0, p))
            tokens.append(token)
            lengths += ~done
            if end is not None and dec.stop_at_end:
                done |= token == end
                if done.all():
                    break
        if want:
            for use, steps_traced in ((dec.use, cell_trace), (dec.head.use, head_trace)):
                run.trace[use.prefix] = _join_steps(steps_traced, self.program.cell(use))
        run.env[op.out], run.env[op.final] = {pname: np.stack(probs, axis=1)}, state
        run.env[op.tokens] = {"tokens": np.stack(tokens, axis=1), "lengths": lengths}

    def tree_fold(self, op: flow.TreeFold, run: "_Run") -> None:
        """The fold over a batch of trees (trees.run.FoldRunner); `run.inputs[op.input]` holds the forest,
        its token ids, the mode and the schedule, as rnncompile.trees.api.run_trees prepares them."""
        from .trees.run import FoldRunner

        forest, tokens, mode, schedule = run.inputs[op.input]
        run.env[op.out] = FoldRunner(self, run.params).run(forest, tokens, mode, run.want_trace, schedule,
                                                           run.progress)

    def output(self, op: flow.Output, run: "_Run"):
        if self.program.plan.kind == "tree":
            return run.env[op.outputs]
        final_state = {use.key(n): v for use, bundle in op.finals for n, v in run.env[bundle].items()}
        tokens = run.env[op.tokens] if op.tokens else {}
        return RunResult(run.env[op.outputs], final_state, run.trace, tokens.get("tokens"), tokens.get("lengths"),
                         run.steps)

    def initial_state(self, use: CellUse, params: dict, context: dict, batch: int) -> dict[str, np.ndarray]:
        """Each state's start value [B, ...]: its constant, its param, or a model context input (one per sequence)."""
        out = {}
        for name, info in use.cell.states.items():
            if info.from_context:
                if info.init not in context:
                    raise DataError(f"state `{use.key(name)}` starts from context input `{info.init}`, "
                                    f"which was not given")
                value = np.asarray(context[info.init], self.dtype)
                if value.shape != (batch,) + info.shape:
                    raise DataError(f"context input `{info.init}` has shape {list(value.shape)}; state "
                                    f"`{use.key(name)}` needs {[batch, *info.shape]} (one per sequence)")
                out[name] = value.copy()
                continue
            value = params[use.key(info.init)] if isinstance(info.init, str) else info.init
            out[name] = np.broadcast_to(np.asarray(value, self.dtype), (batch,) + info.shape).copy()
        return out

    # -- the whole model --------------------------------------------------------------
    def run_flow(self, ops, run: "_Run"):
        """Interpret flow ops in order; the last one's result (an Output's RunResult) comes back."""
        result = None
        for op in ops:
            result = INTERPRETER[op.op](self, op, run)
        return result

    def run_fold(self, fold_flow, forest, tokens: dict, mode: str, schedule, params: dict, trace: bool = False,
                 progress=None):
        """A tree model's flow over a forest (its token ids, mode and schedule as trees.api.run_trees makes them)."""
        (op,) = fold_flow.of("tree_fold")
        run = _Run({op.input: (forest, tokens, mode, schedule)}, {}, params, None, None, trace, 0, None, progress,
                   forest.size)
        return self.run_flow(fold_flow, run)

    def run(self, inputs: dict, params: dict, init_state: dict | None = None, lengths=None, context=None,
            trace: bool = False, seed: int = 0, decode_steps: int | None = None, progress=None) -> RunResult:
        """`lengths`: [B] real steps of every sequence input, or a dict of them by input name;
        `decode_steps`: how many tokens a decoder that feeds back its output writes (default: its `steps:`);
        `progress`: a tqdm bar to tick once per step of every scan (see `progress_total`)."""
        context = context or {}
        run = _Run(inputs, context, params, init_state, lengths, trace, seed, decode_steps, progress,
                   _batch(inputs, context))
        return self.run_flow(self.program.flow, run)


@dataclass
class _Run:
    """One run's inputs, settings and bundles (flow op outputs by name), as the interpreter goes."""

    inputs: dict
    context: dict
    params: dict
    init_state: dict | None
    lengths: object  # None, [B], or a dict of them by input name
    want_trace: bool
    seed: int
    decode_steps: int | None
    progress: object
    batch: int
    trace: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        self.env[flow.INPUT], self.env[flow.CONTEXT] = self.inputs, self.context

    @property
    def steps(self) -> int | None:
        return next(iter(self.inputs.values())).shape[1] if self.inputs else None

    def read(self, r: flow.Read):
        return self.env[r.bundle][r.member]

    def bundle(self, r: flow.Read) -> dict:
        return {r.rename + n: v for n, v in self.env[r.bundle].items()}

    def lengths_of(self, names: tuple):
        return _lengths_for(self.lengths, list(names)) if names else None


INTERPRETER = {
    "start_state": Executable.start_state,
    "scan": Executable.scan,
    "merge": Executable.merge,
    "take_last": Executable.take_last,
    "apply": Executable.apply,
    "decode": Executable.decode,
    "tree_fold": Executable.tree_fold,
    "output": Executable.output,
}


def progress_total(program: Program, steps: int, decode_steps: int | None = None) -> int:
    """The ticks `Executable.run` gives a progress bar: every scan's steps, then every token a decoder writes
    (a decoder that stops at its end token early leaves the bar short of its total)."""
    plan = program.plan
    total = steps * sum(len(layer.uses) for layer in plan.stack.layers) if plan.stack is not None else 0
    if plan.decoder is not None and plan.decoder.feed != "target":
        total += decode_steps or plan.decoder.steps
    return total


def _lengths_for(lengths, names: list[str]):
    """The lengths of the inputs one scan reads: the one array every input shares, or theirs by name."""
    if not isinstance(lengths, dict):
        return lengths
    given = {n: np.asarray(lengths[n]) for n in names if n in lengths}
    if not given:
        return None
    first, *rest = given.values()
    if len(given) < len(names) or any(not np.array_equal(first, v) for v in rest):
        raise DataError(f"inputs {', '.join(names)} are read by one layer, so they need the same lengths")
    return first


def decoder_memory(program: Program, op: flow.Decode, run: "_Run", dtype) -> dict[str, np.ndarray]:
    """A decoder's per-sequence inputs: the encoder's outputs at every source step [B, S, ...] (a shorter
    source padded with zeros to the cell's S rows) and the mask [B, S] of the real source steps. The
    interpreter's decode and the training pass (autodiff.bptt) both read them from here."""
    memory = {name: run.read(r) for name, r in op.memory}
    if not (op.memory or op.memory_mask):
        return memory
    cin = op.memory[0][0] if op.memory else op.memory_mask[0]
    want = op.decoder.use.cell.inputs[cin].shape[0]
    steps = run.inputs[program.plan.stack.inputs[0]].shape[1]
    if steps > want:
        raise DataError(f"the source has {steps} steps, but the decoder's attention reads at most {want} "
                        f"(its input `{cin}` is [{want}, ...]): raise that dim, or shorten the source")
    memory = {k: _pad_steps(v, want) for k, v in memory.items()}
    if op.memory_mask is not None:
        name, sources = op.memory_mask
        lengths = run.lengths_of(sources)
        real = np.full(run.batch, steps) if lengths is None else np.asarray(lengths)
        memory[name] = (np.arange(want)[None, :] < real[:, None]).astype(dtype)
    return memory


def _pad_steps(v: np.ndarray, steps: int) -> np.ndarray:
    """[B, n, ...] values padded with zeros to [B, steps, ...]."""
    if v.shape[1] == steps:
        return v
    out = np.zeros((v.shape[0], steps) + v.shape[2:], v.dtype)
    out[:, :v.shape[1]] = v
    return out


def _join_steps(traces: list[dict], cell) -> dict:
    """One-step traces (node -> [B, 1, ...]) joined along time; a constant (just the node's shape) kept once."""
    if not traces:
        return {}
    return {n: np.concatenate([t[n] for t in traces], axis=1) if np.ndim(v) == len(cell.node(n).shape) + 2 else v
            for n, v in traces[0].items()}


def _batch(inputs: dict, context: dict) -> int:
    for v in list(inputs.values()) + list(context.values()):
        return np.asarray(v).shape[0]
    return 1


def _state_for(use: CellUse, init_state: dict | None):
    if not init_state:
        return None
    keys = {name: use.key(name) for name in use.cell.states}
    if not any(k in init_state for k in keys.values()):
        return None
    missing = [k for k in keys.values() if k not in init_state]
    if missing:
        raise DataError(f"initial state given without {', '.join(missing)}")
    return {name: init_state[key] for name, key in keys.items()}


def _final_step(v: np.ndarray, lengths, reverse: bool) -> np.ndarray:
    """Each sequence's output after its last real step (step 0 for the reverse direction)."""
    if reverse:
        return v[:, 0]
    if lengths is None:
        return v[:, -1]
    idx = np.maximum(np.asarray(lengths) - 1, 0)
    return v[np.arange(v.shape[0]), idx]


def _merge(per_direction: list[dict], how: str) -> dict:
    if len(per_direction) == 1:
        return per_direction[0]
    fwd, rev = per_direction
    if how == "concat":
        return {n: np.concatenate([fwd[n], rev[n]], axis=-1) for n in fwd}
    if how == "sum":
        return {n: fwd[n] + rev[n] for n in fwd}
    if how == "mean":
        return {n: (fwd[n] + rev[n]) * 0.5 for n in fwd}
    out = {f"{n}_forward": v for n, v in fwd.items()}
    out.update({f"{n}_reverse": v for n, v in rev.items()})
    return out


@dataclass
class Completion:
    prompt: np.ndarray  # token ids
    tokens: np.ndarray  # the continuation's token ids
    distributions: np.ndarray  # [len(tokens), V]: the distribution each token was drawn from
    note: str = ""  # e.g. which prompt words were read as the unknown token
    text: str = ""  # the continuation as text (api.complete decodes it with the spec's vocabulary)


def complete(exe: Executable, params: dict, prompt: np.ndarray, steps: int, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0, greedy: bool = False, progress=None) -> Completion:
    """Continue a token sequence with a language model (a stack with a per-step head over the vocabulary):
    run the prompt through the stack, then feed each drawn token back in."""
    plan = exe.program.plan
    stack, head = plan.stack, plan.head
    vocab = exe.program.vocab
    bound = [[exe.bind(u, params) for u in layer.uses] for layer in stack.layers]
    head_bound = exe.bind(head.use, params)
    (pname,) = head.use.cell.outputs()
    (src,) = stack.inputs
    prog_flow = exe.program.flow
    (head_op,) = prog_flow.of("apply")
    run = _Run({src: prompt[None]}, {}, params, None, None, False, seed, None, None, 1)
    exe.run_flow([op for op in prog_flow if op.op in ("start_state", "scan", "merge")], run)
    tops = run.env[head_op.feed[0].bundle]
    p = head_bound.scan({n: v[:, -1:] for n, v in tops.items()}, None, None, False, False).outputs[pname][:, 0]
    state = {op.use.prefix: run.env[op.final] for op in prog_flow.of("scan")}
    rng = np.random.default_rng(seed)
    _, end = start_and_end_ids(vocab)
    tokens, dists = [], []
    for k in range(steps):
        token = sample_tokens(p, "greedy" if greedy else "sample", temperature, top_k, rng)
        if progress is not None:
            progress.update(1)
        tokens.append(int(token[0]))
        dists.append(p[0])
        if end is not None and token[0] == end:
            break
        below = {src: token}
        for layer, layer_bound in zip(stack.layers, bound):
            use, b = layer.uses[0], layer_bound[0]
            outs, state[use.prefix] = b.step({c: below[s] for c, s in layer.feed.items()}, state[use.prefix],
                                             t=len(prompt) + k)  # the step index continues after the prompt
            below = outs
        p = head_bound.scan({n: v[:, None] for n, v in below.items()}, None, None, False, False).outputs[pname][:, 0]
    return Completion(prompt, np.asarray(tokens, np.int64), np.asarray(dists))
