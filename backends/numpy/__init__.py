"""The NumPy backend: the reference interpreter.

It runs one cell graph in a loop over time, batched (batch is the leading
axis). Nodes are computed as early as they can be: param-only nodes once per
bind, input-only nodes for all steps at once before the loop (one matrix
multiply over T x B rows), and only the nodes that read state inside it.
Variable-length batches are masked: a padded step leaves the state as it was
and outputs exact zeros.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnncompile.graph import CellGraph, stages
from rnncompile.ops import OPS

from .kernels import KERNELS, kernel


@dataclass
class ScanResult:
    outputs: dict[str, np.ndarray]  # name -> [B, T, ...]
    final_state: dict[str, np.ndarray]  # name -> [B, ...]
    trace: dict[int, np.ndarray] = field(default_factory=dict)  # node id -> [B, T, ...] (const nodes: value)


@dataclass
class _Step:
    nid: int
    fn: object
    args: tuple


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
            self.plan[self.stage[nid]].append(_Step(nid, fn, tuple(args)))
        self.inputs = cell.by_name("input")
        self.states = cell.by_name("state")
        self.updates = cell.updates()
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
             trace: bool = False, batch: int | None = None, steps: int | None = None) -> ScanResult:
        """inputs: name -> [B, T, ...]; lengths: [B] real steps per sequence (None: all)."""
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
        for s in r.plan["seq"]:
            seq[s.nid] = s.fn(*(seq[a] if a in seq else env[a] for a in s.args))
        seq = {n: np.broadcast_to(v, (steps * batch,) + r.cell.node(n).shape).reshape(
            (steps, batch) + r.cell.node(n).shape) for n, v in seq.items()}
        state = self.initial_state(batch) if state is None else {k: np.asarray(v, r.dtype) for k, v in state.items()}
        out_ids = r.outputs
        out_shapes = {name: r.cell.node(nid).shape for name, nid in out_ids.items()}
        collected = {name: np.zeros((steps, batch) + out_shapes[name], r.dtype) for name in out_ids}
        traced = {n: [None] * steps for n in r.cell.g.nodes if r.stage[n] == "loop"} if trace else {}
        lengths = None if lengths is None else np.asarray(lengths)
        loop = r.plan["loop"]
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            for n, v in seq.items():
                env[n] = v[t]
            for name, nid in r.states.items():
                env[nid] = state[name]
            for s in loop:
                env[s.nid] = s.fn(*(env[a] for a in s.args))
            if lengths is None:
                state = {name: env[nid] for name, nid in r.updates.items()}
                for name, nid in out_ids.items():
                    collected[name][t] = env[nid]
            else:
                live = t < lengths  # [B]: padded steps keep the state and output zeros
                for name, nid in r.updates.items():
                    m = live.reshape((batch,) + (1,) * len(r.cell.states[name].shape))
                    state[name] = np.where(m, env[nid], state[name])
                for name, nid in out_ids.items():
                    m = live.reshape((batch,) + (1,) * len(out_shapes[name]))
                    collected[name][t] = np.where(m, env[nid], 0)
            if trace:
                for n in traced:
                    traced[n][t] = env[n]
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
        for s in r.plan["seq"]:
            env[s.nid] = s.fn(*(env[a] for a in s.args))
        batch = len(next(iter(inputs.values())))
        outputs = {name: env[nid] if r.stage[nid] != "const" else
                   np.broadcast_to(env[nid], (batch,) + env[nid].shape) for name, nid in r.outputs.items()}
        return outputs, (env if trace else None)

    def step(self, inputs_t: dict[str, np.ndarray], state: dict[str, np.ndarray]):
        """One step without hoisting (for loops that feed back their own output)."""
        r = self.r
        first = next(iter(inputs_t.values())) if inputs_t else None
        batch = first.shape[0] if first is not None else next(iter(state.values())).shape[0]
        env = dict(self.const_env)
        for name, nid in r.inputs.items():
            x = np.asarray(inputs_t[name])
            env[nid] = x if r.cell.node(nid).dtype == "token" else x.astype(r.dtype, copy=False)
        for name, nid in r.states.items():
            env[nid] = state[name]
        for s in r.plan["seq"] + r.plan["loop"]:
            env[s.nid] = s.fn(*(env[a] for a in s.args))
        outputs = {name: np.broadcast_to(env[nid], (batch,) + r.cell.node(nid).shape) for name, nid in r.outputs.items()}
        return outputs, {name: env[nid] for name, nid in r.updates.items()}


class NumpyBackend:
    name = "numpy"
    kernels = KERNELS

    def cell_runner(self, cell: CellGraph, dtype="float32") -> CellRunner:
        return CellRunner(cell, dtype)
