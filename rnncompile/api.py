"""The public Python API: compile a spec, then run it on a backend.

    import rnncompile
    prog = rnncompile.compile("specs/lstm.yaml", dims={"H": 32})
    result = rnncompile.run(prog, batch=4, steps=20, seed=0)
    result.outputs["y"].shape   # (4, 20, 32)
"""
from __future__ import annotations

import math

import numpy as np

from .data import check_budget, random_inputs
from .drivers import Executable, RunResult
from .drivers import complete as drivers_complete
from .errors import DataError
from .graph import InputInfo
from .params import check_against, init_params, load_npz
from .program import Program


def make_params(program: Program, seed: int = 0, weights=None, dtype="float32") -> dict[str, np.ndarray]:
    """Seeded (or literal) values for every param, overridden by a weights file or dict."""
    infos = program.params
    values = init_params(infos, seed, dtype)
    if weights is None:
        return values
    if isinstance(weights, dict):
        check_against(infos, weights, "weights")
        given = {k: np.asarray(v, dtype) for k, v in weights.items()}
    else:
        given = load_npz(weights, infos, dtype)
    values.update(given)
    return values


def input_infos(program: Program) -> dict[str, InputInfo]:
    plan = program.plan
    return {n: InputInfo(n, s, plan.input_dtypes.get(n, "float")) for n, s in plan.inputs.items()}


def context_infos(program: Program) -> dict[str, InputInfo]:
    return {n: InputInfo(n, s) for n, s in program.plan.context.items()}


def check_run_budget(program: Program, batch: int, steps: int, trace: bool = False) -> None:
    """Refuse, before allocating, a run whose values would not fit in memory."""
    per_step = program.values_per_step
    check_budget("the run's values" if trace else "one step's values", batch * per_step * (steps if trace else 1))
    inputs = sum(math.prod(s) for s in program.plan.inputs.values())
    check_budget("the inputs", batch * steps * inputs)


def run(program: Program, inputs: dict | None = None, params: dict | None = None, weights=None,
        init_state: dict | None = None, lengths=None, context: dict | None = None, batch: int = 1,
        steps: int | None = None, seed: int = 0, dtype: str = "float32", backend: str = "numpy",
        trace: bool = False, trees=None, mode: str = "level") -> RunResult:
    """Run the model. Sequence inputs are [B, T, ...] arrays keyed by input name (seeded random when
    omitted); `lengths` [B] marks each sequence's real steps (a dict gives them per input, e.g. a
    teacher-forced target's own lengths); `context` holds per-sequence vectors.
    A tree model (`fold:`) reads `trees` instead (see rnncompile.trees.api.run_trees; `mode`: level
    or node) and returns a TreeRunResult."""
    plan = program.plan
    if plan.kind == "tree":
        from .trees.api import run_trees

        if inputs is not None:
            raise DataError("a tree model reads trees, not input arrays: pass trees=[...]")
        return run_trees(program, trees, params, weights, batch, seed, dtype, backend, trace, mode)
    if trees is not None:
        raise DataError("trees= is for tree models (`model: {fold: ...}`)")
    infos = input_infos(program)
    vocab = len(program.vocab.tokens) if program.vocab else None
    if inputs is None:
        steps = program.checked.steps(steps)
        check_run_budget(program, batch, steps, trace)
        inputs = random_inputs(infos, batch, steps, seed, dtype, vocab)
    inputs = _with_batch_axis(inputs, infos, "input", time=True)
    if context is None and plan.context:
        context = random_inputs({n: i for n, i in context_infos(program).items()}, batch, 1, seed + 7, dtype)
        context = {n: v[:, 0] for n, v in context.items()}
    context = _with_batch_axis(context or {}, context_infos(program), "context input", time=False)
    b, t = _batch_and_steps(inputs, context)
    check_run_budget(program, b, t, trace)
    if isinstance(lengths, dict):
        unknown = [n for n in lengths if n not in infos]
        if unknown:
            raise DataError(f"lengths given for `{unknown[0]}`, which is not a sequence input; inputs: "
                            f"{', '.join(infos) or 'none'}")
        lengths = {n: _check_lengths(v, b, t, n) for n, v in lengths.items()}
    elif lengths is not None:
        lengths = _check_lengths(lengths, b, t)
    if params is None:
        params = make_params(program, seed, weights, dtype)
    if init_state is not None:
        _check_state(program, init_state, b)
    decode_steps = steps if plan.kind == "generate" else None  # one-to-many: `steps` is the tokens to write
    return Executable.cached(program, backend, dtype).run(inputs, params, init_state, lengths, context, trace, seed,
                                                          decode_steps)


