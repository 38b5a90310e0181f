"""Accuracy of specs/sentiment.yaml with trained weights on train.txt and test.txt, by kind of review.

    python examples/sentiment/evaluate.py [--weights examples/sentiment/weights.npz]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnncompile.api import run
from rnncompile.program import compile

HERE = Path(__file__).resolve().parent
SPEC = HERE.parents[1] / "specs" / "sentiment.yaml"


def kind(text: str) -> str:
    words = text.split()
    if "but" in words:
        return "... but ..."
    if "not" in words:
        return "not"
    return "plain" if words[0] == "the" else "loved/hated"


def predictions(program, weights: Path, data: Path) -> np.ndarray:
    arrays = np.load(data)
    res = run(program, inputs={"w": arrays["w"]}, lengths=arrays["lengths"], weights=weights)
    return res.outputs["p"].argmax(-1)


def main(argv=None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=HERE / "weights.npz")
    args = ap.parse_args(argv)
    program = compile(SPEC)
    accuracy = {}
    for name in ("train", "test"):
        rows = [line.split("\t") for line in (HERE / f"{name}.txt").read_text().splitlines()]
        pred = predictions(program, args.weights, HERE / f"{name}.npz")
        right = np.array([int(label) == p for (label, _), p in zip(rows, pred)])
        accuracy[name] = float(right.mean())
        kinds = {}
        for (_, text), ok in zip(rows, right):
            kinds.setdefault(kind(text), []).append(ok)
        by_kind = ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in sorted(kinds.items()))
        print(f"{name:5s} accuracy {right.sum()}/{len(rows)} = {right.mean():.1%}  ({by_kind})")
        if name == "test":
            wrong = [text.strip() for (_, text), ok in zip(rows, right) if not ok]
            print("wrong on test:", "; ".join(wrong[:5]) or "none")
    return accuracy


if __name__ == "__main__":
    main()
