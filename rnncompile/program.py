"""compile(): the pipeline from a spec file to a program a backend can run.

    spec file -> load -> validate (pydantic) -> check & lower (one graph per
    cell) -> passes -> Program
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .check import Checked, check_file, check_text
from .graph import CellGraph, ParamInfo
from .passes import optimise


@dataclass
class Program:
    """What backends run: optimised cell graphs and how the model drives them."""

    checked: Checked
    cells: dict[str, CellGraph]  # optimised
    pass_log: dict[str, list] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.checked.spec.name

    @property
    def spec(self):
        return self.checked.spec

    @property
    def dims(self) -> dict[str, int]:
        return self.checked.dims

    @property
    def scan_cell(self) -> CellGraph:
        return self.cells[self.spec.model.scan]

    @property
    def direction(self) -> str:
        return self.spec.model.direction

    @property
    def params(self) -> dict[str, ParamInfo]:
        """Every param the model reads, keyed as in weight files."""
        return dict(self.checked.cells[self.spec.model.scan].params)

    @property
    def vocab(self):
        return self.spec.vocab


def compile(source, dims: dict[str, int] | None = None, optimize: bool = True) -> Program:
    """Check a spec (a path, or a `Checked`) and optimise its cell graphs."""
    checked = source if isinstance(source, Checked) else check_file(Path(source), dims)
    cells, log = {}, {}
    for name, cell in checked.cells.items():
        if optimize:
            cells[name], log[name] = optimise(cell)
        else:
            cells[name], log[name] = cell, []
    return Program(checked, cells, log)


def compile_text(text: str, file: str = "<spec>.yaml", dims=None, optimize: bool = True) -> Program:
    return compile(check_text(text, file, dims), optimize=optimize)
