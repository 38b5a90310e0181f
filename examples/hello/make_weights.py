"""Train the hello RNN from random weights: fed "hell", it learns to predict "ello".

The spec's weights are given as literal values; this starts instead from
seeded random ones (normal, scale 0.5) and trains every param with Adam on
the one word (inputs h e l l, targets e l l o; the loss is the cross-entropy
summed over the four steps). The second `l` is the point: after one `l` the
next is `l`, after two it is `o`, so the hidden state must count.

    python examples/hello/make_weights.py                 # writes examples/hello/trained.npz
    rnncompile run examples/hello/spec.yaml --text hell --trace --weights examples/hello/trained.npz
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnncompile.api import make_params, run
from rnncompile.autodiff.bptt import GradProgram
from rnncompile.autodiff.train import Optimizer, clip_by_norm
from rnncompile.params import save_npz
from rnncompile.program import compile

HERE = Path(__file__).resolve().parent
WORD = "hello"


def random_params(program, seed: int) -> dict[str, np.ndarray]:
    """Seeded normal weights (scale 0.5) of every param's shape; the spec's literal values are not used."""
    rng = np.random.default_rng(seed)
    shapes = {k: np.shape(v) for k, v in make_params(program, seed).items()}
    return {k: (0.5 * rng.standard_normal(s)).astype(np.float32) for k, s in sorted(shapes.items())}


def train(epochs: int, seed: int = 0, lr: float = 0.05, log=print):
    program = compile(HERE / "spec.yaml")
    params = random_params(program, seed)
    ids = np.array([program.vocab.tokens.index(c) for c in WORD])
    gp = GradProgram(program, "xent", backend="numpy", dtype="float32")
    opt, losses = Optimizer("adam", lr), []
    for epoch in range(epochs):
        g = gp({"x": ids[None, :-1]}, ids[None, 1:], params)
        clip_by_norm(g.grads, 5.0)
        opt.step(params, g.grads)
        losses.append(g.loss)
        if epoch % 100 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1:4d}  loss {g.loss:.4f} (summed over the 4 steps)")
    return program, params, losses


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path, default=HERE / "trained.npz")
    args = ap.parse_args(argv)
    program, params, losses = train(args.epochs, args.seed)
    ids = np.array([program.vocab.tokens.index(c) for c in WORD])
    p = run(program, inputs={"x": ids[None, :-1]}, params=params).outputs["y"][0]
    said = "".join(program.vocab.tokens[i] for i in p.argmax(-1))
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}; fed 'hell' it predicts '{said}' "
          f"(p of each right character: {' '.join(f'{v:.3f}' for v in p[np.arange(4), [1, 2, 2, 3]])})")
    save_npz(args.output, params)
    print(f"weights written to {args.output}")


if __name__ == "__main__":
    main()
