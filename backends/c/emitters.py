"""The c backend's op table: one emitter per op, keyed by the op table's names.

Generated C computes one example at a time, so an emitter never thinks about
a batch axis: every value is a flat, row-major array of the node's (fixed)
shape. An emitter gets a :class:`Site` (its arguments as :class:`Arg`, the
attributes, where the result goes, the element type) and returns the C
statements that fill the result, or a :class:`View` when the result is one
contiguous run of an argument (a leading-axis slice, `x[i]`, an output), which
is then read in place. Loop bounds are numbers fixed when the code is written,
and every sum runs in index order, as the op table's meaning does.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from string import Template
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class CType:
    """The element type of a run: float for float32, double for float64."""

    name: str  # float | double
    suffix: str  # the math.h suffix: tanhf, or tanh

    def fn(self, name: str) -> str:
        return name + self.suffix

    def lit(self, value) -> str:
        """A number as a C constant of this type: the shortest text that reads back as the same value."""
        value = float(value)
        if math.isnan(value):
            return "NAN"
        if math.isinf(value):
            return "INFINITY" if value > 0 else "(-INFINITY)"
        text = str(np.float32(value)) if self.name == "float" else repr(value)
        if "e" not in text and "." not in text:
            text += ".0"
        text += "f" if self.name == "float" else ""
        return f"({text})" if text.startswith("-") else text


FLOAT, DOUBLE = CType("float", "f"), CType("double", "")
CTYPES = {"float32": FLOAT, "float64": DOUBLE}


@dataclass(frozen=True)
class Arg:
    """An argument: `base[offset + i]` is its element i (flat, row-major), or a C constant for a scalar."""

    base: str  # an array expression: v->h, k->W_i, word_ids
    shape: tuple
    offset: int = 0
    scalar: str | None = None  # a literal number: its C text

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def at(self, idx) -> str:
        if self.scalar is not None:
            return self.scalar
        idx = str(idx)
        if self.offset:
            idx = str(self.offset) if idx == "0" else f"{self.offset} + {idx}"
        return f"{self.base}[{idx}]"


@dataclass(frozen=True)
class View:
    """The result is argument `arg` read in place from element `offset` on (no code, no copy)."""

    arg: int
    offset: int


@dataclass
class Site:
    args: list[Arg]
    attrs: dict
    out: Arg
    c: CType
    helpers: set = field(default_factory=set)  # prelude functions the statements call
    # arg index -> its transpose, laid out once per set of weights (None: the arg is not a param-only matrix)
    transposed: Callable[[int], Arg | None] = lambda i: None

    def use(self, helper: str) -> str:
        self.helpers.add(helper)
        return f"rc_{helper}"


# ---- loops and indices -------------------------------------------------------------------
# A loop variable is written `@i@` in a body until `loops` places it: a loop of one iteration is left
# out and its variable becomes 0, and `tidy` then drops the `0 * n` and `+ 0` terms that leaves.

def var(name: str) -> str:
    return f"@{name}@"


def index(terms) -> str:
    """`@i@ * 16 + @j@` from [(variable, stride), ...]; a zero stride is left out."""
    return " + ".join(v if s == 1 else f"{v} * {s}" for v, s in terms if s) or "0"


def strides(shape) -> list[int]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return out[::-1]


def split(shape, axis: int) -> tuple[int, int, int]:
    """(outer, n, inner): element k along `axis` at outer position p, inner q is at (p * n + k) * inner + q."""
    axis %= len(shape)
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def tidy(line: str) -> str:
    line = re.sub(r"(?<![\w.])0 \* \d+(?![\w.])", "0", line)
    line = re.sub(r"(?<![\w.>])0 \+ ", "", line)
    return re.sub(r" \+ 0(?![\w.])", "", line)


def block(lines: list[str]) -> list[str]:
    return ["{"] + ["    " + x for x in lines] + ["}"]


def loops(bounds, body: list[str]) -> list[str]:
    """`body` inside nested for-loops over [(name, n), ...], outermost first."""
    lines = list(body)
    for name, n in reversed(bounds):
        lines = [tidy(x.replace(var(name), "0" if n == 1 else name)) for x in lines]
        if n == 1:
            continue
        head = f"for (int {name} = 0; {name} < {n}; ++{name})"
        if len(lines) == 1:
            lines = [f"{head} {lines[0]}"]
        elif lines[0] == "{" and lines[-1] == "}" and all(x.startswith("    ") for x in lines[1:-1]):
            lines = [head + " {"] + lines[1:]  # a block as the body: its braces are the loop's
        else:
            lines = [head + " {"] + ["    " + x for x in lines] + ["}"]
    return lines


# ---- elementwise ops --------------------------------------------------------------------

def _elementwise(expr: Callable[..., str]):
    def emit(s: Site) -> list[str]:
        out = s.out.shape
        if all(a.size == 1 or a.shape == out for a in s.args):
            elems = [a.at("0" if a.size == 1 else var("i")) for a in s.args]
            return loops([("i", math.prod(out))], [f"{s.out.at(var('i'))} = {expr(s, *elems)};"])
        names = [f"i{d}" for d in range(len(out))]
        elems = []
        for a in s.args:  # numpy broadcasting: shapes right-aligned, a size-1 axis repeats
            shape = (1,) * (len(out) - len(a.shape)) + tuple(a.shape)
            st = [0 if d == 1 else st for d, st in zip(shape, strides(shape))]
            elems.append(a.at(index(zip(map(var, names), st))))
        target = s.out.at(index(zip(map(var, names), strides(out))))
        return loops(list(zip(names, out)), [f"{target} = {expr(s, *elems)};"])
    return emit


def _infix(symbol):
    return _elementwise(lambda s, a, b: f"{a} {symbol} {b}")


def _math(fn):
    return _elementwise(lambda s, *xs: f"{s.c.fn(fn)}({', '.join(xs)})")


def _helper(name):
    return _elementwise(lambda s, *xs: f"{s.use(name)}({', '.join(xs)})")


def _compare(symbol):
    """A comparison as a number: exactly 0 or 1 (a NaN compares false, except with !=, as in NumPy)."""
    return _elementwise(lambda s, a, b: f"({a} {symbol} {b}) ? 1 : 0")


def _where(s: Site) -> list[str]:
    return _elementwise(lambda s, c, a, b: f"({c} != 0) ? {a} : {b}")(s)


def _hard_sigmoid(s: Site) -> list[str]:
    alpha, beta = s.c.lit(s.attrs["alpha"]), s.c.lit(s.attrs["beta"])
    return _elementwise(lambda s, x: f"{s.use('clip01')}({alpha} * {x} + {beta})")(s)


def _relu(s: Site) -> list[str]:
    return _elementwise(lambda s, x: f"{s.use('maximum')}({x}, 0)")(s)


# ---- linear algebra ---------------------------------------------------------------------

def _matmul(s: Site) -> list[str]:
    a, b = s.args
    T = s.c.name
    i, j, q = var("i"), var("j"), var("q")
    if len(a.shape) == 2 and len(b.shape) == 1:
        wt = s.transposed(0)
        if wt is not None:  # W @ x with W param-only, as x @ W^T: the inner loop runs along a row of W^T
            k, m = wt.shape
            return [*loops([("i", m)], [f"{s.out.at(i)} = 0;"]),
                    *loops([("j", k)], [f"const {T} xj = {b.at(j)};",
                                        *loops([("i", m)], [f"{s.out.at(i)} += {wt.at(index([(j, m), (i, 1)]))} * xj;"])])]
    # a vector is a one-row (left) or one-column (right) matrix; leading axes broadcast
    la = tuple(a.shape) if len(a.shape) > 1 else (1,) + tuple(a.shape)
    lb = tuple(b.shape) if len(b.shape) > 1 else tuple(b.shape) + (1,)
    (m, k), n = la[-2:], lb[-1]
    lead = tuple(np.broadcast_shapes(la[:-2], lb[:-2]))
    names = [f"p{d}" for d in range(len(lead))]

    def start(shape, size):  # where matrix p of an argument starts (0 along a broadcast axis)
        shape = (1,) * (len(lead) - len(shape)) + tuple(shape)
        return [(var(p), 0 if d == 1 else st * size) for p, d, st in zip(names, shape, strides(shape))]

    pa, pb, po = start(la[:-2], m * k), start(lb[:-2], k * n), start(lead, m * n)
    a_ij = a.at(index(pa + [(i, k), (j, 1)]))
    if n == 1:  # a dot product per output element: the sum in a local
        body = block([f"{T} acc = 0;", *loops([("j", k)], [f"acc += {a_ij} * {b.at(index(pb + [(j, 1)]))};"]),
                      f"{s.out.at(index(po + [(i, 1)]))} = acc;"])
        return loops(list(zip(names, lead)) + [("i", m)], body)
    out = s.out.at(index(po + [(i, n), (q, 1)]))
    body = [*loops([("q", n)], [f"{out} = 0;"]),
            *loops([("j", k)], [f"const {T} aij = {a_ij};",
                                *loops([("q", n)], [f"{out} += aij * {b.at(index(pb + [(j, n), (q, 1)]))};"])])]
    return loops(list(zip(names, lead)) + [("i", m)], body)


# The simulation's blocked products (gemm.py) take over a matmul whose matrix is param-only and whose vector
# is a value of the step: matmul_rows says which.

def matmul_rows(s: Site) -> tuple[Arg, Arg] | None:
    """For W @ x with W param-only (stored transposed) and x a vector of the step: (x, W^T), the
    arguments of a blocked product over examples (gemm.gemm_kernel); None for any other matmul."""
    a, b = s.args
    wt = s.transposed(0) if len(a.shape) == 2 and len(b.shape) == 1 else None
    if wt is None or b.scalar is not None or not s.out.base.startswith("v->") or not b.base.startswith("v->"):
        return None
    return b, wt


def _outer(s: Site) -> list[str]:
    a, b = s.args
    i, j = var("i"), var("j")
    return loops([("i", a.size), ("j", b.size)], [f"{s.out.at(index([(i, b.size), (j, 1)]))} = {a.at(i)} * {b.at(j)};"])


def _transpose(s: Site) -> list[str]:
    (a,) = s.args
    *lead, m, n = a.shape
    p, i, j = var("p"), var("i"), var("j")
    return loops([("p", math.prod(lead)), ("i", n), ("j", m)],
                 [f"{s.out.at(index([(p, m * n), (i, m), (j, 1)]))} = {a.at(index([(p, m * n), (j, n), (i, 1)]))};"])


# ---- along an axis ----------------------------------------------------------------------

def _along(shape, axis, body_of: Callable[[Callable[[str], str], str], list[str]]) -> list[str]:
    """Loops over every position off `axis`. body_of(at, where) gets at(k): the flat index of element k
    along the axis, and `where`: the flat index of the position with the axis taken out."""
    outer, n, inner = split(shape, axis)
    p, q = var("p"), var("q")
    at = lambda k: index([(p, n * inner), (k, inner), (q, 1)])  # noqa: E731
    return loops([("p", outer), ("q", inner)], body_of(at, index([(p, inner), (q, 1)])))


def _nan_max(best: str, x: str) -> str:
    return f"if ({x} > {best} || {x} != {x}) {best} = {x};"  # a NaN wins, as in np.max


def _softmax(s: Site) -> list[str]:
    (a,) = s.args
    T, j = s.c.name, var("j")
    n = a.shape[s.attrs["axis"] % len(a.shape)]

    def body(at, where):
        e = s.out.at(at(j))
        return block([f"{T} mx = {a.at(at('0'))}, sum = 0;",
                      *loops([("j", n)], [_nan_max("mx", a.at(at(j)))]),
                      *loops([("j", n)], [f"{e} = {s.c.fn('exp')}({a.at(at(j))} - mx);", f"sum += {e};"]),
                      *loops([("j", n)], [f"{e} /= sum;"])])
    return _along(a.shape, s.attrs["axis"], body)


def _masked_softmax(s: Site) -> list[str]:
    """Per row of x's last axis: the max over the kept entries (mask != 0; 0 when there is none or it is
    not finite, as the meaning takes it), exp of the kept entries less it, each divided by their sum (by 1
    when that is not positive: an all-masked row stays zeros). The mask's index broadcasts, as in NumPy."""
    x, mask = s.args
    T, j, shape = s.c.name, var("j"), tuple(s.out.shape)
    lead, n = [var(f"p{d}") for d in range(len(shape) - 1)], shape[-1]
    mshape = (1,) * (len(shape) - len(mask.shape)) + tuple(mask.shape)
    mst = [0 if d == 1 else st for d, st in zip(mshape, strides(mshape))]
    xi = index(list(zip(lead, strides(shape)[:-1])) + [(j, 1)])
    xj, mj, oj = x.at(xi), mask.at(index(list(zip(lead, mst[:-1])) + [(j, mst[-1])])), s.out.at(xi)
    body = block([f"{T} mx = -INFINITY, sum = 0, den;",
                  *loops([("j", n)], [f"if ({mj} != 0 && ({xj} > mx || {xj} != {xj})) mx = {xj};"]),
                  "if (!isfinite(mx)) mx = 0;  /* no entry kept (or an infinite one) */",
                  *loops([("j", n)], [f"{oj} = {mj} != 0 ? {s.c.fn('exp')}({xj} - mx) : 0;", f"sum += {oj};"]),
                  "den = sum > 0 ? sum : 1;  /* every entry masked: the row stays zeros */",
                  *loops([("j", n)], [f"{oj} /= den;"])])
    return loops([(f"p{d}", size) for d, size in enumerate(shape[:-1])], body)


