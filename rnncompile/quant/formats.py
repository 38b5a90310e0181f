"""Signed fixed-point formats qM.N and the integer arithmetic every fixed-point backend shares.

A value in qM.N is an integer v with M + N + 1 bits (a sign, M integer bits, N fraction bits) standing for
v / 2**N; it is stored in the smallest of int8_t, int16_t, int32_t that holds M + N + 1 bits. `q15` is
q0.15 (int16), `q7` is q0.7 (int8).

Arithmetic (the same in the NumPy interpreter and the generated C):
- intermediate results are exact in 64-bit integers (a format is at most 32 bits and N at most 30, so
  aligning two operands and adding them, or multiplying two, never overflows int64);
- a result goes into its node's format by one right shift with ROUNDING HALF AWAY FROM ZERO (2.5 -> 3,
  -2.5 -> -3; the only mode) and then SATURATION to the format's range [-2**(M+N), 2**(M+N) - 1];
- floats enter (inputs, weights) by the same rounding and saturation, and leave exactly: v / 2**N in
  float64 (every value of a 32-bit format is a float64).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MAX_BITS = 32
MAX_FRAC = 30
_PATTERN = re.compile(r"^q(\d+)(?:\.(\d+))?$")


class FormatError(ValueError):
    """A format string that is not qM.N within the limits (the message says why)."""


@dataclass(frozen=True, order=True)
class QFormat:
    m: int  # integer bits (the sign not counted)
    n: int  # fraction bits

    @property
    def bits(self) -> int:
        return self.m + self.n + 1

    @property
    def container(self) -> int:
        """Bits of the C type that stores it: 8, 16 or 32."""
        return 8 if self.bits <= 8 else 16 if self.bits <= 16 else 32

    @property
    def ctype(self) -> str:
        return f"int{self.container}_t"

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def step(self) -> float:
        """One unit in the last place: 2**-N."""
        return 2.0 ** -self.n

    @property
    def max_value(self) -> float:
        return self.hi * self.step

    def __str__(self) -> str:
        return f"q{self.m}.{self.n}"

    # -- floats in and out ---------------------------------------------------------------------------
    def quantize(self, x) -> np.ndarray:
        """Floats -> integers of this format (int64 arrays): rounded half away from zero, saturated."""
        x = np.asarray(x, np.float64) * (2.0 ** self.n)
        v = np.sign(x) * np.floor(np.abs(x) + 0.5)
        v = np.nan_to_num(v, nan=0.0, posinf=self.hi, neginf=self.lo)
        return np.clip(v, self.lo, self.hi).astype(np.int64)

    def dequantize(self, v) -> np.ndarray:
        return np.asarray(v, np.float64) * self.step


def parse(text: str) -> QFormat:
    """`q15` (q0.15), `q7` (q0.7), `q3.12`, ... -> QFormat; FormatError says what is wrong."""
    m = _PATTERN.match(str(text).strip())
    if not m:
        raise FormatError(f"`{text}` is not a fixed-point format: write qM.N (q3.12: 3 integer bits, 12 fraction "
                          f"bits, a sign) or qN for q0.N (q15, q7)")
    if m.group(2) is None:
        fmt = QFormat(0, int(m.group(1)))
    else:
        fmt = QFormat(int(m.group(1)), int(m.group(2)))
    if fmt.bits > MAX_BITS:
        raise FormatError(f"`{text}` needs {fmt.bits} bits; formats hold at most {MAX_BITS} (a sign and M + N "
                          f"<= {MAX_BITS - 1})")
    if fmt.n > MAX_FRAC:
        raise FormatError(f"`{text}` has {fmt.n} fraction bits; at most {MAX_FRAC} (so that aligned sums fit in "
                          f"64 bits)")
    return fmt


def fitting(max_abs: float, bits: int, headroom: float = 1.0) -> QFormat:
    """The format of `bits` bits with the most fraction bits whose range holds max_abs * headroom."""
    need = max(float(max_abs) * headroom, 2.0 ** -(MAX_FRAC))
    for m in range(0, bits):
        fmt = QFormat(m, bits - 1 - m)
        if fmt.n <= MAX_FRAC and fmt.max_value >= need:
            return fmt
    return QFormat(bits - 1, 0)


def exact(value: float) -> QFormat:
    """A 32-bit format holding a literal exactly when it can (1.0 -> q31.0, 0.5 -> q30.1), else with 24 fraction
    bits (or fewer, for its size)."""
    value = float(value)
    for n in range(0, 25):
        scaled = value * 2.0 ** n
        if scaled == int(scaled):
            break
    while n > 0 and abs(value) * 2.0 ** n >= 2.0 ** 31:
        n -= 1
    return QFormat(31 - n, n)


# ---- integer arithmetic (int64 arrays in, int64 arrays out) -------------------------------------------

def shift(v: np.ndarray, by: int) -> np.ndarray:
    """v * 2**-by for by > 0 rounded half away from zero; v * 2**(-by) exactly for by <= 0."""
    v = np.asarray(v, np.int64)
    if by <= 0:
        return v << -by
    half = np.int64(1) << (by - 1)
    return np.where(v >= 0, (v + half) >> by, -((-v + half) >> by))


def saturate(v: np.ndarray, fmt: QFormat) -> np.ndarray:
    return np.clip(v, fmt.lo, fmt.hi)


def requantize(v: np.ndarray, frac: int, fmt: QFormat) -> np.ndarray:
    """An exact integer with `frac` fraction bits into `fmt`: one rounding shift, then saturation."""
    return saturate(shift(v, frac - fmt.n), fmt)
