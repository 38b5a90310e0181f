"""Train the NTM of spec.yaml on the copy task (Graves, Wayne and Danihelka 2014), sequences of 1 to 20.

A sequence of L random 6-bit vectors is shown one per step, then a delimiter,
then L recall steps with no input but the recall flag, where the network must
give the vectors back in order (T = 2L + 1 steps). The loss is the mean
squared error of the recall steps (the spec's output is 0 elsewhere). A
curriculum: lengths are drawn uniformly from 1..Lmax, Lmax starts at 2 and
grows by 2 whenever the recent recall error is under 2% of the bits. Adam,
clipping, batches of 16; everything is seeded, so the same call gives the same
weights.

    python examples/ntm_copy/train.py                       # weights.npz, history.json, copy20.npz (minutes)
    python examples/ntm_copy/train.py --steps 20 --out DIR  # the first 20 steps (tests/test_trained_examples.py)
    rnncompile plot examples/ntm_copy/spec.yaml --input examples/ntm_copy/copy20.npz \\
        --weights examples/ntm_copy/weights.npz -o docs/ntm_copy_heads.png
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rnncompile.api import make_params, run
from rnncompile.autodiff.bptt import GradProgram
from rnncompile.autodiff.train import Optimizer, clip_by_norm
from rnncompile.params import save_npz
from rnncompile.program import compile

HERE = Path(__file__).resolve().parent
BITS, LONGEST = 6, 20


def copy_batch(rng, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [B, 2L + 1, BITS + 2] (bits, delimiter, recall flag) and targets [B, 2L + 1, BITS]."""
    steps = 2 * length + 1
    bits = rng.integers(0, 2, (batch, length, BITS)).astype(np.float32)
    x = np.zeros((batch, steps, BITS + 2), np.float32)
    y = np.zeros((batch, steps, BITS), np.float32)
    x[:, :length, :BITS] = bits
    x[:, length, BITS] = 1.0  # delimiter
    x[:, length + 1:, BITS + 1] = 1.0  # recall
    y[:, length + 1:] = bits
    return x, y


def bit_errors(program, params, x, y) -> float:
    """Wrong bits per sequence (outputs rounded at 0.5), recall steps only."""
    out = run(program, inputs={"x": x}, params=params).outputs["y"]
    recall = x[:, :, BITS + 1:BITS + 2]
    return float((((out > 0.5) != (y > 0.5)) * recall).sum() / len(x))


def train(steps: int, seed: int = 0, batch: int = 16, lr: float = 3e-3, clip: float = 10.0, log=print):
    program = compile(HERE / "spec.yaml")
    params = make_params(program, seed, None, "float32")
    gp = GradProgram(program, "mse", backend="numpy", dtype="float32")
    opt = Optimizer("adam", lr)
    rng = np.random.default_rng(seed)
    longest, recent, history = 2, [], {"loss": [], "longest": [], "log": []}
    started = time.perf_counter()
    for step in range(steps):
        length = int(rng.integers(1, longest + 1))
        x, y = copy_batch(rng, batch, length)
        g = gp({"x": x}, y, params)
        clip_by_norm(g.grads, clip)
        opt.step(params, g.grads)
        history["loss"].append(g.loss)
        history["longest"].append(longest)
        recent.append(g.loss / length)  # per recall step
        if (step + 1) % 50 == 0:
            xe, ye = copy_batch(np.random.default_rng(10_000 + step), 32, longest)
            errors = bit_errors(program, params, xe, ye)
            mean = float(np.mean(recent))
            history["log"].append({"step": step + 1, "longest": longest, "loss_per_recall_step": mean,
                                   "bit_errors_at_longest": errors})
            log(f"step {step + 1:5d}  Lmax {longest:2d}  loss/recall step {mean:.4f}  "
                f"bit errors at L={longest}: {errors:.2f} of {longest * BITS}  ({time.perf_counter() - started:.0f} s)")
            recent = []
            if errors < 0.02 * longest * BITS and longest < LONGEST:
                longest = min(LONGEST, longest + 2)
    return program, params, history


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000, help="training batches [default: 3000]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE, help="folder for weights.npz and history.json")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    program, params, history = train(args.steps, args.seed)
    evaluation = {}
    for length in (5, 10, 20):
        x, y = copy_batch(np.random.default_rng(99 + length), 64, length)
        evaluation[length] = bit_errors(program, params, x, y)
        print(f"length {length:2d}: {evaluation[length]:.2f} wrong bits per sequence of {length * BITS}")
    history["eval_bit_errors"] = evaluation
    save_npz(args.out / "weights.npz", params)
    (args.out / "history.json").write_text(json.dumps(history) + "\n")
    x, _ = copy_batch(np.random.default_rng(20), 1, LONGEST)
    np.savez(args.out / "copy20.npz", x=x)
    print(f"wrote {args.out / 'weights.npz'}, {args.out / 'history.json'}, {args.out / 'copy20.npz'}")


if __name__ == "__main__":
    main()