def _reduce(kind: str):
    def emit(s: Site) -> list[str]:
        (a,) = s.args
        T, j, axis = s.c.name, var("j"), s.attrs["axis"]
        shape, axis = ((a.size,), 0) if axis is None else (a.shape, axis)
        n = shape[axis % len(shape)]

        def body(at, where):
            if kind == "max":
                lines = [f"{T} acc = {a.at(at('0'))};", *loops([("j", n)], [_nan_max("acc", a.at(at(j)))])]
            else:
                lines = [f"{T} acc = 0;", *loops([("j", n)], [f"acc += {a.at(at(j))};"])]
            return block(lines + [f"{s.out.at(where)} = {'acc / ' + s.c.lit(n) if kind == 'mean' else 'acc'};"])
        return _along(shape, axis, body)
    return emit


def _concat(s: Site) -> list[str]:
    outer, total, inner = split(s.out.shape, s.attrs["axis"])
    p, i = var("p"), var("i")
    lines, start = [], 0
    for a in s.args:
        width = split(a.shape, s.attrs["axis"])[1] * inner  # this part's elements per outer position
        target = index([(p, total * inner), (i, 1)] + ([(str(start), 1)] if start else []))
        lines += loops([("p", outer), ("i", width)], [f"{s.out.at(target)} = {a.at(index([(p, width), (i, 1)]))};"])
        start += width
    return lines


