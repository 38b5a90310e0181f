"""Train the recursive network of spec.yaml on treebank.txt, from seeded random weights, and test it.

Backpropagation through structure (rnncompile.autodiff.bpts.TreeGradProgram)
on every node's label, as the Stanford Sentiment Treebank is trained: the
loss is the cross-entropy of the five-class softmax at each node against its
label, the mean over the 86 nodes of treebank.txt's twelve trees (the root's
label alone, twelve numbers, is too little: the root-only loss fits the
twelve and gets 4 of 12 held-out sentences). spec_every_node.yaml is
spec.yaml with its head at every node, the same params; spec.yaml then
reads the root. Every param (word vectors, W, b, the head) is trained with
Adam on the whole treebank at once. treebank_test.txt holds twelve held-out
sentences made of the same words. The hand-set weights of sentiment.py are
scored on both, for comparison.

    python examples/trees/train.py                  # writes examples/trees/trained.npz, trained_losses.json
    rnncompile run examples/trees/spec.yaml --trees examples/trees/treebank_test.txt \\
        --weights examples/trees/trained.npz
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rnncompile.api import make_params, run
from rnncompile.autodiff.bpts import TreeGradProgram
from rnncompile.autodiff.train import Optimizer, clip_by_norm
from rnncompile.params import save_npz
from rnncompile.program import compile
from rnncompile.trees import read_trees
from rnncompile.trees.forest import Forest
from sentiment import hand_weights

HERE = Path(__file__).resolve().parent


def labels(trees) -> np.ndarray:
    return np.array([int(t.labels[t.root]) for t in trees])


def accuracy(program, params, trees) -> tuple[int, np.ndarray]:
    pred = run(program, trees=trees, params=params).outputs["p"].argmax(-1)
    return int((pred == labels(trees)).sum()), pred


def train(epochs: int, seed: int = 0, lr: float = 0.02, log=print):
    program = compile(HERE / "spec.yaml")
    forest = Forest.of(read_trees(HERE / "treebank.txt"))
    target = np.asarray(forest.labels).astype(np.int64)  # every node's label, in the forest's node order
    params = make_params(program, seed, None, "float32")
    gp = TreeGradProgram(compile(HERE / "spec_every_node.yaml"), "xent", reduction="mean", backend="numpy",
                         dtype="float32")
    opt, losses = Optimizer("adam", lr), []
    for epoch in range(epochs):
        g = gp(forest, target, params)
        clip_by_norm(g.grads, 5.0)
        opt.step(params, g.grads)
        losses.append(g.loss)
        if epoch % 100 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1:4d}  loss {g.loss:.4f} per node")
    return program, params, losses


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path, default=HERE / "trained.npz")
    args = ap.parse_args(argv)
    program, params, losses = train(args.epochs, args.seed)
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} per node (uniform over 5 classes: log 5 = {np.log(5):.4f})")
    for name, weights in (("trained", params), ("hand-set (sentiment.py)", hand_weights(program))):
        scores = []
        for file in ("treebank.txt", "treebank_test.txt"):
            trees = read_trees(HERE / file)
            right, _ = accuracy(program, weights, trees)
            scores.append(f"{file} {right}/{len(trees)}")
        print(f"{name:24s} {'   '.join(scores)}")
    test = read_trees(HERE / "treebank_test.txt")
    _, pred = accuracy(program, params, test)
    print("held out, wrong:", "; ".join(f"{' '.join(w for w in t.words if w)} (gold {g}, got {p})"
                                        for t, g, p in zip(test, labels(test), pred) if g != p) or "none")
    save_npz(args.output, params)
    history = args.output.with_name(args.output.stem + "_losses.json")
    history.write_text(json.dumps({"epochs": args.epochs, "seed": args.seed, "loss": losses}) + "\n")
    print(f"weights written to {args.output}, the loss of every epoch to {history}")


if __name__ == "__main__":
    main()
