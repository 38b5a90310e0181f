"""Time one training step of a character LSTM (forward, backward through time, Adam) against PyTorch.

    python benchmarks/bench_train.py [--repeats 5] [--warmup 1] [--threads 1] [--backends numpy,python]

The model is specs/char_predictor.yaml at embedding 64, H = 256 over its 32
tokens, a batch of 32 windows of 100 steps; the loss is the cross-entropy
summed over the steps and averaged over the batch. "ours" is one call of
`autodiff.GradProgram` plus an Adam step; PyTorch runs nn.Embedding ->
nn.LSTM -> nn.Linear with the same weights, loss and optimizer. Both start
from the same weights and the first step's losses are checked to agree
before anything is timed. One epoch of a 320,000-character corpus is 100
such steps. Ratios above 1 mean we are slower.
"""
from __future__ import annotations

import sys
from pathlib import Path

from _timing import Blas, interleaved_ms, print_header, print_medians, timing_parser, versions

ROOT = Path(__file__).resolve().parents[1]
E, H, B, T = 64, 256, 32, 100


def main(argv=None) -> None:
    p = timing_parser(__doc__.splitlines()[0], repeats=5, warmup=1, threads_help="BLAS / torch threads [1]")
    p.add_argument("--backends", default="numpy", help="comma-separated backends to time [numpy]")
    args = p.parse_args(argv)
    blas = Blas()
    threads = args.threads or 1
    blas.set_threads(threads)
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    import rnncompile
    from rnncompile import interop
    from rnncompile.autodiff import GradProgram
    from rnncompile.autodiff.train import Optimizer
    from rnncompile.params import make_params

    torch.set_num_threads(threads)
    program = rnncompile.compile(ROOT / "specs" / "char_predictor.yaml", dims={"E": E, "H": H})
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 32, (B, T)), rng.integers(0, 32, (B, T))
    start = make_params(program, 0, None, "float32")

    peers, first = {}, {}
    for backend in args.backends.split(","):
        gp = GradProgram(program, "xent", backend=backend, dtype="float32")
        params, opt = dict(start), Optimizer("adam", 1e-3)

        def ours(gp=gp, params=params, opt=opt):
            g = gp({"ch": x}, y, params)
            opt.step(params, g.grads)
            return g.loss
        first[f"ours {backend}"] = ours()
        peers[f"ours {backend}"] = ours

    sd = interop.to_torch(program, start, {}).arrays
    emb, rnn, lin = torch.nn.Embedding(32, E), torch.nn.LSTM(E, H, batch_first=True), torch.nn.Linear(H, 32)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(sd["embedding.weight"]))
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(rnn, name).copy_(torch.tensor(sd[f"rnn.{name}"]))
        lin.weight.copy_(torch.tensor(sd["linear.weight"]))
        lin.bias.copy_(torch.tensor(sd["linear.bias"]))
    topt = torch.optim.Adam([*emb.parameters(), *rnn.parameters(), *lin.parameters()], lr=1e-3)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)

    def theirs():
        topt.zero_grad()
        out, _ = rnn(emb(xt))
        loss = torch.nn.functional.cross_entropy(lin(out).reshape(-1, 32), yt.reshape(-1), reduction="sum") / B
        loss.backward()
        topt.step()
        return float(loss)
    first["torch"] = theirs()
    peers["torch"] = theirs
    for name, loss in first.items():
        if abs(loss - first["torch"]) > 1e-3 * abs(first["torch"]):
            raise SystemExit(f"{name}'s first loss {loss} differs from torch's {first['torch']}")

    print_header([versions(), f"char LSTM: E={E} H={H} V=32 B={B} T={T}, adam; {blas.describe()}"], threads)
    times = interleaved_ms(peers, args.warmup, args.repeats)
    print_medians([("train step", times)])
    for name, (med, _) in times.items():
        if name != "torch":
            print(f"  {name} / torch: {med / times['torch'][0]:.2f}x; one epoch (100 steps): {med / 10:.0f} s")


if __name__ == "__main__":
    main()