def _part(s: Site, axis: int, start: int, stop: int) -> list[str] | View:
    """Elements start..stop-1 along `axis`: a view when they are one contiguous run, else a copy."""
    (a,) = s.args
    outer, n, inner = split(a.shape, axis)
    if outer == 1:
        return View(0, start * inner)
    width, p, i = (stop - start) * inner, var("p"), var("i")
    source = index([(p, n * inner), (str(start * inner), 1), (i, 1)])
    return loops([("p", outer), ("i", width)], [f"{s.out.at(index([(p, width), (i, 1)]))} = {a.at(source)};"])


def _slice(s: Site):
    (a,) = s.args
    axis = s.attrs["axis"] % len(a.shape)
    start, stop, _ = slice(s.attrs["start"], s.attrs["stop"]).indices(a.shape[axis])
    return _part(s, axis, start, stop)


def _index(s: Site) -> View:
    (a,) = s.args
    return View(0, (s.attrs["i"] % a.shape[0]) * math.prod(a.shape[1:]))


def _chunk(s: Site):
    (a,) = s.args
    w = a.shape[-1] // s.attrs["n"]
    return _part(s, -1, s.attrs["i"] * w, (s.attrs["i"] + 1) * w)


def _expand(s: Site) -> list[str]:
    """out[p, k, q] = x[p, q]: k runs along the new axis, p over the axes before it, q over those after."""
    (a,) = s.args
    outer, n, inner = split(s.out.shape, s.attrs["axis"] % len(s.out.shape))
    p, k, q = var("p"), var("k"), var("q")
    return loops([("p", outer), ("k", n), ("q", inner)],
                 [f"{s.out.at(index([(p, n * inner), (k, inner), (q, 1)]))} = {a.at(index([(p, inner), (q, 1)]))};"])


