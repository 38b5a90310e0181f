"""Python names for a cell's values (see rnncompile.naming): locals that avoid Python's keywords and
builtins, the prelude's helpers and the generated functions' own names. A scalar literal is written in
place, not named.

Any other text that reaches the module (a file name, a key of a dict, a message) goes through
`docstring`, `comment` or `string`: nothing in it can end a literal, start a line or fail to import."""
from __future__ import annotations

import builtins
import keyword

from rnncompile import naming
from rnncompile.naming import escape_char, identifier, value_names  # noqa: F401  (the backend's names, in one place)

from .prelude import HELPERS

# names the generated functions use for their own purposes; a spec name equal to one gets a trailing `_`
SCAFFOLD = {"np", "k", "params", "prefix", "dtype", "inputs", "state", "lengths", "reverse", "batch", "steps",
            "B", "T", "t", "live", "traced", "seen", "context", "step0", "total"}
RESERVED = set(keyword.kwlist) | set(dir(builtins)) | set(HELPERS) | SCAFFOLD


class Namer(naming.Namer):
    """Hands out unique identifiers, avoiding Python's and the generated code's own names."""

    def __init__(self, taken=()):
        super().__init__(RESERVED.__contains__, taken)


def cell_prefix(cell_name: str, taken=()) -> str:
    """The prefix of a cell's functions (<prefix>_step, ...): its name, unless that clashes with a helper
    (a cell named `by` would define `by_step`) or another cell's."""
    base = identifier(cell_name)
    while base in taken or any(h.startswith(base + "_") for h in HELPERS):
        base += "_cell"
    return base


def literal(value) -> str | None:
    """A scalar constant as Python source (None for an array)."""
    if isinstance(value, (tuple, list)):
        return None
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        return f"float({text!r})"
    return f"({text})" if text.startswith("-") else text


def docstring(text: str) -> str:
    """A triple-quoted literal that reads back as `text` and cannot end early: backslashes doubled (no `\\N{`
    escape, no line splice), a `"` escaped where another follows it or where it ends the text, and every
    character that is not printable but a newline (a NUL, `\\r`, U+2028) written as its escape."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"' and text[i + 1:i + 2] in ('"', ""):
            out.append('\\"')
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(escape_char(ch))
    return '"""' + "".join(out) + '"""'


def comment(text: str) -> str:
    """`text` as the rest of one `#` line: every character that is not printable (a newline, `\\r`, a form
    feed, U+2028: Python or an editor may end the line there) written as its escape."""
    return "".join(ch if ch.isprintable() else escape_char(ch) for ch in text)


def string(text: str) -> str:
    """A double-quoted, ASCII-only literal that reads back as `text` (a dict key, a message)."""
    return '"' + "".join("\\" + ch if ch in '"\\' else ch if " " <= ch <= "~" else escape_char(ch)
                         for ch in text) + '"'
