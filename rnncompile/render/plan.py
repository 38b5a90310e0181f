"""Which steps an unrolled diagram draws: the `--unroll` syntax.

    N      an unroll of N steps; all drawn when N <= 6, else steps 0, 1, 2,
           an ellipsis, and the last two (a 12-step chain shows 0 1 2 … 10 11)
    a..b   an unroll of b steps drawing the first a, an ellipsis and the
           last one (3..10 shows 0 1 2 … 9); all b when a >= b - 1
    a..T   as a..b, with b a dim name: the spec's time dim (or any dim),
           e.g. 3..T with T: 10 in the spec's dims; a bare T is N = T.
           T is the model's number of steps even where no dim is called T

Nothing is drawn for the elided steps, so a long unroll stays small; at
most MAX_DRAWN steps are drawn.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError, did_you_mean

FULL_UP_TO = 6  # an unroll of N <= this many steps draws them all
HEAD, TAIL = 3, 2  # else the first HEAD and last TAIL steps
MAX_DRAWN = 64
SYNTAX = "write N (e.g. 4 or 12), a..b (e.g. 3..10) or a..T with T a dim name"


@dataclass(frozen=True)
class Plan:
    steps: int  # the length of the unroll
    shown: tuple[int, ...]  # the steps drawn, ascending; gaps between them are elided

    def gaps(self) -> list[tuple[int, int]]:
        """(last drawn step before, first drawn step after) for every elision."""
        return [(a, b) for a, b in zip(self.shown, self.shown[1:]) if b != a + 1]

    def gap_notes(self, what: str = "") -> list[str]:
        """A caption's words for every elision: `step 3 not drawn`, `steps 3–8 not drawn`."""
        return [f"{what}step {a + 1} not drawn" if b == a + 2 else f"{what}steps {a + 1}–{b - 1} not drawn"
                for a, b in self.gaps()]


def make_plan(unroll, dims: dict[str, int] | None = None, time_dim=None, time_steps: int | None = None) -> Plan:
    """Parse an --unroll value (int or text). `time_dim` names the spec's time axis, which
    resolves to `time_steps` (Checked.steps()); other dim names resolve through `dims`."""
    if isinstance(unroll, bool):
        raise UsageError(f"--unroll {unroll}: {SYNTAX}")
    if isinstance(unroll, int):
        return _plan_n(_positive(unroll, str(unroll)))
    text = str(unroll).strip()
    m = re.fullmatch(r"(\w+)?\s*(\.\.)\s*(\w+)", text) or re.fullmatch(r"(\w+)", text)
    if not m:
        raise UsageError(f"--unroll {text!r} is not an unroll; {SYNTAX}")
    if len(m.groups()) == 1:
        return _plan_n(_steps(m.group(1), text, dims, time_dim, time_steps))
    if m.group(1) is None:
        raise UsageError(f"--unroll {text!r}: say how many steps to draw before the ellipsis, e.g. 3{text}")
    first = _steps(m.group(1), text, dims, time_dim, time_steps)
    total = _steps(m.group(3), text, dims, time_dim, time_steps)
    if first > total:
        raise UsageError(f"--unroll {text}: cannot draw the first {first} of only {total} steps")
    shown = range(total) if first >= total - 1 else [*range(first), total - 1]
    return _checked(Plan(total, tuple(shown)), text)


def _plan_n(n: int) -> Plan:
    shown = range(n) if n <= FULL_UP_TO else [*range(HEAD), *range(n - TAIL, n)]
    return _checked(Plan(n, tuple(shown)), str(n))


def _steps(word: str, text: str, dims, time_dim, time_steps) -> int:
    if word.isdigit():
        return _positive(int(word), text)
    is_time = word == str(time_dim) or (word == "T" and "T" not in (dims or {}))
    if is_time and time_steps is not None:
        return _positive(time_steps, text)
    if dims and word in dims:
        return _positive(dims[word], text)
    known = ([str(time_dim)] if time_dim is not None else []) + list(dims or ())
    hint = did_you_mean(word, known, "dim")
    raise UsageError(f"--unroll {text}: `{word}` is neither a number nor a dim of the spec"
                     + (f"; {hint}" if hint else ""))


def _positive(n: int, text: str) -> int:
    if n < 1:
        raise UsageError(f"--unroll {text}: an unroll needs at least one step")
    return n


def _checked(plan: Plan, text: str) -> Plan:
    if len(plan.shown) > MAX_DRAWN:
        raise UsageError(f"--unroll {text} would draw {len(plan.shown)} steps; at most {MAX_DRAWN} can be drawn. "
                         f"Elide the middle with a..b, e.g. 3..{plan.steps}")
    return plan