# ---- tokens -------------------------------------------------------------------------------

def _one_hot(s: Site) -> list[str]:
    (ids,), n = s.args, s.attrs["n"]
    p, j = var("p"), var("j")
    return loops([("p", ids.size), ("j", n)], [f"{s.out.at(index([(p, n), (j, 1)]))} = {ids.at(p)} == {j} ? 1 : 0;"])


def _embed(s: Site) -> list[str]:
    ids, table = s.args
    (rows, width), p, j = table.shape, var("p"), var("j")
    body = [f"int32_t id = {ids.at(p)};",
            f"if (id < 0) id += {rows};  /* a negative id counts from the end, as in numpy */",
            f"if (id < 0 || id >= {rows}) return 1;  /* a token id beyond the table */",
            *loops([("j", width)], [f"{s.out.at(index([(p, width), (j, 1)]))} = {table.at(index([('id', width), (j, 1)]))};"])]
    return loops([("p", ids.size)], block(body))


# ---- memory addressing ---------------------------------------------------------------------

def _cosine(s: Site) -> list[str]:
    m, key = s.args
    T, sqrt, i, j = s.c.name, s.c.fn("sqrt"), var("i"), var("j")
    slots, width = m.shape
    m_ij = m.at(index([(i, width), (j, 1)]))
    slot = block([f"{T} dot = 0, mm = 0;",
                  *loops([("j", width)], [f"dot += {m_ij} * {key.at(j)};"]),
                  *loops([("j", width)], [f"mm += {m_ij} * {m_ij};"]),
                  f"{s.out.at(i)} = dot / ({sqrt}(mm) * knorm + {s.c.lit(s.attrs['eps'])});"])
    return block([f"{T} kk = 0, knorm;",
                  *loops([("j", width)], [f"kk += {key.at(j)} * {key.at(j)};"]),
                  f"knorm = {sqrt}(kk);",
                  *loops([("i", slots)], slot)])


