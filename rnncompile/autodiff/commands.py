"""What `rnncompile grad` and `rnncompile train` do (cli.py parses the options and calls these)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from .bptt import GradProgram
from .losses import default_loss


def read_training_file(program, path) -> dict:
    """An .npz (or .json) of inputs by name, `target` (not for an encoder-decoder: it learns the target it is
    fed), and `lengths` [B] or `mask` [B, T] (`lengths.<input>` or `mask.<input>` for one input)."""
    from ..api import lengths_from_mask
    from ..data import read_arrays

    raw = dict(read_arrays(path))
    own = {}
    for key in list(raw):
        base, _, name = key.partition(".")
        if base in ("lengths", "mask") and name:
            value = raw.pop(key)
            own[name] = lengths_from_mask(value) if base == "mask" else value.astype(np.int64)
    if "mask" in raw:
        raw["lengths"] = lengths_from_mask(raw.pop("mask"))
    if own:
        shared = raw.pop("lengths", None)
        raw["lengths"] = {**({n: shared for n in program.plan.inputs} if shared is not None else {}), **own}
    decoder = program.plan.decoder is not None
    if "target" not in raw and not decoder:
        raise DataError(f"{path}: holds no `target` (the loss compares an output with it: token ids [B, T] for "
                        f"xent, values [B, T, ...] for mse); it holds {', '.join(raw) or 'nothing'}")
    names = list(program.plan.inputs)
    missing = [n for n in names if n not in raw]
    if missing:
        raise DataError(f"{path}: holds no input `{missing[0]}`; the spec's inputs: {', '.join(names)}")
    extra = [k for k in raw if k not in names + ["target", "lengths"] + list(program.plan.context)]
    if extra:
        raise DataError(f"{path}: unexpected `{extra[0]}`; a training file holds {', '.join(names)}, target, "
                        f"and lengths or mask")
    for n in names:
        if program.plan.input_dtypes.get(n) == "token":
            raw[n] = raw[n].astype(np.int64)
    if "lengths" in raw and not isinstance(raw["lengths"], dict):
        raw["lengths"] = raw["lengths"].astype(np.int64)
    return raw


def _text_file(path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{p}: no such file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _text_ids(program, text: str):
    from .train import _token_input
    from ..vocab import Vocab

    name = _token_input(program)
    vocab = Vocab(program.vocab)
    ids = np.asarray(vocab.encode(text), np.int64)
    if len(ids) < 2:
        raise DataError("the text needs at least two tokens (inputs text[:-1], targets text[1:])")
    return name, ids, vocab.unknown_note()


def grad_command(spec, dims, input_file, text, loss, output_name, reduction, weights, seed, batch, steps, dtype,
                 backend, output, echo, wrt_state: bool = False) -> None:
    from ..api import make_params, seeded_context, seeded_inputs
    from ..data import save_outputs
    from ..program import compile as compile_program

    program = compile_program(spec, dims)
    kind = default_loss(program, loss)
    if program.plan.kind == "tree":
        return _tree_grad(program, kind, output_name, reduction, weights, seed, batch, dtype, backend, output, echo,
                          input_file or text or wrt_state)
    gp = GradProgram(program, kind, output_name, reduction, backend, dtype, wrt_state)
    params = make_params(program, seed, weights, dtype)
    lengths, context = None, None
    if input_file and text:
        raise UsageError("give either --input or --text, not both")
    if input_file:
        data = read_training_file(program, input_file)
        target, lengths = data.pop("target", None), data.pop("lengths", None)
        inputs = {n: data[n] for n in program.plan.inputs}
        context = {n: data[n] for n in program.plan.context if n in data} or None
    elif text is not None:
        name, ids, note = _text_ids(program, text)
        if note:
            echo(note)
        inputs, target = {name: ids[None, :-1]}, ids[None, 1:]
    else:
        inputs = seeded_inputs(program, batch, steps, seed, dtype)
        target = None if gp.decode is not None else _random_target(gp, inputs, seed)
    if context is None and program.plan.context:
        first = next(iter(inputs.values()))
        context = seeded_context(program, first.shape[0], seed, dtype)
    try:
        got = gp(inputs, target, params, lengths, context=context)
    except DataError as e:
        raise DataError(f"{input_file}: {e}" if input_file else str(e)) from None
    arrays = {"loss": np.asarray(got.loss)}
    arrays.update({f"grad.{k}": v for k, v in got.grads.items()})
    arrays.update({f"dstate.{k}": v for k, v in got.states.items()})
    save_outputs(output, arrays)
    norm = math.sqrt(sum(float((g * g).sum()) for g in got.grads.values()))
    echo(f"{program.name}: {kind} loss {got.loss:.6g} ({reduction} over {got.tokens:g} "
         f"{'steps' if gp.per_step else 'sequences'}), gradient norm {norm:.4g} over {len(got.grads)} params "
         f"[{backend}, {dtype}]")
    for key, v in got.states.items():  # the lecture's vanishing / exploding gradients, step by step
        norms = np.sqrt((v.reshape(v.shape[0], v.shape[1], -1) ** 2).sum(axis=-1)).mean(axis=0)
        echo(f"  |d loss / d {key}| by step (batch mean): " + " ".join(f"{n:.3g}" for n in norms))
    echo(f"gradients written to {output}")


def _tree_grad(program, kind, output_name, reduction, weights, seed, batch, dtype, backend, output, echo,
               unsupported) -> None:
    """A tree model's gradient on `batch` seeded random trees with seeded random targets."""
    from ..api import make_params
    from ..data import save_outputs
    from ..trees.api import default_trees
    from ..trees.forest import Forest
    from .bpts import TreeGradProgram

    if unsupported:
        raise UsageError("a tree model's gradient is taken on seeded random trees here (--batch, --seed); "
                         "--input, --text and --wrt-state are for sequence models")
    gp = TreeGradProgram(program, kind, output_name, reduction, backend, dtype)
    forest = Forest.of(default_trees(program, batch, seed))
    rng = np.random.default_rng(seed + 11)
    n = forest.size if gp.per_node else len(forest.roots)
    shape = program.cell(program.plan.head.use).node(program.cell(program.plan.head.use).outputs()[gp.output]).shape
    target = rng.integers(0, gp.classes, n) if kind == "xent" else rng.standard_normal((n,) + shape)
    got = gp(forest, target, make_params(program, seed, weights, dtype))
    save_outputs(output, {"loss": np.asarray(got.loss), **{f"grad.{k}": v for k, v in got.grads.items()}})
    norm = math.sqrt(sum(float((g * g).sum()) for g in got.grads.values()))
    echo(f"{program.name}: {kind} loss {got.loss:.6g} ({reduction} over {got.tokens:g} "
         f"{'nodes' if gp.per_node else 'trees'} of {batch} random tree{'s' if batch != 1 else ''}), gradient norm "
         f"{norm:.4g} over {len(got.grads)} params [{backend}, {dtype}]")
    echo(f"gradients written to {output}")


