"""The python backend: each cell graph as generated, readable NumPy code.

The cell writer renders a cell's graph as plain functions (prepare, initial,
hoist, step, scan: see cell.py), the module writer compiles them in memory,
and the classes below give the drivers the same interface the NumPy backend
gives them: ``cell_runner(cell, dtype).bind(params)`` then ``scan``, ``step``
or ``rows``. `export` writes a whole model as one standalone module
(`rnncompile export spec.yaml --backend python -o model.py`).
"""
from __future__ import annotations


import numpy as np

from rnncompile.backends.numpy import step_needs
from rnncompile.errors import DataError
from rnncompile.graph import CellGraph
from rnncompile.registry import ScanResult

from .emitters import EMITTERS
from .module import cell_module, load


class CellRunner:
    """One cell graph as a generated module; `bind` it to param values to run it."""

    def __init__(self, cell: CellGraph, dtype="float32"):
        self.cell, self.dtype = cell, np.dtype(dtype)
        self.inputs = cell.by_name("input")
        self.states = cell.by_name("state")
        self.outputs = cell.outputs()
        self.source, self.code = cell_module(cell)
        self.module = load(self.source, self.code.fn)
        self._traced = None

    def traced(self):
        """The variant of the module whose functions also hand back every local (built on first use)."""
        if self._traced is None:
            source, code = cell_module(self.cell, trace=True)
            self._traced = (load(source, code.fn), code)
        return self._traced

    def fn(self, part: str, trace: bool = False):
        mod, code = self.traced() if trace else (self.module, self.code)
        return getattr(mod, f"{code.fn}_{part}")

    def bind(self, params: dict[str, np.ndarray]) -> "BoundCell":
        return BoundCell(self, params)


class BoundCell:
    def __init__(self, runner: CellRunner, params: dict[str, np.ndarray]):
        self.r, self.params = runner, params
        self.k = runner.fn("prepare")(params, "", runner.dtype)
        self._k_traced = None

    def _k(self, trace: bool) -> dict:
        if not trace:
            return self.k
        if self._k_traced is None:
            self._k_traced = self.r.fn("prepare", True)(self.params, "", self.r.dtype)
        return self._k_traced

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        return self.r.fn("initial")(self.k, batch)

    def _rows_in(self, inputs: dict) -> list:
        """The hoist function's arguments: each input as rows, floats in the run's dtype."""
        cell = self.r.cell
        return [np.asarray(inputs[n]) if info.dtype == "token" else np.asarray(inputs[n], self.r.dtype)
                for n, info in cell.inputs.items()]

    def _by_node(self, named: dict, k: dict) -> dict[int, np.ndarray]:
        """Values keyed by local name -> keyed by node id; param-only values (and literals) from k."""
        out = {}
        for nid, local in self.r.code.names.items():
            node = self.r.cell.node(nid)
            if local in named:
                out[nid] = named[local]
            elif self.r.code.stage[nid] == "const":
                out[nid] = k[local] if local in k else np.asarray(node.attr("value"), self.r.dtype)
        return out

    def scan(self, inputs: dict[str, np.ndarray], state=None, lengths=None, reverse: bool = False,
             trace: bool = False, batch: int | None = None, steps: int | None = None, start: int = 0,
             total: int | None = None) -> ScanResult:
        """inputs: name -> [B, T, ...]; lengths: [B] real steps per sequence (None: all); start, total: the step
        index `t` of the first step and the whole sequence's length, for a scan that is one chunk of a longer one."""
        extra = {} if inputs else {"batch": batch, "steps": steps}
        if self.r.code.times:  # (a cell that reads neither has no such arguments)
            extra.update(step0=start, total=total)
        lengths = None if lengths is None else np.asarray(lengths)
        result = self.r.fn("scan", trace)(self._k(trace), inputs, state, lengths, reverse, **extra)
        if not trace:
            return ScanResult(*result)
        outputs, final, named = result
        return ScanResult(outputs, final, self._by_node(named, self._k(True)))

    def step(self, inputs_t: dict[str, np.ndarray], state: dict[str, np.ndarray], t: int | None = None,
             seq_len=None):
        """One step without hoisting over time (for loops that feed back their own output); a cell that reads
        the step index needs `t` (and `seq_len`, a number or [B], when it reads that)."""
        r, code = self.r, self.r.code
        batch = next(iter(state.values())).shape[0] if state else len(next(iter(inputs_t.values())))
        times = []
        for nid in code.times:
            op = r.cell.node(nid).op
            value = t if op == "step_index" else seq_len
            if value is None:
                raise DataError(step_needs(r.cell.name, op))
            times.append(np.broadcast_to(np.asarray(value, r.dtype), (batch,)).copy())
        got = r.fn("hoist")(self.k, *self._rows_in(inputs_t), *times)
        hoisted, seq_out = got[:len(code.hoisted)], got[len(code.hoisted):]
        st = [np.asarray(state[n], r.dtype) for n in r.cell.states]
        loop_out, nexts = r.fn("step")(self.k, *hoisted, *st) if st else ((), ())
        outputs = dict(zip(code.loop_outputs, loop_out))
        outputs.update(zip(code.seq_outputs, seq_out))
        outputs.update({n: self.k[code.names[r.outputs[n]]] for n in code.const_outputs})
        outputs = {n: np.broadcast_to(outputs[n], (batch,) + r.cell.node(nid).shape) for n, nid in r.outputs.items()}
        return outputs, dict(zip(r.cell.states, nexts))

    def rows(self, inputs: dict[str, np.ndarray], trace: bool = False):
        """A stateless graph on a batch of rows (e.g. one level of tree nodes): its outputs, and every
        node's value (node id -> array) when tracing."""
        r, code = self.r, self.r.code
        if r.cell.states:
            raise ValueError(f"cell `{r.cell.name}` has state; rows() runs stateless graphs only")
        got = r.fn("hoist", trace)(self._k(trace), *self._rows_in(inputs))
        batch = len(next(iter(inputs.values())))
        k = self._k(trace)
        outputs = dict(zip(code.seq_outputs, got[len(code.hoisted):len(code.hoisted) + len(code.seq_outputs)]))
        outputs.update({n: np.broadcast_to(k[code.names[r.outputs[n]]], (batch,) + k[code.names[r.outputs[n]]].shape)
                        for n in code.const_outputs})
        outputs = {n: outputs[n] for n in r.outputs}
        return outputs, (self._by_node(got[-1], k) if trace else None)


class PythonBackend:
    name = "python"
    capabilities = frozenset({"run", "export"})  # what the drivers and the CLI may ask of it (rnncompile.registry)
    export_file = "{name}_model.py"  # `codegen` names the file it writes after the spec
    emitters = EMITTERS

    def cell_runner(self, cell: CellGraph, dtype="float32") -> CellRunner:
        return CellRunner(cell, dtype)

    def export(self, program, source_name: str = "", module_name: str = ""):
        """The whole model as the source of one standalone module (see export.py)."""
        from .export import export

        return export(program, source_name, module_name)
