"""Activations in fixed point: lookup tables with linear interpolation between entries.

A table holds f at 2**bits_per_unit points per unit over [lo, hi] (both ends included) as integers of its
output format. An input (any format) is first brought to 16 fraction bits (rounded half away from zero) and
clamped to [lo, hi]; its position splits into an entry index and a remainder r of `16 - step_bits` bits, and

    y = T[i] + round((T[i + 1] - T[i]) * r / 2**(16 - step_bits))

(the same rounding), all in integers. Outside [lo, hi] the end entries hold (sigmoid(-16) = 1.1e-7 and
1 - tanh(8) = 2.3e-7 are below half a unit of q0.15). The error against the real function, measured over
every input of 16 fraction bits in and beyond the domain by `max_error` (tests/test_fixed_point.py checks
it), is stated in `STATED_ERROR`; the node's own format then adds at most half its unit.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .formats import QFormat, shift

IN_FRAC = 16  # fraction bits an activation's input is brought to before the lookup


@dataclass(frozen=True)
class Table:
    name: str
    lo: int  # domain, whole numbers
    hi: int
    step_bits: int  # 2**step_bits entries per unit
    out: QFormat

    @property
    def size(self) -> int:
        return (self.hi - self.lo) * (1 << self.step_bits) + 1

    @property
    def remainder_bits(self) -> int:
        return IN_FRAC - self.step_bits

    def exact(self, x: np.ndarray) -> np.ndarray:
        return _FUNCTIONS[self.name](np.asarray(x, np.float64))

    @cached_property
    def entries(self) -> np.ndarray:
        points = self.lo + np.arange(self.size, dtype=np.float64) / (1 << self.step_bits)
        return self.out.quantize(self.exact(points))

    def lookup(self, v: np.ndarray, frac: int) -> np.ndarray:
        """The table at integers `v` with `frac` fraction bits -> integers of `self.out` (int64)."""
        x = shift(v, frac - IN_FRAC)
        x = np.clip(x, self.lo << IN_FRAC, self.hi << IN_FRAC) - (self.lo << IN_FRAC)
        i = x >> self.remainder_bits
        r = x & ((1 << self.remainder_bits) - 1)
        t = self.entries
        nxt = t[np.minimum(i + 1, self.size - 1)]
        return t[i] + shift((nxt - t[i]) * r, self.remainder_bits)

    def max_error(self) -> float:
        """The largest |table - f| over every input of IN_FRAC fraction bits from lo - 1 to hi + 1 (to hi for exp)."""
        top = self.hi + (1 if self.name != "exp" else 0)  # exp is only read at x - max x <= 0
        v = np.arange((self.lo - 1) << IN_FRAC, (top << IN_FRAC) + 1, dtype=np.int64)
        got = self.out.dequantize(self.lookup(v, IN_FRAC))
        return float(np.max(np.abs(got - self.exact(v / 2.0 ** IN_FRAC))))


def _sigmoid(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5


_FUNCTIONS = {"sigmoid": _sigmoid, "tanh": np.tanh, "exp": np.exp}

TABLES = {
    "sigmoid": Table("sigmoid", -16, 16, 5, QFormat(0, 15)),
    "tanh": Table("tanh", -8, 8, 6, QFormat(0, 15)),
    "exp": Table("exp", -16, 0, 6, QFormat(1, 14)),  # softmax's exp(x - max x): x - max x <= 0, exp(0) = 1
}

# the largest error of each table against the real function (measured by Table.max_error; a test keeps it so)
STATED_ERROR = {"sigmoid": 4.0e-5, "tanh": 5.0e-5, "exp": 1.0e-4}


def interpolation_bound(table: Table) -> float:
    """A priori: h**2 / 8 * max|f''| (linear interpolation) + half a unit (the entries) + half a unit (the
    interpolated value's rounding)."""
    h = 2.0 ** -table.step_bits
    second = {"sigmoid": 0.0962, "tanh": 0.7699, "exp": 1.0}[table.name]
    return h * h / 8 * second + table.out.step
