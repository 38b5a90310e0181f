"""Sentence-level sentiment with a recursive network whose weights are set by hand.

Each word vector is [positive, negative] evidence; a node adds its children's
(W = [I I]) and squashes the sum (tanh), so evidence fades a little at each
level; the head at the root turns s = positive - negative into one of five
classes (the class whose centre is nearest s). Nothing is learned: the point
is to watch one set of weights applied at every node of every tree, all
nodes of a height at once. A plain sum cannot flip "not good", so the last
sentence is read wrongly: a reason for Socher's RNTN and for Tree-LSTMs.

    python examples/trees/sentiment.py [--save-weights sentiment.npz]
    rnncompile run examples/trees/spec.yaml --trees examples/trees/treebank.txt --weights sentiment.npz
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnncompile.api import run
from rnncompile.params import save_npz
from rnncompile.program import compile
from rnncompile.trees import read_trees

HERE = Path(__file__).resolve().parent
LEXICON = {  # word -> positive (+) or negative (-) evidence
    "great": 2.0, "loved": 2.0, "beautiful": 2.0, "wonderful": 2.0,
    "good": 0.3, "fun": 0.3, "clever": 0.3, "moving": 0.3,
    "awful": -2.0, "terrible": -2.0, "hated": -2.0,
    "boring": -0.3, "mess": -0.3, "sad": -0.3,
}
CENTRES = np.array([-0.8, -0.35, 0.0, 0.35, 0.8])  # s nearest to centre c -> class c
SHARPNESS = 10.0


def hand_weights(program) -> dict[str, np.ndarray]:
    tokens = program.vocab.tokens
    L = np.zeros((len(tokens), 2), np.float32)
    for word, s in LEXICON.items():
        L[tokens.index(word)] = [s, 0] if s > 0 else [0, -s]
    W = np.hstack([np.eye(2), np.eye(2)]).astype(np.float32)  # p = tanh(c1 + c2)
    # -(s - m)^2 = 2ms - m^2 - s^2: the s^2 is the same for every class, so logits 2ms - m^2 pick the nearest m
    W_s = SHARPNESS * np.stack([2 * CENTRES, -2 * CENTRES], axis=1).astype(np.float32)
    b_s = (-SHARPNESS * CENTRES ** 2).astype(np.float32)
    return {"L": L, "W": W, "b": np.zeros(2, np.float32), "head.W_s": W_s, "head.b_s": b_s}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save-weights", help="write the hand-set weights to an .npz for `rnncompile run --weights`")
    args = ap.parse_args(argv)
    program = compile(HERE / "spec.yaml")
    params = hand_weights(program)
    trees = read_trees(HERE / "treebank.txt")
    result = run(program, trees=trees, params=params)  # level-batched: one call per height
    per_node = run(program, trees=result.forest, params=params, mode="node")
    assert np.allclose(result.outputs["p"], per_node.outputs["p"], atol=1e-6)
    right = 0
    print(f"{'gold':>4} {'pred':>4}  {'s':>6}  sentence")
    for t, tree in enumerate(trees):
        words = [w for w in tree.words if w is not None]
        gold, pred = int(tree.labels[tree.root]), int(result.outputs["p"][t].argmax())
        h = result.final_state["h"][t]
        right += gold == pred
        print(f"{gold:>4} {pred:>4}  {h[0] - h[1]:+.3f}  {' '.join(words)}{'' if gold == pred else '   <- wrong'}")
    print(f"\n{right} of {len(trees)} sentences get their label; {result.forest.size} nodes in "
          f"{len(result.schedule.groups)} batched calls (one per height)")
    print("level-batched and per-node runs agree")
    if args.save_weights:
        save_npz(args.save_weights, params)
        print(f"weights written to {args.save_weights}")


if __name__ == "__main__":
    main()
