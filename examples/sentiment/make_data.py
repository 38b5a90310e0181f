"""A small labelled set for specs/sentiment.yaml: short reviews in its vocabulary, 0 negative, 1 positive.

Four kinds of review, drawn with a fixed seed:

    the plot was very good .                  the adjective's polarity
    the acting is not boring .                `not` flips it
    the film was bad but the acting was fun . after `but`, the second clause decides
    loved the movie .                         the verb's polarity

`train.txt` and `test.txt` hold `label<TAB>review` lines (distinct reviews of at
most 12 words, no review in both); `train.npz` and `test.npz` the same as token ids for
`rnncompile train --input` (`w` [B, 12] padded with <pad>, `lengths`, `target`).

    python examples/sentiment/make_data.py [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnncompile.program import compile

HERE = Path(__file__).resolve().parent
SPEC = HERE.parents[1] / "specs" / "sentiment.yaml"
NOUNS = ["movie", "film", "plot", "acting"]
POSITIVE, NEGATIVE = ["great", "good", "fun"], ["boring", "bad", "awful", "terrible"]
VERBS = {"loved": 1, "hated": 0}
TRAIN, TEST = 400, 200


def review(rng) -> tuple[str, int]:
    def clause() -> tuple[list[str], int]:
        adj = str(rng.choice(POSITIVE + NEGATIVE))
        label = int(adj in POSITIVE)
        words = ["the", str(rng.choice(NOUNS)), str(rng.choice(["was", "is"]))]
        if rng.random() < 0.4:
            words.append("not")
            label = 1 - label
        if rng.random() < 0.3:
            words.append(str(rng.choice(["very", "really"])))
        return words + [adj], label

    kind = rng.random()
    if kind < 0.15:
        verb = str(rng.choice(list(VERBS)))
        return f"{verb} {rng.choice(['the', 'a'])} {rng.choice(NOUNS)} .", VERBS[verb]
    first, label = clause()
    if kind < 0.45:
        second, label = clause()
        first = first + ["but"] + second
    return " ".join(first + ["."]), label


def make(seed: int = 0, longest: int = 12) -> tuple[list, list]:
    """Distinct reviews of at most `longest` words (the spec's T), split into train and test."""
    rng = np.random.default_rng(seed)
    seen, rows = set(), []
    while len(rows) < TRAIN + TEST:
        text, label = review(rng)
        if text not in seen and len(text.split()) <= longest:
            seen.add(text)
            rows.append((label, text))
    rows = [rows[i] for i in rng.permutation(len(rows))]  # short reviews come first: mix before splitting
    return rows[:TRAIN], rows[TRAIN:]


def as_arrays(program, rows) -> dict[str, np.ndarray]:
    tokens, steps = program.vocab.tokens, program.checked.steps(None)
    w = np.zeros((len(rows), steps), np.int64)  # <pad> is id 0
    lengths = np.zeros(len(rows), np.int64)
    for i, (_, text) in enumerate(rows):
        ids = [tokens.index(word) for word in text.split()]
        w[i, :len(ids)], lengths[i] = ids, len(ids)
    return {"w": w, "lengths": lengths, "target": np.array([label for label, _ in rows], np.int64)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    program = compile(SPEC)
    for name, rows in zip(("train", "test"), make(longest=program.checked.steps(None))):
        (args.out / f"{name}.txt").write_text("".join(f"{label}\t{text}\n" for label, text in rows))
        np.savez_compressed(args.out / f"{name}.npz", **as_arrays(program, rows))
        positive = sum(label for label, _ in rows)
        print(f"wrote {args.out / name}.txt and .npz: {len(rows)} reviews, {positive} positive")


if __name__ == "__main__":
    main()