def _shift(s: Site) -> list[str]:
    w, sh = s.args
    n, taps, i, j = w.size, sh.size, var("i"), var("j")
    k = (taps - 1) // 2
    # out[i] = the sum over d = -k..k, in that order, of s[d + k] * w[(i - d) mod n]
    body = block([f"{s.c.name} acc = 0;",
                  *loops([("j", taps)], [f"acc += {sh.at(j)} * {w.at(f'({i} + {n + k} - {j}) % {n}')};"]),
                  f"{s.out.at(i)} = acc;"])
    return loops([("i", n)], body)


def _sharpen(s: Site) -> list[str]:
    w, gamma = s.args
    T, n, i = s.c.name, w.size, var("i")
    clamp = f"const {T} x = {s.use('maximum')}({w.at(i)}, 0);  /* negative entries count as 0 */"
    return block([f"{T} top = 0, sum = 0, den;",
                  *loops([("i", n)], block([clamp, _nan_max("top", "x")])),
                  "den = top > 0 ? top : 1;  /* on w / max(w): the largest term is exactly 1 */",
                  *loops([("i", n)], block([clamp, f"{s.out.at(i)} = {s.c.fn('pow')}(x / den, {gamma.at('0')});",
                                            f"sum += {s.out.at(i)};"])),
                  "if (top > 0)",
                  *["    " + x for x in loops([("i", n)], [f"{s.out.at(i)} /= sum;"])]])


EMITTERS: dict[str, Callable[[Site], list[str] | View]] = {
    "add": _infix("+"),
    "sub": _infix("-"),
    "mul": _infix("*"),
    "div": _infix("/"),
    "pow": _math("pow"),
    "maximum": _helper("maximum"),
    "minimum": _helper("minimum"),
    "mod": _helper("mod"),
    "floordiv": _helper("floordiv"),
    "lt": _compare("<"),
    "le": _compare("<="),
    "gt": _compare(">"),
    "ge": _compare(">="),
    "eq": _compare("=="),
    "ne": _compare("!="),
    "where": _where,
    "matmul": _matmul,
    "neg": _elementwise(lambda s, x: f"-{x}"),
    "sigmoid": _helper("sigmoid"),
    "tanh": _helper("tanh"),
    "relu": _relu,
    "hard_sigmoid": _hard_sigmoid,
    "softplus": _helper("softplus"),
    "exp": _math("exp"),
    "log": _math("log"),
    "sqrt": _math("sqrt"),
    "abs": _math("fabs"),
    "softmax": _softmax,
    "masked_softmax": _masked_softmax,
    "concat": _concat,
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "max": _reduce("max"),
    "outer": _outer,
    "transpose": _transpose,
    "slice": _slice,
    "index": _index,
    "chunk": _chunk,
    "expand": _expand,
    "one_hot": _one_hot,
    "embed": _embed,
    "cosine": _cosine,
    "shift": _shift,
    "sharpen": _sharpen,
    "flatten": lambda s: View(0, 0),  # row-major: the numbers are already in that order
    "output": lambda s: View(0, 0),
}

