"""The fixed-point backends: integer arithmetic simulated bit for bit.

`fixed` interprets a cell graph with NumPy int64 arrays that hold each node's integers in its format
(rnncompile/quant: formats, the quant file, which node holds which format); `fixed_c` runs the same
arithmetic as generated C (int8_t/int16_t/int32_t, no float in the step; csource.py) built and loaded with
ctypes. Both quantise their float inputs, params and start state on the way in (rounded half away from
zero, saturated) and give back every output and state dequantised exactly, as float64. Their results are
equal integer for integer (tests/test_fixed_point.py).

They need formats: `rnncompile run SPEC --backend fixed --quant quant.yaml` (or `--quant q15`), or in
Python `with rnncompile.quant.using(config): rnncompile.run(program, backend="fixed")`.
"""
from __future__ import annotations

import numpy as np

from rnncompile.errors import DataError, UsageError
from rnncompile.graph import CellGraph, stages
from rnncompile.ops import OPS, STEP_SOURCES
from rnncompile.quant.assign import assign, unsupported
from rnncompile.registry import ScanResult

from .kernels import KERNELS, Ctx

NEEDS_FORMATS = ("the fixed-point backends need formats: give --quant quant.yaml (rnncompile quantize writes one) "
                 "or --quant q15 (one format for every class)")


class FixedPlan:
    """One cell graph with a format for every node, its kernels planned once."""

    def __init__(self, cell: CellGraph, config):
        self.cell, self.config = cell, config
        self.assigned = assign(cell, config)
        self.fmt = self.assigned.formats
        self.stage = stages(cell)
        self.steps = {"const": [], "seq": [], "loop": []}
        self.narrow = {}  # node -> per argument, the format a matrix product first brings it into (or None)
        for nid in cell.order():
            node = cell.node(nid)
            if OPS[node.op].kind == "source":
                continue
            if node.op not in KERNELS:
                raise UsageError(unsupported(cell, nid))
            args = cell.args(nid)
            narrow = tuple(self._narrowed(nid, a) for a in args) if node.op == "matmul" else ()
            self.narrow[nid] = narrow
            ctx = Ctx(tuple(self.fmt.get(a) for a in args), tuple(cell.node(a).shape for a in args),
                      tuple(self.stage[a] != "const" for a in args), {**OPS[node.op].attrs, **node.attr_dict},
                      tuple(node.shape), self.fmt.get(nid), narrow)
            self.steps[self.stage[nid]].append((nid, KERNELS[node.op](ctx), tuple(args)))
        self.inputs = cell.by_name("input")
        self.times = {nid: op for op in STEP_SOURCES for nid in cell.nodes_of(op)}  # t and seq_len
        self.states = cell.by_name("state")
        self.updates = cell.updates()
        self.outputs = cell.outputs()
        self.params = cell.by_name("param")

    def _narrowed(self, nid: int, arg: int):
        """A matrix product's operands have at most 16 bits (so that a sum of products fits in 64): a wider one
        (an accumulator) is first brought into the elementwise format; None when it is narrow already."""
        if self.fmt[arg].container <= 16:
            return None
        to = self.config.of_class("elementwise")
        if to.container > 16:
            raise UsageError(f"cell `{self.cell.name}`: a matrix product ({self.cell.node(nid).origin}) reads a "
                             f"{self.fmt[arg].container}-bit value ({self.fmt[arg]}), which goes into the elementwise "
                             f"format first; that is {to}: give elementwise a format of at most 16 bits")
        return to

    def quantize_input(self, nid: int, x) -> np.ndarray:
        if self.cell.node(nid).dtype == "token":
            return np.asarray(x).astype(np.int64)
        return self.fmt[nid].quantize(x)

    def quantize_state(self, name: str, x) -> np.ndarray:
        return self.fmt[self.states[name]].quantize(x)

    def dequantize(self, nid: int, v) -> np.ndarray:
        return self.fmt[nid].dequantize(v)


