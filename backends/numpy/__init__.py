"""The NumPy backend: the reference interpreter.

It runs one cell graph in a loop over time, batched (batch is the leading
axis). Nodes are computed as early as they can be: param-only nodes once per
bind, input-only nodes for all steps at once before the loop (one matrix
multiply over T x B rows), and only the nodes that read state inside it.
Variable-length batches are masked: a padded step leaves the state as it was
and outputs exact zeros. The loop body is a flat list of closures; steps.py
says how a node becomes one (weights laid out once per bind, results written
into temporaries that die at their only reader).
"""
from __future__ import annotations

import functools

import numpy as np

from rnncompile.errors import DataError
from rnncompile.graph import CellGraph, stages
from rnncompile.ops import OPS, STEP_SOURCES
from rnncompile.registry import ScanResult

from .kernels import KERNELS, kernel
from .steps import Step, call, closure, plan_in_place


class CellRunner:
    """One cell graph, planned once; `bind` it to param values to run it."""

    def __init__(self, cell: CellGraph, dtype="float32"):
        self.cell, self.dtype = cell, np.dtype(dtype)
        self.stage = stages(cell)
        order = cell.order()
        self.plan = {s: [] for s in ("const", "seq", "loop")}
        for nid in order:
            node = cell.node(nid)
            if OPS[node.op].kind == "source":
                continue
            args = cell.args(nid)
            flags = [self.stage[a] != "const" for a in args]
            attrs = {**OPS[node.op].attrs, **node.attr_dict}
            fn = kernel(node.op, flags, [cell.node(a).shape for a in args], attrs, node.shape)
            self.plan[self.stage[nid]].append(Step(nid, fn, tuple(args), getattr(fn, "prepared", None)))
        self.inputs = cell.by_name("input")
        self.times = {nid: cell.node(nid).op for op in STEP_SOURCES for nid in cell.nodes_of(op)}  # t, seq_len
        self.states = cell.by_name("state")
        self.updates = cell.updates()
        plan_in_place(cell, self.stage, self.plan, self.updates, self.dtype)
        # states whose update reads only params (no input, no state): computed once, without a batch axis
        self.param_only = {name for name, nid in self.updates.items() if self.stage[nid] == "const"}
        # values made before the loop that a step reads: its own slice of them is set at every step
        read = {a for s in self.plan["loop"] for a in s.args} | set(self.updates.values()) | set(cell.outputs().values())
        self.read_per_step = [n for n in order if n in read and self.stage[n] == "seq"]
        self.outputs = cell.outputs()
        self.consts = [n for n in order if cell.node(n).op == "const"]
        self.params = cell.by_name("param")

    def bind(self, params: dict[str, np.ndarray]) -> "BoundCell":
        return BoundCell(self, params)


