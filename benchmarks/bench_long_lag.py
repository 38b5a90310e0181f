"""Long-lag benchmarks after Hochreiter & Schmidhuber (1997): the original LSTM, the LSTM with a forget gate and the
vanilla RNN, each trained from several seeds on each task; success rates and the training sequences to solve.

    python benchmarks/bench_long_lag.py [--quick] [--seeds 10] [--tasks long_lag_100,adding,...] [--models ...]

Models (specs/tasks/<model>_<head>.yaml): lstm1997 (input and output gates, no forget gate: specs/lstm1997.yaml's
cell), lstm (a forget gate) and rnn (tanh, the paper's "BPTT" baseline: full backpropagation through time). All
are trained the same way, in process with autodiff.GradProgram and Adam, on freshly generated sequences (one
batch at a time), with the gradient's global norm clipped to 5. Every `check` sequences the model is tested on
held-out sequences; it has solved the task when it gets the task's share of them right by the task's criterion
(rnncompile.tasks.long_lag), and the sequences seen up to then are its "sequences to solve". A run that has not
solved the task within the budget failed.

Prints one `task model solved/seeds` line per pair as it finishes, then a markdown table. The paper's figure for
experiment 2a at p = 100: LSTM solved 18 of 18 trials, after 5,040 training sequences on average; BPTT (the
gradient of the vanilla RNN) solved 0 of 18.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("lstm1997", "lstm", "rnn")
CLIP = 5.0


@dataclass(frozen=True)
class Task:
    name: str
    what: str  # the sizes, for the table
    head: str  # specs/tasks/<model>_<head>.yaml
    loss: str
    dims: dict  # I, O, H
    make: object  # (n, rng) -> data dict
    correct: object  # (outputs, data) -> [B] bool
    share: float  # the share of the test sequences to get right
    criterion: str
    batch: int
    lr: float
    budget: int  # training sequences before a run counts as failed
    check: int  # test every this many training sequences
    tests: int  # held-out sequences (the long lag's two sequences are its whole data)
    paper: str = ""


def _tasks(quick: bool) -> dict[str, Task]:
    from rnncompile.tasks import long_lag as L

    def lag(p, budget, check, paper=""):
        return Task(f"long_lag_{p}", f"2a, p = {p}", "next", "xent", {"I": p + 1, "O": p + 1, "H": 8},
                    partial(L.noise_free_long_lag, p=p), L.long_lag_correct, 1.0,
                    "every output unit within 0.25 of its target at every step, on both sequences (the paper's)",
                    1, 0.01, budget, check, 2, paper)

    def adding(steps, share, tests, budget, check):
        return Task("adding", f"4, T = {steps} (paper: 100)", "regress", "mse", {"I": 2, "O": 1, "H": 8},
                    partial(L.adding_problem, steps=steps), L.adding_correct, share,
                    f"{share:.0%} of {tests} test sequences within 0.04 at the end (paper: all but 1 of 2,560)",
                    32, 0.01, budget, check, tests)

    def order(length, share, tests, budget, check):
        return Task("temporal_order", f"6a, length {length} (paper: 100)", "classify", "xent",
                    {"I": 8, "O": 4, "H": 8}, partial(L.temporal_order, length=length), L.temporal_order_correct,
                    share, f"{share:.0%} of {tests} test sequences with every output unit within 0.3 (paper: all "
                    f"of 2,560)", 32, 0.01, budget, check, tests)

    def reber(share, tests, budget, check):
        return Task("reber", "1, embedded Reber", "next", "xent", {"I": 7, "O": 7, "H": 8}, L.embedded_reber,
                    L.reber_correct, share, f"{share:.0%} of {tests} test strings with the allowed next symbols "
                    f"the most probable at every step", 16, 0.01, budget, check, tests)

    if quick:
        tasks = [lag(10, 1_500, 20), adding(10, 0.9, 200, 3_200, 320), order(10, 0.9, 200, 3_200, 320),
                 reber(0.9, 200, 3_200, 320)]
    else:
        tasks = [lag(10, 3_000, 20), lag(30, 5_000, 20), order(20, 0.95, 500, 32_000, 640),
                 adding(20, 0.95, 500, 32_000, 640), reber(1.0, 500, 32_000, 320),
                 lag(100, 10_000, 50, "LSTM 18/18 at 5,040 seqs (mean); BPTT 0/18")]
    return {t.name: t for t in tasks}


@dataclass
class Outcome:
    solved: bool
    sequences: int  # seen when solved (or the budget when not)
    share: float  # the last test's share right
    seconds: float


def train_one(task: Task, model: str, seed: int, test: dict) -> Outcome:
    import rnncompile
    from rnncompile.autodiff import GradProgram
    from rnncompile.autodiff.train import Optimizer, clip_by_norm
    from rnncompile.params import make_params

    started = time.perf_counter()
    program = rnncompile.compile(ROOT / "specs" / "tasks" / f"{model}_{task.head}.yaml", dims=task.dims)
    gp = GradProgram(program, task.loss, dtype="float32")
    params = make_params(program, seed, None, "float32")
    opt = Optimizer("adam", task.lr)
    rng = np.random.default_rng(1_000 + seed)
    seen, share = 0, 0.0
    while seen < task.budget:
        batch = task.make(task.batch, seed=rng)
        g = gp({"x": batch["x"]}, batch["target"], params, batch.get("lengths"))
        clip_by_norm(g.grads, CLIP)
        opt.step(params, g.grads)
        seen += task.batch
        if seen % task.check == 0 or seen >= task.budget:
            out = rnncompile.run(program, {"x": test["x"]}, params, lengths=test.get("lengths"))
            share = float(task.correct(next(iter(out.outputs.values())), test).mean())
            if share >= task.share:
                return Outcome(True, seen, share, time.perf_counter() - started)
    return Outcome(False, seen, share, time.perf_counter() - started)


def test_set(task: Task) -> dict:
    from rnncompile.tasks import long_lag as L

    if task.name.startswith("long_lag_"):
        return L.long_lag_sequences(task.dims["I"] - 1)
    return task.make(task.tests, seed=np.random.default_rng(99))


def summary(outcomes: list[Outcome]) -> tuple[str, str]:
    solved = [o.sequences for o in outcomes if o.solved]
    rate = f"{len(solved)}/{len(outcomes)}"
    if not solved:
        return rate, "-"
    return rate, f"{statistics.median(solved):,.0f} (mean {statistics.mean(solved):,.0f})"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: small tasks, 2 seeds, a small budget")
    p.add_argument("--seeds", type=int, help="seeds per task and model [10; --quick: 2]")
    p.add_argument("--tasks", help="comma-separated tasks [all]")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated models [{','.join(MODELS)}]")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    tasks = _tasks(args.quick)
    names = args.tasks.split(",") if args.tasks else list(tasks)
    unknown = [n for n in names if n not in tasks] + [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        p.error(f"unknown task or model `{unknown[0]}`; tasks: {', '.join(tasks)}; models: {', '.join(MODELS)}")
    seeds = args.seeds or (2 if args.quick else 10)
    started = time.perf_counter()
    rows = []
    for name in names:
        task, test = tasks[name], test_set(tasks[name])
        for model in args.models.split(","):
            outcomes = [train_one(task, model, seed, test) for seed in range(seeds)]
            rate, to_solve = summary(outcomes)
            seconds = sum(o.seconds for o in outcomes)
            print(f"{name} {model} {rate}  sequences to solve: {to_solve}  ({seconds:.0f} s)", flush=True)
            rows.append((task, model, rate, to_solve, seconds, outcomes))
    print(f"\ntotal {time.perf_counter() - started:.0f} s, {seeds} seeds\n")
    print("| task | model | solved | training sequences to solve, median | budget | time | paper |")
    print("|---|---|---|---|---|---|---|")
    for task, model, rate, to_solve, seconds, _ in rows:
        print(f"| {task.what} | {model} | {rate} | {to_solve} | {task.budget:,} | {seconds:.0f} s | "
              f"{task.paper if model == 'lstm1997' else ''} |")
    print("\nsolved when:")
    for name in names:
        t = tasks[name]
        print(f"  {t.what}: {t.criterion}; batches of {t.batch}, Adam lr {t.lr:g}, H = {t.dims['H']}, "
              f"tested every {t.check:,} sequences")


if __name__ == "__main__":
    main()