def complete(program: Program, prompt: str, steps: int = 20, temperature: float = 1.0, top_k: int | None = None,
             seed: int = 0, params: dict | None = None, weights=None, greedy: bool = False, dtype: str = "float32",
             backend: str = "numpy"):
    """Continue `prompt` with a language-model spec (token input, a per-step head over the vocabulary)."""
    from .vocab import Vocab

    vocab = Vocab(_check_language_model(program))
    ids = vocab.encode(prompt)
    note = vocab.unknown_note()
    if params is None:
        params = make_params(program, seed, weights, dtype)
    result = drivers_complete(Executable.cached(program, backend, dtype), params, ids, steps, temperature, top_k, seed,
                              greedy)
    result.note = note
    return result


def _check_language_model(program: Program):
    from .errors import UsageError

    plan, vocab = program.plan, program.vocab
    problems = []
    if vocab is None:
        problems.append("it declares no `vocab:`")
    if plan.kind != "sequence":
        problems.append("it is not a sequence model (scan or layers)")
    else:
        infos = input_infos(program)
        if len(infos) != 1 or next(iter(infos.values())).dtype != "token":
            problems.append("its one sequence input must be a token")
        if any(len(layer.uses) > 1 or layer.uses[0].reverse for layer in plan.stack.layers):
            problems.append("a reverse or bidirectional layer needs the future, so it cannot generate")
        head = plan.head
        outs = list(head.use.cell.outputs().values()) if head else []
        if head is None or head.at != "every_step" or len(outs) != 1 or \
                head.use.cell.node(outs[0]).shape != (len(vocab.tokens) if vocab else -1,):
            problems.append("it needs a head at every step with one output: a distribution over the vocabulary")
    if problems:
        raise UsageError(f"{program.checked.file} cannot complete text: " + "; ".join(problems))
    return vocab


def _with_batch_axis(arrays: dict, infos: dict, what: str, time: bool) -> dict:
    out = {}
    for name, info in infos.items():
        if name not in arrays:
            raise DataError(f"missing {what} `{name}`; expected: {', '.join(infos)}")
        x = np.asarray(arrays[name])
        rank = len(info.shape) + (2 if time else 1)
        if x.ndim == rank - 1:
            x = x[None]
        if x.ndim != rank or tuple(x.shape[rank - len(info.shape):]) != info.shape:
            tail = "".join(", " + str(d) for d in info.shape)
            want = f"[batch, steps{tail}] or [steps{tail}]" if time else f"[batch{tail}] or [{tail[2:]}]"
            raise DataError(f"{what} `{name}` has shape {list(np.shape(arrays[name]))}; expected {want}")
        if info.dtype == "token" and not np.issubdtype(x.dtype, np.integer):
            raise DataError(f"{what} `{name}` holds tokens, so it needs integers, got {x.dtype}")
        out[name] = x
    extra = [n for n in arrays if n not in infos]
    if extra:
        raise DataError(f"unexpected {what} `{extra[0]}`; expected: {', '.join(infos) or 'none'}")
    shapes = {x.shape[:2] if time else x.shape[:1] for x in out.values()}
    if len(shapes) > 1:
        raise DataError(f"{what}s disagree on batch size or steps: {sorted(shapes)}")
    return out


def _batch_and_steps(inputs: dict, context: dict) -> tuple[int, int]:
    for x in inputs.values():
        return x.shape[0], x.shape[1]
    for x in context.values():
        return x.shape[0], 1
    return 1, 1


def _check_lengths(lengths, batch: int, steps: int, name: str | None = None) -> np.ndarray:
    what = "lengths" if name is None else f"lengths of `{name}`"
    lengths = np.asarray(lengths)
    if lengths.shape != (batch,) or not np.issubdtype(lengths.dtype, np.integer):
        raise DataError(f"{what} must be {batch} whole numbers (one per sequence), got shape {list(lengths.shape)}")
    if lengths.min() < 1 or lengths.max() > steps:
        raise DataError(f"{what} must lie in 1..{steps} (the padded length); got {lengths.min()}..{lengths.max()}")
    return lengths


def lengths_from_mask(mask) -> np.ndarray:
    """A [B, T] mask of real steps (ones then zeros) as lengths."""
    mask = np.asarray(mask).astype(bool)
    lengths = mask.sum(axis=1)
    if not np.array_equal(mask, np.arange(mask.shape[1])[None] < lengths[:, None]):
        raise DataError("a mask must mark each sequence's real steps as a prefix: ones, then zeros")
    return lengths


def _check_state(program: Program, init_state: dict, batch: int) -> None:
    states = {}
    for use in program.plan.uses():
        for name, info in use.cell.states.items():
            states[use.key(name)] = info
    for key, value in init_state.items():
        if key not in states:
            raise DataError(f"initial state `{key}` is not a state of the model; states: {', '.join(states)}")
        want = (batch,) + states[key].shape
        if tuple(np.shape(value)) != want:
            raise DataError(f"initial state `{key}` has shape {list(np.shape(value))}, expected {list(want)}")