# Ops the NumPy kernels run that generated C does not, each with the reason a user is told. None today;
# an op added to the op table goes here until its emitter is written (tests/test_backend_c.py checks).
UNSUPPORTED: dict[str, str] = {}

# Helper functions a generated file may call ($T: the element type). `rc_` keeps them out of the way of a
# firmware project's own names; a file holds only those its emitters asked for (and what they call), in this
# order.
#
# sigmoid and tanh are computed here, not by math.h, so a loop over them vectorises (a call to expf or tanhf
# stops it) and its numbers do not depend on the C library. rc_exp_neg is exp on x <= 0 by range reduction:
# x = n log 2 + r with |r| <= log(2) / 2 (log 2 split in two, so n times its first part is exact), exp(r)
# by its Taylor polynomial (degree 7 for float, 13 for double: truncation below 0.1 ulp), and 2^n made from
# its bits. The errors, measured over a dense grid against NumPy in tests/test_c_kernels.py (built with
# the simulation's flags, fused multiply-add included) and bounded there: rc_exp_neg within 2 ulp, rc_sigmoid and rc_tanh within 3.5 ulp (float and double);
# exp(x) below e^-87 (float) or e^-708 (double) is flushed to 0, so a sigmoid below those is 0 where the
# exact one is a number under 2e-38 (1e-307). A NaN stays NaN; +-inf give the limits.
EXP_NEG = {  # the type's constants for rc_exp_neg: the lowest x kept, 1 / log 2, log 2 in two parts,
    # the rounding constant (1.5 * 2^(mantissa bits)), the exponent bias and bits, the Taylor degree
    "float": ("(-87.0f)", "1.44269504f", "0.693359375f", "(-2.12194440e-4f)", "12582912.0f", "int32_t", 127, 23, 7),
    "double": ("(-708.0)", "1.4426950408889634", "0.6931471803691238", "1.9082149292705877e-10",
               "6755399441055744.0", "int64_t", 1023, 52, 13),
}
TANH_SMALL = 0.375  # below it tanh is its odd Taylor polynomial; above, (1 - e) / (1 + e) loses under 1 bit
TANH_DEGREE = {"float": 13, "double": 29}  # the last power of the polynomial: truncation below 0.03 ulp


