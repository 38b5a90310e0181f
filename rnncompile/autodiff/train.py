"""Training: batches from a text or an .npz dataset, an optimizer, clipping, truncated BPTT.

A predictor given a text learns the next token: inputs `text[:-1]`, targets
`text[1:]`. The text is cut into `batch` contiguous streams, each read in
windows of `bptt` steps; with `carry` (truncated BPTT, `--bptt K`) the state
at the end of a window starts the next one in the same stream and the
gradient stops there, otherwise every window starts from the spec's start
state. An .npz dataset holds the inputs, `target` and optionally `lengths`,
and is read in batches of `batch` sequences.

Optimizers: SGD (with momentum) and Adam (Kingma & Ba 2015); the gradient is
clipped by its global norm first. Everything is seeded: the same call gives
the same weights.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, UsageError
from .bptt import GradProgram

OPTIMIZERS = ("sgd", "adam")


@dataclass
class Batch:
    inputs: dict
    target: np.ndarray | None  # None: an encoder-decoder's loss reads the target it is fed
    lengths: object = None  # [B], or a dict of them by input name
    stream_start: bool = True  # the first window of its streams (truncated BPTT starts from the start state)


@dataclass
class History:
    epochs: list[float] = field(default_factory=list)  # mean loss per real step (per sequence for one loss each)
    seconds: list[float] = field(default_factory=list)
    tokens: int = 0


def text_windows(program, text: str, batch: int, steps: int) -> list[Batch]:
    """A text as next-token windows: `batch` contiguous streams, each cut into windows of `steps`."""
    from ..vocab import Vocab

    name = _token_input(program)
    vocab = Vocab(program.vocab)
    ids = np.asarray(vocab.encode(text), np.int64)
    per_stream = (len(ids) - 1) // batch
    if per_stream < 1:
        raise DataError(f"the text has {len(ids)} tokens: too short for {batch} streams of at least 2 "
                        f"(give a longer text or a smaller --batch)")
    x = ids[:batch * per_stream].reshape(batch, per_stream)
    y = ids[1:batch * per_stream + 1].reshape(batch, per_stream)
    out = []
    for start in range(0, per_stream, steps):
        out.append(Batch({name: x[:, start:start + steps]}, y[:, start:start + steps], None, start == 0))
    return out


def dataset_batches(arrays: dict, program, batch: int, rng) -> list[Batch]:
    """An .npz dataset (inputs by name, `target`, optional `lengths`) in shuffled batches of `batch`."""
    names = list(program.plan.inputs)
    wanted = names + ([] if program.plan.decoder is not None else ["target"])
    missing = [n for n in wanted if n not in arrays]
    if missing:
        raise DataError(f"the dataset has no `{missing[0]}` (it holds {', '.join(arrays) or 'nothing'}; a training "
                        f"set needs {', '.join(names)} and target)")
    count = len(arrays[names[0]])
    order = rng.permutation(count)
    out = []
    for start in range(0, count, batch):
        idx = order[start:start + batch]
        lengths = arrays.get("lengths")
        if isinstance(lengths, dict):
            lengths = {n: v[idx] for n, v in lengths.items()}
        elif lengths is not None:
            lengths = lengths[idx]
        target = arrays["target"][idx] if "target" in arrays else None
        out.append(Batch({n: arrays[n][idx] for n in names}, target, lengths))
    return out


def _token_input(program) -> str:
    infos = {n: program.plan.input_dtypes.get(n, "float") for n in program.plan.inputs}
    if program.vocab is None or len(infos) != 1 or next(iter(infos.values())) != "token":
        raise UsageError(f"{program.checked.file}: training on a text needs a spec with a vocabulary and one token "
                         f"input (a character or word predictor)")
    return next(iter(infos))


class Optimizer:
    def __init__(self, kind: str, lr: float, momentum: float = 0.9, betas=(0.9, 0.999), eps: float = 1e-8):
        if kind not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer `{kind}`; use one of: {', '.join(OPTIMIZERS)}")
        if not (math.isfinite(lr) and lr > 0):
            raise UsageError(f"--lr {lr}: give a positive learning rate")
        self.kind, self.lr, self.momentum, self.betas, self.eps = kind, lr, momentum, betas, eps
        self.m: dict = {}
        self.v: dict = {}
        self.t = 0

    def step(self, params: dict, grads: dict) -> None:
        self.t += 1
        for k, g in grads.items():
            if self.kind == "sgd":
                m = self.m[k] = self.momentum * self.m.get(k, 0) + g
                params[k] = params[k] - self.lr * m
                continue
            b1, b2 = self.betas
            m = self.m[k] = b1 * self.m.get(k, 0) + (1 - b1) * g
            v = self.v[k] = b2 * self.v.get(k, 0) + (1 - b2) * g * g
            mhat, vhat = m / (1 - b1 ** self.t), v / (1 - b2 ** self.t)
            params[k] = params[k] - self.lr * mhat / (np.sqrt(vhat) + self.eps)


def clip_by_norm(grads: dict, limit: float | None) -> float:
    """Scale every gradient so their global norm is at most `limit`; returns the norm before."""
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    if limit is not None and norm > limit:
        for k in grads:
            grads[k] = grads[k] * (limit / norm)
    return norm


def train(program, params: dict, batches_for_epoch, epochs: int, lr: float, optimizer: str = "adam",
          clip: float | None = 5.0, carry: bool = False, loss: str = "xent", backend: str = "numpy",
          dtype: str = "float32", progress=None, on_epoch=None) -> History:
    """Train `params` in place. `batches_for_epoch(epoch)` gives the epoch's Batch list; `on_epoch(epoch, loss)`
    is told each epoch's mean loss per real step; `progress` is a tqdm bar of every epoch's batches (or None)."""
    if epochs < 1:
        raise UsageError("--epochs must be at least 1")
    gp = GradProgram(program, loss, backend=backend, dtype=dtype)
    opt = Optimizer(optimizer, lr)
    history = History()
    for epoch in range(epochs):
        started, total, count, state = time.perf_counter(), 0.0, 0.0, None
        for b in batches_for_epoch(epoch):
            init = None if (not carry or b.stream_start or state is None) else state
            size = len(next(iter(b.inputs.values())))
            if init is not None and len(next(iter(init.values()))) != size:
                init = None
            g = gp(b.inputs, b.target, params, b.lengths, init)
            state = g.final_state
            clip_by_norm(g.grads, clip)
            opt.step(params, g.grads)
            batch = size
            total += g.loss * batch  # the batch's summed loss (the loss is a mean over the batch)
            count += g.tokens
            history.tokens += int(g.tokens)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(epoch=epoch + 1, loss=f"{g.loss * batch / max(g.tokens, 1):.3f}",
                                     tok_s=f"{count / max(time.perf_counter() - started, 1e-9):.0f}",
                                     refresh=False)
        mean = total / max(count, 1.0)
        history.epochs.append(mean)
        history.seconds.append(time.perf_counter() - started)
        if on_epoch is not None:
            on_epoch(epoch, mean)
    return history
