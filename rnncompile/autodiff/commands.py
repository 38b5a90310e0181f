"""What `rnncompile grad` and `rnncompile train` do (cli.py parses the options and calls these)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataError, UsageError
from .bptt import GradProgram
from .datasets import read_training_file
from .losses import default_loss


def _text_ids(program, text: str):
    from ..vocab import Vocab
    from .datasets import token_input

    name = token_input(program)
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
    echo(f"{program.name}: {kind} loss {got.loss:.6g} ({gp.reduction} over {got.tokens:g} "
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
    echo(f"{program.name}: {kind} loss {got.loss:.6g} ({gp.reduction} over {got.tokens:g} "
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
    if gp.kind == "bce":  # labels 0 or 1
        return rng.integers(0, 2, lead + shape).astype(float)
    return rng.standard_normal(lead + shape)


def train_command(spec, dims, data, epochs, save_weights, plot, progress, echo, **options) -> None:
    """`rnncompile train`: compile, fit (autodiff.train.fit, with the options as its keywords), write the
    weights (as every command reads them) and the loss plot."""
    from ..params import save_npz
    from ..program import compile as compile_program
    from .train import fit

    program = compile_program(spec, dims)
    result = fit(program, data, epochs=epochs, progress=progress, echo=echo, **options)
    params, history = result.params, result.history
    dtype = np.float32 if options.get("dtype", "float32") == "float32" else np.float64
    save_npz(save_weights, {k: np.asarray(v, dtype) for k, v in params.items()})
    seconds = sum(history.seconds)
    if history.epochs:
        echo(f"{history.tokens:,} {history.unit}s in {seconds:.1f} s ({history.tokens / max(seconds, 1e-9):,.0f} per "
             f"second); loss {history.epochs[0]:.4f} -> {history.epochs[-1]:.4f}"
             + (f", validation {history.validation[0]:.4f} -> {history.validation[-1]:.4f}"
                if history.validation else ""))
    echo(f"weights written to {save_weights}")
    if plot:
        from .lossplot import plot_history

        plot_history(history, plot, program.name)
        echo(f"loss plot written to {plot}")
