"""Param-only values: computed once per set of weights, in Python, by the op table's meanings.

A node that reads only params and literals (a slice of a weight matrix, the
gates' fused matrix, a transpose) has the same value at every step and for
every example, so generated C never computes it: the simulation passes the
values in (`k`), and the exported file holds them as `static const` data.
The plan of what to compute is made once per cell; a bind only runs it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncompile.graph import CellGraph, stages
from rnncompile.ops import OPS

from .cell import CellCode
from .gemm import aligned_zeros, panels


@dataclass(frozen=True)
class ConstPlan:
    # (node, op, param name or literal value or None, argument nodes, attributes), in graph order
    steps: tuple

    def values(self, params: dict, dtype) -> dict[int, np.ndarray]:
        """node id -> value, for every param-only node (params, literals and what is computed from them)."""
        dtype = np.dtype(dtype)
        env: dict[int, np.ndarray] = {}
        with np.errstate(all="ignore"):  # as in a run: inf and NaN are values, not errors
            for nid, op, what, args, attrs in self.steps:
                if op == "param":
                    env[nid] = np.asarray(params[what], dtype)
                elif op == "const":
                    env[nid] = np.asarray(what, dtype)
                else:
                    env[nid] = np.asarray(OPS[op].meaning(*(env[a] for a in args), **attrs))
        return env


def const_plan(cell: CellGraph) -> ConstPlan:
    stage, steps = stages(cell), []
    for nid in cell.order():
        if stage[nid] != "const":
            continue
        node = cell.node(nid)
        op = OPS[node.op]
        what = node.attr("name") if node.op == "param" else node.attr("value") if node.op == "const" else None
        attrs = {k: v for k, v in {**op.attrs, **node.attr_dict}.items() if k in op.attrs}
        steps.append((nid, node.op, what, tuple(cell.args(nid)), attrs))
    return ConstPlan(tuple(steps))


def const_values(cell: CellGraph, params: dict, dtype) -> dict[int, np.ndarray]:
    return const_plan(cell).values(params, dtype)


def pack(code: CellCode, env: dict[int, np.ndarray], dtype) -> np.ndarray:
    """The <cell>_consts struct as an array starting on a cache line: each member's value (or its
    transpose, or that in panels), flat, in order."""
    k = aligned_zeros(code.k_size, dtype)
    for f in code.consts:
        value = env[f.nid].T if f.transposed else env[f.nid]
        if f.panel:
            value = panels(value, f.panel, f.length)
        k[f.offset:f.offset + value.size] = value.ravel()
    return k
