"""Time the NumPy backend on an LSTM against a hand-written NumPy loop and PyTorch, in one run.

    python benchmarks/bench_run.py [--repeats 15] [--warmup 2] [--threads N] [--dtype float32]

Only the run is timed: compile and param init are done before (compile is
timed on its own and printed beside). "ours" is the public `rnncompile.run`
(input checks, then the Executable the program keeps, binding the params,
the run); "ours prepared" calls one `rnncompile.Executable` directly, so the
difference is what `run` adds per call. Every peer gets the same weights,
inputs and BLAS thread count, and the outputs are checked to agree before
anything is timed. Ratios above 1 mean we are slower.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from _timing import Blas, interleaved_ms, print_header, print_medians, timing_parser, versions

ROOT = Path(__file__).resolve().parents[1]
SIZES = (  # name, I, H, B, T
    ("large", 256, 256, 64, 100),
    ("small", 8, 32, 1, 100),
)


def parse_args(argv=None):
    p = timing_parser(__doc__.splitlines()[0], repeats=15, warmup=2,
                      threads_help="BLAS / torch threads for every peer (default: what the BLAS uses now)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when importable")
    return p.parse_args(argv)


# ---- the peers ----------------------------------------------------------------------

def make_case(i, h, b, t, dtype, seed=0):
    import numpy as np

    import rnncompile

    t0 = time.perf_counter()
    prog = rnncompile.compile(ROOT / "specs" / "lstm.yaml", dims={"I": i, "H": h})
    compile_ms = (time.perf_counter() - t0) * 1e3
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(h)
    params = {k: rng.uniform(-bound, bound, info.shape).astype(dtype) for k, info in prog.params.items()}
    x = rng.standard_normal((b, t, i)).astype(dtype)
    state = {"h": rng.uniform(-1, 1, (b, h)).astype(dtype), "c": rng.uniform(-1, 1, (b, h)).astype(dtype)}
    return prog, params, x, state, compile_ms


def torch_layout(params, h):
    """Our W_k = [W_hk | W_xk], b_k  ->  weight_ih [4H, I], weight_hh [4H, H], bias [4H] in i, f, g, o order."""
    import numpy as np

    gates = "ifgo"
    w_ih = np.concatenate([params[f"W_{k}"][:, h:] for k in gates])
    w_hh = np.concatenate([params[f"W_{k}"][:, :h] for k in gates])
    bias = np.concatenate([params[f"b_{k}"] for k in gates])
    return w_ih, w_hh, bias


def hand_lstm(x, w_ih, w_hh, bias, h0, c0):
    """The fast idiomatic NumPy LSTM: one GEMM for every step's input half, then one GEMM per step."""
    import numpy as np

    b, t, _ = x.shape
    h = h0.shape[1]
    xw = np.swapaxes(x, 0, 1).reshape(t * b, -1) @ w_ih.T + bias  # time-major: step k is rows k*b..
    xw = xw.reshape(t, b, 4 * h)
    w_hh_t = np.ascontiguousarray(w_hh.T)
    out = np.empty((b, t, h), x.dtype)
    hs, cs = h0, c0
    for k in range(t):
        g = xw[k] + hs @ w_hh_t
        i = 1 / (1 + np.exp(-g[:, :h]))
        f = 1 / (1 + np.exp(-g[:, h:2 * h]))
        gg = np.tanh(g[:, 2 * h:3 * h])
        o = 1 / (1 + np.exp(-g[:, 3 * h:]))
        cs = f * cs + i * gg
        hs = o * np.tanh(cs)
        out[:, k] = hs
    return out, hs, cs