def _tanh_taylor(degree: int) -> list[float]:
    """The coefficients of x^3, x^5, .. x^degree in tanh's Taylor series, 2^2n (2^2n - 1) B_2n / (2n)!."""
    from fractions import Fraction
    from math import comb, factorial

    bern = [Fraction(1)]
    for m in range(1, degree + 2):
        bern.append(-sum(comb(m + 1, j) * bern[j] for j in range(m)) / (m + 1))
    return [float(4 ** n * (4 ** n - 1) * bern[2 * n] / factorial(2 * n)) for n in range(2, (degree + 1) // 2 + 1)]


def _horner(var: str, coefs: list[str]) -> str:
    """c0 + var * (c1 + var * (c2 + ...)), each coefficient's C text given."""
    text = coefs[-1]
    for c in reversed(coefs[:-1]):
        text = f"{c} + {var} * ({text})"
    return text


def _exp_neg(c: CType) -> str:
    low, log2e, hi, lo, magic, itype, bias, bits, degree = EXP_NEG[c.name]
    taylor = _horner("r", ["1", "1"] + [c.lit(1 / math.factorial(n)) for n in range(2, degree + 1)])
    return f"""\
static {c.name} rc_exp_neg({c.name} x)  /* exp(x) for x <= 0 (see emitters.py for the error); a NaN stays NaN */
{{
    const {c.name} a = x > {low} ? x : {low};  /* a NaN becomes a number here, so every conversion below is defined */
    const {c.name} n = (a * {log2e} + {magic}) - {magic};  /* round(a / log 2) */
    const {c.name} r = (a - n * {hi}) - n * {lo};  /* a - n log 2 */
    const {c.name} p = {taylor};
    union {{ {c.name} f; {itype} i; }} scale;  /* 2^n, from its bits */
    scale.i = ({itype})(({itype})n + {bias}) << {bits};
    return x != x ? x : x > {low} ? p * scale.f : 0;
}}"""


def _tanh(c: CType) -> str:
    odd = _horner("z", [c.lit(v) for v in _tanh_taylor(TANH_DEGREE[c.name])])
    return f"""\
static {c.name} rc_tanh({c.name} x)  /* tanh(x): a Taylor polynomial near 0, else (1 - e) / (1 + e) with e = exp(-2|x|) */
{{
    const {c.name} a = {c.fn("fabs")}(x), z = x * x;
    const {c.name} near0 = z == 0 ? x : x + x * z * ({odd});  /* (x itself when z is 0: tanh(-0) is -0) */
    const {c.name} e = rc_exp_neg(-2 * a), q = (1 - e) / (1 + e);
    return a < {c.lit(TANH_SMALL)} ? near0 : x < 0 ? -q : q;
}}"""


PRELUDE = {
    "exp_neg": _exp_neg,
    "sigmoid": """\
static $T rc_sigmoid($T x)  /* 1 / (1 + exp(-x)), without overflow for either sign */
{
    const $T e = rc_exp_neg(-$fabs(x));
    return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}""",
    "tanh": _tanh,
    "softplus": """\
static $T rc_softplus($T x)  /* log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|)) */
{
    return x > 0 ? x + $log1p($exp(-x)) : $log1p($exp(x));
}""",
    "maximum": """\
static $T rc_maximum($T a, $T b)  /* np.maximum: a NaN wins */
{
    return (a > b || a != a) ? a : b;
}""",
    "minimum": """\
static $T rc_minimum($T a, $T b)  /* np.minimum: a NaN wins */
{
    return (a < b || a != a) ? a : b;
}""",
    # np.mod and np.floor_divide for floats, as NumPy computes them (npy_divmod): Python's floor semantics,
    # and the same numbers for every input, a zero divisor (NaN; +-inf or NaN) and a zero result's sign included
    "mod": """\
static $T rc_mod($T a, $T b)  /* np.mod: a - floor(a / b) * b, with the sign of b */
{
    $T m;
    if (b == 0) return $fmod(a, b);
    m = $fmod(a, b);
    if (m != 0) {
        if ((b < 0) != (m < 0)) m += b;
    } else {
        m = $copysign(0, b);
    }
    return m;
}""",
    "floordiv": """\
static $T rc_floordiv($T a, $T b)  /* np.floor_divide: floor(a / b), computed as NumPy does */
{
    $T m, d, f;
    if (b == 0) return a / b;
    m = $fmod(a, b);
    d = (a - m) / b;
    if (m != 0 && (b < 0) != (m < 0)) d -= 1;
    if (d == 0) return $copysign(0, a / b);
    f = $floor(d);
    if (d - f > 0.5) f += 1;
    return f;
}""",
    "clip01": """\
static $T rc_clip01($T x)  /* np.clip(x, 0, 1): a NaN stays NaN */
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}""",
}
CALLS = {"sigmoid": {"exp_neg"}, "tanh": {"exp_neg"}}  # helpers that call other helpers


def prelude(helpers, c: CType) -> str:
    """The helper functions named in `helpers` (and those they call), for element type `c`, in a fixed order."""
    wanted = set(helpers).union(*(CALLS.get(h, set()) for h in helpers))
    names = {"T": c.name, **{fn: c.fn(fn) for fn in ("exp", "fabs", "log1p", "fmod", "floor", "copysign")}}
    return "\n\n".join(text(c) if callable(text) else Template(text).substitute(names)
                        for name, text in PRELUDE.items() if name in wanted)


def emit(op: str, site: Site) -> list[str] | View:
    return EMITTERS[op](site)
