"""The lecture's long-range example as data: "he was born in china . ... . he speaks chinese ."

Each example is one line: a birth country, `k` distractor sentences that say
nothing about it, then the language that country speaks:

    he was born in france . she laughed . the dog slept . he speaks french .

The final word can only be predicted by remembering the country across the
distractors, so the accuracy of that one word against `k` measures how far
back a trained predictor carries information. Distractors are drawn from a
small grammar (subject, verb) with a seeded generator; the same arguments
always write the same files.

    python -m rnncompile.corpora.long_range --distractors 5 --seed 0 --train 600 --test 200 -o examples/long_range/k5

writes `train.txt`, `test.txt` (one example a line) and `train.npz`, `test.npz`
(what `rnncompile train --input` reads: `w` [N, T] token ids padded with
`<eos>`, `target` = the next token, `lengths`), and `--vocab FILE` writes the
word list the long_range specs read.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PAIRS = (("france", "french"), ("germany", "german"), ("spain", "spanish"), ("italy", "italian"),
         ("china", "chinese"), ("japan", "japanese"), ("russia", "russian"), ("greece", "greek"))
SUBJECTS = ("he", "she", "they", "we", "the dog", "the child", "his friend", "my father")
VERBS = ("smiled", "laughed", "left", "slept", "waited", "sang", "worked", "ran")  # short: the lag is in sentences
SPECIALS = ("<unk>", "<eos>")  # <eos> ends (and pads) every example
PROMPT_END = "he speaks"  # the words just before the answer


def vocabulary() -> list[str]:
    """Every token an example can hold, in a fixed order (the specials first)."""
    words = list(SPECIALS) + [".", "he", "was", "born", "in", "speaks"]
    for phrase in SUBJECTS + VERBS:
        words += [w for w in phrase.split() if w not in words]
    for country, language in PAIRS:
        words += [country, language]
    return list(dict.fromkeys(words))


def distractor(rng: np.random.Generator) -> str:
    return f"{SUBJECTS[rng.integers(len(SUBJECTS))]} {VERBS[rng.integers(len(VERBS))]}"


def example(rng: np.random.Generator, distractors: int) -> tuple[str, str]:
    """One line and its answer (the language)."""
    country, language = PAIRS[rng.integers(len(PAIRS))]
    middle = "".join(f" {distractor(rng)} ." for _ in range(distractors))
    return f"he was born in {country} .{middle} {PROMPT_END} {language} .", language


def parse_range(text) -> tuple[int, int]:
    """`5` -> (5, 5); `0-10` -> (0, 10): the distractor counts an example may have (uniform)."""
    low, _, high = str(text).partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"distractors {text!r}: write a count (5) or a range (0-10)") from None
    if lo < 0 or hi < lo:
        raise ValueError(f"distractors {text!r}: give counts from 0 up, the smaller first")
    return lo, hi


def examples(count: int, distractors, seed: int) -> list[str]:
    """`count` seeded lines, each with a distractor count drawn uniformly from `distractors` (an int or
    `lo-hi`)."""
    if count < 1:
        raise ValueError(f"examples: give at least 1 (got {count})")
    lo, hi = parse_range(distractors)
    rng = np.random.default_rng([seed, lo, hi])
    return [example(rng, int(rng.integers(lo, hi + 1)))[0] for _ in range(count)]


def encode(lines: list[str]) -> dict[str, np.ndarray]:
    """Lines as a training set: `w` [N, T] (each line then <eos>, padded with <eos>), `target` (the next token
    of each step) and `lengths` (each line's real steps: its words; the last predicts <eos>)."""
    index = {t: i for i, t in enumerate(vocabulary())}
    eos = index["<eos>"]
    ids = []
    for n, line in enumerate(lines):
        unknown = [w for w in line.split() if w not in index]
        if unknown:
            raise ValueError(f"line {n + 1}: {unknown[0]!r} is not in the long_range vocabulary")
        ids.append([index[w] for w in line.split()] + [eos])
    steps = max(len(x) for x in ids) - 1
    w = np.full((len(ids), steps), eos, np.int64)
    target = np.full((len(ids), steps), eos, np.int64)
    lengths = np.zeros(len(ids), np.int64)
    for n, x in enumerate(ids):
        w[n, :len(x) - 1] = x[:-1]
        target[n, :len(x) - 1] = x[1:]
        lengths[n] = len(x) - 1
    return {"w": w, "target": target, "lengths": lengths}


def answer_steps(data: dict[str, np.ndarray]) -> np.ndarray:
    """For each sequence, the step whose prediction is the final word (the step reading `speaks`)."""
    return data["lengths"] - 3  # ... speaks | language | .  -> <eos>


def write(folder, distractors, seed: int, train: int, test: int) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = examples(train + test, distractors, seed)
    written = []
    for name, part in (("train", lines[:train]), ("test", lines[train:])):
        txt, npz = folder / f"{name}.txt", folder / f"{name}.npz"
        txt.write_text("\n".join(part) + "\n", encoding="utf-8")
        np.savez_compressed(npz, **encode(part))
        written += [txt, npz]
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rnncompile.corpora.long_range", description=__doc__.split("\n")[0])
    ap.add_argument("--distractors", "-k", default="2", help="distractor sentences between the two facts: a count "
                                                               "(5) or a range drawn uniformly (0-10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=1000, help="training examples")
    ap.add_argument("--test", type=int, default=200, help="test examples")
    ap.add_argument("--output", "-o", help="folder for train/test .txt and .npz")
    ap.add_argument("--vocab", help="write the vocabulary (one token a line) to this file")
    ap.add_argument("--print", dest="show", type=int, default=0, metavar="N", help="print N examples")
    a = ap.parse_args(argv)
    for option, value, low in (("--train", a.train, 1), ("--test", a.test, 1)):
        if value < low:
            ap.error(f"{option} {value}: give {low} or more")
    try:
        parse_range(a.distractors)
    except ValueError as e:
        ap.error(str(e))
    if a.vocab:
        Path(a.vocab).write_text("\n".join(vocabulary()) + "\n", encoding="utf-8")
        print(f"wrote {a.vocab} ({len(vocabulary())} tokens)")
    if a.show:
        print("\n".join(examples(a.show, a.distractors, a.seed)))
    if a.output:
        for p in write(a.output, a.distractors, a.seed, a.train, a.test):
            print(f"wrote {p}")
    if not (a.vocab or a.show or a.output):
        ap.error("nothing to do: give --output FOLDER, --vocab FILE or --print N")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def final_word_accuracy(program, params: dict, data: dict[str, np.ndarray], batch: int = 256) -> float:
    """The fraction of sequences whose most likely next word after `... he speaks` is their language."""
    from ..api import run

    steps = answer_steps(data)
    rows = np.arange(len(steps))
    right = 0
    for start in range(0, len(steps), batch):
        part = slice(start, start + batch)
        result = run(program, inputs={"w": data["w"][part]}, params=params, lengths=data["lengths"][part])
        (p,) = result.outputs.values()  # the predictor's one output: the next word's distribution
        guess = p[rows[part] - start, steps[part]].argmax(axis=-1)
        right += int((guess == data["target"][rows[part], steps[part]]).sum())
    return right / len(steps)
