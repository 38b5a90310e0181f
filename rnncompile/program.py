"""compile(): the pipeline from a spec file to a program a backend can run.

    spec file -> load -> validate (pydantic) -> check & lower (one graph per
    cell use, and the model plan) -> passes -> Program
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .check import Checked, check_file, check_text
from .graph import STAGES, CellGraph, ParamInfo, stages
from .plan import CellUse, Plan
from .passes import optimise


SCAN_CHUNK = 512  # a scan runs this many steps per backend call, carrying the state (drivers.scan_in_chunks)


@dataclass
class Program:
    """What backends run: the model plan, with each cell use's optimised graph."""

    checked: Checked
    optimised: dict[str, CellGraph]  # use prefix -> optimised graph
    pass_log: dict[str, list] = field(default_factory=dict)  # use prefix -> [(pass, before, after)]
    # (backend, dtype) -> its drivers.Executable, planned on first use (see Executable.cached)
    executables: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.checked.spec.name

    @property
    def spec(self):
        return self.checked.spec

    @property
    def plan(self) -> Plan:
        return self.checked.plan

    @property
    def dims(self) -> dict[str, int]:
        return self.checked.dims

    @property
    def vocab(self):
        return self.spec.vocab

    @property
    def params(self) -> dict[str, ParamInfo]:
        """Every param the model reads, keyed as in weight files."""
        return self.plan.params()

    def cell(self, use: CellUse) -> CellGraph:
        """The graph a backend runs for one cell use."""
        return self.optimised[use.prefix]

    @property
    def cells(self) -> dict[str, CellGraph]:
        """Optimised graphs by cell name (the first use of each cell)."""
        out = {}
        for use in self.plan.uses():
            out.setdefault(use.cell.name, self.cell(use))
        return out

    @cached_property
    def flow(self):
        """The model as flow ops (rnncompile.flow): what the drivers run and the code generators render."""
        from .flow import flow_of

        return flow_of(self.plan, self.name)

    @cached_property
    def values_by_stage(self) -> dict[str, dict[str, int]]:
        """Use prefix -> how many numbers its nodes hold, by stage (graph.stages): `const` once per run, `seq`
        and `loop` per example and step. Computed once: every run's budget check reads it."""
        out = {}
        for use in self.plan.uses():
            cell, sizes = self.cell(use), dict.fromkeys(STAGES, 0)
            for nid, stage in stages(cell).items():
                sizes[stage] += cell.node(nid).size
            out[use.prefix] = sizes
        return out

    def run_values(self, batch: int, steps: int, trace: bool = False, chunked: bool = True) -> dict[str, int]:
        """How many numbers a run holds at its peak, by kind: inputs, the outputs of every step (a stack's
        outputs, its head's, a decoder's), the final state, and one step's values (or every step's, traced).
        `steps` is the steps read, or for one-to-many generation the tokens written; a traced or variable-length
        run (`chunked=False`) scans its sequences whole."""
        plan = self.plan
        if plan.kind == "tree":
            raise ValueError("a tree model's footprint depends on its trees")

        def out_size(use):
            return sum(use.cell.node(n).size for n in use.cell.outputs().values())

        held = 0
        if plan.stack:
            held += steps * sum(math.prod(s) for s in plan.stack.outputs.values())
        if plan.head:
            held += out_size(plan.head.use) * (steps if plan.head.at == "every_step" else 1)
        if plan.decoder:
            written = steps if plan.kind == "generate" else plan.decoder.steps
            held += written * (out_size(plan.decoder.head.use) + 1)  # its head's outputs and the tokens
        total_steps = steps + (plan.decoder.steps if plan.kind == "seq2seq" else 0)
        states = sum(math.prod(st.shape) for use in plan.uses() for st in use.cell.states.values())
        inputs = 0 if plan.kind == "generate" else steps * sum(math.prod(s) for s in plan.inputs.values())
        scanned = {id(u) for layer in plan.stack.layers for u in layer.uses} if plan.stack else set()
        const = before_loop = one_step = 0
        for use in plan.uses():
            by_stage = self.values_by_stage[use.prefix]
            const += by_stage["const"]
            if id(use) in scanned:  # a scan computes what reads no state for a chunk of steps before its loop
                before_loop += (min(steps, SCAN_CHUNK) if chunked and not trace else steps) * by_stage["seq"]
                one_step += by_stage["loop"]
            else:  # heads and decoders: a step at a time
                one_step += by_stage["seq"] + by_stage["loop"]
        parts = {"inputs": batch * inputs, "outputs": batch * held, "final state": batch * states,
                 "params and constants": const}
        if trace:
            parts["every step's values (trace)"] = batch * (before_loop + total_steps * one_step)
        else:
            parts["work before the loop"] = batch * before_loop
            parts["one step's values"] = batch * one_step
        return parts

    def _repr_svg_(self) -> str:
        """A notebook shows a program as its folded cell (rnncompile.render.render draws any view to a file)."""
        import tempfile

        from .render import render

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{self.name}.svg"
            render(self, path)
            return path.read_text(encoding="utf-8")

    @property
    def main_use(self) -> CellUse:
        return self.plan.uses()[0]

    @property
    def scan_cell(self) -> CellGraph:
        """The optimised graph of the first cell the model runs."""
        return self.cell(self.main_use)


def compile(source, dims: dict[str, int] | None = None, optimize: bool = True) -> Program:
    """Check a spec (a path, or a `Checked`) and optimise each cell use's graph."""
    checked = source if isinstance(source, Checked) else check_file(Path(source), dims)
    optimised, log, done = {}, {}, {}
    for use in checked.plan.uses():
        key = id(use.cell)  # a cell lowered once (same dims) is optimised once
        if key not in done:
            done[key] = optimise(use.cell) if optimize else (use.cell, [])
        optimised[use.prefix], log[use.prefix] = done[key]
    return Program(checked, optimised, log)


def compile_text(text: str, file: str = "<spec>.yaml", dims=None, optimize: bool = True) -> Program:
    return compile(check_text(text, file, dims), optimize=optimize)
