"""C names for a cell's values (see rnncompile.naming).

A value lives in a struct (`v->c_next`, `k->W_i`), so its name only has to be
a C identifier that no header turns into something else. Any other text that
reaches the C (a description, a file name, a spec path) goes through
`comment_text` / `comment` or `string`: nothing in it can end a comment,
splice a line or start code.
"""
from __future__ import annotations

import re

from rnncompile import naming
from rnncompile.naming import escape_char, identifier, value_names  # noqa: F401  (the backend's names, in one place)

KEYWORDS = set("""auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile
while _Bool _Complex _Imaginary""".split())
# object-like macros of the headers generated files include (a member named NAN would not survive them)
MACROS = {"NAN", "INFINITY", "HUGE_VAL", "HUGE_VALF", "HUGE_VALL", "NULL", "FP_NAN", "FP_INFINITE", "FP_ZERO",
          "FP_SUBNORMAL", "FP_NORMAL", "MATH_ERRNO", "MATH_ERREXCEPT", "math_errhandling", "FP_ILOGB0",
          "FP_ILOGBNAN", "FP_FAST_FMA", "FP_FAST_FMAF", "FP_FAST_FMAL", "SIZE_MAX", "PTRDIFF_MIN", "PTRDIFF_MAX"}
_STDINT = re.compile(r"^U?INT(8|16|32|64|PTR|MAX)?_(MIN|MAX|C)$|^U?INT_(LEAST|FAST)\d+_(MIN|MAX)$")


def reserved(name: str) -> bool:
    return name in KEYWORDS or name in MACROS or bool(_STDINT.match(name)) or name.startswith("__") \
        or bool(re.match(r"_[A-Z]", name))


class Namer(naming.Namer):
    """Hands out unique C identifiers, renaming a keyword or a header's macro with a trailing `_`."""

    def __init__(self, taken=()):
        super().__init__(reserved, taken)


def comment_text(text: str) -> str:
    """`text` as it may stand inside /* ... */: no `*/` (which ends the comment) or `/*`, no `??` (`??/` is a
    trigraph: a backslash, even in a comment), no backslash at a line's end (a splice), and every character
    that is not printable (a NUL, `\\r`, U+2028) shown as its escape. Newlines stay: a caller writing a
    multi-line comment starts each line with ` * `."""
    lines = []
    for line in text.split("\n"):
        line = "".join(ch if ch.isprintable() else escape_char(ch) for ch in line)
        while "*/" in line or "/*" in line or "??" in line:
            line = line.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?")
        if line.endswith("\\"):
            line = line[:-1] + escape_char("\\")
        lines.append(line)
    return "\n".join(lines)


def comment(text: str) -> str:
    """A one-line C comment saying `text` (newlines shown as `\\n`)."""
    return "/* " + comment_text(text.replace("\n", "\\n")) + " */"


def string(text: str) -> str:
    """A C string literal holding `text` as UTF-8: printable ASCII as itself; `"`, `\\` and `?` (no trigraph)
    escaped; every other byte as a three-digit octal escape (never read together with a digit after it)."""
    out = []
    for byte in text.encode("utf-8", "surrogatepass"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'