def torch_peer(torch, w_ih, w_hh, bias, i, h, dtype):
    tdtype = getattr(torch, dtype)
    lstm = torch.nn.LSTM(i, h, batch_first=True).to(tdtype)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(w_ih))
        lstm.weight_hh_l0.copy_(torch.from_numpy(w_hh))
        lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
        lstm.bias_hh_l0.zero_()
    lstm.eval()

    def run(x, h0, c0):
        with torch.inference_mode():
            y, _ = lstm(torch.from_numpy(x), (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]))
        return y.numpy()
    return run


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    sys.path.insert(0, str(ROOT))  # this checkout's rnncompile, whatever is installed
    import rnncompile

    blas = Blas()
    threads = args.threads
    if threads is None:
        threads = max((n for _, n in blas.threads()), default=1)
    blas.set_threads(threads)
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(threads)
        except ImportError:
            torch = None

    print_header([f"{versions()}, dtype {args.dtype}", *blas.header(),
                  "torch: " + (f"{torch.__version__}, threads {torch.get_num_threads()}" if torch else "not used"),
                  f"timing: median of {args.repeats} interleaved rounds after {args.warmup} warm-up rounds; "
                  "compile and param init excluded"], threads)
    print()

    rows = []
    for name, i, h, b, t in SIZES:
        prog, params, x, state, compile_ms = make_case(i, h, b, t, args.dtype)
        w_ih, w_hh, bias = torch_layout(params, h)
        exe = rnncompile.Executable(prog, "numpy", args.dtype)  # planned once, run many times

        def ours():
            return rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, dtype=args.dtype)

        def ours_prepared():
            return exe.run({"x": x}, params, state)

        def hand():
            return hand_lstm(x, w_ih, w_hh, bias, state["h"], state["c"])

        peers = {"ours": ours, "ours prepared": ours_prepared, "hand numpy": hand}
        if torch is not None:
            tfn = torch_peer(torch, w_ih, w_hh, bias, i, h, args.dtype)
            peers["torch"] = lambda: tfn(x, state["h"], state["c"])

        want = hand()[0]
        tol = 1e-4 if args.dtype == "float32" else 1e-9
        for peer, fn in peers.items():
            got = fn()
            got = got.outputs["y"] if hasattr(got, "outputs") else got[0] if isinstance(got, tuple) else got
            err = float(np.max(np.abs(got - want)))
            if err > tol:
                raise SystemExit(f"{name}: {peer} disagrees with the hand loop by {err:.3g}; not timing")
        times = interleaved_ms(peers, args.warmup, args.repeats)
        rows.append((name, i, h, b, t, compile_ms, times))

    head = (f"{'size':<6} {'I':>4} {'H':>4} {'B':>3} {'T':>4} {'compile':>9} {'ours':>9} {'prepared':>9} "
            f"{'hand np':>9} {'torch':>9} {'ours/hand':>10} {'ours/torch':>11}")
    print(head)
    print("-" * len(head))
    for name, i, h, b, t, compile_ms, times in rows:
        med = {k: v[0] for k, v in times.items()}
        tt = med.get("torch")
        print(f"{name:<6} {i:>4} {h:>4} {b:>3} {t:>4} {compile_ms:>7.1f}ms {med['ours']:>7.2f}ms "
              f"{med['ours prepared']:>7.2f}ms {med['hand numpy']:>7.2f}ms "
              + (f"{tt:>7.2f}ms" if tt else f"{'-':>9}")
              + f" {med['ours'] / med['hand numpy']:>9.2f}x"
              + (f" {med['ours'] / tt:>10.2f}x" if tt else f" {'-':>11}"))
    print()
    print_medians(rows)
    large = next(r for r in rows if r[0] == "large")[-1]
    ratio = large["ours"][0] / large["hand numpy"][0]
    print(f"ratios of minimums, large: ours/hand {large['ours'][1] / large['hand numpy'][1]:.2f}x"
          + (f", ours/torch {large['ours'][1] / large['torch'][1]:.2f}x" if "torch" in large else ""))
    print(f"target: ours within 1.5x of the hand-written loop at the large size: "
          f"{ratio:.2f}x -> {'met' if ratio <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
