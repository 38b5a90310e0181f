"""One error hierarchy for everything a user can get wrong.

A :class:`Diagnostic` is one located problem; :class:`SpecError` carries all
the diagnostics of a file at once, so the user fixes them in one pass.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based; 0 when unknown
    col: int  # 1-based; 0 when unknown
    source_line: str = ""
    width: int = 1  # how many carets to draw

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


@dataclass(frozen=True)
class Diagnostic:
    message: str
    path: str = ""  # key path in the spec, e.g. cells.lstm.update.c
    loc: Location | None = None
    hint: str = ""
    severity: str = "error"  # or "warning"

    def to_dict(self) -> dict:
        """The diagnostic as plain data (`validate --format json`); line and column are 0 when unknown."""
        loc = self.loc
        return {"file": loc.file if loc else "", "line": loc.line if loc else 0, "column": loc.col if loc else 0,
                "path": self.path, "severity": self.severity, "message": self.message, "hint": self.hint}

    def format(self) -> str:
        head = f"{self.loc}: " if self.loc else ""
        where = f" [{self.path}]" if self.path else ""
        lines = [_printable(f"{head}{self.severity}: {self.message}{where}")]
        if self.loc and self.loc.line and self.loc.source_line:
            text = self.loc.source_line.rstrip("\n")
            lines.append(f"    {text}")
            lines.append("    " + " " * (self.loc.col - 1) + "^" * max(1, self.loc.width))
        if self.hint:
            lines.append(_printable(f"    hint: {self.hint}"))
        return "\n".join(lines)


def _printable(text: str) -> str:
    """`text` with each character a terminal would act on (an escape, a carriage return, a lone surrogate that
    cannot even be encoded) shown as its escape: names and file names come from the spec."""
    return "".join(ch if ch.isprintable() or ch == "\n" else repr(ch)[1:-1] for ch in text)


class RnnCompileError(Exception):
    """Base of every error meant for the user (never a traceback)."""

    exit_code = 1

    def format(self) -> str:
        return f"error: {self}"


class SpecError(RnnCompileError):
    """All the problems found in one spec file."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = [d for d in diagnostics if d.severity == "error"]
        self.warnings = [d for d in diagnostics if d.severity != "error"]
        super().__init__(self.format())

    def format(self) -> str:
        def where(d):
            return (d.loc.file, d.loc.line, d.loc.col) if d.loc else ("", 0, 0)
        ordered = sorted(self.diagnostics, key=where) + sorted(self.warnings, key=where)
        body = "\n".join(d.format() for d in ordered)
        n = len(self.diagnostics)
        return f"{body}\n{n} error{'s' if n != 1 else ''}"


class UsageError(RnnCompileError):
    """Bad command-line arguments or data files (not the spec itself)."""

    exit_code = 2


class DataError(RnnCompileError):
    """Input, weight or tree files that do not fit the spec."""


@dataclass
class DiagnosticSink:
    """Collects diagnostics while a stage keeps going after the first one."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, message: str, path: str = "", loc: Location | None = None, hint: str = "") -> None:
        self.items.append(Diagnostic(message, path, loc, hint))

    def warn(self, message: str, path: str = "", loc: Location | None = None, hint: str = "") -> None:
        self.items.append(Diagnostic(message, path, loc, hint, severity="warning"))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise SpecError(self.items)


def did_you_mean(word: str, candidates, what: str = "") -> str:
    """A suggestion for a misspelt name, or a list of the valid ones."""
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    if candidates and len(candidates) <= 12:
        label = f"{what} " if what else ""
        return f"known {label}names: " + ", ".join(candidates)
    return ""
