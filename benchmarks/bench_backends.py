"""Time the backends against each other and against PyTorch on an LSTM and a GRU: numpy (the interpreter),
python (generated NumPy), c (generated C through ctypes) and torch (nn.LSTM / nn.GRU), in one run.

    python benchmarks/bench_backends.py [--repeats 7] [--warmup 2] [--threads N] [--dtype float32]
                                        [--sizes tiny,small,large,gru-large] [--no-torch]

Per backend, two things are timed: "run" is `Executable.run` as `rnncompile run` calls it (binding the
params, then the scan), and "scan" is the loop alone on params bound once. torch is `module(x, state)`
under `torch.no_grad()` with the same weights (converted by rnncompile.interop.to_torch), inputs and start
state. Compiling the spec and building the C are done before, and the C build is timed on its own, from an
empty cache. The outputs are checked to agree before anything is timed. Ratios are against torch in the
same run: below 1 is faster than it. "gemm" is the physical reference: one NumPy (BLAS) matrix multiply of
the same FLOPs as the run's affine maps ([B*T, I+H] @ [I+H, G*H]), on the same threads.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from _timing import Blas, interleaved_ms, print_header, print_medians, timing_parser, versions

ROOT = Path(__file__).resolve().parents[1]
SIZES = (  # name, spec, I, H, B, T
    ("tiny", "lstm", 8, 32, 1, 100),
    ("small", "lstm", 64, 128, 16, 100),
    ("large", "lstm", 256, 256, 64, 100),
    ("gru-large", "gru", 256, 256, 64, 100),
)
BACKENDS = ("numpy", "python", "c")
GATES = {"lstm": 4, "gru": 3}


def parse_args(argv=None):
    p = timing_parser(__doc__.splitlines()[0], repeats=7, warmup=2,
                      threads_help="threads for BLAS and torch (default: what the BLAS uses now; c uses one)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--sizes", default=",".join(s[0] for s in SIZES), help="which workloads, comma-separated")
    p.add_argument("--no-torch", action="store_true", help="leave torch out (ratios are then against numpy)")
    return p.parse_args(argv)


def make_case(spec, i, h, b, t, dtype, seed=0):
    import numpy as np

    import rnncompile

    prog = rnncompile.compile(ROOT / "specs" / f"{spec}.yaml", dims={"I": i, "H": h})
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(h)
    params = {k: rng.uniform(-bound, bound, info.shape).astype(dtype) for k, info in prog.params.items()}
    x = rng.standard_normal((b, t, i)).astype(dtype)
    state = {n: rng.uniform(-1, 1, (b, h)).astype(dtype) for n in prog.scan_cell.states}
    return prog, params, x, state


def torch_peer(spec, prog, params, x, state, dtype):
    """`module(x, state)` for the torch module of the same equations and weights, and its output."""
    import numpy as np
    import torch

    from rnncompile.interop.torch_weights import to_torch

    tdt = torch.float32 if dtype == "float32" else torch.float64
    i, h = x.shape[2], state["h"].shape[1]
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[spec](i, h, batch_first=True).to(tdt)
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in to_torch(prog, params).arrays.items()})
    tx = torch.from_numpy(x)
    hx = torch.from_numpy(state["h"])[None]
    hx = (hx, torch.from_numpy(state["c"])[None]) if spec == "lstm" else hx

    def run():
        with torch.no_grad():
            return module(tx, hx)[0]
    return run


def gemm_peer(spec, i, h, b, t, dtype):
    """One BLAS matrix multiply of the FLOPs of the run's affine maps, and those FLOPs."""
    import numpy as np

    rng = np.random.default_rng(1)
    a = rng.standard_normal((b * t, i + h)).astype(dtype)
    w = rng.standard_normal((i + h, GATES[spec] * h)).astype(dtype)
    return (lambda: a @ w), 2.0 * b * t * (i + h) * GATES[spec] * h


def c_build_ms(prog, dtype) -> float:
    """Writing and compiling the cell's C from an empty cache (what the first run of a spec pays)."""
    from rnncompile.backends.c import CellRunner

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
    torch_line = "torch: left out (--no-torch)"
    if not args.no_torch:
        import torch

        torch.set_num_threads(threads)
        torch_line = f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    cc = __import__("backends.c.build", fromlist=["build"])
    print_header([f"{versions()}, dtype {args.dtype}", *blas.header(), torch_line,
                  f"C compiler: {' '.join(cc.compiler())} {' '.join(cc.flags())} (single-threaded)",
                  f"timing: median of {args.repeats} interleaved rounds after {args.warmup} warm-up rounds; "
                  "compile and C build excluded (the build is shown on its own)"], threads)
    print()

    ref = "numpy run" if args.no_torch else "torch"
    rows = []
    wanted = args.sizes.split(",")
    for name, spec, i, h, b, t in (s for s in SIZES if s[0] in wanted):
        prog, params, x, state = make_case(spec, i, h, b, t, args.dtype)
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
        if not args.no_torch:
            peers["torch"] = torch_peer(spec, prog, params, x, state, args.dtype)
            outs["torch"] = peers["torch"]().numpy()
        peers["gemm"], flops = gemm_peer(spec, i, h, b, t, args.dtype)
        tol = 1e-4 if args.dtype == "float32" else 1e-9
        for be in [k for k in outs if k != "numpy"]:
            err = float(np.max(np.abs(outs[be] - outs["numpy"])))
            if err > tol:
                raise SystemExit(f"{name}: {be} disagrees with numpy by {err:.3g}; not timing")
        rows.append((name, i, h, b, t, build_ms, flops, interleaved_ms(peers, args.warmup, args.repeats)))

    cols = [f"{be} {what}" for what in ("run", "scan") for be in BACKENDS]
    head = (f"{'size':<9} {'I':>4} {'H':>4} {'B':>3} {'T':>4} {'C build':>8} | {ref:>9} {'gemm':>8} | "
            + " ".join(f"{c:>11}" for c in cols) + " | c GFLOP/s  gemm GFLOP/s")
    print(f"times in ms; each backend's second line is its ratio to {ref} (below 1: faster)")
    print(head)
    print("-" * len(head))
    for name, i, h, b, t, build_ms, flops, times in rows:
        med = {k: v[0] for k, v in times.items()}
        base = med[ref]
        print(f"{name:<9} {i:>4} {h:>4} {b:>3} {t:>4} {build_ms:>6.0f}ms | {base:>9.3f} {med['gemm']:>8.3f} | "
              + " ".join(f"{med[c]:>11.3f}" for c in cols)
              + f" | {flops / med['c scan'] / 1e6:>9.1f}  {flops / med['gemm'] / 1e6:>12.1f}")
        print(f"{'  ratio':<9} {'':>4} {'':>4} {'':>3} {'':>4} {'':>8} | {1:>8.2f}x {med['gemm'] / base:>7.2f}x | "
              + " ".join(f"{med[c] / base:>10.2f}x" for c in cols) + " |")
    print()
    print_medians(rows)


if __name__ == "__main__":
    main()
