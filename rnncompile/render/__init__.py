"""Diagrams of a cell and of a model: the folded cell, the unrolled chain and the model view,
as .dot, .svg, .png or .pdf.

    from rnncompile.render import render
    render(program, "lstm.svg")                    # the folded cell, recurrences marked z⁻¹
    render(program, "lstm.png", unroll="12")       # steps 0 1 2 … 10 11, one cluster each
    render(program, "lstm.png", unroll="3..T")     # steps 0 1 2 … T-1, T from the spec
    render(program, "bigru.png", view="model")     # layers × time, both directions, heads, C
    render(program, "dec.svg", cell="decoder")     # one cell of a composed model, by name or place
    render(program, "hello.png", text="hell")      # a run: each step's token and its top prediction
    render(program, "lstm.png", dpi=300)           # a sharper PNG; .pdf is vector without dot too

The checked (unoptimised) graph is drawn, since it reads like the spec. The
pieces: shown.py (which nodes a diagram shows), cell.py and chain.py (the two
views as DOT text), plan.py (the --unroll syntax), engine.py (running dot or
graphviz-pure), pdf.py (a vector PDF from graphviz-pure's layout), style.py
(colours and shapes), model.py (the model view: how the cells compose over
time, each cell one compact box), memory.py and tree.py (cells with memory,
tree models).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import atomic_write
from ..errors import UsageError, did_you_mean
from ..graph import CellGraph
from . import annotate as _annotate
from . import cell as _cell
from . import chain as _chain
from . import memory as _memory
from . import model as _model
from . import tree as _tree
from .engine import RenderError, find_engine, run_engine
from .pdf import diagram_pdf
from .plan import Plan, make_plan

cell_dot = _cell.to_dot
chain_dot = _chain.to_dot
FORMATS = ("dot", "svg", "png", "pdf")
VIEWS = ("cell", "unrolled", "model", "tree")

__all__ = ["render", "Rendered", "dot_source", "choose", "cell_dot", "chain_dot", "make_plan", "Plan", "RenderError",
           "FORMATS", "VIEWS"]


@dataclass(frozen=True)
class Rendered:
    path: Path  # the file written (the .dot beside the requested one when no engine exists)
    engine: str | None  # "dot", "graphviz-pure", or None when no layout was run
    note: str = ""  # something the user should know, e.g. why only .dot was written


def render(program, out_path, view: str | None = None, unroll=None, engine: str | None = None, tree=None,
           dpi: int | None = None, cell: str | None = None, text: str | None = None, weights=None,
           seed: int = 0) -> Rendered:
    """Draw the program's cell to `out_path`; its suffix (.dot .svg .png .pdf) picks the format.

    view: "cell" (folded), "unrolled", "model" or "tree"; by default the cell, or unrolled when given
    `unroll` ("4", "12", "3..10", "3..T") or `text`; the model view draws 4 steps by default. The unrolled
    view of a composed model (a stack, a head, an encoder–decoder) is the model view.
    cell: which of the model's cells to draw, by name (`decoder_lstm`) or place (`decoder`).
    dpi: the resolution of a .png.
    text: run the model on this text (with `weights`, else seeded ones) and draw the run unrolled, each
    step's token below it and its top prediction above it (annotate.py).
    engine: None picks `dot` if installed, else the bundled graphviz-pure.
    """
    out = Path(out_path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        got = f"`{out.suffix}`" if out.suffix else "no suffix"
        raise UsageError(f"{out}: cannot draw a diagram to {got}; use .dot, .svg, .png or .pdf")
    _check_dpi(dpi, fmt)
    source, note = choose(program, view, unroll, tree, cell, text, weights, seed)
    if fmt == "dot":
        _write(out, source.encode("utf-8"))
        return Rendered(out, None, note)
    found = find_engine(engine)
    if found is None:
        dot_path = out.with_suffix(".dot")
        _write(dot_path, source.encode("utf-8"))
        return Rendered(dot_path, None, _join(note, (
            f"no Graphviz layout engine found (neither `dot` nor `graphviz-pure`), so {dot_path} was written "
            f"instead of {out}. Install one (`pip install graphviz-pure`, or Graphviz itself, e.g. "
            f"`apt-get install graphviz`) and run: dot -T{fmt} {dot_path} -o {out}")))
    if fmt == "pdf" and not found.writes("pdf"):
        data, pdf_note = _pdf_without_dot(found, source)
        note = _join(note, pdf_note)
    else:
        data = run_engine(found, source, fmt, dpi=dpi if fmt == "png" else None)
    _write(out, data)
    return Rendered(out, found.name, note)


MAX_DPI = 1200


def _check_dpi(dpi, fmt: str) -> None:
    if dpi is None:
        return
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 10 <= dpi <= MAX_DPI:
        raise UsageError(f"--dpi {dpi}: give a whole number from 10 to {MAX_DPI} (96 is the default, 300 prints "
                         f"sharply)")
    if fmt in ("svg", "dot", "pdf"):
        raise UsageError(f"--dpi sets the resolution of a .png; a .{fmt} is vector and has none, it scales to "
                         f"any size")


def _join(*notes: str) -> str:
    return "\n".join(n for n in notes if n)


def dot_source(program, view: str | None = None, unroll=None, tree=None, cell: str | None = None) -> str:
    """The DOT text `render` lays out. A tree model (tree.py) draws its folded cell (view cell) or
    the tree itself, `tree` (text or a Tree) or a sample one (any other view)."""
    return choose(program, view, unroll, tree, cell)[0]


def choose(program, view: str | None = None, unroll=None, tree=None, cell: str | None = None, text: str | None = None,
           weights=None, seed: int = 0) -> tuple[str, str]:
    """The DOT text of the picture asked for, and a note saying what was drawn when that was a choice
    (which cell of several, or the whole model for the unrolled view of a composed one). Without a view:
    unrolled when given `unroll` or `text`, the tree with `tree`, else the folded cell."""
    if view is None:
        view = "unrolled" if unroll is not None or text is not None else "tree" if tree is not None else "cell"
    if view not in VIEWS:
        raise UsageError(f"unknown view `{view}`; views: {', '.join(VIEWS)}")
    if text is not None:
        return _run_picture(program, view, unroll, tree, cell, text, weights, seed)
    _tree.check_view(program, view, tree)
    is_tree = getattr(program.checked.plan, "kind", None) == "tree"
    if cell is not None and (is_tree or view in ("model", "tree")):
        what = "a tree model draws both its rules" if is_tree else f"the {view} view draws every cell"
        raise UsageError(f"--cell picks one cell of a sequence model to draw folded or unrolled; {what}")
    if is_tree:
        return _tree.dot_for(program, view, tree, unroll), ""
    if view == "model":
        return model_dot(program, unroll), ""
    if view == "unrolled" and unroll is None:
        raise UsageError("the unrolled view needs a number of steps, e.g. --unroll 4 or --unroll 3..T")
    places = cells_of(program)
    if view == "unrolled" and cell is None and not _model.is_plain_scan(program.checked.plan):
        names = ", ".join(dict.fromkeys(u.cell.name for u in places.values()))
        return model_dot(program, unroll), (
            f"{program.name} composes its cells ({names}), so the unrolled view draws the whole model over time "
            f"(as --view model); --cell NAME draws one cell's chain")
    drawn, note = pick_cell(program, cell, places)
    if unroll is None:
        if _memory.has_memory(drawn):  # controller, memory matrix, read and write heads
            return _memory.to_dot(drawn, title=_title(program, drawn, "cell, one step")), note
        return _cell.to_dot(drawn, title=_title(program, drawn, "cell, one step")), note
    plan = plan_for(program, unroll)
    return _chain.to_dot(drawn, plan, title=_title(program, drawn, f"unrolled over {plan.steps} steps")), note


def cells_of(program) -> dict[str, "object"]:
    """The model's cell uses by place: `layers.0.forward`, `decoder`, `decoder.head`, or `cell` for a plain scan."""
    out = {}
    for use in program.checked.plan.uses():
        out.setdefault(use.prefix.rstrip(".") or "cell", use)
    return out


