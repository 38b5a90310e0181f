"""Time the backends against each other on an LSTM: numpy (the interpreter), python (generated NumPy) and
c (generated C through ctypes), in one run.

    python benchmarks/bench_backends.py [--repeats 7] [--warmup 2] [--threads N] [--dtype float32]

Per backend, two things are timed: "run" is `Executable.run` as `rnncompile run` calls it (binding the
params, then the scan: for c that includes computing and packing the param-only values each call), and
"scan" is the loop alone on params bound once. Compiling the spec and building the C are done before,
and the C build is timed on its own, from an empty cache. Every backend gets the same weights, inputs
and start state, and the outputs are checked to agree before anything is timed. Ratios are against the
numpy backend: above 1 means slower than it.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from _timing import Blas, interleaved_ms, print_header, print_medians, timing_parser, versions

ROOT = Path(__file__).resolve().parents[1]
SIZES = (  # name, I, H, B, T
    ("large", 256, 256, 64, 100),
    ("small", 8, 32, 1, 100),
)
BACKENDS = ("numpy", "python", "c")


def parse_args(argv=None):
    p = timing_parser(__doc__.splitlines()[0], repeats=7, warmup=2,
                      threads_help="BLAS threads for numpy and python (default: what the BLAS uses now; c uses one)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    return p.parse_args(argv)


def make_case(i, h, b, t, dtype, seed=0):
    import numpy as np

    import rnncompile

    prog = rnncompile.compile(ROOT / "specs" / "lstm.yaml", dims={"I": i, "H": h})
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(h)
    params = {k: rng.uniform(-bound, bound, info.shape).astype(dtype) for k, info in prog.params.items()}
    x = rng.standard_normal((b, t, i)).astype(dtype)
    state = {"h": rng.uniform(-1, 1, (b, h)).astype(dtype), "c": rng.uniform(-1, 1, (b, h)).astype(dtype)}
    return prog, params, x, state


def c_build_ms(prog, dtype) -> float:
    """Writing and compiling the cell's C from an empty cache (what the first run of a spec pays)."""
    from backends.c import CellRunner

    old = os.environ.get("XDG_CACHE_HOME")
    with tempfile.TemporaryDirectory() as empty:
        os.environ["XDG_CACHE_HOME"] = empty
        try:
            t0 = time.perf_counter()
            CellRunner(prog.scan_cell, dtype)
            return (time.perf_counter() - t0) * 1e3
        finally:
            if old is None:
                del os.environ["XDG_CACHE_HOME"]
            else:
                os.environ["XDG_CACHE_HOME"] = old


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    sys.path.insert(0, str(ROOT))  # this checkout's rnncompile and backends, whatever is installed
    import rnncompile

    blas = Blas()
    threads = args.threads if args.threads is not None else max((n for _, n in blas.threads()), default=1)
    blas.set_threads(threads)
    cc = __import__("backends.c.build", fromlist=["build"])
    print_header([f"{versions()}, dtype {args.dtype}", *blas.header(),
                  f"C compiler: {' '.join(cc.compiler())} {' '.join(cc.FLAGS)} (single-threaded)",
                  f"timing: median of {args.repeats} interleaved rounds after {args.warmup} warm-up rounds; "
                  "compile and C build excluded (the build is shown on its own)"], threads)
    print()

    rows = []
    for name, i, h, b, t in SIZES:
        prog, params, x, state = make_case(i, h, b, t, args.dtype)
        build_ms = c_build_ms(prog, args.dtype)
        peers, outs = {}, {}
        for be in BACKENDS:
            exe = rnncompile.Executable(prog, be, args.dtype)
            bound = exe.bind(prog.main_use, params)
            peers[f"{be} run"] = lambda exe=exe: exe.run({"x": x}, params, state)
            peers[f"{be} scan"] = lambda bound=bound: bound.scan({"x": x}, state)
            outs[be] = peers[f"{be} run"]().outputs["y"]
            scanned = peers[f"{be} scan"]().outputs["y"]
            if not np.array_equal(scanned, outs[be]):
                raise SystemExit(f"{name}: {be}: the bound scan and the run disagree; not timing")
        tol = 1e-4 if args.dtype == "float32" else 1e-9
        for be in BACKENDS[1:]:
            err = float(np.max(np.abs(outs[be] - outs["numpy"])))
            if err > tol:
                raise SystemExit(f"{name}: {be} disagrees with numpy by {err:.3g}; not timing")
        rows.append((name, i, h, b, t, build_ms, interleaved_ms(peers, args.warmup, args.repeats)))

    head = (f"{'size':<6} {'I':>4} {'H':>4} {'B':>3} {'T':>4} {'C build':>9} | "
            + " ".join(f"{be + ' run':>11}" for be in BACKENDS) + " | "
            + " ".join(f"{be + ' scan':>12}" for be in BACKENDS) + " | c/numpy run  c/numpy scan  c/python run")
    print(head)
    print("-" * len(head))
    for name, i, h, b, t, build_ms, times in rows:
        med = {k: v[0] for k, v in times.items()}
        print(f"{name:<6} {i:>4} {h:>4} {b:>3} {t:>4} {build_ms:>7.0f}ms | "
              + " ".join(f"{med[be + ' run']:>9.2f}ms" for be in BACKENDS) + " | "
              + " ".join(f"{med[be + ' scan']:>10.2f}ms" for be in BACKENDS) + " | "
              f"{med['c run'] / med['numpy run']:>10.2f}x {med['c scan'] / med['numpy scan']:>11.2f}x "
              f"{med['c run'] / med['python run']:>12.2f}x")
    print()
    print_medians(rows)


if __name__ == "__main__":
    main()
