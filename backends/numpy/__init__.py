"""The NumPy backend: the reference interpreter.

It runs a cell graph in a loop over time, batched (batch is the leading
axis). Nodes are computed as early as they can be: param-only nodes once per
run, input-only nodes for all steps at once before the loop (one matrix
multiply over T x B rows), and only the nodes that read state inside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnncompile.graph import CellGraph, stages
from rnncompile.ops import OPS

from .kernels import KERNELS, kernel


@dataclass
class RunResult:
    outputs: dict[str, np.ndarray]  # name -> [B, T, ...]
    final_state: dict[str, np.ndarray]  # name -> [B, ...]
    trace: dict[int, np.ndarray] = field(default_factory=dict)  # node id -> [B, T, ...] (const nodes: value)


@dataclass
class _Step:
    nid: int
    fn: object
    args: tuple


class CellRunner:
    """One cell graph, planned for repeated execution."""

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
            attrs = {**{k: v for k, v in OPS[node.op].attrs.items()}, **node.attr_dict}
            fn = kernel(node.op, flags, [cell.node(a).shape for a in args], attrs, node.shape)
            self.plan[self.stage[nid]].append(_Step(nid, fn, tuple(args)))
        self.inputs = cell.by_name("input")
        self.states = cell.by_name("state")
        self.updates = cell.updates()
        self.outputs = cell.outputs()
        self.consts = [n for n in order if cell.node(n).op == "const"]
        self.params = cell.by_name("param")

    def initial_state(self, params: dict, batch: int) -> dict[str, np.ndarray]:
        out = {}
        for name, info in self.cell.states.items():
            if isinstance(info.init, str):
                value = np.asarray(params[info.init], self.dtype)
            else:
                value = np.full(info.shape, info.init, self.dtype)
            out[name] = np.broadcast_to(value, (batch,) + info.shape).copy()
        return out

    def run(self, inputs: dict[str, np.ndarray], params: dict[str, np.ndarray], init_state=None,
            trace: bool = False, reverse: bool = False) -> RunResult:
        """inputs: name -> [B, T, ...]; params: name -> array."""
        first = next(iter(inputs.values())) if inputs else None
        batch, steps = (first.shape[0], first.shape[1]) if first is not None else (1, 1)
        env: dict[int, np.ndarray] = {}
        for n in self.consts:
            env[n] = np.asarray(self.cell.node(n).attr("value"), self.dtype)
        for name, nid in self.params.items():
            env[nid] = np.asarray(params[name], self.dtype)
        for s in self.plan["const"]:
            env[s.nid] = s.fn(*(env[a] for a in s.args))

        # input-only nodes: all steps at once, time-major rows (t, b) so each step is a contiguous block
        seq = {}
        for name, nid in self.inputs.items():
            x = inputs[name]
            x = np.swapaxes(x, 0, 1) if x.ndim > 1 else x
            x = x.astype(self.dtype, copy=False) if self.cell.node(nid).dtype != "token" else x
            seq[nid] = x.reshape((steps * batch,) + x.shape[2:])
        for s in self.plan["seq"]:
            seq[s.nid] = s.fn(*(seq[a] if a in seq else env[a] for a in s.args))
        seq = {n: v.reshape((steps, batch) + v.shape[1:]) for n, v in seq.items()}

        state = self.initial_state(params, batch) if init_state is None else {
            k: np.asarray(v, self.dtype) for k, v in init_state.items()}
        loop = self.plan["loop"]
        out_ids = {name: nid for name, nid in self.outputs.items()}
        collected = {name: [None] * steps for name in out_ids}
        traced = {n: [None] * steps for n in self.cell.g.nodes if self.stage[n] == "loop"} if trace else {}
        state_ids = self.states
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            for n, v in seq.items():
                env[n] = v[t]
            for name, nid in state_ids.items():
                env[nid] = state[name]
            for s in loop:
                env[s.nid] = s.fn(*(env[a] for a in s.args))
            state = {name: env[nid] for name, nid in self.updates.items()}
            for name, nid in out_ids.items():
                collected[name][t] = env[nid]
            if trace:
                for n in traced:
                    traced[n][t] = env[n]
        outputs = {name: _stack(vals, batch, self.cell.node(out_ids[name]).shape, self.dtype)
                   for name, vals in collected.items()}
        tr = {}
        if trace:
            tr = {n: np.stack(v, axis=1) for n, v in traced.items()}
            for n, v in seq.items():
                tr[n] = np.swapaxes(v, 0, 1)
            for n in self.cell.g.nodes:
                if self.stage[n] == "const" and n in env:
                    tr[n] = env[n]
        return RunResult(outputs, {k: np.asarray(v) for k, v in state.items()}, tr)


def _stack(vals, batch, shape, dtype):
    vals = [np.broadcast_to(v, (batch,) + tuple(shape)) for v in vals]
    if not vals:
        return np.zeros((batch, 0) + tuple(shape), dtype)
    return np.stack(vals, axis=1)


class NumpyExecutable:
    def __init__(self, program, dtype="float32"):
        self.program = program
        self.runner = CellRunner(program.scan_cell, dtype)

    def run(self, inputs, params, init_state=None, trace=False) -> RunResult:
        return self.runner.run(inputs, params, init_state, trace, reverse=self.program.direction == "reverse")


class NumpyBackend:
    name = "numpy"
    kernels = KERNELS

    def prepare(self, program, dtype="float32") -> NumpyExecutable:
        return NumpyExecutable(program, dtype)
