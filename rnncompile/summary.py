"""`inspect`: what a model costs — params, state, FLOPs and bytes per step."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .data import MAX_RUN_ELEMENTS
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


@dataclass
class Phase:
    """Uses that run together, `runs` times per example: a sequence's steps, a decoder's steps, once."""

    name: str  # "step", "encoder step", "decoder step", "once per sequence"
    runs: int
    flops_per_run: int = 0  # per example


def phase_of(use, plan, steps: int) -> tuple[str, int]:
    """Which phase a cell use runs in, and how often. `steps` is the run's steps as `run` reads them:
    the source length of a sequence or encoder, the tokens to write of one-to-many generation, or the
    leaves of one full tree of a tree model."""
    if plan.kind == "tree":
        return _tree_phase(use, plan, steps)
    d = plan.decoder
    if d is not None and (use is d.use or use is d.head.use):
        return "decoder step", steps if plan.kind == "generate" else d.steps
    if d is not None and use is d.init:
        return "once per sequence", 1  # the init projection from the summary C or the context
    if plan.head is not None and use is plan.head.use and plan.head.at == "last":
        return "once per sequence", 1
    return ("encoder step" if plan.kind == "seq2seq" else "step"), steps


def _tree_phase(use, plan, leaves: int) -> tuple[str, int]:
    """A full tree of `leaves` leaves, every inner node with the cell's arity (2 for `arity: any`)."""
    fold = plan.fold
    inner = math.ceil((leaves - 1) / ((fold.cell.arity or 2) - 1)) if leaves > 1 else 0
    if use is fold.leaf:
        return "leaf", leaves
    if use is fold.node:  # without a leaf rule, leaves run the node rule too
        return "inner node", inner + (leaves if fold.leaf is None else 0)
    if plan.head.at == "every_node":
        return "head at a node", leaves + inner
    return "head at the root", 1


PLURAL = {"leaf": "leaves", "head at a node": "heads at nodes"}
PHASES = ("step", "encoder step", "decoder step", "once per sequence", "leaf", "inner node", "head at a node",
          "head at the root")


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


def _use_title(use, plan) -> str:
    where = use.prefix.rstrip(".") or "model"
    direction = " (reverse)" if use.reverse else ""
    return f"{where}: cell `{use.cell.name}`{direction}"


def inspect_data(program: Program, batch: int = 1, steps: int | None = None, optimised: bool = True,
                 itemsize: int = 4) -> dict:
    """What `inspect` shows, as plain data (`inspect --format json` prints it; `report` writes it as text)."""
    checked, plan = program.checked, program.plan
    steps = checked.steps(steps)
    data = {"name": program.name, "file": checked.file, "kind": plan.kind, "steps": steps, "batch": batch,
            "dims": dict(program.dims),
            "inputs": {n: {"shape": list(s), "dtype": plan.input_dtypes.get(n, "float")} for n, s in plan.inputs.items()},
            "context": {n: list(s) for n, s in plan.context.items()}, "uses": []}
    if plan.kind == "seq2seq":
        data["decoder_steps"] = plan.decoder.steps
    if plan.kind == "tree":
        data["tree_cell"] = {"name": plan.fold.cell.name, "arity": plan.fold.cell.arity}
    total = CellCost(0, 0, 0, 0, 0)
    listed, phases = set(), {}
    for use in plan.uses():
        cell = program.cell(use) if optimised else use.cell
        cost = cell_cost(cell)
        name, runs = phase_of(use, plan, steps)
        phases.setdefault(name, Phase(name, runs)).flops_per_run += cost.flops_per_step
        own = [p for p in use.cell.params.values() if use.key(p.name) not in listed]  # shared weights listed once
        listed.update(use.key(p.name) for p in own)
        cost.params = sum(math.prod(p.shape) for p in own)
        total = CellCost(*(a + b for a, b in zip(vars(total).values(), vars(cost).values())))
        log = program.pass_log.get(use.prefix, []) if optimised else []
        data["uses"].append({
            "where": use.prefix.rstrip(".") or "model", "title": _use_title(use, plan), "cell": cell.name,
            "reverse": use.reverse,
            "states": [{"name": use.key(st.name), "shape": list(st.shape), "init": st.init,
                        "from_context": st.from_context} for st in cell.states.values()],
            "params": [{"name": use.key(p.name), "shape": list(p.shape),
                        "init": "literal values" if p.values is not None else p.init, "scale": p.scale} for p in own],
            "flops_per_step": cost.flops_per_step,
            "passes": [{"pass": n, "nodes_before": b, "nodes_after": a} for n, b, a in log if b != a]})
    phases = sorted(phases.values(), key=lambda ph: PHASES.index(ph.name))
    data["phases"] = [{"name": ph.name, "runs": ph.runs, "flops_per_run": ph.flops_per_run} for ph in phases]
    data["cost"] = {
        "params": total.params, "flops_once": total.flops_once,
        "flops_whole_run": batch * sum(ph.flops_per_run * ph.runs for ph in phases) + total.flops_once,
        "values_per_step": total.activations_per_step, "state_per_example": total.state,
        "bytes_one_step": (total.activations_per_step + total.state) * itemsize * batch,
        "bytes_params_and_state": (total.params + total.state * batch) * itemsize, "itemsize": itemsize}
    if plan.kind != "tree":
        parts = program.run_values(batch, steps)
        data["cost"]["whole_run"] = {"bytes": sum(parts.values()) * itemsize, "limit_bytes": MAX_RUN_ELEMENTS * itemsize,
                                     "numbers": parts}
    return data