def pick_cell(program, name: str | None, places: dict) -> tuple[CellGraph, str]:
    """The cell `--cell NAME` names (a cell's name or its place in the model), else the main one; and a
    note naming the others when there are several."""
    names = list(dict.fromkeys(u.cell.name for u in places.values()))
    if name is None:
        main = drawn_cell(program)
        others = [n for n in names if n != main.name]
        note = (f"drew cell {main.name}; {program.name} also has {', '.join(others)} (--cell NAME draws another)"
                if others else "")
        return main, note
    for use in places.values():
        if use.cell.name == name:
            return use.cell, ""
    if name in places:
        return places[name].cell, ""
    where = [p for p in places if p not in names and p != "cell"]
    known = names + where
    hint = did_you_mean(name, known, "cell")
    if not hint.startswith("known"):
        hint += f" (cells: {', '.join(names)}" + (f"; places: {', '.join(where)})" if where else ")")
    raise UsageError(f"--cell {name}: {program.name} has no cell `{name}`; {hint.lstrip()}")


def model_dot(program, unroll=None, run=None) -> str:
    """The model view: layers × time, directions, head, encoder → C → decoder (model.py)."""
    checked = program.checked
    vocab = getattr(checked.spec, "vocab", None)
    plan = unroll if isinstance(unroll, Plan) or unroll is None else plan_for(program, unroll)
    return _model.to_dot(checked.plan, plan,
                         steps=checked.steps(), name=getattr(program, "name", checked.main_cell.name),
                         start=getattr(vocab, "start", None), run=run)


def _run_picture(program, view, unroll, tree, cell, text, weights, seed) -> tuple[str, str]:
    """`--text`: the model unrolled over the text's tokens, annotated with the run (annotate.py)."""
    clash = ([f"--view {view}"] if view not in ("unrolled", "model") else []) + \
        (["--tree"] if tree is not None else []) + (["--cell"] if cell is not None else [])
    if clash:
        raise UsageError(f"--text draws a run of the whole model over time (with --unroll or --view model), not "
                         f"with {' or '.join(clash)}")
    run = _annotate.annotate(program, text, weights, seed)
    steps = len(run.inputs)
    plan = plan_for(program, unroll if unroll is not None else steps)
    if plan.steps != steps:
        raise UsageError(f"--text has {steps} token{'s' if steps != 1 else ''} but --unroll {unroll} draws "
                         f"{plan.steps} steps; leave --unroll out or give {steps}")
    return model_dot(program, plan, run), run.note


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


def _pdf_without_dot(found, source: str) -> tuple[bytes, str]:
    """A vector PDF from an engine that writes none (graphviz-pure): its layout painted by pdf.py."""
    return diagram_pdf(found, source), (f"vector PDF painted from {found.name}'s layout, with the PDF viewer's "
                                        f"built-in Helvetica and Symbol fonts")


def _write(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)