class BoundCell:
    def __init__(self, runner: CellRunner, params: dict[str, np.ndarray]):
        self.r = runner
        dtype = runner.dtype
        env = {n: np.asarray(runner.cell.node(n).attr("value"), dtype) for n in runner.consts}
        for name, nid in runner.params.items():
            env[nid] = np.asarray(params[name], dtype)
        for s in runner.plan["const"]:
            env[s.nid] = s.fn(*(env[a] for a in s.args))
        self.const_env = env
        self.params = params
        # (node, function, args) to call before the loop and in it, run-once arguments prepared now, once
        # per bind
        self.calls = {stage: [call(s, env) for s in runner.plan[stage]] for stage in ("seq", "loop")}

    @functools.cached_property
    def plain(self) -> dict:
        """The calls without writing into arguments, so every node keeps its value (for traces)."""
        return {stage: [call(s, self.const_env, False) for s in self.r.plan[stage]] for stage in ("seq", "loop")}

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        out = {}
        for name, info in self.r.cell.states.items():
            if isinstance(info.init, str):
                value = np.asarray(self.params[info.init], self.r.dtype)
            else:
                value = np.full(info.shape, info.init, self.r.dtype)
            out[name] = np.broadcast_to(value, (batch,) + info.shape).copy()
        return out

    def _inputs(self, inputs, rows):
        vals = {}
        for name, nid in self.r.inputs.items():
            x = inputs[name]
            if self.r.cell.node(nid).dtype == "token":
                vals[nid] = np.asarray(x).reshape((rows,) + x.shape[2:] if x.ndim > 1 else (rows,))
            else:
                vals[nid] = np.asarray(x, self.r.dtype)
        return vals

    def scan(self, inputs: dict[str, np.ndarray], state=None, lengths=None, reverse: bool = False,
             trace: bool = False, batch: int | None = None, steps: int | None = None, start: int = 0,
             total: int | None = None) -> ScanResult:
        """inputs: name -> [B, T, ...]; lengths: [B] real steps per sequence (None: all). A scan that is one
        chunk of a longer one says where it starts (`start`: the step index `t` of its first step) and how
        long the whole sequence is (`total`, the `seq_len` of every sequence without lengths; start + T by
        default)."""
        r = self.r
        first = next(iter(inputs.values())) if inputs else None
        batch = first.shape[0] if first is not None else batch
        steps = first.shape[1] if first is not None else steps
        env = dict(self.const_env)
        # input-only nodes: all steps at once, time-major rows (t, b): each step is a contiguous block
        seq = {}
        for name, nid in r.inputs.items():
            x = np.asarray(inputs[name])
            x = np.swapaxes(x, 0, 1)
            if r.cell.node(nid).dtype != "token":
                x = x.astype(r.dtype, copy=False)
            seq[nid] = x.reshape((steps * batch,) + x.shape[2:])
        for nid, op in r.times.items():  # t and seq_len, one row per (step, example) like an input's
            if op == "step_index":
                seq[nid] = np.repeat(np.arange(start, start + steps, dtype=r.dtype), batch)
            elif lengths is not None:
                seq[nid] = np.tile(np.asarray(lengths).astype(r.dtype), steps)
            else:
                seq[nid] = np.full(steps * batch, start + steps if total is None else total, r.dtype)
        calls = self.plain if trace else self.calls
        for nid, fn, args in calls["seq"]:
            seq[nid] = fn(*(seq[a] if a in seq else env[a] for a in args))
        seq = {n: np.broadcast_to(v, (steps * batch,) + r.cell.node(n).shape).reshape(
            (steps, batch) + r.cell.node(n).shape) for n, v in seq.items()}
        state = self.initial_state(batch) if state is None else {k: np.asarray(v, r.dtype) for k, v in state.items()}
        out_ids = r.outputs
        out_shapes = {name: r.cell.node(nid).shape for name, nid in out_ids.items()}
        collected = {name: np.zeros((steps, batch) + out_shapes[name], r.dtype) for name in out_ids}
        traced = {n: [None] * steps for n in r.cell.g.nodes if r.stage[n] == "loop"} if trace else {}
        lengths = None if lengths is None else np.asarray(lengths)
        batched = {name: _with_batch(env[r.updates[name]], batch) for name in r.param_only}
        # the step as a flat list of closures over env, and what moves between steps, resolved once
        run = [closure(fn, nid, args, env) for nid, fn, args in calls["loop"]]
        per_step = [(n, seq[n]) for n in r.read_per_step]
        carry = [(r.states[name], batched.get(name), nid, (batch,) + (1,) * len(r.cell.states[name].shape))
                 for name, nid in r.updates.items()]
        collect = [(collected[name], nid, (batch,) + (1,) * len(out_shapes[name])) for name, nid in out_ids.items()]
        for name, nid in r.states.items():
            env[nid] = state[name]
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            for n, v in per_step:
                env[n] = v[t]
            for step in run:
                step()
            if trace:  # before the states move on: a state's row is its value before the step
                for n in traced:
                    traced[n][t] = env[n]
            new = [env[nid] if fixed is None else fixed for _, fixed, nid, _ in carry]  # all read, then written
            if lengths is None:
                for (sid, *_), v in zip(carry, new):
                    env[sid] = v
                for col, nid, _ in collect:
                    col[t] = env[nid]
            else:
                live = t < lengths  # [B]: padded steps keep the state and output zeros
                for (sid, _, _, m), v in zip(carry, new):
                    env[sid] = np.where(live.reshape(m), v, env[sid])
                for col, nid, m in collect:
                    col[t] = np.where(live.reshape(m), env[nid], 0)
        state = {name: env[nid] for name, nid in r.states.items()}
        outputs = {name: np.swapaxes(v, 0, 1) for name, v in collected.items()}
        tr = {}
        if trace:
            tr = {n: np.stack([np.broadcast_to(x, (batch,) + r.cell.node(n).shape) for x in v], axis=1)
                  for n, v in traced.items() if steps}
            for n, v in seq.items():
                tr[n] = np.swapaxes(v, 0, 1)
            for n, v in self.const_env.items():
                tr[n] = v
        return ScanResult(outputs, state, tr)

    def rows(self, inputs: dict[str, np.ndarray], trace: bool = False):
        """A stateless graph on a batch of rows (e.g. one level of tree nodes): its outputs, and
        every node's value (node id -> array) when tracing."""
        r = self.r
        env = dict(self.const_env)
        for name, nid in r.inputs.items():
            x = np.asarray(inputs[name])
            env[nid] = x if r.cell.node(nid).dtype == "token" else x.astype(r.dtype, copy=False)
        for nid, fn, args in (self.plain if trace else self.calls)["seq"]:
            env[nid] = fn(*(env[a] for a in args))
        batch = len(next(iter(inputs.values())))
        outputs = {name: env[nid] if r.stage[nid] != "const" else
                   np.broadcast_to(env[nid], (batch,) + env[nid].shape) for name, nid in r.outputs.items()}
        return outputs, (env if trace else None)

    def step(self, inputs_t: dict[str, np.ndarray], state: dict[str, np.ndarray], t: int | None = None,
             seq_len=None):
        """One step without hoisting (for loops that feed back their own output); a cell that reads the step
        index needs `t` (and `seq_len`, a number or [B], when it reads that)."""
        r = self.r
        first = next(iter(inputs_t.values())) if inputs_t else None
        batch = first.shape[0] if first is not None else next(iter(state.values())).shape[0]
        env = dict(self.const_env)
        for nid, op in r.times.items():
            value = t if op == "step_index" else seq_len
            if value is None:
                raise DataError(step_needs(r.cell.name, op))
            env[nid] = np.broadcast_to(np.asarray(value, r.dtype), (batch,)).copy()
        for name, nid in r.inputs.items():
            x = np.asarray(inputs_t[name])
            env[nid] = x if r.cell.node(nid).dtype == "token" else x.astype(r.dtype, copy=False)
        for name, nid in r.states.items():
            env[nid] = state[name]
        for nid, fn, args in self.calls["seq"] + self.calls["loop"]:
            env[nid] = fn(*(env[a] for a in args))
        outputs = {name: np.broadcast_to(env[nid], (batch,) + r.cell.node(nid).shape) for name, nid in r.outputs.items()}
        return outputs, {name: _with_batch(env[nid], batch) if name in r.param_only else env[nid]
                         for name, nid in r.updates.items()}


def step_needs(cell: str, op: str) -> str:
    """The message for a single step of a cell that reads `t` or `seq_len` without being told it."""
    name = STEP_SOURCES[op]
    return (f"cell `{cell}` reads `{name}`, which a single step is not given here (a decoder that feeds back its "
            f"own output, or a completion, runs its cell one step at a time); run it as a scan, or write the cell "
            f"without `{name}`")


def _with_batch(value: np.ndarray, batch: int) -> np.ndarray:
    return np.broadcast_to(value, (batch,) + value.shape).copy()


class NumpyBackend:
    name = "numpy"
    capabilities = frozenset({"run", "trace"})  # what the drivers and the CLI may ask of it (rnncompile.registry)
    kernels = KERNELS

    def cell_runner(self, cell: CellGraph, dtype="float32") -> CellRunner:
        return CellRunner(cell, dtype)
