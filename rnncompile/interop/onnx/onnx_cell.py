"""One cell's graph as ONNX nodes: the body of a Scan, or a head applied once to a row per sequence.

The cell's sources are bound by the caller (its inputs and states to the body's inputs, the step index and
length to what the flow renderer computed); params read the model's initializers, named by their weight-file
keys. Every other node goes through the op table's emitters (onnx_ops.EMITTERS). What reads only params and
constants is written into the main graph, computed once per run, as the NumPy backend computes it once per
bind; a Scan body reads it from the outer scope.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...graph import CellGraph, stages
from ...ops import OPS
from .onnx_graph import ExportError, Graph
from .onnx_ops import EMITTERS, Site


@dataclass(frozen=True)
class Bound:
    """An ONNX value standing for a cell node: its name and whether it has a leading batch axis."""

    name: str
    batched: bool


def write_cell(cell: CellGraph, g: Graph, sources: dict[str, Bound], params: dict[str, str], batch: str,
               once: Graph | None = None, where: str = "") -> dict[int, Bound]:
    """Every node of `cell` written into `g` (its param-only nodes into `once` when given); node id -> value.
    sources: `input:<name>`, `state:<name>`, `step_index`, `seq_length` -> their values; params: param name ->
    initializer name."""
    stage = stages(cell)
    env: dict[int, Bound] = {}
    for nid in cell.order():
        node = cell.node(nid)
        op = node.op
        if op == "param":
            env[nid] = Bound(params[node.attr("name")], False)
            continue
        if op == "const":  # where param-only nodes go, so both they and the body can read it
            env[nid] = Bound((once if once is not None else g).const(node.attr("value")), False)
            continue
        if op in ("input", "state"):
            key = f"{op}:{node.attr('name')}"
            if key not in sources:
                raise ExportError(f"{where or cell.name}: {op} `{node.attr('name')}` is not given to the cell")
            env[nid] = sources[key]
            continue
        if op in ("step_index", "seq_length"):
            if op not in sources:
                raise ExportError(f"{where or cell.name}: the cell reads `{'t' if op == 'step_index' else 'seq_len'}`"
                                  f", which a head applied once per sequence has no value for")
            env[nid] = sources[op]
            continue
        emit = EMITTERS.get(op)
        if emit is None:  # a new op in the table, not yet written here
            raise ExportError(f"{where or cell.name}: op `{op}` ({node.origin or 'node %d' % nid}) has no ONNX form "
                              f"yet (rnncompile/interop/onnx/onnx_ops.py)")
        args = cell.args(nid)
        into = once if once is not None and stage[nid] == "const" else g
        site = Site(into, [env[a].name for a in args], tuple(env[a].batched for a in args),
                    [cell.node(a).shape for a in args], {**OPS[op].attrs, **node.attr_dict}, node.shape, batch,
                    node.label or node.attr("name") or op)
        env[nid] = Bound(emit(site), any(site.flags))
    return env


def per_example(g: Graph, value: Bound, shape, batch: str) -> str:
    """The value with a batch axis: an unbatched one (a state updated from params only) repeated."""
    return value.name if value.batched else g.expand_to_batch(value.name, batch, shape)
