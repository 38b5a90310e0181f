"""The NumPy backend: the reference interpreter.

It runs one cell graph in a loop over time, batched (batch is the leading
axis). Nodes are computed as early as they can be: param-only nodes once per
bind, input-only nodes for all steps at once before the loop (one matrix
multiply over T x B rows), and only the nodes that read state inside it,
with the element-by-element input-only work that only the loop reads (which
batching does not make cheaper) done there too, in cache.
Variable-length batches are masked: a padded step leaves the state as it was
and outputs exact zeros. The loop body is a flat list of closures; steps.py
says how a node becomes one (weights laid out once per bind, results written
into temporaries that die at their only reader, or straight into an output's
row of the step). An output made before the loop is taken whole, and outputs
of one node share one array: no copy per step.
"""
from __future__ import annotations

import functools
import sys
import threading

import numpy as np

from rnncompile.errors import DataError
from rnncompile.graph import CellGraph, stages
from rnncompile.ops import OPS, STEP_SOURCES
from rnncompile.registry import ScanResult

from .kernels import KERNELS, kernel
from .steps import FRESH, Step, call, closure, closure_into, one_branch, plan_in_place, writes_into


class CellRunner:
    """One cell graph, planned once; `bind` it to param values to run it."""

    def __init__(self, cell: CellGraph, dtype="float32"):
        self.cell, self.dtype = cell, np.dtype(dtype)
        self.stage = _row_work_in_the_loop(cell, stages(cell))
        order = cell.order()
        self.plan = {s: [] for s in ("const", "seq", "loop")}
        for nid in order:
            node = cell.node(nid)
            if OPS[node.op].kind == "source":
                continue
            args = cell.args(nid)
            flags = [self.stage[a] != "const" for a in args]
            attrs = {**OPS[node.op].attrs, **node.attr_dict}
            if node.op == "where" and args[1] == args[2] and not flags[1]:
                fn = one_branch(flags, node.shape)
            else:
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
        self.output_of = {name: cell.args(nid)[0] for name, nid in self.outputs.items()}  # the value it shows
        # loop values an output shows whose kernel can write its result straight into the output's row
        self.written_out = {s.nid for s in self.plan["loop"] if s.prepared is None and s.nid in self.output_of.values()
                            and (writes_into(s.fn) or getattr(s.fn, "fills_out", False))}
        self.consts = [n for n in order if cell.node(n).op == "const"]
        self.params = cell.by_name("param")
        self._spare, self._lock = {}, threading.Lock()  # output name -> the last scan's array for it

    def buffer(self, name: str, shape: tuple) -> np.ndarray:
        """An array for output `name`'s rows over a scan, every one of which the scan writes: the last scan's
        array when nothing refers to it (or to a view of it) any more, else a new one. Fresh memory costs the
        kernel a page fault at every first write of a page (a third of a step's elementwise time at H = 256);
        this is NumPy's own rule for reusing a temporary (a reference count that says no one else holds it)."""
        with self._lock:
            buf = self._spare.get(name)
            if buf is not None and buf.shape == shape and sys.getrefcount(buf) == 3:  # the dict, buf, the call
                return buf
            buf = np.empty(shape, self.dtype)
            self._spare[name] = buf
            return buf

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
        flat = seq
        seq = {n: np.broadcast_to(v, (steps * batch,) + r.cell.node(n).shape).reshape(
            (steps, batch) + r.cell.node(n).shape) for n, v in seq.items()}
        state = self.initial_state(batch) if state is None else {k: np.asarray(v, r.dtype) for k, v in state.items()}
        lengths = None if lengths is None else np.asarray(lengths)
        collected, collect, rows = self._collection(seq, flat, steps, batch, lengths, trace)
        traced = {n: [None] * steps for n in r.cell.g.nodes if r.stage[n] == "loop"} if trace else {}
        batched = {name: _with_batch(env[r.updates[name]], batch) for name in r.param_only}
        # the step as a flat list of closures over env, and what moves between steps, resolved once
        run = [closure_into(s.fn, nid, args, env, rows) if nid in rows else closure(fn, nid, args, env)
               for s, (nid, fn, args) in zip(r.plan["loop"], calls["loop"])]
        per_step = [(n, seq[n]) for n in r.read_per_step]
        carry = [(r.states[name], batched.get(name), nid, (batch,) + (1,) * len(r.cell.states[name].shape))
                 for name, nid in r.updates.items()]
        written = [(col, nid) for col, nid, _ in collect if nid in rows]
        collect = [c for c in collect if c[1] not in rows]
        for name, nid in r.states.items():
            env[nid] = state[name]
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            for n, v in per_step:
                env[n] = v[t]
            for col, nid in written:
                rows[nid] = col[t]
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
                for col, nid in written:
                    np.copyto(col[t], 0, where=~live.reshape((batch,) + (1,) * (col.ndim - 2)))
        # a state whose last value was written into an output's row: its own copy, not a view of the output
        state = {name: env[nid].copy() if r.updates[name] in rows else env[nid] for name, nid in r.states.items()}
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

    def _collection(self, seq: dict, flat: dict, steps: int, batch: int, lengths, trace: bool):
        """Each output's [T, B, ...] array, and what the loop does to fill it: (array, node, mask shape) to copy
        the node's value into at every step, and the loop nodes whose kernels write their value straight into
        it instead (node -> the row of this step, set by the loop). Outputs of one node share one array; an
        output made before the loop is taken whole (its padded steps zeroed at once), without a copy per step."""
        r = self.r
        collected, collect, rows, shown = {}, [], {}, {}
        for name, nid in r.outputs.items():
            value, shape = r.output_of[name], r.cell.node(nid).shape
            if not trace and value in shown:
                collected[name] = collected[shown[value]]
                continue
            if not trace and r.stage[nid] == "seq":
                v = flat[nid]
                if r.cell.node(value).op in FRESH and v.shape == (steps * batch,) + shape and v.dtype == r.dtype:
                    v = v.reshape((steps, batch) + shape)
                else:
                    v = np.array(seq[nid], r.dtype)
                if lengths is not None:
                    live = np.arange(steps)[:, None] < lengths[None, :]
                    v = np.where(live.reshape((steps, batch) + (1,) * len(shape)), v, 0).astype(r.dtype, copy=False)
                collected[name] = v
                shown[value] = name
                continue
            shown[value] = name
            collected[name] = r.buffer(name, (steps, batch) + shape)  # every row is written
            if value in r.written_out and not trace:
                rows[value] = None
                collect.append((collected[name], value, None))
            else:
                collect.append((collected[name], nid, (batch,) + (1,) * len(shape)))
        return collected, collect, rows

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


