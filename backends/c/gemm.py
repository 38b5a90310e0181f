"""The simulation's blocked matrix product: o[r] = W x[r] for a block of rows, as register tiles.

    o[r][j] = sum over p of x[r][p] * W^T[p][j]     r < n (given at run time), j < m, p < k (fixed)

W^T is laid out once per set of weights in panels (`panels` below): [m / NR][k][NR], NR columns side
by side for each p, zero-padded to whole panels and to 64 bytes, so a tile reads its weights from one
contiguous run. A tile of R rows by P panels keeps its R * P * V sums (V vectors a panel) in vector
registers for the whole of k: per p it loads P * V vectors of weights and multiplies each by every
row's x[r][p] (a broadcast). The strides of x and o are numbers fixed when the code is written.

Each sum starts at 0 and adds its k products in index order — one fused multiply-add per product
where the host has them, as the one-example loop the exported file keeps compiles to — so the results
are the same numbers as one example at a time (tests/test_backend_c.py checks it bit for bit).

The vectors are GCC vector extensions (which Clang reads too), sized for this host (`host_tiling`):
64 bytes with AVX-512 (32 registers: 24 sums), 32 with AVX2 (16: 12 sums), else 16 bytes (8 sums).
Only the simulation's C holds them; the exported file stays portable C99.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .emitters import CType, tidy

ALIGN = 64  # bytes: a panel starts on a cache line


@dataclass(frozen=True)
class Tiling:
    """How the blocked products use the host's vector unit."""

    vector_bytes: int  # one vector register
    vectors: int  # V: vectors a panel is wide
    sums: int  # the sums a tile may keep in registers (the rest hold weights and a broadcast)
    rows: tuple  # the row counts of tiles, largest first (1 last: any n is covered)

    def lanes(self, c: CType) -> int:
        return self.vector_bytes // _itemsize(c)

    def width(self, c: CType) -> int:
        """NR: the columns of one panel."""
        return self.lanes(c) * self.vectors

    def panels_per_tile(self, rows: int) -> int:
        return max(1, self.sums // (rows * self.vectors))

    @property
    def block(self) -> int:
        """Panels the kernel takes at a time: as many as the widest tile (one row's) spans."""
        return self.panels_per_tile(1)


# A tile of the largest height reads each panel once for that many rows (W's traffic from cache); the
# smaller ones cover what is left of n, each as many panels wide as its sums allow (4 rows by 3 panels:
# 24 sums, as many as 12 rows by 1). Every height is more code to compile: AVX-512 leaves 2 rows out
# (1 row by 12 panels has as many sums; n % 4 of 2 or 3 is rare in a batch).
AVX512 = Tiling(64, 2, 24, (12, 4, 1))
AVX2 = Tiling(32, 2, 12, (6, 2, 1))
GENERIC = Tiling(16, 2, 8, (4, 2, 1))


def host_tiling(flags: set[str]) -> Tiling:
    """The tiling for a CPU with these /proc/cpuinfo flags (the simulation builds with -march=native)."""
    if "avx512f" in flags:
        return AVX512
    if "avx2" in flags and "fma" in flags:
        return AVX2
    return GENERIC


def _itemsize(c: CType) -> int:
    return 4 if c.name == "float" else 8


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def panel_length(k: int, m: int, c: CType, tiling: Tiling) -> int:
    """Numbers in W^T's panel form: whole panels of k * NR, rounded up to a multiple of ALIGN bytes."""
    nr, per_line = tiling.width(c), ALIGN // _itemsize(c)
    return _ceil(_ceil(m, nr) * k * nr, per_line) * per_line


def panels(wt: np.ndarray, nr: int, length: int) -> np.ndarray:
    """W^T [k, m] in panel form: [ceil(m / nr)][k][nr], zero-padded, flat, `length` numbers."""
    k, m = wt.shape
    count = _ceil(m, nr)
    out = np.zeros(length, wt.dtype)
    padded = np.zeros((k, count * nr), wt.dtype)
    padded[:, :m] = wt
    out[:count * k * nr] = padded.reshape(k, count, nr).transpose(1, 0, 2).ravel()
    return out


def aligned_zeros(n: int, dtype) -> np.ndarray:
    """n zeros of `dtype` starting on an ALIGN-byte boundary (NumPy promises less)."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + ALIGN, np.uint8)
    skip = -raw.ctypes.data % ALIGN
    return raw[skip:skip + n * dtype.itemsize].view(dtype)


def vector_types(c: CType, tiling: Tiling) -> str:
    """The vector type of this element type and its load and store (memcpy: any alignment, no aliasing)."""
    T, L = c.name, tiling.lanes(c)
    v = f"rc_{T}v"
    return f"""\
typedef {T} {v} __attribute__((vector_size({tiling.vector_bytes})));  /* {L} {T}s: one vector register */

static inline {v} {v}_load(const {T} *p) {{ {v} x; memcpy(&x, p, sizeof x); return x; }}
static inline void {v}_store({T} *p, {v} x) {{ memcpy(p, &x, sizeof x); }}"""


def gemm_kernel(name: str, c: CType, k: int, m: int, xs: int, os: int, tiling: Tiling, doc: str) -> list[str]:
    """`static void name(int n, int groups, long xg, long og, const T *restrict x, T *restrict o,
    const T *restrict w)`: for each of `groups` groups of n rows (group g's from x + g * xg and o + g * og;
    its rows xs and os numbers apart), o[r][j] = the sum over p < k of x[r][p] * W^T[p][j] for j < m, with
    w W^T's panel form (`panels`). The panels go in blocks of `tiling.block` (the widest tile), each block
    for every group's rows before the next: a block of weights is read from memory once per call and then
    from cache. Uses the vector type of `vector_types`."""
    T, v, L, V = c.name, f"rc_{c.name}v", tiling.lanes(c), tiling.vectors
    nr, block = L * V, tiling.block
    count = _ceil(m, nr)
    last = m - (count - 1) * nr  # the columns of the last panel

    def tile(rows: int, group: int, partial: bool) -> list[str]:
        """R rows from r, P panels from j: the sums in registers over the whole of k, then stored."""
        sums = [(q, g, u) for q in range(rows) for g in range(group) for u in range(V)]
        acc = {s: f"s{s[0]}_{s[1] * V + s[2]}" for s in sums}
        lines = [f"const {T} *restrict a = xb + (long)r * {xs};"]
        lines += [f"const {T} *restrict w{g} = w + (long){_plus('j', g)} * {k * nr};" for g in range(group)]
        lines += [f"{v} " + ", ".join(f"{acc[s]} = {{0}}" for s in sums[i:i + 6]) + ";" for i in range(0, len(sums), 6)]
        body = [f"const {v} " + ", ".join(f"b{g}_{u} = {v}_load(w{g} + p * {nr} + {u * L})"
                                          for u in range(V)) + ";" for g in range(group)]
        for q in range(rows):
            body += [f"{acc[q, g, u]} += a[{q * xs} + p] * b{g}_{u};" for g in range(group) for u in range(V)]
        lines += [f"for (int p = 0; p < {k}; ++p) {{"] + ["    " + x for x in body] + ["}"]
        for q in range(rows):
            for g in range(group):
                for u in range(V):
                    at = f"ob + (long){_plus('r', q)} * {os} + {_plus('j', g)} * {nr} + {u * L}"
                    cols = last - u * L if partial and g == group - 1 else L
                    if cols >= L:
                        lines.append(f"{v}_store({at}, {acc[q, g, u]});")
                    elif cols > 0:  # the last panel's columns beyond m are not o's: left unwritten
                        lines.append(f"memcpy({at}, &{acc[q, g, u]}, {cols} * sizeof({T}));")
        return ["{"] + ["    " + tidy(x) for x in lines] + ["}"]

    def panels_of(rows: int, first: str, panels: int, partial: bool) -> list[str]:
        """R rows from r, `panels` panels from j = `first` on (the last one partial when `partial`): tiles
        as many panels wide as the sums allow, fewer for what is left."""
        lines, j, most = [], 0, tiling.panels_per_tile(rows)
        whole = panels - partial
        while j < whole:
            group = min(most, whole - j)
            reps = (whole - j) // group
            body = tile(rows, group, False)
            at = _offset(first, j)
            if reps > 1:
                step = "++j" if group == 1 else f"j += {group}"
                lines += [f"for (int j = {at}; j < {_offset(first, j + reps * group)}; {step}) {{"] + body[1:]
            else:
                lines += block_with(f"const int j = {at};", body)
            j += reps * group
        if partial:
            lines += block_with(f"const int j = {_offset(first, whole)};", tile(rows, 1, True))
        return lines

    def rows_of(first: str, panels: int, partial: bool) -> list[str]:
        """Every group's rows for the panels from `first` on: tiles of each height in turn."""
        lines = ["int r = 0;"]
        for rows in tiling.rows:
            lines += [f"for (; r + {rows} <= n; r += {rows}) {{"]
            lines += ["    " + x for x in panels_of(rows, first, panels, partial)] + ["}"]
        group = [f"const {T} *restrict xb = x + g * xg;", f"{T} *restrict ob = o + g * og;"] + lines
        return ["for (int g = 0; g < groups; ++g) {"] + ["    " + x for x in group] + ["}"]

    full = (count - (last < nr)) // block  # blocks of whole panels only (a partial last panel is in the rest)
    body = []
    if full > 1:
        body += [f"for (int j0 = 0; j0 < {full * block}; j0 += {block}) {{"]
        body += ["    " + x for x in rows_of("j0", block, False)] + ["}"]
    elif full:
        body += block_with("const int j0 = 0;", rows_of("j0", block, False))
    rest = count - full * block
    if rest:
        body += block_with(f"const int j0 = {full * block};", rows_of("j0", rest, last < nr))
    head = (f"static void {name}(int n, int groups, long xg, long og, const {T} *restrict x, {T} *restrict o, "
            f"const {T} *restrict w)")
    return [doc, head, "{"] + ["    " + x for x in body] + ["}"]


def _offset(name: str, n: int) -> str:
    """`name`, or `name + n`."""
    return f"{name} + {n}" if n else name


def _plus(name: str, n: int) -> str:
    """`name`, or `(name + n)`: a term to multiply."""
    return f"({name} + {n})" if n else name


def block_with(first: str, body: list[str]) -> list[str]:
    """`{ first; body }` (a braced body's braces are the block's)."""
    if body and body[0] == "{" and body[-1] == "}":
        return ["{", "    " + first] + body[1:]
    return ["{", "    " + first] + ["    " + x for x in body] + ["}"]
