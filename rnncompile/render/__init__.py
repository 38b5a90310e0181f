"""Diagrams of a cell and of a model: the folded cell, the unrolled chain and the model view,
as .dot, .svg, .png or .pdf.

    from rnncompile.render import render
    render(program, "lstm.svg")                    # the folded cell, recurrences marked z⁻¹
    render(program, "lstm.png", unroll="12")       # steps 0 1 2 … 10 11, one cluster each
    render(program, "lstm.png", unroll="3..T")     # steps 0 1 2 … T-1, T from the spec
    render(program, "bigru.png", view="model")     # layers × time, both directions, heads, C

The checked (unoptimised) graph is drawn, since it reads like the spec. The
pieces: fold.py (which nodes a diagram shows), cell.py and chain.py (the two
views as DOT text), plan.py (the --unroll syntax), engine.py (running dot or
graphviz-pure), style.py (colours and shapes), model.py (the model view:
how the cells compose over time, each cell one compact box).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import atomic_write
from ..errors import UsageError
from ..graph import CellGraph
from . import cell as _cell
from . import chain as _chain
from . import memory as _memory
from . import model as _model
from . import tree as _tree
from .engine import RASTER_DPI, RenderError, find_engine, png_to_pdf, run_engine, svg_to_pdf
from .plan import Plan, make_plan

cell_dot = _cell.to_dot
chain_dot = _chain.to_dot
FORMATS = ("dot", "svg", "png", "pdf")
VIEWS = ("cell", "unrolled", "model", "tree")

__all__ = ["render", "Rendered", "dot_source", "cell_dot", "chain_dot", "make_plan", "Plan", "RenderError",
           "FORMATS", "VIEWS"]


@dataclass(frozen=True)
class Rendered:
    path: Path  # the file written (the .dot beside the requested one when no engine exists)
    engine: str | None  # "dot", "graphviz-pure", or None when no layout was run
    note: str = ""  # something the user should know, e.g. why only .dot was written


def render(program, out_path, view: str = "cell", unroll=None, engine: str | None = None, tree=None) -> Rendered:
    """Draw the program's cell to `out_path`; its suffix (.dot .svg .png .pdf) picks the format.

    view: "cell" (folded), "unrolled" or "model"; giving `unroll` ("4", "12", "3..10", "3..T")
    implies unrolled, unless the view is "model" (which draws 4 steps by default).
    engine: None picks `dot` if installed, else the bundled graphviz-pure.
    """
    out = Path(out_path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        got = f"`{out.suffix}`" if out.suffix else "no suffix"
        raise UsageError(f"{out}: cannot draw a diagram to {got}; use .dot, .svg, .png or .pdf")
    source = dot_source(program, view, unroll, tree)
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
        data, note = _pdf_without_dot(found, source, out)
    else:
        data = run_engine(found, source, fmt)
    _write(out, data)
    return Rendered(out, found.name, note)


def dot_source(program, view: str = "cell", unroll=None, tree=None) -> str:
    """The DOT text `render` lays out. A tree model (tree.py) draws its folded cell (view cell) or
    the tree itself, `tree` (text or a Tree) or a sample one (any other view)."""
    if view not in VIEWS:
        raise UsageError(f"unknown view `{view}`; views: {', '.join(VIEWS)}")
    _tree.check_view(program, view, tree)
    if getattr(program.checked.plan, "kind", None) == "tree":
        return _tree.dot_for(program, view, tree, unroll)
    if view == "model":
        return model_dot(program, unroll)
    cell = drawn_cell(program)
    if unroll is None:
        if view == "unrolled":
            raise UsageError("the unrolled view needs a number of steps, e.g. --unroll 4 or --unroll 3..T")
        if _memory.has_memory(cell):  # controller, memory matrix, read and write heads
            return _memory.to_dot(cell, title=_title(program, cell, "cell, one step"))
        return _cell.to_dot(cell, title=_title(program, cell, "cell, one step"))
    plan = plan_for(program, unroll)
    return _chain.to_dot(cell, plan, title=_title(program, cell, f"unrolled over {plan.steps} steps"))


def model_dot(program, unroll=None) -> str:
    """The model view: layers × time, directions, head, encoder → C → decoder (model.py)."""
    checked = program.checked
    vocab = getattr(checked.spec, "vocab", None)
    return _model.to_dot(checked.plan, plan_for(program, unroll) if unroll is not None else None,
                         steps=checked.steps(), name=getattr(program, "name", checked.main_cell.name),
                         start=getattr(vocab, "start", None))


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


def _pdf_without_dot(found, source: str, out: Path) -> tuple[bytes, str]:
    """PDF from an engine that writes none: cairosvg converts its SVG, else Pillow wraps its PNG."""
    if _has_cairosvg():
        pdf = svg_to_pdf(run_engine(found, source, "svg"))
        if pdf is not None:
            return pdf, f"PDF converted by cairosvg from {found.name}'s SVG"
    if _has_pil():
        pdf = png_to_pdf(run_engine(found, source, "png", dpi=RASTER_DPI))
        if pdf is not None:
            return pdf, (f"{out} is a raster PDF ({RASTER_DPI} dpi, made by Pillow from {found.name}'s PNG); for "
                         f"a vector PDF install Graphviz's dot (e.g. `apt-get install graphviz`) or cairosvg")
    raise UsageError(f"{out}: {found.name} cannot write PDF. Install Graphviz's dot (e.g. "
                     f"`apt-get install graphviz`), cairosvg (`pip install cairosvg`) or Pillow (`pip install "
                     f"pillow`, for a raster PDF), or draw to .svg or .png instead")


def _has_pil() -> bool:
    try:
        import PIL.Image  # noqa: F401  (optional)
    except ImportError:
        return False
    return True


def _has_cairosvg() -> bool:
    try:
        import cairosvg  # noqa: F401  (optional)
    except (ImportError, OSError):
        return False
    return True


def _write(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)
