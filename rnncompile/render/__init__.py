"""Diagrams of a cell: the folded cell and the unrolled chain, as .dot, .svg, .png or .pdf.

    from rnncompile.render import render
    render(program, "lstm.svg")                    # the folded cell, recurrences marked z⁻¹
    render(program, "lstm.png", unroll="12")       # steps 0 1 2 … 10 11, one cluster each
    render(program, "lstm.png", unroll="3..T")     # steps 0 1 2 … T-1, T from the spec

The checked (unoptimised) graph is drawn, since it reads like the spec. The
pieces: fold.py (which nodes a diagram shows), cell.py and chain.py (the two
views as DOT text), plan.py (the --unroll syntax), engine.py (running dot or
graphviz-pure), style.py (colours and shapes).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import atomic_write
from ..errors import UsageError
from ..graph import CellGraph
from . import cell as _cell
from . import chain as _chain
from .engine import RenderError, find_engine, run_engine, svg_to_pdf
from .plan import Plan, make_plan

cell_dot = _cell.to_dot
chain_dot = _chain.to_dot
FORMATS = ("dot", "svg", "png", "pdf")
VIEWS = ("cell", "unrolled")

__all__ = ["render", "Rendered", "dot_source", "cell_dot", "chain_dot", "make_plan", "Plan", "RenderError",
           "FORMATS", "VIEWS"]


@dataclass(frozen=True)
class Rendered:
    path: Path  # the file written (the .dot beside the requested one when no engine exists)
    engine: str | None  # "dot", "graphviz-pure", or None when no layout was run
    note: str = ""  # something the user should know, e.g. why only .dot was written


def render(program, out_path, view: str = "cell", unroll=None, engine: str | None = None) -> Rendered:
    """Draw the program's cell to `out_path`; its suffix (.dot .svg .png .pdf) picks the format.

    view: "cell" (folded) or "unrolled"; giving `unroll` ("4", "12", "3..10", "3..T") implies
    unrolled. engine: None picks `dot` if installed, else the bundled graphviz-pure.
    """
    out = Path(out_path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        got = f"`{out.suffix}`" if out.suffix else "no suffix"
        raise UsageError(f"{out}: cannot draw a diagram to {got}; use .dot, .svg, .png or .pdf")
    source = dot_source(program, view, unroll)
    if fmt == "dot":
        _write(out, source.encode("utf-8"))
        return Rendered(out, None)
    found = find_engine(engine)
    if found is None:
        dot_path = out.with_suffix(".dot")
        _write(dot_path, source.encode("utf-8"))
        return Rendered(dot_path, None, (
            f"no Graphviz layout engine found (neither `dot` nor `graphviz-pure`), so {dot_path} was written "
            f"instead of {out}. Install one (`pip install graphviz-pure`, or Graphviz itself, e.g. "
            f"`apt-get install graphviz`) and run: dot -T{fmt} {dot_path} -o {out}"))
    note = ""
    if fmt == "pdf" and not found.writes("pdf"):
        pdf = svg_to_pdf(run_engine(found, source, "svg")) if _has_cairosvg() else None
        if pdf is None:
            raise UsageError(f"{out}: {found.name} cannot write PDF. Install Graphviz's dot (e.g. "
                             f"`apt-get install graphviz`) or cairosvg (`pip install cairosvg`), "
                             f"or draw to .svg or .png instead")
        data, note = pdf, f"PDF converted by cairosvg from {found.name}'s SVG"
    else:
        data = run_engine(found, source, fmt)
    _write(out, data)
    return Rendered(out, found.name, note)


def dot_source(program, view: str = "cell", unroll=None) -> str:
    """The DOT text `render` lays out."""
    if view not in VIEWS:
        raise UsageError(f"unknown view `{view}`; views: {', '.join(VIEWS)}")
    cell = drawn_cell(program)
    if unroll is None:
        if view == "unrolled":
            raise UsageError("the unrolled view needs a number of steps, e.g. --unroll 4 or --unroll 3..T")
        return _cell.to_dot(cell, title=_title(program, cell, "cell, one step"))
    plan = plan_for(program, unroll)
    return _chain.to_dot(cell, plan, title=_title(program, cell, f"unrolled over {plan.steps} steps"))


def _title(program, cell: CellGraph, what: str) -> str:
    name = getattr(program, "name", cell.name)
    return f"{cell.name} {what}" if name == cell.name else f"{name}: {cell.name} {what}"


def drawn_cell(program) -> CellGraph:
    """The checked (unoptimised) graph of the cell the model scans: the first recurrent one
    (a stack may start with a stateless embedding layer)."""
    return program.checked.main_cell


def plan_for(program, unroll) -> Plan:
    """An --unroll value resolved against the spec (its time dim and other dims)."""
    checked = program.checked
    model_plan = getattr(checked, "plan", None)
    time_dim = getattr(model_plan, "time_dim", None) if model_plan is not None else getattr(checked, "time_dim", None)
    return make_plan(unroll, dims=checked.dims, time_dim=time_dim, time_steps=checked.steps())


def _has_cairosvg() -> bool:
    try:
        import cairosvg  # noqa: F401  (optional)
    except (ImportError, OSError):
        return False
    return True


def _write(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)
