"""The `fixed_c` backend: each cell's integer C (csource.py), built and cached by the c backend's build
step, loaded with ctypes and called with the interpreter's integers; its outputs are the interpreter's,
integer for integer."""
from __future__ import annotations

import ctypes

import numpy as np

from rnncompile.backends.c import build
from rnncompile.errors import UsageError
from rnncompile.graph import CellGraph

from . import NEEDS_FORMATS, BoundCell as Interpreted, FixedPlan
from .csource import Emitter, c_name

_INT = {8: np.int8, 16: np.int16, 32: np.int32}


def _array(values: np.ndarray, fmt) -> np.ndarray:
    dtype = np.int32 if fmt is None else _INT[fmt.container]
    return np.ascontiguousarray(values, dtype=dtype)


def _pointers(arrays) -> ctypes.Array:
    return (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])


class CellRunner:
    def __init__(self, cell: CellGraph, config):
        from rnncompile.ops import CHILDREN

        if any(CHILDREN in cell.node(n).shape for n in cell.g.nodes):
            raise UsageError(f"cell `{cell.name}`: the fixed-point C runs cells of fixed sizes, and a tree rule's "
                             f"children axis varies from node to node; run it with --backend fixed")
        self.plan = FixedPlan(cell, config)
        self.emitter = Emitter(self.plan)
        self.fn_name = f"rnnq_{c_name(cell.name)}_scan"
        self.source = self.emitter.render(self.fn_name)
        lib = build.load(self.source)
        self.fn = getattr(lib, self.fn_name)
        self.fn.restype = None
        self.fn.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32,
                            ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def bind(self, params: dict) -> "BoundCell":
        return BoundCell(self, params)


class BoundCell(Interpreted):
    """The interpreter's bind (params and param-only values quantised once), the step in C."""

    def __init__(self, runner: CellRunner, params: dict):
        super().__init__(runner.plan, params)
        self.runner = runner
        p = self.plan
        self.consts = [_array(self.const_env[n], p.fmt.get(n)) for n in runner.emitter.consts]
        self.const_ptrs = _pointers(self.consts)

    def scan(self, inputs: dict, state=None, lengths=None, reverse: bool = False, trace: bool = False,
             batch: int | None = None, steps: int | None = None, start: int = 0, total: int | None = None):
        if trace:
            raise UsageError("the fixed_c backend does not trace; the fixed interpreter traces the same integers")
        from rnncompile.registry import ScanResult

        p = self.plan
        first = next(iter(inputs.values())) if inputs else None
        batch = first.shape[0] if first is not None else batch
        steps = first.shape[1] if first is not None else steps
        xs = []
        for name, nid in p.inputs.items():
            x = np.swapaxes(np.asarray(inputs[name]), 0, 1)  # time-major [T, B, ...]
            xs.append(_array(p.quantize_input(nid, x), p.fmt.get(nid)))
        start_state = self._start(state, batch)
        states = [_array(start_state[sid], p.fmt[sid]) for sid in p.states.values()]
        outs = {}
        for name, nid in p.outputs.items():
            shape = p.cell.node(nid).shape
            outs[name] = np.zeros((steps, batch) + tuple(shape), _INT[p.fmt[nid].container])
        lens = None if lengths is None else np.ascontiguousarray(lengths, np.int32)
        self.runner.fn(batch, steps, int(reverse), None if lens is None else lens.ctypes.data, start,
                       start + steps if total is None else total, self.const_ptrs, _pointers(xs), _pointers(states),
                       _pointers(list(outs.values())))
        outputs = {name: np.swapaxes(p.dequantize(p.outputs[name], v), 0, 1) for name, v in outs.items()}
        final = {name: p.dequantize(sid, v) for (name, sid), v in zip(p.states.items(), states)}
        return ScanResult(outputs, final, {})

    def step(self, inputs_t: dict, state: dict, t: int | None = None, seq_len=None):
        p = self.plan
        for op in p.times.values():
            if (t if op == "step_index" else seq_len) is None:
                from rnncompile.backends.numpy import step_needs
                from rnncompile.errors import DataError

                raise DataError(step_needs(p.cell.name, op))
        first = next(iter(inputs_t.values())) if inputs_t else None
        batch = first.shape[0] if first is not None else next(iter(state.values())).shape[0]
        lengths = None if seq_len is None or np.ndim(seq_len) == 0 else np.asarray(seq_len)
        total = None if seq_len is None or lengths is not None else int(seq_len)
        res = self.scan({k: np.asarray(v)[:, None] for k, v in inputs_t.items()}, state, lengths, batch=batch,
                        steps=1, start=t or 0, total=total)
        return {k: v[:, 0] for k, v in res.outputs.items()}, res.final_state

    def rows(self, inputs: dict, trace: bool = False):
        if trace or self.plan.states:
            return super().rows(inputs, trace)
        res = self.scan({k: np.asarray(v)[:, None] for k, v in inputs.items()}, None)
        return {k: v[:, 0] for k, v in res.outputs.items()}, None


class FixedCBackend:
    """The fixed-point cell as generated integer C (see csource.py); `config` as for the fixed backend."""

    name = "fixed_c"
    capabilities = frozenset({"run"})

    def __init__(self):
        self.config = None

    def cell_runner(self, cell: CellGraph, dtype: str = "float32") -> CellRunner:
        if self.config is None:
            raise UsageError(NEEDS_FORMATS)
        return CellRunner(cell, self.config)

    def unsupported(self, program) -> str | None:
        if build.find_compiler() is None:
            return f"no C compiler (`{build.compiler()[0]}`) on PATH"
        return None if self.config is not None else NEEDS_FORMATS
