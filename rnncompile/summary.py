"""`inspect`: what a model costs — params, state, FLOPs and bytes per step."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .graph import CellGraph, stages, to_text
from .ops import OPS, flops, fmt_shape
from .program import Program


@dataclass
class CellCost:
    params: int
    state: int
    flops_per_step: int  # per example
    flops_once: int  # param-only work, once per run
    activations_per_step: int  # numbers produced per step, per example


def cell_cost(cell: CellGraph) -> CellCost:
    stage = stages(cell)
    per_step = once = acts = 0
    for nid in cell.g.nodes:
        node = cell.node(nid)
        op = OPS[node.op]
        if op.kind in ("source", "sink"):
            continue
        f = flops(op, [cell.node(a).shape for a in cell.args(nid)], node.shape, node.attr_dict)
        if stage[nid] == "const":
            once += f
        else:
            per_step += f
            acts += node.size
    return CellCost(
        params=sum(math.prod(p.shape) for p in cell.params.values()),
        state=sum(math.prod(s.shape) for s in cell.states.values()),
        flops_per_step=per_step, flops_once=once, activations_per_step=acts)


def _n(x: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= size:
            return f"{x / size:.2f}{unit}"
    return str(int(x))


def _bytes(x: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if x >= size:
            return f"{x / size:.1f} {unit}"
    return f"{int(x)} B"


def report(program: Program, batch: int = 1, steps: int | None = None, show_graph: bool = True,
           optimised: bool = True, itemsize: int = 4) -> str:
    checked = program.checked
    name = program.spec.model.scan
    cell = program.cells[name] if optimised else checked.cells[name]
    steps = checked.steps(steps)
    cost = cell_cost(cell)
    lines = [f"{program.name}: scan `{name}` over {steps} steps, batch {batch}"]
    dims = ", ".join(f"{k}={v}" for k, v in program.dims.items())
    if dims:
        lines.append(f"dims: {dims}")
    lines.append("")
    lines.append("inputs (per step)")
    for inp in cell.inputs.values():
        lines.append(f"  {inp.name:<12} {fmt_shape(inp.shape):<12} {inp.dtype}")
    lines.append("state")
    for st in cell.states.values():
        init = st.init if isinstance(st.init, str) else f"{st.init:g}"
        lines.append(f"  {st.name:<12} {fmt_shape(st.shape):<12} {math.prod(st.shape):>10,}  init {init}")
    lines.append("params")
    for p in checked.cells[name].params.values():
        how = "literal values" if p.values is not None else (
            f"{p.init}" + (f" {p.scale:g}" if p.scale is not None else ""))
        lines.append(f"  {p.name:<12} {fmt_shape(p.shape):<12} {math.prod(p.shape):>10,}  {how}")
    lines.append(f"  {'total':<12} {'':<12} {cost.params:>10,}  ({_bytes(cost.params * itemsize)})")
    lines.append("")
    lines.append("cost")
    lines.append(f"  FLOPs per step, per example   {_n(cost.flops_per_step)}")
    lines.append(f"  FLOPs for the whole run       {_n(cost.flops_per_step * steps * batch + cost.flops_once)}")
    lines.append(f"  values per step, per example  {cost.activations_per_step:,} "
                 f"({_bytes(cost.activations_per_step * itemsize)})")
    lines.append(f"  memory for one step           {_bytes((cost.activations_per_step + cost.state) * itemsize * batch)}"
                 f" (batch {batch})")
    lines.append(f"  params + state                {_bytes((cost.params + cost.state * batch) * itemsize)}")
    log = program.pass_log.get(name, [])
    if log and optimised:
        lines.append("")
        lines.append("passes (nodes before -> after)")
        for pname, before, after in log:
            lines.append(f"  {pname:<16} {before:>4} -> {after}")
        stage = stages(cell)
        counts = {s: sum(1 for n in cell.g.nodes if stage[n] == s and OPS[cell.node(n).op].kind != "source")
                  for s in ("const", "seq", "loop")}
        lines.append(f"  ops computed once: {counts['const']}, before the loop for all steps: {counts['seq']}, "
                     f"inside the loop: {counts['loop']}")
    if show_graph:
        lines.append("")
        lines.append(to_text(cell))
    return "\n".join(lines)