class CellRunner:
    def __init__(self, cell: CellGraph, config):
        self.plan = FixedPlan(cell, config)

    def bind(self, params: dict) -> "BoundCell":
        return BoundCell(self.plan, params)


class BoundCell:
    """The drivers' interface (rnncompile.registry.BoundCell) over integers."""

    def __init__(self, plan: FixedPlan, params: dict):
        self.plan, self.params = plan, params
        self.r = plan  # the tree driver reads the cell's input names from `bound.r.inputs`, as the numpy backend's
        env = {}
        cell = plan.cell
        for nid in cell.nodes_of("const"):
            env[nid] = plan.fmt[nid].quantize(cell.node(nid).attr("value"))
        for name, nid in plan.params.items():
            env[nid] = plan.fmt[nid].quantize(params[name])
        for nid, fn, args in plan.steps["const"]:
            env[nid] = fn(*(env[a] for a in args))
        self.const_env = env

    def initial_state(self, batch: int) -> dict:
        out = {}
        for name, info in self.plan.cell.states.items():
            value = self.params[info.init] if isinstance(info.init, str) else np.full(info.shape, info.init)
            fmt = self.plan.fmt[self.plan.states[name]]
            out[name] = np.broadcast_to(fmt.dequantize(fmt.quantize(value)), (batch,) + info.shape).copy()
        return out

    def _start(self, state, batch) -> dict:
        state = self.initial_state(batch) if state is None else state
        return {self.plan.states[n]: self.plan.quantize_state(n, v) for n, v in state.items()}

    def scan(self, inputs: dict, state=None, lengths=None, reverse: bool = False, trace: bool = False,
             batch: int | None = None, steps: int | None = None, start: int = 0, total: int | None = None):
        p = self.plan
        first = next(iter(inputs.values())) if inputs else None
        batch = first.shape[0] if first is not None else batch
        steps = first.shape[1] if first is not None else steps
        env = dict(self.const_env)
        seq = {}
        for name, nid in p.inputs.items():
            x = np.swapaxes(np.asarray(inputs[name]), 0, 1)
            seq[nid] = p.quantize_input(nid, x.reshape((steps * batch,) + x.shape[2:]))
        for nid, op in p.times.items():  # t and seq_len, one row per (step, example) like an input's
            if op == "step_index":
                value = np.repeat(np.arange(start, start + steps), batch)
            elif lengths is not None:
                value = np.tile(np.asarray(lengths), steps)
            else:
                value = np.full(steps * batch, start + steps if total is None else total)
            seq[nid] = p.fmt[nid].quantize(value)
        for nid, fn, args in p.steps["seq"]:  # what reads no state: every step at once, rows (t, b)
            seq[nid] = fn(*(seq[a] if a in seq else env[a] for a in args))
        seq = {n: v.reshape((steps, batch) + p.cell.node(n).shape) for n, v in seq.items()}
        env.update(self._start(state, batch))
        out = {name: np.zeros((steps, batch) + p.cell.node(nid).shape, np.int64) for name, nid in p.outputs.items()}
        traced = {n: [None] * steps for n in p.cell.g.nodes if p.stage[n] == "loop"} if trace else {}
        live_all = None if lengths is None else np.asarray(lengths)
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            for n, v in seq.items():
                env[n] = v[t]
            for nid, fn, args in p.steps["loop"]:
                env[nid] = fn(*(env[a] for a in args))
            if trace:
                for n in traced:
                    traced[n][t] = np.broadcast_to(env[n], (batch,) + p.cell.node(n).shape)
            new = {p.states[name]: _batched(env[nid], batch, p.cell.node(nid).shape) for name, nid in p.updates.items()}
            live = None if live_all is None else t < live_all
            for sid, v in new.items():
                env[sid] = v if live is None else np.where(live.reshape((batch,) + (1,) * (v.ndim - 1)), v, env[sid])
            for name, nid in p.outputs.items():
                v = _batched(env[nid], batch, p.cell.node(nid).shape)
                out[name][t] = v if live is None else np.where(live.reshape((batch,) + (1,) * (v.ndim - 1)), v, 0)
        outputs = {name: np.swapaxes(p.dequantize(p.outputs[name], v), 0, 1) for name, v in out.items()}
        final = {name: p.dequantize(sid, env[sid]) for name, sid in p.states.items()}
        tr = {}
        if trace:
            tr = {n: p.dequantize(n, np.stack(v, axis=1)) for n, v in traced.items() if steps and n in p.fmt}
            tr.update({n: p.dequantize(n, np.swapaxes(v, 0, 1)) for n, v in seq.items() if n in p.fmt})
            tr.update({n: p.dequantize(n, v) for n, v in self.const_env.items() if n in p.fmt})
        return ScanResult(outputs, final, tr)

    def step(self, inputs_t: dict, state: dict, t: int | None = None, seq_len=None):
        p = self.plan
        first = next(iter(inputs_t.values())) if inputs_t else None
        batch = first.shape[0] if first is not None else next(iter(state.values())).shape[0]
        env = dict(self.const_env)
        for nid, op in p.times.items():
            value = t if op == "step_index" else seq_len
            if value is None:
                from rnncompile.backends.numpy import step_needs

                raise DataError(step_needs(p.cell.name, op))
            env[nid] = p.fmt[nid].quantize(np.broadcast_to(np.asarray(value), (batch,)))
        for name, nid in p.inputs.items():
            env[nid] = p.quantize_input(nid, inputs_t[name])
        env.update(self._start(state, batch))
        for nid, fn, args in p.steps["seq"] + p.steps["loop"]:
            env[nid] = fn(*(env[a] for a in args))
        outputs = {name: p.dequantize(nid, _batched(env[nid], batch, p.cell.node(nid).shape))
                   for name, nid in p.outputs.items()}
        return outputs, {name: p.dequantize(nid, _batched(env[nid], batch, p.cell.node(nid).shape))
                         for name, nid in p.updates.items()}

    def rows(self, inputs: dict, trace: bool = False):
        p = self.plan
        env = dict(self.const_env)
        for name, nid in p.inputs.items():
            env[nid] = p.quantize_input(nid, inputs[name])
        batch = len(next(iter(inputs.values())))
        if p.steps["loop"]:
            raise DataError(f"cell `{p.cell.name}` reads state; it runs as a scan, not on rows")
        for nid, fn, args in p.steps["seq"]:
            env[nid] = fn(*(env[a] for a in args))
        outputs = {name: p.dequantize(nid, _batched(env[nid], batch, p.cell.node(nid).shape))
                   if p.stage[nid] == "const" else p.dequantize(nid, env[nid]) for name, nid in p.outputs.items()}
        return outputs, ({n: p.dequantize(n, v) for n, v in env.items() if n in p.fmt} if trace else None)


def _batched(v: np.ndarray, batch: int, shape: tuple) -> np.ndarray:
    """A value made from params alone (no batch axis) given one per example."""
    return v if v.ndim == len(shape) + 1 else np.broadcast_to(v, (batch,) + tuple(shape)).copy()


class FixedBackend:
    """The fixed-point interpreter. `config` (a rnncompile.quant.QuantConfig) is set by rnncompile.quant.using,
    which `rnncompile run --quant` calls."""

    name = "fixed"
    capabilities = frozenset({"run", "trace"})
    kernels = KERNELS

    def __init__(self):
        self.config = None

    def cell_runner(self, cell: CellGraph, dtype: str = "float32") -> CellRunner:
        if self.config is None:
            raise UsageError(NEEDS_FORMATS)
        return CellRunner(cell, self.config)

    def unsupported(self, program) -> str | None:
        """Without formats it cannot run (the float conformance suite skips it so: its numbers are the
        formats' precision, checked against the integer C and float in tests/test_fixed_point.py)."""
        return None if self.config is not None else NEEDS_FORMATS
