"""Training sweeps (`rnncompile sweep SPEC --train DATA`): the data, read once on the client and shipped to
every worker, and the task that trains one grid point for each seed with rnncompile.autodiff.train.

A point trains exactly as `rnncompile train` does with its settings: the spec's seeded weights for the
seed, a text cut into `batch` streams read in windows of `bptt` steps with the state carried (or of
`steps`, else the time dim, each from the start state), a dataset in batches of `batch` sequences shuffled
by the seed's generator; the point's optimizer, learning rate, clipping and epochs. With a validation
share, the last part of the text (or of the sequences) is held out and its loss measured with the trained
weights, the same loss per real step as training reports.
"""
from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass

from .errors import DataError, UsageError

MAX_TEXT_BYTES = 64 * 2**20


@dataclass
class TrainData:
    """A training set as the workers get it: a text, or the arrays of a dataset file."""

    name: str  # the file it came from
    sha: str  # of its bytes: a results row is found again only for the same data
    text: str | None = None
    arrays: dict | None = None
    val_split: float | None = None  # the share held out for the validation loss


def read_train_data(path, program, val_split: float | None) -> TrainData:
    """`--train DATA`: a .npz or .json dataset (inputs, `target`, `lengths` or `mask`, as `rnncompile train
    --input` reads it) or any other file as a text (as `train --text`); checked against `program`."""
    from pathlib import Path

    from .autodiff.commands import read_training_file
    from .files import read_bytes

    if val_split is not None and not 0 < val_split < 1:
        raise UsageError(f"--val-split {val_split:g}: give the held-out share, between 0 and 1 (e.g. 0.1)")
    raw = read_bytes(path, MAX_TEXT_BYTES)
    sha = hashlib.sha256(raw).hexdigest()[:12]
    if Path(path).suffix.lower() in (".npz", ".json"):
        return TrainData(str(path), sha, arrays=read_training_file(program, path), val_split=val_split)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); a dataset is a .npz or .json "
                        f"of inputs and `target`") from None
    from .autodiff.train import text_windows

    text_windows(program, text, 1, program.checked.steps(None))  # the spec reads a text: a vocabulary, tokens
    return TrainData(str(path), sha, text=text, val_split=val_split)


def split_text(text: str, share: float) -> tuple[str, str]:
    """The text before and after the cut that holds out about `share` of it (at a blank, so that a word-level
    vocabulary splits no word)."""
    cut = int(len(text) * (1 - share))
    blank = re.compile(r"\s").search(text, cut)
    cut = blank.start() if blank else cut
    return text[:cut], text[cut:]


def split_arrays(arrays: dict, names, share: float) -> tuple[dict, dict]:
    """A dataset's first sequences and its last `share` of them (at least one)."""
    count = len(arrays[names[0]])
    if count < 2:
        raise DataError(f"the dataset has {count} sequence: too few to hold some out (--val-split)")
    cut = count - max(1, min(count - 1, round(count * share)))

    def part(s):
        return {k: ({n: a[s] for n, a in v.items()} if isinstance(v, dict) else v[s]) for k, v in arrays.items()}
    return part(slice(0, cut)), part(slice(cut, None))


def training_plan(program, data: TrainData, settings: dict, seed: int):
    """(batches_for_epoch, held-out batches or None, carry, window steps) as `rnncompile train` makes them."""
    import numpy as np

    from .autodiff.train import dataset_batches, text_windows

    batch, bptt = settings["batch"], settings.get("bptt")
    if data.text is not None:
        steps = bptt or program.checked.steps(settings.get("steps"))
        text, held = split_text(data.text, data.val_split) if data.val_split else (data.text, None)
        windows = text_windows(program, text, batch, steps)
        val = None
        if held is not None:
            from .vocab import Vocab

            count = len(Vocab(program.vocab).encode(held))
            if count < 2:
                raise DataError(f"--val-split {data.val_split:g} holds out {count} token of {data.name}: give a "
                                f"larger share or a longer text")
            val = text_windows(program, held, max(1, min(batch, (count - 1) // steps)), steps)
        return (lambda epoch: windows), val, bool(bptt), steps  # streams keep their order: the state carries
    if bptt:
        raise UsageError("bptt cuts a text into windows; a dataset's sequences are trained whole (leave bptt out)")
    arrays, held = data.arrays, None
    if data.val_split:
        arrays, held = split_arrays(arrays, list(program.plan.inputs), data.val_split)
    rng = np.random.default_rng(seed)
    val = dataset_batches(held, program, batch, np.random.default_rng(0)) if held is not None else None
    steps = np.shape(arrays[next(iter(program.plan.inputs))])[1]
    return (lambda epoch: dataset_batches(arrays, program, batch, rng)), val, False, steps


def held_out_loss(program, params: dict, batches, carry: bool, loss: str, backend: str, dtype: str) -> float:
    """The mean loss per real step (per sequence for one loss each) of the trained weights on held-out batches,
    the state carried from window to window as in training."""
    from .autodiff.bptt import GradProgram

    gp = GradProgram(program, loss, backend=backend, dtype=dtype)
    total = count = 0.0
    state = None
    for b in batches:
        size = len(next(iter(b.inputs.values())))
        init = state if carry and not b.stream_start and state is not None else None
        if init is not None and len(next(iter(init.values()))) != size:
            init = None
        g = gp(b.inputs, b.target, params, b.lengths, init)
        state = g.final_state
        total += g.loss * size  # the batch's summed loss (the loss is a mean over the batch)
        count += g.tokens
    return total / max(count, 1.0)


def train_point(spec_text: str, spec_file: str, spec_sha: str, point, seeds, dim_names, data: TrainData) -> list[dict]:
    """Compile the point once and train it from each seed's weights: one row each (settings, final and
    held-out loss, loss per epoch, tokens per second, timings)."""
    from . import api
    from .autodiff.losses import default_loss
    from .autodiff.train import train
    from .sweep import compile_point, row_key

    s = point.settings
    t0 = time.perf_counter()
    program = compile_point(spec_text, spec_file, s, dim_names)
    kind = default_loss(program, None)
    compile_s = time.perf_counter() - t0
    params_count = sum(math.prod(p.shape) for p in program.params.values())
    rows = []
    for seed in seeds:
        params = api.make_params(program, seed, None, s["dtype"])
        batches_for_epoch, val, carry, steps = training_plan(program, data, s, seed)
        t0 = time.perf_counter()
        history = train(program, params, batches_for_epoch, s["epochs"], s["lr"], s["optimizer"], s["clip"], carry,
                        kind, s["backend"], s["dtype"])
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        val_loss = held_out_loss(program, params, val, carry, kind, s["backend"], s["dtype"]) if val else None
        eval_s = time.perf_counter() - t0
        seconds = sum(history.seconds)
        row = {"key": row_key(spec_sha, s, seed), "spec": spec_file, "spec_sha": spec_sha, **dict(point.swept),
               **{k: v for k, v in point.fixed if k != "steps"}, "steps": steps, "seed": seed, "params": params_count,
               "data": data.name, "loss": kind, "train_loss": history.epochs[-1], "val_loss": val_loss,
               "loss_per_epoch": [float(v) for v in history.epochs], "tokens": history.tokens,
               "tokens_per_s": history.tokens / max(seconds, 1e-9),
               "compile_s": compile_s, "train_s": train_s, "eval_s": eval_s if val else None}
        rows.append(row)
    return rows
