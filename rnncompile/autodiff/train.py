"""Training: the loop over epochs and batches, validation, early stopping, checkpoints and resuming.

`train` updates params in place from the batches of each epoch (datasets.py
makes them from texts, arrays, tree banks and source/target pairs): the
gradient of each batch (GradProgram for sequences, TreeGradProgram for
trees), clipped by value and then by global norm, one optimizer step
(optim.py). With truncated BPTT (`carry`) the state at the end of a window
starts the next window of the same stream and the gradient stops there.
After every epoch: the validation loss (the same loss, no update), early
stopping on it (`patience` epochs without a new best ends the run, and the
best epoch's weights are kept), and a checkpoint that lets a run continue
exactly — weights, optimizer moments, step count, the shuffling generator,
the history: 2 epochs and a resume for 2 more give the 4-epoch run's weights
bit for bit. `fit` sets a run up from options, as `rnncompile train` and
`rnncompile.train` give them. Everything is seeded.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import DataError, UsageError
from . import checkpoint as ckpt
from .datasets import Batch, TrainingSet
from .optim import OPTIMIZERS, SCHEDULES, Optimizer, Schedule, clip_by_norm, clip_by_value

__all__ = ["Batch", "History", "Optimizer", "OPTIMIZERS", "SCHEDULES", "Schedule", "TrainResult", "clip_by_norm",
           "clip_by_value", "dataset_batches", "fit", "text_windows", "train"]


@dataclass
class History:
    epochs: list[float] = field(default_factory=list)  # mean loss per real step (per sequence for one loss each)
    validation: list[float] = field(default_factory=list)  # the held-out data's, each epoch
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # the learning rate of each epoch's last step
    tokens: int = 0  # the real steps trained on (trees, or nodes, for a tree model)
    unit: str = "token"  # what the losses are a mean over: token, step, tree or node
    best_epoch: int | None = None  # 1-based: the epoch of the lowest validation loss
    stopped_early: bool = False


@dataclass
class TrainResult:
    params: dict  # the trained weights, keyed as weight files (save with params.save_npz)
    history: History

    def __iter__(self):  # params, history = rnncompile.train(...)
        return iter((self.params, self.history))


def text_windows(program, text: str, batch: int, steps: int) -> list[Batch]:
    """A text as next-token windows: `batch` contiguous streams, each cut into windows of `steps`."""
    from .datasets import token_input, windows
    from ..vocab import Vocab

    return windows(token_input(program), np.asarray(Vocab(program.vocab).encode(text), np.int64), batch, steps)


def dataset_batches(arrays: dict, program, batch: int, rng) -> list[Batch]:
    """An .npz dataset (inputs by name, `target`, optional `lengths`) in shuffled batches of `batch`."""
    from .datasets import _batches

    return _batches(arrays, program, batch, rng)


class _Gradient:
    """The loss and gradient of one batch: sequences by GradProgram, trees by TreeGradProgram."""

    def __init__(self, program, loss: str, backend: str, dtype: str):
        if program.plan.kind == "tree":
            from .bpts import TreeGradProgram

            self.gp, self.tree = TreeGradProgram(program, loss, backend=backend, dtype=dtype), True
        else:
            from .bptt import GradProgram

            self.gp, self.tree = GradProgram(program, loss, backend=backend, dtype=dtype), False

    def __call__(self, b: Batch, params: dict, init):
        if self.tree:
            return self.gp(b.trees, b.target, params)
        return self.gp(b.inputs, b.target, params, b.lengths, init)


def _passes(grad: _Gradient, batches, params: dict, carry: bool, step=None):
    """Each batch's gradient in order (the state carried from window to window with `carry`); `step(g)` is
    told each. Returns (the summed loss, the real steps it is over)."""
    total, count, state = 0.0, 0.0, None
    for b in batches:
        init = None if (not carry or b.stream_start or state is None) else state
        if init is not None and len(next(iter(init.values()))) != b.size:
            init = None
        g = grad(b, params, init)
        state = g.final_state
        # the batch's summed loss: its loss is a mean over the batch (reduction sum) or over its real steps
        total += g.loss * (b.size if grad.gp.reduction == "sum" else g.tokens)
        count += g.tokens
        if step is not None:
            step(g, total, count)
    return total, count


def train(program, params: dict, batches_for_epoch, epochs: int, lr=0.01, optimizer: str | Optimizer = "adam",
          clip: float | None = 5.0, carry: bool = False, loss: str = "xent", backend: str = "numpy",
          dtype: str = "float32", progress=None, on_epoch=None, *, validation=(), clip_value: float | None = None,
          patience: int | None = None, checkpoint=None, resume: dict | None = None, rng=None,
          history: History | None = None, settings: dict | None = None) -> History:
    """Train `params` in place. `batches_for_epoch(epoch)` gives the epoch's Batch list (shuffled with `rng`,
    whose state checkpoints keep); `lr`: a number or an optim.Schedule; `optimizer`: a name or an Optimizer;
    `validation`: batches whose loss is taken after every epoch; `on_epoch(epoch, loss)` is told each epoch's
    mean training loss per real step; `progress`: a tqdm bar of every epoch's batches (or None); `patience`:
    stop after that many epochs without a better validation loss and keep the best weights; `checkpoint`: a
    folder for a checkpoint after every epoch; `resume`: a loaded checkpoint (checkpoint.load) to go on from."""
    if epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if patience is not None and not validation:
        raise UsageError("--patience stops on the validation loss: give held-out data (--val-split F)")
    grad = _Gradient(program, loss, backend, dtype)
    opt = optimizer if isinstance(optimizer, Optimizer) else Optimizer(optimizer, lr)
    history = history if history is not None else History()
    best, bad, start = None, 0, 0
    if resume is not None:
        start, best, bad = _restore(resume, params, opt, rng, history)
        if history.stopped_early:  # the run it continues had ended: nothing more to do
            start = epochs
    for epoch in range(start, epochs):
        started = time.perf_counter()

        def step(g, total, count):
            clip_by_value(g.grads, clip_value)
            clip_by_norm(g.grads, clip)
            opt.step(params, g.grads)
            history.tokens += int(g.tokens)
            if progress is not None:
                progress.update(1)
                shown = {"epoch": epoch + 1, "loss": f"{total / max(count, 1.0):.3f}"}
                if history.validation:
                    shown["val"] = f"{history.validation[-1]:.3f}"
                shown["tok_s"] = f"{count / max(time.perf_counter() - started, 1e-9):.0f}"
                progress.set_postfix(shown, refresh=False)

        total, count = _passes(grad, batches_for_epoch(epoch), params, carry, step)
        history.epochs.append(total / max(count, 1.0))
        history.seconds.append(time.perf_counter() - started)
        history.lr.append(opt.schedule(max(opt.t - 1, 0)))
        stop = False
        if validation:
            vtotal, vcount = _passes(grad, validation, params, carry)
            val = vtotal / max(vcount, 1.0)
            history.validation.append(val)
            if history.best_epoch is None or val < history.validation[history.best_epoch - 1]:
                history.best_epoch, bad = epoch + 1, 0
                if patience is not None:
                    best = {k: np.array(v, copy=True) for k, v in params.items()}
            else:
                bad += 1
                stop = patience is not None and bad >= patience
            if progress is not None:
                progress.set_postfix(epoch=epoch + 1, loss=f"{history.epochs[-1]:.3f}", val=f"{val:.3f}")
        history.stopped_early = stop
        if on_epoch is not None:
            on_epoch(epoch, history.epochs[-1])
        if checkpoint is not None:
            meta = {"epoch": epoch + 1, "rng": rng.bit_generator.state if rng is not None else None,
                    "history": asdict(history), "bad_epochs": bad, "settings": settings or {}}
            ckpt.save(ckpt.path_for(checkpoint, epoch + 1), params, opt.state(), meta, best or None)
        if stop:
            break
    if patience is not None and best:
        params.update(best)
    return history


def _restore(resume: dict, params: dict, opt: Optimizer, rng, history: History):
    """Put a checkpoint's weights, optimizer state, generator and history in place; (epochs done, the best
    weights, epochs since the best)."""
    from ..errors import DataError

    where = resume["path"]
    got = resume["params"]
    if set(got) != set(params) or any(np.shape(got[k]) != np.shape(params[k]) for k in params):
        diff = sorted(set(got) ^ set(params)) or [k for k in params if np.shape(got[k]) != np.shape(params[k])]
        raise DataError(f"{where}: its weights do not fit the spec (first difference: `{diff[0]}`): a checkpoint "
                        f"resumes the run of the same spec and dims")
    kinds = {np.asarray(v).dtype for v in got.values()}
    want = {np.asarray(v).dtype for v in params.values()}
    if kinds != want:
        raise DataError(f"{where}: holds {'/'.join(sorted(map(str, kinds)))} weights, but this run is "
                        f"{'/'.join(sorted(map(str, want)))}: resume with the checkpoint's --dtype")
    params.update({k: np.array(v, copy=True) for k, v in got.items()})
    opt.load_state(resume["optimizer"])
    meta = resume["meta"]
    if rng is not None and meta.get("rng") is not None:
        rng.bit_generator.state = meta["rng"]
    for name, value in meta["history"].items():
        setattr(history, name, value)
    best = {k: np.array(v, copy=True) for k, v in resume["best"].items()} or None
    return int(meta["epoch"]), best, int(meta.get("bad_epochs", 0))


# -- a whole run from options --------------------------------------------------------------------------------
def fit(program, data=None, *, text: str | None = None, epochs: int = 10, lr: float = 0.01,
        optimizer: str = "adam", momentum: float = 0.9, nesterov: bool = False, weight_decay: float | None = None,
        clip: float | None = 5.0, clip_value: float | None = None, schedule: str = "constant", step_size: int = 100,
        gamma: float = 0.1, min_lr: float = 0.0, warmup: int = 0, bptt: int | None = None, batch: int = 16,
        seed: int = 0, weights=None, params: dict | None = None, loss: str | None = None, dtype: str = "float32",
        backend: str = "numpy", val_split: float | None = None, patience: int | None = None, checkpoint=None,
        resume=None, progress: bool = False, echo=None, data_kind: str | None = None) -> TrainResult:
    """Train a compiled program on `data` (see rnncompile.train); `echo(line)` is told the run's first line,
    each epoch's losses and notes (None: silent)."""
    from ..params import make_params
    from ..progress import bar
    from .losses import default_loss

    say = echo or (lambda line: None)
    kind = default_loss(program, loss)
    if patience is not None and patience < 1:
        raise UsageError(f"--patience {patience}: give a whole number of epochs, at least 1")
    for name, value in (("--clip", clip), ("--clip-value", clip_value)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{name} {value}: give a positive number")
    training = _training_set(program, data, text, batch, bptt, val_split, data_kind, kind)
    if training.note:
        say(training.note)
    total = epochs * training.count
    sched = Schedule(schedule, lr, total, step_size, gamma, min_lr, warmup)
    opt = Optimizer(optimizer, sched, momentum, weight_decay=weight_decay, nesterov=nesterov)
    if params is None:
        params = make_params(program, seed, weights, dtype)
    params = {k: np.array(v, dtype, copy=True) for k, v in params.items()}
    rng = np.random.default_rng(seed)
    settings = {"spec": program.name, "optimizer": optimizer, "lr": lr, "schedule": schedule, "batch": batch,
                "bptt": bptt, "seed": seed, "val_split": val_split, "dtype": dtype, "loss": kind, "clip": clip,
                "clip_value": clip_value, "weight_decay": opt.weight_decay, "momentum": momentum,
                "nesterov": nesterov, "epochs": epochs, "step_size": step_size, "gamma": gamma, "min_lr": min_lr,
                "warmup": warmup, "patience": patience}
    state = None
    if resume is not None:
        state = ckpt.load(resume)
        _check_settings(state, settings, say)
    done = int(state["meta"]["epoch"]) if state else 0
    uniform = f" (uniform: log {len(program.vocab.tokens)} = {math.log(len(program.vocab.tokens)):.3f})" \
        if kind == "xent" and program.vocab is not None and program.plan.kind != "tree" else ""
    say(f"{program.name}: training on {training.what}; {optimizer}, lr {lr:g}"
        + (f" ({schedule}{f', warmup {warmup}' if warmup else ''})" if schedule != "constant" or warmup else "")
        + (f", weight decay {opt.weight_decay:g}" if opt.weight_decay else "")
        + (f", clip {clip:g}" if clip else "") + (f", clip value {clip_value:g}" if clip_value else "")
        + f", {kind} loss{uniform}")
    if state is not None:
        say(f"resuming from {state['path']} after epoch {done}")
    if checkpoint is not None:
        from ..files import prepare_output

        prepare_output(ckpt.path_for(checkpoint, 1), (".npz",), "--checkpoint")
    unit = {"trees": "node" if program.plan.head is not None and program.plan.head.at == "every_node" else "tree"
            }.get(training.kind, "token" if kind == "xent" else "step")
    history = History(unit=unit)

    def report(epoch, mean):
        val = f"  val {history.validation[-1]:.4f}" if history.validation else ""
        best = "  (best)" if history.validation and history.best_epoch == epoch + 1 else ""
        say(f"epoch {epoch + 1}/{epochs}  loss {mean:.4f} per {unit}{val}{best}")

    batches = training.epoch
    try:
        with bar(max(epochs - done, 0) * training.count, progress, f"{program.name}: training", "batch") as shown:
            train(program, params, lambda epoch: batches(rng), epochs, sched, opt, clip, training.carry, kind,
                  backend, dtype, shown, report, validation=training.validation, clip_value=clip_value,
                  patience=patience, checkpoint=checkpoint, resume=state, rng=rng, history=history,
                  settings=settings)
    except DataError as e:  # a dataset's values the model refuses (a token id out of range): name the file
        where = str(data) if training.kind in ("arrays", "pairs") and isinstance(data, (str, os.PathLike)) else ""
        if not where or str(e).startswith(where):
            raise
        raise DataError(f"{where}: {e}") from None
    if history.stopped_early:
        say(f"early stop: no better validation loss in {patience} epochs; keeping epoch {history.best_epoch}'s "
            f"weights (val {history.validation[history.best_epoch - 1]:.4f})")
    elif patience is not None and history.best_epoch is not None:
        say(f"keeping epoch {history.best_epoch}'s weights (the best validation loss, "
            f"{history.validation[history.best_epoch - 1]:.4f})")
    return TrainResult(params, history)


def _training_set(program, data, text, batch, bptt, val_split, kind=None, loss="xent") -> TrainingSet:
    from . import datasets

    if batch < 1:
        raise UsageError("--batch must be at least 1")
    if (data is None) == (text is None):
        raise UsageError("give the training data: --data FILE (a .txt text, an .npz/.json dataset, a .tsv of "
                         "source<TAB>target pairs, or a tree bank), one of them")
    if bptt is not None and program.plan.kind == "tree":
        raise UsageError("--bptt is truncated backpropagation through time: for sequence models, not trees")
    if text is not None:
        return datasets.text_set(program, text, batch, bptt, bool(bptt), val_split)
    if isinstance(data, TrainingSet):
        return data
    if isinstance(data, dict):
        return datasets.arrays_set(program, datasets.check_training_arrays(program, dict(data), "the data"), batch,
                                   val_split, "the data", loss=loss)
    if isinstance(data, (list, tuple)):
        if program.plan.kind == "tree":
            from ..trees.parse import as_trees

            return datasets.tree_set(program, as_trees(list(data)), batch, val_split, "the trees", loss)
        pairs = [(s, t, f"pair {i}") for i, (s, t) in enumerate(data)]
        return datasets.pair_set(program, pairs, batch, val_split)
    return datasets.load(program, data, batch, bptt, bool(bptt), val_split, kind, loss)


def _check_settings(state: dict, settings: dict, say) -> None:
    """A resumed run keeps the optimizer (its state is that optimizer's); other changed settings are noted."""
    from ..errors import DataError

    old = state["meta"].get("settings", {})
    if old.get("optimizer") not in (None, settings["optimizer"]):
        raise DataError(f"{state['path']}: its run used --optimizer {old['optimizer']}, whose state does not fit "
                        f"{settings['optimizer']}; resume with --optimizer {old['optimizer']}")
    changed = [f"{k} {settings[k]} (was {old[k]})" for k in settings
               if k in old and old[k] != settings[k] and k not in ("epochs", "optimizer")]
    if old.get("epochs") not in (None, settings["epochs"]) and settings["schedule"] == "cosine":
        changed.append(f"epochs {settings['epochs']} (was {old['epochs']}: the cosine schedule now spans "
                       f"the new total)")
    if changed:
        say("note: resuming with changed settings: " + ", ".join(changed) + "; the run is not the one it continues")
