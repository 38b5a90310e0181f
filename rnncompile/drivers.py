"""Drivers: time, direction, stacking, heads and decoding, written once.

A backend only knows how to scan one cell over a batch of sequences (and
take single steps); everything a model composes out of cells happens here,
the same for every backend.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import registry
from .registry import ScanResult
from .errors import DataError
from .model import CellUse, Decoder, Head, Plan, Stack
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
    variable-length scan, or a short one, runs as one call. Whether a bar is shown never changes a number."""
    t = next(iter(inputs.values())).shape[1] if inputs else 0
    if want_trace or lengths is not None or t <= SCAN_CHUNK:
        res = bound.scan(inputs, state, lengths, reverse, want_trace)
        if progress is not None:
            progress.update(t)
        return res
    starts = list(range(0, t, SCAN_CHUNK))
    pieces = []
    for s in reversed(starts) if reverse else starts:
        res = bound.scan({n: v[:, s:s + SCAN_CHUNK] for n, v in inputs.items()}, state, None, reverse, False)
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

    # -- sequence models ----------------------------------------------------------
    def run_stack(self, stack: Stack, inputs: dict, params: dict, init_state: dict | None, lengths, trace: dict,
                  want_trace: bool, context: dict | None = None, progress=None):
        below = {n: inputs[n] for n in stack.inputs}
        b, t = next(iter(below.values())).shape[:2]
        finals_below = None
        final_state = {}
        for layer in stack.layers:
            outs, finals = [], []
            for use in layer.uses:
                bound = self.bind(use, params)
                cin = {cname: below[src] for cname, src in layer.feed.items()}
                state = _state_for(use, init_state)
                if state is None:  # the start values are the drivers' to give: constants, params or context
                    state = self.initial_state(use, params, context or {}, b)
                res = scan_in_chunks(bound, cin, state, lengths, use.reverse, want_trace, progress)
                if want_trace:
                    trace[use.prefix] = res.trace
                for name, v in res.final_state.items():
                    final_state[use.key(name)] = v
                outs.append(res.outputs)
                finals.append({name: _final_step(v, lengths, use.reverse) for name, v in res.outputs.items()})
            below = _merge(outs, layer.merge)
            finals_below = _merge(finals, layer.merge)
        return below, finals_below, final_state

    def summary(self, stack: Stack, final_state: dict) -> dict:
        """C: the top layer's final states, merged like its outputs."""
        top = stack.layers[-1]
        per_dir = [{n: final_state[u.key(n)] for n in u.cell.states} for u in top.uses]
        return _merge(per_dir, top.merge if len(top.uses) > 1 else "none")

    def run_head(self, head: Head, tops: dict, finals: dict, context: dict, params, lengths, trace, want_trace):
        bound = self.bind(head.use, params)
        if head.at == "last":
            x = {n: v[:, None] for n, v in finals.items()}
            x.update({n: v[:, None] for n, v in context.items()})
            res = bound.scan(x, None, None, False, want_trace)
            out = {n: v[:, 0] for n, v in res.outputs.items()}
        else:
            t = next(iter(tops.values())).shape[1]
            x = dict(tops)
            x.update({n: np.repeat(v[:, None], t, axis=1) for n, v in context.items()})
            res = bound.scan(x, None, lengths, False, want_trace)
            out = res.outputs
        if want_trace:
            trace[head.use.prefix] = res.trace
        return out

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

    # -- decoding -------------------------------------------------------------------
    def decoder_start(self, dec: Decoder, summary: dict, context: dict, params: dict, batch: int,
                      trace: dict | None = None):
        """The bound decoder cell and its start state [B, ...]; a bridge's values go to `trace` when given."""
        bound = self.bind(dec.use, params)
        if dec.init == "zeros":
            return bound, self.initial_state(dec.use, params, context, batch)
        if dec.init == "encoder":
            return bound, {n: summary[n] for n in dec.use.cell.states}
        bridge = self.bind(dec.init, params)
        x = {f"encoder.{n}": v[:, None] for n, v in summary.items()}
        x.update({n: v[:, None] for n, v in context.items()})
        res = bridge.scan({k: x[k] for k in dec.init.cell.inputs}, None, None, False, trace is not None)
        if trace is not None:
            trace[dec.init.prefix] = res.trace
        state = self.initial_state(dec.use, params, context, batch)
        state.update({n: v[:, 0] for n, v in res.outputs.items()})
        return bound, state

    def decode(self, dec: Decoder, bound, state: dict, params: dict, batch: int, context: dict, vocab,
               target=None, seed: int = 0, steps: int | None = None, sample=None, temperature=None, top_k=None,
               start_tokens=None, target_lengths=None, trace: dict | None = None, progress=None):
        """Teacher forcing (a target and its lengths given) or feeding back each step's own token.
        Returns the head's outputs [B, N, ...], the final state, the tokens [B, N] and tokens per sequence;
        with `trace`, the decoder's and its head's values step by step go there under their prefixes."""
        head = self.bind(dec.head.use, params)
        start, end = start_and_end_ids(vocab)
        want = trace is not None
        if dec.feed == "target" and target is not None:
            # padded target steps keep the state and give zeros, as padded source steps do in the encoder
            prev = np.concatenate([np.full((batch, 1), start, target.dtype), target[:, :-1]], axis=1)
            res = bound.scan({dec.token_input: prev}, state, target_lengths, False, want)
            ctx = {n: np.repeat(v[:, None], prev.shape[1], axis=1) for n, v in context.items()}
            hres = head.scan({**res.outputs, **ctx}, None, target_lengths, False, want)
            if want:
                trace[dec.use.prefix], trace[dec.head.use.prefix] = res.trace, hres.trace
            n = np.full(batch, prev.shape[1], np.int64) if target_lengths is None else np.asarray(target_lengths)
            return hres.outputs, res.final_state, target, n
        rng = np.random.default_rng(seed)
        steps = steps or dec.steps
        token = np.full(batch, start, np.int64) if start_tokens is None else np.asarray(start_tokens, np.int64)
        done = np.zeros(batch, bool)
        lengths = np.zeros(batch, np.int64)
        tokens, probs = [], []
        (pname,) = dec.head.use.cell.outputs()
        cell_trace, head_trace = [], []
        for _ in range(steps):
            if want:  # a one-step scan records every node, as a scan of the whole sequence would
                res = bound.scan({dec.token_input: token[:, None]}, state, None, False, True)
                outs, new_state = {n: v[:, 0] for n, v in res.outputs.items()}, res.final_state
                cell_trace.append(res.trace)
            else:
                outs, new_state = bound.step({dec.token_input: token}, state)
            x = {n: v[:, None] for n, v in outs.items()}
            x.update({n: v[:, None] for n, v in context.items()})
            hres = head.scan(x, None, None, False, want)
            head_trace.append(hres.trace)
            p = hres.outputs[pname][:, 0]
            token = sample_tokens(p, sample or dec.sample, temperature or dec.temperature,
                                  top_k if top_k is not None else dec.top_k, rng)
            token = np.where(done, end if end is not None else 0, token)
            if progress is not None:
                progress.update(1)
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
                trace[use.prefix] = _join_steps(steps_traced, self.program.cell(use))
        return {pname: np.stack(probs, axis=1)}, state, np.stack(tokens, axis=1), lengths

    # -- the whole model --------------------------------------------------------------
    def run(self, inputs: dict, params: dict, init_state: dict | None = None, lengths=None, context=None,
            trace: bool = False, seed: int = 0, decode_steps: int | None = None, progress=None) -> RunResult:
        """`lengths`: [B] real steps of every sequence input, or a dict of them by input name;
        `decode_steps`: how many tokens a decoder that feeds back its output writes (default: its `steps:`);
        `progress`: a tqdm bar to tick once per step of every scan (see `progress_total`)."""
        plan: Plan = self.program.plan
        context = context or {}
        traced: dict = {}
        steps = next(iter(inputs.values())).shape[1] if inputs else None
        stack_lengths = _lengths_for(lengths, plan.stack.inputs) if plan.stack is not None else None
        if plan.kind == "sequence":
            tops, finals, final_state = self.run_stack(plan.stack, inputs, params, init_state, stack_lengths, traced,
                                                       trace, context, progress)
            outputs = tops
            if plan.head is not None:
                outputs = self.run_head(plan.head, tops, finals, context, params, stack_lengths, traced, trace)
            return RunResult(outputs, final_state, traced, steps=steps)
        batch = _batch(inputs, context)
        summary, final_state = {}, {}
        if plan.stack is not None:
            _, _, final_state = self.run_stack(plan.stack, inputs, params, init_state, stack_lengths, traced, trace,
                                               context, progress)
            summary = self.summary(plan.stack, final_state)
        dec = plan.decoder
        want = traced if trace else None
        bound, state = self.decoder_start(dec, summary, context, params, batch, want)
        target = inputs.get(dec.target) if dec.target else None
        target_lengths = _lengths_for(lengths, [dec.target]) if dec.target else None
        outputs, dstate, tokens, out_lengths = self.decode(dec, bound, state, params, batch, context,
                                                           self.program.vocab, target, seed,
                                                           steps=decode_steps, target_lengths=target_lengths,
                                                           trace=want, progress=progress)
        final_state.update({dec.use.key(n): v for n, v in dstate.items()})
        return RunResult(outputs, final_state, traced, tokens, out_lengths, steps)


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
    tops, _, final_state = exe.run_stack(stack, {src: prompt[None]}, params, None, None, {}, False)
    p = head_bound.scan({n: v[:, -1:] for n, v in tops.items()}, None, None, False, False).outputs[pname][:, 0]
    state = {u.prefix: {n: final_state[u.key(n)] for n in u.cell.states} for layer in stack.layers for u in layer.uses}
    rng = np.random.default_rng(seed)
    _, end = start_and_end_ids(vocab)
    tokens, dists = [], []
    for _ in range(steps):
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
            outs, state[use.prefix] = b.step({c: below[s] for c, s in layer.feed.items()}, state[use.prefix])
            below = outs
        p = head_bound.scan({n: v[:, None] for n, v in below.items()}, None, None, False, False).outputs[pname][:, 0]
    return Completion(prompt, np.asarray(tokens, np.int64), np.asarray(dists))