def _random_target(gp: GradProgram, inputs: dict, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 11)
    first = next(iter(inputs.values()))
    lead = first.shape[:2] if gp.per_step else first.shape[:1]
    shape = gp._output_shapes()[gp.output]
    if gp.kind == "xent":
        return rng.integers(0, shape[0], lead)
    return rng.standard_normal(lead + shape)


def train_command(spec, dims, text_file, input_file, epochs, lr, optimizer, clip, bptt, batch, seed, weights, loss,
                  dtype, backend, save_weights, progress, echo) -> None:
    from ..api import make_params
    from ..params import save_npz
    from ..program import compile as compile_program
    from ..progress import bar
    from .train import dataset_batches, text_windows, train

    if bool(text_file) == bool(input_file):
        raise UsageError("give the training data: --text FILE (a predictor learns the next token) or --input "
                         "DATA.npz (inputs, target, lengths), one of them")
    program = compile_program(spec, dims)
    kind = default_loss(program, loss)
    params = make_params(program, seed, weights, dtype)
    if text_file:
        text = _text_file(text_file)
        _, ids, note = _text_ids(program, text)
        if note:
            echo(note)
        steps = bptt or program.checked.steps(None)
        windows = text_windows(program, text, batch, steps)
        batches_for_epoch = lambda epoch: windows  # noqa: E731  (streams keep their order: the state carries)
        count = len(windows)
        what = f"{len(ids):,} tokens in {batch} streams, windows of {steps} steps" + \
               (" (truncated BPTT: the state carries across windows)" if bptt else "")
    else:
        data = read_training_file(program, input_file)
        rng = np.random.default_rng(seed)
        batches_for_epoch = lambda epoch: dataset_batches(data, program, batch, rng)  # noqa: E731
        size = len(data[next(iter(program.plan.inputs))])
        count = math.ceil(size / batch)
        what = f"{size:,} sequences in batches of {batch}"
    uniform = f" (uniform: log {len(program.vocab.tokens)} = {math.log(len(program.vocab.tokens)):.3f})" \
        if kind == "xent" and program.vocab is not None else ""
    echo(f"{program.name}: training on {what}; {optimizer}, lr {lr:g}"
         + (f", clip {clip:g}" if clip else "") + f", {kind} loss{uniform}")

    def report(epoch, mean):
        echo(f"epoch {epoch + 1}/{epochs}  loss {mean:.4f} per {'token' if kind == 'xent' else 'step'}")

    with bar(epochs * count, progress, f"{program.name}: training", "batch") as shown:
        history = train(program, params, batches_for_epoch, epochs, lr, optimizer, clip, bool(bptt), kind, backend,
                        dtype, shown, report)
    save_npz(save_weights, {k: np.asarray(v, np.float32 if dtype == "float32" else np.float64)
                            for k, v in params.items()})
    seconds = sum(history.seconds)
    echo(f"{history.tokens:,} tokens in {seconds:.1f} s ({history.tokens / max(seconds, 1e-9):,.0f} per second); "
         f"loss {history.epochs[0]:.4f} -> {history.epochs[-1]:.4f}")
    echo(f"weights written to {save_weights}")
