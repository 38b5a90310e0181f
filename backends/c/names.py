"""C names for a cell's values (see rnncompile.naming).

A value lives in a struct (`v->c_next`, `k->W_i`), so its name only has to be
a C identifier that no header turns into something else.
"""
from __future__ import annotations

import re

from rnncompile import naming
from rnncompile.naming import identifier, value_names  # noqa: F401  (the backend's names, in one place)

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