# made before the loop only to be read inside it, these gain nothing from being made for all steps at once: each
# element is one operation either way (no matrix product to batch), and step by step the values stay in cache
ROW_LOCAL = {"embed"} | {n for n, op in OPS.items() if op.kind in ("elementwise", "activation") and "axis" not in op.attrs}


def _row_work_in_the_loop(cell: CellGraph, stage: dict) -> dict:
    """Stages, with the element-by-element work on inputs (and table lookups) that only the loop reads moved into
    the loop. Made for all steps at once, each such value is a fresh [B x T, ...] array written to memory and read
    back a step at a time (an embedding projected by an LSTM's gates: 4H floats a token, 13 MB for 32 x 100 tokens at
    H = 256; a backward step's derivative factors: one such array each); made in the loop, it is a [B, ...]
    temporary that stays in cache."""
    stage = dict(stage)
    order = cell.order()
    # chains that start at inputs and lookups; one that reads a product made before the loop (its bias add) stays
    chain = set()
    for nid in order:
        if stage[nid] == "seq" and cell.node(nid).op in ROW_LOCAL and all(
                stage[a] == "const" or cell.node(a).op == "input" or a in chain for a in cell.args(nid)):
            chain.add(nid)
    keep = set(cell.updates().values()) | {cell.args(o)[0] for o in cell.outputs().values()}
    for nid in reversed(order):  # users first: a chain read only by the loop moves whole
        users = cell.users(nid)
        if nid in chain and nid not in keep and users and all(stage[u] == "loop" for u in users):
            stage[nid] = "loop"
    return stage


def _with_batch(value: np.ndarray, batch: int) -> np.ndarray:
    return np.broadcast_to(value, (batch,) + value.shape).copy()


class NumpyBackend:
    name = "numpy"
    capabilities = frozenset({"run", "trace"})  # what the drivers and the CLI may ask of it (rnncompile.registry)
    kernels = KERNELS

    def cell_runner(self, cell: CellGraph, dtype="float32") -> CellRunner:
        return CellRunner(cell, dtype)
