"""Time one training step of a character LSTM (forward, backward through time, Adam) and one gradient of a Neural
Turing Machine against PyTorch.

    python benchmarks/bench_train.py [--repeats 5] [--warmup 1] [--threads 1] [--backends numpy,python,c]

char LSTM: specs/char_predictor.yaml at embedding 64, H = 256 over its 32
tokens, a batch of 32 windows of 100 steps; the loss is the cross-entropy
summed over the steps and averaged over the batch. "ours" is one call of
`autodiff.GradProgram` plus an Adam step; PyTorch runs nn.Embedding ->
nn.LSTM -> nn.Linear with the same weights, loss and optimizer. Both start
from the same weights and the first step's losses are checked to agree
before anything is timed. One epoch of a 320,000-character corpus is 100
such steps.

NTM: specs/ntm.yaml as shipped (H = 32, N x W = 16 x 8, one read and one write
head), a batch of 32 sequences of 20 steps, the mse loss; "ours" is one
`GradProgram` call (loss and every gradient), PyTorch is the same NTM written
out below in eager ops (what a researcher would write for a new cell; nn has
no NTM) and one backward. Before timing, both run once in float64 with the
same weights, and the loss and every gradient are checked to agree (1e-8).

Ratios above 1 mean we are slower.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

from _timing import Blas, interleaved_ms, print_header, print_medians, timing_parser, versions

ROOT = Path(__file__).resolve().parents[1]
E, H, B, T = 64, 256, 32, 100
NTM_B, NTM_T = 32, 20


def main(argv=None) -> None:
    p = timing_parser(__doc__.splitlines()[0], repeats=5, warmup=1, threads_help="BLAS / torch threads [1]")
    p.add_argument("--backends", default="numpy", help="comma-separated backends to time [numpy]")
    p.add_argument("--skip-ntm", action="store_true", help="time the char LSTM only")
    args = p.parse_args(argv)
    blas = Blas()
    threads = args.threads or 1
    blas.set_threads(threads)
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(threads)
    backends = args.backends.split(",")
    lstm = char_lstm_peers(backends)
    ntm = None if args.skip_ntm else ntm_peers(backends)
    print_header([versions(), f"torch {torch.__version__}; {blas.describe()}",
                  f"char LSTM: E={E} H={H} V=32 B={B} T={T}, adam (train step = grad + adam update)",
                  f"NTM: specs/ntm.yaml H=32 N=16 W=8, B={NTM_B} T={NTM_T}, mse (grad = loss + every gradient)"],
                 threads)
    rows = [("char LSTM train step", interleaved_ms(lstm, args.warmup, args.repeats))]
    if ntm is not None:
        rows.append(("NTM grad", interleaved_ms(ntm, args.warmup, args.repeats)))
    print_medians(rows)
    for label, times in rows:
        for name, (med, _) in times.items():
            if name != "torch":
                extra = f"; one epoch (100 steps): {med / 10:.0f} s" if label.startswith("char") else ""
                print(f"  {label}: {name} / torch: {med / times['torch'][0]:.2f}x{extra}")


# ---- the character LSTM ---------------------------------------------------------------------------------------

def char_lstm_peers(backends: list[str]) -> dict:
    import numpy as np
    import torch

    import rnncompile
    from rnncompile import interop
    from rnncompile.autodiff import GradProgram
    from rnncompile.autodiff.train import Optimizer
    from rnncompile.params import make_params

    program = rnncompile.compile(ROOT / "specs" / "char_predictor.yaml", dims={"E": E, "H": H})
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 32, (B, T)), rng.integers(0, 32, (B, T))
    start = make_params(program, 0, None, "float32")

    peers, first = {}, {}
    for backend in backends:
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
        return float(loss.detach())
    first["torch"] = theirs()
    peers["torch"] = theirs
    for name, loss in first.items():
        if abs(loss - first["torch"]) > 1e-3 * abs(first["torch"]):
            raise SystemExit(f"char LSTM: {name}'s first loss {loss} differs from torch's {first['torch']}")
    return peers


# ---- the Neural Turing Machine ----------------------------------------------------------------------------------

def torch_ntm(p: dict, x, eps: float = 1e-8):
    """specs/ntm.yaml's equations in eager PyTorch, batched: p maps the spec's param names to tensors, x is
    [B, T, I]; returns the outputs y [B, T, O]."""
    import torch

    batch, steps, _ = x.shape
    hid, (slots, width) = p["W_i"].shape[0], (p["w_r0_init"].shape[0], p["W_k_r0"].shape[0])
    h, c = x.new_zeros(batch, hid), x.new_zeros(batch, hid)
    memory, read = x.new_full((batch, slots, width), 1e-6), x.new_zeros(batch, width)
    w_read, w_write = p["w_r0_init"].expand(batch, slots), p["w_w0_init"].expand(batch, slots)

    def softplus(z):
        return torch.logaddexp(torch.zeros_like(z), z)

    def address(head, memory, last, h):
        key = torch.tanh(h @ p[f"W_k_{head}"].T + p[f"b_k_{head}"])
        beta = softplus(h @ p[f"u_beta_{head}"] + p[f"b_beta_{head}"])
        gate = torch.sigmoid(h @ p[f"u_g_{head}"] + p[f"b_g_{head}"])[:, None]
        shift = torch.softmax(h @ p[f"W_s_{head}"].T + p[f"b_s_{head}"], dim=-1)
        gamma = 1 + softplus(h @ p[f"u_gamma_{head}"] + p[f"b_gamma_{head}"])
        norms = memory.square().sum(-1).sqrt() * key.square().sum(-1).sqrt()[:, None]
        content = torch.softmax(beta[:, None] * (memory @ key[:, :, None])[..., 0] / (norms + eps), dim=-1)
        w = gate * content + (1 - gate) * last
        w = sum(shift[:, j + 1:j + 2] * torch.roll(w, j, dims=-1) for j in (-1, 0, 1))
        w = torch.clamp(w, min=0)
        top = w.max(dim=-1, keepdim=True).values
        u = (w / torch.where(top > 0, top, torch.ones_like(top))) ** gamma[:, None]
        return u / torch.where(top > 0, u.sum(-1, keepdim=True), torch.ones_like(top))

    ys = []
    for t in range(steps):
        z = torch.cat([h, x[:, t], read], dim=1)
        i, f = torch.sigmoid(z @ p["W_i"].T + p["b_i"]), torch.sigmoid(z @ p["W_f"].T + p["b_f"])
        g, o = torch.tanh(z @ p["W_g"].T + p["b_g"]), torch.sigmoid(z @ p["W_o"].T + p["b_o"])
        c = f * c + i * g
        h = o * torch.tanh(c)
        w_write = address("w0", memory, w_write, h)
        erase = torch.sigmoid(h @ p["W_e_w0"].T + p["b_e_w0"])
        add = torch.tanh(h @ p["W_a_w0"].T + p["b_a_w0"])
        memory = memory * (1 - w_write[:, :, None] * erase[:, None, :]) + w_write[:, :, None] * add[:, None, :]
        w_read = address("r0", memory, w_read, h)
        read = (w_read[:, None, :] @ memory)[:, 0]
        ys.append(torch.sigmoid(torch.cat([h, read], dim=1) @ p["W_y"].T + p["b_y"]))
    return torch.stack(ys, dim=1)


def torch_ntm_grad(p: dict, x, target):
    """The loss (mse: the mean over the outputs' elements, summed over steps, averaged over the batch) and
    each param's gradient, as one backward of the eager NTM."""
    for v in p.values():
        v.grad = None
    y = torch_ntm(p, x)
    loss = (y - target).square().mean(-1).sum() / x.shape[0]
    loss.backward()
    return float(loss.detach()), {k: v.grad for k, v in p.items()}


def ntm_peers(backends: list[str]) -> dict:
    import numpy as np
    import torch

    import rnncompile
    from rnncompile.autodiff import GradProgram
    from rnncompile.params import make_params

    program = rnncompile.compile(ROOT / "specs" / "ntm.yaml")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((NTM_B, NTM_T, 8)), rng.random((NTM_B, NTM_T, 8))
    weights = make_params(program, 0, None, "float64")
    _check_ntm(program, weights, x, y)

    peers = {}
    params = {k: v.astype(np.float32) for k, v in weights.items()}
    for backend in backends:
        try:
            with warnings.catch_warnings():  # a backend that generates broken code also warns while compiling it
                warnings.simplefilter("ignore", SyntaxWarning)
                gp = GradProgram(program, "mse", backend=backend, dtype="float32")
            gp({"x": x}, y, params)
        except Exception as e:  # a backend's own bug: say so, time the others
            print(f"NTM: ours {backend} is not timed: it fails: {type(e).__name__}: {e}")
            continue
        peers[f"ours {backend}"] = lambda gp=gp: gp({"x": x}, y, params).loss
    tp = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in weights.items()}
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    peers["torch"] = lambda: torch_ntm_grad(tp, xt, yt)[0]
    return peers


def _check_ntm(program, weights: dict, x, y) -> None:
    """Our float64 loss and gradients against the eager PyTorch NTM's, before anything is timed."""
    import numpy as np
    import torch

    from rnncompile.autodiff import GradProgram

    ours = GradProgram(program, "mse", dtype="float64")({"x": x}, y, weights)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    loss, grads = torch_ntm_grad(tp, torch.tensor(x), torch.tensor(y))
    if abs(ours.loss - loss) > 1e-8 * abs(loss):
        raise SystemExit(f"NTM: our loss {ours.loss} differs from the eager PyTorch NTM's {loss}")
    for k, g in grads.items():
        theirs = np.zeros(weights[k].shape) if g is None else g.numpy()
        scale = max(np.abs(theirs).max(), 1e-12)
        if np.abs(ours.grads[k] - theirs).max() > 1e-8 * scale:
            raise SystemExit(f"NTM: the gradient of {k} differs from the eager PyTorch NTM's by "
                             f"{np.abs(ours.grads[k] - theirs).max():.3g} (largest entry {scale:.3g})")


if __name__ == "__main__":
    main()
