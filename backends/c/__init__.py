"""The c backend: each cell graph as generated C99, compiled by the system compiler, run through ctypes.

The cell writer renders a cell's graph as C (two structs, a step and a scan:
see cell.py), build.py compiles it once per content and loads it, and the
classes below give the drivers the interface every backend gives them:
``cell_runner(cell, dtype).bind(params)`` then ``scan``, ``step`` or ``rows``.
Param-only values are computed and packed once per content of the weights
(consts.py; `bind` keeps the last few sets, so a driver that binds on every run
packs only when a weight changed) and passed in, with the inputs, the state, the
output buffers and the scratch, all allocated here: generated C allocates nothing. A tree cell whose children axis varies gets C written and
compiled for each number of children it meets. `export` writes a whole model
as one standalone C file (`rnncompile export spec.yaml --backend c -o m.c`).
The simulation's C steps blocks of examples and is C99 plus GCC's vector
extensions (its register-tiled products, gemm.py, sized for the host); exported
C is plain C99, one example at a time.
"""
from __future__ import annotations

import ctypes
import math

import numpy as np

from rnncompile.errors import DataError, UsageError
from rnncompile.backends.numpy import step_needs
from rnncompile.graph import CellGraph
from rnncompile.ops import STEP_SOURCES
from rnncompile.registry import ScanResult

from . import build
from .cell import CellCode, CellWriter, cell_prefix
from .consts import const_plan, pack
from .emitters import CTYPES, EMITTERS, CType, prelude
from .gemm import aligned_zeros, vector_types
from .names import comment

INCLUDES = "#include <math.h>\n#include <stdint.h>\n#include <string.h>"
# examples the simulation's step computes together, so a matrix's rows are read once per block of examples,
# not once per example (the exported file keeps one example at a time: its scratch holds one set of values);
# a multiple of the blocked products' tallest tiles (gemm.py: 12, 6 or 4 rows)
ROWS = 24
BOUND_KEPT = 4  # sets of weights a runner keeps bound (packed), most recent first


def assemble(comment: str, cells: list[CellCode], c: CType, tail: str = "") -> str:
    """One C file: a comment, the includes, the helpers the cells call (and the vector type of the blocked
    products, when a cell has them), the cells, then `tail`."""
    helpers = set().union(*(code.helpers for code in cells))
    tiling = next((code.tiling for code in cells if code.tiling is not None), None)
    vectors = vector_types(c, tiling) if tiling is not None else ""
    parts = [comment.strip("\n"), INCLUDES, prelude(helpers, c), vectors] + [code.source.strip("\n") for code in cells]
    return "\n\n".join(p for p in parts + [tail.strip("\n")] if p) + "\n"


class Compiled:
    """One cell's C, built and loaded: its layout (CellCode) and its scan function."""

    def __init__(self, code: CellCode, source: str):
        self.code, self.source = code, source
        lib = build.load(source)
        self.scan = getattr(lib, f"{code.fn}_scan_from" if code.reads_time else f"{code.fn}_scan")
        p, i = ctypes.c_void_p, ctypes.c_int
        self.scan.argtypes = ([p, i, i] + [p] * (len(code.inputs) + len(code.states)) + [p, i]
                              + ([i, i] if code.reads_time else [])  # start, total
                              + [p] * len(code.outputs) + [p, p] + ([p] if code.rows > 1 else []))
        self.scan.restype = ctypes.c_int


_BYTE = ctypes.c_char


