"""compile(): the pipeline from a spec file to a program a backend can run.

    spec file -> load -> validate (pydantic) -> check & lower (one graph per
    cell use, and the model plan) -> passes -> Program
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .check import Checked, check_file, check_text
from .graph import CellGraph, ParamInfo
from .model import CellUse, Plan
from .passes import optimise


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
    def values_per_step(self) -> int:
        """How many numbers one step of every cell use holds, per example (for the memory budget)."""
        return sum(self.cell(u).node(n).size for u in self.plan.uses() for n in self.cell(u).g.nodes)

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