def report(program: Program, batch: int = 1, steps: int | None = None, show_graph: bool = True,
           optimised: bool = True, itemsize: int = 4) -> str:
    data = inspect_data(program, batch, steps, optimised, itemsize)
    plan, steps, cost = program.plan, data["steps"], data["cost"]
    lines = [f"{program.name}: {plan.kind} model, {steps} steps, batch {batch}"]
    if plan.kind == "seq2seq":
        lines = [f"{program.name}: seq2seq model, {steps} source steps, up to {plan.decoder.steps} decoder steps, "
                 f"batch {batch}"]
    if plan.kind == "tree":  # no steps: the cell runs once per node (costs below are per node)
        cell = plan.fold.cell
        arity = "any number of children" if cell.arity is None else f"{cell.arity} children per node"
        lines = [f"{program.name}: tree model (fold of cell `{cell.name}`, {arity}); costs per node, and for one "
                 f"full tree of {steps} leaves (--steps sets the leaves)"]
        if cell.arity is None:
            lines.append("(arity any: FLOPs over the children axis are not counted; K varies per node)")
    dims = ", ".join(f"{k}={v}" for k, v in data["dims"].items())
    if dims:
        lines.append(f"dims: {dims}")
    if data["inputs"]:
        lines.append("inputs (per step): " + ", ".join(
            f"{n} {fmt_shape(i['shape'])}{' token' if i['dtype'] == 'token' else ''}" for n, i in data["inputs"].items()))
    if data["context"]:
        lines.append("context (per sequence): " + ", ".join(f"{n} {fmt_shape(s)}" for n, s in data["context"].items()))
    for use in data["uses"]:
        lines.append("")
        lines.append(use["title"])
        for st in use["states"]:
            init = st["init"] if isinstance(st["init"], str) else f"{st['init']:g}"
            init = f"context {init}" if st["from_context"] else init
            lines.append(f"  state  {st['name']:<22} {fmt_shape(st['shape']):<12} {math.prod(st['shape']):>10,}"
                         f"  init {init}")
        for p in use["params"]:
            how = p["init"] + (f" {p['scale']:g}" if p["scale"] is not None and p["init"] != "literal values" else "")
            lines.append(f"  param  {p['name']:<22} {fmt_shape(p['shape']):<12} {math.prod(p['shape']):>10,}  {how}")
        lines.append(f"  FLOPs per {'node' if plan.kind == 'tree' else 'step'}, per example "
                     f"{_n(use['flops_per_step'])}")
        if use["passes"]:
            lines.append("  passes (nodes): " + ", ".join(f"{p['pass']} {p['nodes_before']}→{p['nodes_after']}"
                                                          for p in use["passes"]))
    phases = [Phase(ph["name"], ph["runs"], ph["flops_per_run"]) for ph in data["phases"]]
    rows = [("params", f"{cost['params']:,} ({_bytes(cost['params'] * itemsize)})")]
    for ph in phases:
        label = "FLOPs once per sequence" if ph.runs == 1 and ph.name.startswith("once") else f"FLOPs per {ph.name}"
        rows.append((f"{label}, per example", _n(ph.flops_per_run)))

    def times(ph):
        if ph.name.startswith("once") or ph.name == "head at the root":
            return f"{_n(ph.flops_per_run)} once"
        many = PLURAL.get(ph.name, ph.name + "s") if ph.runs != 1 else ph.name
        return f"{_n(ph.flops_per_run)} × {ph.runs} {many}"
    how = " + ".join(times(ph) for ph in phases)
    how = f"({how}) × batch {batch}" if batch > 1 else how
    how += f" + {_n(cost['flops_once'])} on the weights" if cost["flops_once"] else ""
    rows.append(("FLOPs for the whole run", f"{_n(cost['flops_whole_run'])}" + (f"  = {how}" if len(phases) > 1 else "")))
    rows.append(("values per step, per example", f"{cost['values_per_step']:,} "
                                                 f"({_bytes(cost['values_per_step'] * itemsize)})"))
    rows.append(("memory for one step", f"{_bytes(cost['bytes_one_step'])} (batch {batch})"))
    rows.append(("params + state", _bytes(cost["bytes_params_and_state"])))
    if "whole_run" in cost:
        run = cost["whole_run"]
        rows.append(("memory for the whole run", f"{_bytes(run['bytes'])} (batch {batch}, {steps} steps; "
                     f"`run` refuses more than {_bytes(run['limit_bytes'])})"))
        rows.append(("  of which", ", ".join(f"{k} {_bytes(v * itemsize)}" for k, v in run["numbers"].items() if v)))
    width = max(30, *(len(label) + 2 for label, _ in rows))
    lines.append("")
    lines.append("cost")
    lines += [f"  {label:<{width}}{value}" for label, value in rows]
    shown_graphs = {}
    for use in plan.uses():
        cell = program.cell(use) if optimised else use.cell
        shown_graphs.setdefault(id(cell), (use, cell))
    if optimised:
        for use, cell in shown_graphs.values():
            stage = stages(cell)
            counts = {s: sum(1 for n in cell.g.nodes if stage[n] == s and OPS[cell.node(n).op].kind != "source")
                      for s in ("const", "seq", "loop")}
            lines.append(f"  {_use_title(use, plan)}: ops once {counts['const']}, before the loop (all steps at once) "
                         f"{counts['seq']}, inside the loop {counts['loop']}")
    if show_graph:
        for use, cell in shown_graphs.values():
            lines.append("")
            lines.append(f"# {_use_title(use, plan)}")
            lines.append(to_text(cell))
    return "\n".join(lines)