def _ptr(a: np.ndarray | None):
    """Where an array's numbers start: through its buffer (a third of the time `.ctypes.data` takes, which
    counts in a tiny run), else (read-only, or empty) `.ctypes.data`."""
    if a is None:
        return None
    try:
        return ctypes.addressof(_BYTE.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


class CellRunner:
    """One cell graph as C; `bind` it to param values to run it."""

    def __init__(self, cell: CellGraph, dtype="float32"):
        self.cell, self.dtype = cell, np.dtype(dtype)
        if self.dtype.name not in CTYPES:
            raise UsageError(f"the c backend runs float32 and float64, not {self.dtype.name}")
        self.c = CTYPES[self.dtype.name]
        self.inputs = cell.by_name("input")
        self.states = cell.by_name("state")
        self.outputs = cell.outputs()
        self.tokens = {name for name, nid in self.inputs.items() if cell.node(nid).dtype == "token"}
        # a tree cell's children axis (size 0 in the graph: it varies) is fixed when the C is written
        self.varies = {name: cell.node(nid).shape.index(0) for name, nid in self.inputs.items()
                       if 0 in cell.node(nid).shape}
        self.consts = const_plan(cell)
        self._compiled: dict = {}
        self._bound: list[tuple[dict, BoundCell]] = []
        if not self.varies:
            self.compiled(None)  # now: a missing compiler or an op C cannot run shows before any data is read

    def compiled(self, children: int | None) -> Compiled:
        if children not in self._compiled:
            shapes = None
            if children is not None:
                shapes = {n: tuple(children if d == 0 else d for d in self.cell.node(n).shape) for n in self.cell.g.nodes}
            code = CellWriter(self.cell, cell_prefix(self.cell.name), self.c, shapes, ROWS).write()
            kind = self.dtype.name + ("" if children is None else f", {children} children")
            doc = comment(f"Cell `{self.cell.name}`: C99 generated by rnncompile's c backend ({kind}).")
            self._compiled[children] = Compiled(code, assemble(doc, [code], self.c))
        return self._compiled[children]

    def children(self, inputs: dict) -> int | None:
        """The number of children in this call (from inputs [B, T, ...]), for a tree cell whose arity varies."""
        for name, axis in self.varies.items():
            return int(np.shape(inputs[name])[2 + axis])
        return None

    def bind(self, params: dict[str, np.ndarray]) -> "BoundCell":
        """The cell bound to `params`: computed and packed once per content of the weights, so a driver that
        binds on every run (Executable.run) packs only when a weight changed. Kept by value, not by object:
        an array changed in place between runs is bound anew."""
        values = {name: np.asarray(params[name], self.dtype) for name in self.cell.params if name in params}
        for i, (kept, bound) in enumerate(self._bound):
            if kept.keys() == values.keys() and all(_same(kept[n], v) for n, v in values.items()):
                if i:
                    self._bound.insert(0, self._bound.pop(i))
                return bound
        bound = BoundCell(self, {**params, **{n: np.array(v, order="C") for n, v in values.items()}})
        self._bound.insert(0, ({n: (v.shape, v.tobytes()) for n, v in values.items()}, bound))
        del self._bound[BOUND_KEPT:]
        return bound


def _same(kept: tuple, a: np.ndarray) -> bool:
    """The same shape and the same bytes as a kept (shape, bytes) (so -0.0 is not 0.0, and a NaN equals
    itself); the dtype is the runner's."""
    return a.shape == kept[0] and a.tobytes() == kept[1]  # (a memcmp: faster than NumPy's comparisons here)


class BoundCell:
    def __init__(self, runner: CellRunner, params: dict[str, np.ndarray]):
        self.r, self.params = runner, params
        self.env = runner.consts.values(params, runner.dtype)
        self._k: dict = {}
        self._work: dict = {}
        self._at: dict = {}  # children -> the compiled cell, and where its packed params and work buffer are
        self._pre = np.empty(0, runner.dtype)  # one for every number of children: as big as the biggest needs
        self._pre_at = []

    def _prepare(self, children: int | None) -> tuple:
        """The compiled cell for this number of children, with its params packed and its buffers made, each
        starting on a cache line: the step's values for a block of rows and (rows > 1) the input projections
        of a block of examples' next steps."""
        comp, dtype = self.r.compiled(children), self.r.dtype
        code = comp.code
        self._k[children] = pack(code, self.env, dtype)
        self._work[children] = aligned_zeros(code.rows * code.v_size, dtype)
        if code.rows > 1 and (not self._pre_at or self._pre.size < code.pre_size):
            self._pre = aligned_zeros(max(1, code.pre_size), dtype)
            self._pre_at = [_ptr(self._pre)]
        self._at[children] = (comp, _ptr(self._k[children]), _ptr(self._work[children]))
        return self._at[children]

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        out = {}
        for name, info in self.r.cell.states.items():
            value = self.params[info.init] if isinstance(info.init, str) else info.init
            out[name] = np.broadcast_to(np.asarray(value, self.r.dtype), (batch,) + info.shape).copy()
        return out

    def _input(self, name: str, x) -> np.ndarray:
        if name in self.r.tokens:  # int32 in C; an id outside int32 stays outside every table
            return np.ascontiguousarray(np.clip(np.asarray(x), -2 ** 31, 2 ** 31 - 1), np.int32)
        return np.ascontiguousarray(x, self.r.dtype)

    def scan(self, inputs: dict[str, np.ndarray], state=None, lengths=None, reverse: bool = False,
             trace: bool = False, batch: int | None = None, steps: int | None = None, start: int = 0,
             total: int | None = None) -> ScanResult:
        """inputs: name -> [B, T, ...]; lengths: [B] real steps per sequence (None: all); start, total: the step
        index `t` of the first step and the whole sequence's length, for a scan that is one chunk of a longer one."""
        r = self.r
        first = next(iter(inputs.values())) if inputs else None
        b, t = np.shape(first)[:2] if first is not None else (batch, steps)
        children = r.children(inputs) if r.varies else None
        comp, k_at, work_at = self._at.get(children) or self._prepare(children)
        code = comp.code
        ins = [self._input(n, inputs[n]) for n in code.inputs]
        state = self.initial_state(b) if state is None else state
        sts = [np.array(state[n], r.dtype, order="C") for n in code.states]  # a copy: it becomes the final state
        lens = None if lengths is None else np.ascontiguousarray(lengths, np.int32)
        outs = [np.empty((b, t) + code.shapes[r.outputs[n]], r.dtype) for n in code.outputs]
        traced = np.empty((b, t, code.v_size), r.dtype) if trace else None
        when = [int(start), int(start + t if total is None else total)] if code.reads_time else []
        failed = comp.scan(k_at, b, t, *[_ptr(a) for a in ins + sts], _ptr(lens), int(reverse), *when,
                           *[_ptr(a) for a in outs], work_at, _ptr(traced), *(self._pre_at if code.rows > 1 else []))
        if failed:
            raise DataError(f"cell `{r.cell.name}`: a token id is beyond its embedding table (ids go from 0 to the "
                            f"table's rows - 1)")
        result = ScanResult(dict(zip(code.outputs, outs)), dict(zip(code.states, sts)))
        if trace:
            result.trace = self._trace(code, traced, inputs)
        return result

    def _trace(self, code: CellCode, traced: np.ndarray, inputs: dict) -> dict[int, np.ndarray]:
        """Every node's value: param-only ones as computed once, the rest [B, T, ...] from the trace buffer."""
        b, t = traced.shape[:2]
        member = {f.nid: f for f in code.values}
        out = dict(self.env)
        for name in self.r.tokens:
            out[self.r.inputs[name]] = np.asarray(inputs[name])
        for nid in self.r.cell.g.nodes:
            if nid in out:
                continue
            root, offset = code.views.get(nid, (nid, 0))
            start = member[root].offset + offset
            shape = code.shapes[nid]
            out[nid] = traced[:, :, start:start + math.prod(shape)].reshape((b, t) + shape)
        return out

    def step(self, inputs_t: dict[str, np.ndarray], state: dict[str, np.ndarray], t: int | None = None,
             seq_len=None):
        """One step (for loops that feed back their own output): a scan of one step. A cell that reads the step
        index needs `t` (and `seq_len`, a number or [B], when it reads that)."""
        batch = next(iter(state.values())).shape[0] if state else len(next(iter(inputs_t.values())))
        ops = {self.r.cell.node(n).op for n in self.r.cell.g.nodes} & set(STEP_SOURCES)
        for op in sorted(ops):
            if (t if op == "step_index" else seq_len) is None:
                raise DataError(step_needs(self.r.cell.name, op))
        when = {}
        if ops:
            lengths = None if seq_len is None or np.ndim(seq_len) == 0 else np.asarray(seq_len)
            when = {"start": t or 0, "total": None if seq_len is None or lengths is not None else int(seq_len),
                    "lengths": lengths}
        res = self.scan({n: np.asarray(v)[:, None] for n, v in inputs_t.items()}, state, batch=batch, steps=1,
                        **when)
        return {n: v[:, 0] for n, v in res.outputs.items()}, res.final_state

    def rows(self, inputs: dict[str, np.ndarray], trace: bool = False):
        """A stateless graph on a batch of rows (e.g. one level of tree nodes): its outputs, and every
        node's value (node id -> array) when tracing."""
        if self.r.cell.states:
            raise ValueError(f"cell `{self.r.cell.name}` has state; rows() runs stateless graphs only")
        res = self.scan({n: np.asarray(v)[:, None] for n, v in inputs.items()}, trace=trace)
        outputs = {n: v[:, 0] for n, v in res.outputs.items()}
        if not trace:
            return outputs, None
        return outputs, {n: v if n in self.env else (np.asarray(inputs[self.r.cell.node(n).attr("name")])
                                                     if self.r.cell.node(n).op == "input" else v[:, 0])
                         for n, v in res.trace.items()}


class CBackend:
    name = "c"
    capabilities = frozenset({"run", "export", "embeds_weights"})  # what the drivers and the CLI may ask of it (rnncompile.registry)
    export_file = "{name}.c"  # `codegen` names the file it writes after the spec
    emitters = EMITTERS

    def cell_runner(self, cell: CellGraph, dtype="float32") -> CellRunner:
        return CellRunner(cell, dtype)

    def unsupported(self, program) -> str | None:
        """Why this backend cannot run `program` here (None: it can)."""
        if build.find_compiler() is None:
            return f"no C compiler (`{build.compiler()[0]}`) on PATH"
        return None

    def export(self, program, source_name: str = "", module_name: str = "", params: dict | None = None,
               dtype: str = "float32", weights_from: str = ""):
        """The whole model as one standalone C99 file, weights included (see export.py)."""
        from .export import export

        return export(program, source_name, module_name, params, dtype, weights_from)
