"""Finding and running a Graphviz layout engine.

A real `dot` on PATH is used when there is one. Otherwise the `graphviz-pure`
binary (a dependency: a pure-Rust port of Graphviz installed beside the
Python executable, so `pip install` alone draws SVG and PNG) is used; it
writes svg and png but not pdf, which pdf.py paints from its JSON layout.
Every layout goes through :func:`run_engine`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ..errors import RnnCompileError, UsageError

TIMEOUT = 60.0  # seconds; a drawable diagram lays out in well under one
PURE = "graphviz-pure"
NOISE = ("no value for width of non-ASCII character",)  # graphviz-pure estimates those widths; harmless


class RenderError(RnnCompileError):
    """The layout engine failed, timed out or could not be started."""


@dataclass(frozen=True)
class Engine:
    name: str  # "dot" | "graphviz-pure"
    path: str
    formats: frozenset

    def writes(self, fmt: str) -> bool:
        return fmt in self.formats


DOT_FORMATS = frozenset({"svg", "png", "pdf"})
PURE_FORMATS = frozenset({"svg", "png"})


def find_engine(prefer: str | None = None) -> Engine | None:
    """The engine to use: `prefer` ("dot", "graphviz-pure" or a path to either), else the
    best one installed; None when there is none (and none was asked for)."""
    if prefer in (None, "", "auto"):
        return _find_dot() or _find_pure()
    if prefer == "dot":
        found = _find_dot()
    elif prefer == PURE:
        found = _find_pure()
    else:
        path = shutil.which(prefer) or (prefer if Path(prefer).is_file() else None)
        found = _engine_at(path) if path else None
    if found is None:
        raise UsageError(f"layout engine `{prefer}` not found; install Graphviz (e.g. `apt-get install graphviz`) "
                         f"or leave the engine unset to use the bundled {PURE}")
    return found


def _engine_at(path: str) -> Engine:
    if PURE in Path(path).name:
        return Engine(PURE, path, PURE_FORMATS)
    return Engine("dot", path, DOT_FORMATS)


def _find_dot() -> Engine | None:
    path = shutil.which("dot")
    return Engine("dot", path, DOT_FORMATS) if path else None


def _find_pure() -> Engine | None:
    for path in pure_candidates():
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return Engine(PURE, str(path), PURE_FORMATS)
    return None


def pure_candidates() -> list:
    """Where pip puts the graphviz-pure script: on PATH, or beside this Python (a venv's bin
    is often not on PATH)."""
    exe = PURE + (".exe" if os.name == "nt" else "")
    scripts = sysconfig.get_path("scripts")
    return [shutil.which(PURE), scripts and Path(scripts) / exe, Path(sys.executable).parent / exe]


def run_engine(engine: Engine, dot_source: str, fmt: str, timeout: float | None = None,
               dpi: int | None = None) -> bytes:
    """Lay out DOT source and return the drawing in `fmt` (svg, png, pdf); `dpi` sets a png's resolution."""
    timeout = TIMEOUT if timeout is None else timeout
    cmd = [engine.path, f"-T{fmt}"] + ([f"-Gdpi={dpi}"] if dpi else [])
    try:
        done = subprocess.run(cmd, input=dot_source.encode("utf-8"), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RenderError(f"{engine.name} took more than {timeout:g} s to lay out the diagram; draw fewer steps "
                          f"(e.g. --unroll 3..T) or write .dot and lay it out yourself") from None
    except OSError as e:
        raise RenderError(f"cannot run the layout engine {engine.path}: {e.strerror or e}") from None
    said = quiet(done.stderr)
    if done.returncode != 0:
        detail = f":\n{said}" if said else ""
        raise RenderError(f"{engine.name} failed to draw the diagram as {fmt} (exit code {done.returncode}){detail}")
    if not done.stdout:
        raise RenderError(f"{engine.name} wrote nothing for format {fmt}" + (f":\n{said}" if said else ""))
    return done.stdout


def quiet(stderr: bytes) -> str:
    """The engine's messages without the known harmless ones, last few lines only."""
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines()
             if line.strip() and not any(n in line for n in NOISE)]
    return "\n".join(lines[-12:])
