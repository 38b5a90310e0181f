"""Accuracy of the final word ("... he speaks <language>") against the number of distractor sentences, for a
vanilla RNN, a GRU and an LSTM word predictor, over several seeds.

    nice -n 10 python3 examples/long_range/table.py            # the README's table (k = 0, 2, 5, 10; 5 seeds)
    python3 examples/long_range/table.py --distractors 0 --seeds 1 --epochs 1   # a smoke run

For each distractor count k it runs `rnncompile train SPEC --input k<k>/train.npz --epochs E --batch B --lr LR
--seed S --save-weights ...` (in this process, through rnncompile.cli) on the data make_data.sh wrote, then
measures on k<k>/test.npz the fraction of sequences whose most likely word after "he speaks" is their language
(chance: 1 in 8).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPECS = HERE.parents[1] / "specs"
MODELS = {"RNN": "long_range_rnn.yaml", "GRU": "long_range_gru.yaml", "LSTM": "long_range_lstm.yaml"}


def train_command(spec: Path, data: Path, seed: int, epochs: int, batch: int, lr: float, out: Path) -> list[str]:
    return ["train", str(spec), "--input", str(data), "--epochs", str(epochs), "--batch", str(batch),
            "--lr", f"{lr:g}", "--seed", str(seed), "--save-weights", str(out), "--no-progress"]


def run_cli(args: list[str]) -> str:
    """`rnncompile ARGS` in this process; returns what it printed (raises on a failure)."""
    from rnncompile.cli import cli

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            cli.main(args, prog_name="rnncompile", standalone_mode=False)
        except SystemExit as e:
            if e.code:
                raise RuntimeError(f"rnncompile {' '.join(args)} failed:\n{printed.getvalue()}") from None
    return printed.getvalue()


def train_and_score(spec: Path, folder: Path, test: dict, seed: int, epochs: int, batch: int, lr: float) -> float:
    from rnncompile.corpora.long_range import final_word_accuracy
    from rnncompile.params import make_params
    from rnncompile.program import compile as compile_program

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "w.npz"
        run_cli(train_command(spec, folder / "train.npz", seed, epochs, batch, lr, weights))
        program = compile_program(spec)
        params = make_params(program, seed, weights, "float32")
    return final_word_accuracy(program, params, test)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--distractors", default="0,2,5,10", help="distractor counts (folders k<k>/ beside this file)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--models", default=",".join(MODELS))
    a = ap.parse_args(argv)
    counts = [int(k) for k in a.distractors.split(",")]
    models = a.models.split(",")
    started = time.perf_counter()
    scores: dict[tuple[str, int], list[float]] = {}
    for k in counts:
        folder = HERE / f"k{k}"
        if not (folder / "train.npz").exists():
            print(f"{folder}/train.npz is missing: run examples/long_range/make_data.sh", file=sys.stderr)
            return 2
        train, test = dict(np.load(folder / "train.npz")), dict(np.load(folder / "test.npz"))
        for model in models:
            for seed in range(a.seeds):
                acc = train_and_score(SPECS / MODELS[model], folder, test, seed, a.epochs, a.batch, a.lr)
                scores.setdefault((model, k), []).append(acc)
                print(f"k={k} {model} seed {seed}: {acc:.3f}  ({time.perf_counter() - started:.0f} s)",
                      file=sys.stderr, flush=True)
    print("| distractor sentences | " + " | ".join(models) + " |")
    print("|---:|" + "---:|" * len(models))
    for k in counts:
        cells = [f"{np.mean(scores[m, k]):.2f} ± {np.std(scores[m, k]):.2f}" for m in models]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print(f"\nfinal-word accuracy on {len(test['w'])} test sentences, mean ± std over {a.seeds} seeds; "
          f"{a.epochs} epochs of {len(train['w'])} sentences, batch {a.batch}, adam lr {a.lr:g}, clip 5; "
          f"chance 0.125; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
