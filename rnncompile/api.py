"""The public Python API: compile a spec, then run it on a backend.

    import rnncompile
    prog = rnncompile.compile("specs/lstm.yaml", dims={"H": 32})
    result = rnncompile.run(prog, batch=4, steps=20, seed=0)
    result.outputs["y"].shape   # (4, 20, 32)
"""
from __future__ import annotations

import math

import numpy as np

from .data import MAX_RUN_ELEMENTS, check_budget, lengths_from_mask, random_inputs  # noqa: F401 (public)
from .drivers import Executable, RunResult, progress_total
from .drivers import complete as drivers_complete
from .errors import DataError
from .graph import InputInfo
from .params import make_params
from .program import Program
from .progress import bar as progress_bar
from .trees.api import run_trees


MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-6, 1e6


def input_infos(program: Program) -> dict[str, InputInfo]:
    plan = program.plan
    return {n: InputInfo(n, s, plan.input_dtypes.get(n, "float")) for n, s in plan.inputs.items()}


def context_infos(program: Program) -> dict[str, InputInfo]:
    return {n: InputInfo(n, s) for n, s in program.plan.context.items()}


def seeded_inputs(program: Program, batch: int, steps: int | None = None, seed: int = 0,
                  dtype: str = "float32") -> dict[str, np.ndarray]:
    """The seeded random sequence inputs `run` makes when none are given: [B, steps, ...] each, `steps`
    (default: the time dim) on the first input's time axis and each other axis its own dim's size."""
    plan = program.plan
    vocab = len(program.vocab.tokens) if program.vocab else None
    return random_inputs(input_infos(program), batch, program.checked.steps(steps), seed, dtype, vocab,
                         plan.steps_of(program.dims, steps))


def seeded_context(program: Program, batch: int, seed: int = 0, dtype: str = "float32") -> dict[str, np.ndarray]:
    """The seeded random context inputs [B, ...] `run` makes when none are given."""
    context = random_inputs(dict(context_infos(program)), batch, 1, seed + 7, dtype)
    return {n: v[:, 0] for n, v in context.items()}


def check_run_budget(program: Program, batch: int, steps: int, trace: bool = False, chunked: bool = True) -> None:
    """Refuse, before allocating, a run whose values would not fit in memory (see Program.run_values)."""
    if program.plan.kind == "tree":
        return
    parts = program.run_values(batch, steps, trace, chunked)
    total = sum(parts.values())
    if total > MAX_RUN_ELEMENTS:
        biggest = ", ".join(f"{k} {v:.3g}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v)
        check_budget(f"the run ({biggest})", total)


def run(program: Program, inputs: dict | None = None, params: dict | None = None, weights=None,
        init_state: dict | None = None, lengths=None, context: dict | None = None, batch: int = 1,
        steps: int | None = None, seed: int = 0, dtype: str = "float32", backend: str = "numpy",
        trace: bool = False, trees=None, mode: str = "level", progress: bool = False) -> RunResult:
    """Run the model. Sequence inputs are [B, T, ...] arrays keyed by input name (seeded random when
    omitted); `lengths` [B] marks each sequence's real steps (a dict gives them per input, e.g. a
    teacher-forced target's own lengths); `context` holds per-sequence vectors.
    A tree model (`fold:`) reads `trees` instead (see rnncompile.trees.api.run_trees; `mode`: level
    or node) and returns a TreeRunResult. `progress`: a progress bar on stderr (tqdm), one tick per step."""
    plan = program.plan
    if plan.kind == "tree":
        if inputs is not None:
            raise DataError("a tree model reads trees, not input arrays: pass trees=[...]")
        return run_trees(program, trees, params, weights, batch, seed, dtype, backend, trace, mode, progress)
    if trees is not None:
        raise DataError("trees= is for tree models (`model: {fold: ...}`)")
    infos = input_infos(program)
    if inputs is None:
        check_run_budget(program, batch, program.checked.steps(steps), trace)
        inputs = seeded_inputs(program, batch, steps, seed, dtype)
    inputs = _with_batch_axis(inputs, infos, "input", time=True, axes=plan.time_dims)
    if context is None and plan.context:
        context = seeded_context(program, batch, seed, dtype)
    context = _with_batch_axis(context or {}, context_infos(program), "context input", time=False)
    b, t = _batch_and_steps(inputs, context)
    check_run_budget(program, b, t, trace, chunked=lengths is None)
    _check_token_ids(program, inputs)
    if isinstance(lengths, dict):
        unknown = [n for n in lengths if n not in infos]
        if unknown:
            raise DataError(f"lengths given for `{unknown[0]}`, which is not a sequence input; inputs: "
                            f"{', '.join(infos) or 'none'}")
        lengths = {n: _check_lengths(v, b, inputs[n].shape[1], n) for n, v in lengths.items()}
    elif lengths is not None:
        lengths = _check_lengths(lengths, b, t)
        other = [n for n in infos if str(plan.time_dims.get(n)) != str(plan.time_dim)]
        if other:  # one array is the lengths of the inputs on the first time axis; the others keep theirs
            lengths = {n: lengths for n in infos if n not in other}
    if params is None:
        params = make_params(program, seed, weights, dtype)
    if init_state is not None:
        _check_state(program, init_state, b)
    decode_steps = steps if plan.kind == "generate" else None  # one-to-many: `steps` is the tokens to write
    with progress_bar(progress_total(program, t, decode_steps), progress, program.name) as shown:
        result = Executable.cached(program, backend, dtype).run(inputs, params, init_state, lengths, context, trace,
                                                                seed, decode_steps, shown)
    if trace:
        result.values = traced_values(program, result)
    return result


def grad(program: Program, inputs: dict, target=None, params: dict | None = None, weights=None,
         loss: str | None = None, lengths=None, context: dict | None = None, init_state: dict | None = None,
         reduction: str | None = None, seed: int = 0, dtype: str = "float64", backend: str = "numpy",
         wrt_state: bool = False):
    """The loss of a batch and its gradient with respect to every param, by backpropagation through the
    model's flow (rnncompile.autodiff). `target`: token ids (or values, for mse) per step [B, T, ...] or per
    sequence; an encoder-decoder reads its teacher-forcing target from `inputs`. `loss`: xent (the default
    with a vocabulary), mse or bce; `loss` and `reduction` (sum) default to the spec's `train:`. Returns
    autodiff.bptt.Gradients: `.loss`, `.grads` keyed as weight files, `.start_state`, `.inputs`, and with
    `wrt_state` `.states` (d loss / d state after every step)."""
    from .autodiff.bptt import GradProgram
    from .autodiff.losses import default_loss

    if params is None:
        params = make_params(program, seed, weights, dtype)
    gp = GradProgram(program, default_loss(program, loss), None, reduction, backend, dtype, wrt_state)
    return gp(inputs, target, params, lengths, init_state, context)


def train(spec_or_program, data=None, *, text: str | None = None, epochs: int = 10, lr: float = 0.01,
          optimizer: str = "adam", batch: int = 16, val_split: float | None = None, seed: int = 0,
          dims: dict | None = None, **options):
    """Train a spec's params (rnncompile.autodiff.train.fit); returns a TrainResult `(params, history)`.
    `data`: a file, by its kind (.txt text, .npz/.json dataset, .tsv source<TAB>target pairs, a tree bank for
    a tree model), a dict of arrays (inputs, `target`, `lengths`), a list of trees, or a list of (source,
    target) strings; `text`: a text to learn the next token of. `options`: momentum, nesterov,
    weight_decay, clip, clip_value, schedule (constant|step|cosine), step_size, gamma, min_lr, warmup, bptt,
    weights, params, loss, dtype, backend, patience, checkpoint (a folder), resume (a checkpoint), progress,
    echo (told each epoch's line). `history`: .epochs and .validation (mean loss per epoch), .best_epoch."""
    from .autodiff.train import fit
    from .program import compile as compile_program

    program = spec_or_program if isinstance(spec_or_program, Program) else compile_program(spec_or_program, dims)
    return fit(program, data, text=text, epochs=epochs, lr=lr, optimizer=optimizer, batch=batch,
               val_split=val_split, seed=seed, **options)


def trace_names(cell) -> dict[str, int]:
    """Readable, unique names for every node of a traced cell: the spec's names where it has them (a state's
    value before the step is `<state>.prev`), else `%<id>` as `rnncompile inspect` lists it."""
    names = {}
    for nid in cell.order():
        node = cell.node(nid)
        key = node.label or node.attr("name") or f"%{nid}"
        if node.op == "state":
            key = f"{key}.prev"
        if key in names:
            key = f"{key}.{nid}"
        names[key] = nid
    return names


def traced_values(program: Program, result: RunResult) -> dict[str, np.ndarray]:
    """A traced run's values keyed `<use prefix><node name>` (`c_next`, `layers.1.h.prev`), as `run -o` writes
    them under `trace.`."""
    out = {}
    for use in program.plan.uses():
        traced = result.trace.get(use.prefix)
        if traced is None:
            continue
        for name, nid in trace_names(program.cell(use)).items():
            if nid in traced:
                out[f"{use.prefix}{name}"] = traced[nid]
    return out


def complete(program: Program, prompt: str, steps: int = 20, temperature: float = 1.0, top_k: int | None = None,
             seed: int = 0, params: dict | None = None, weights=None, greedy: bool = False, dtype: str = "float32",
             backend: str = "numpy", progress: bool = False):
    """Continue `prompt` with a language-model spec (token input, a per-step head over the vocabulary)."""
    from .vocab import Vocab

    vocab = Vocab(_check_language_model(program))
    check_temperature(temperature)
    check_budget(f"{steps:,} steps of completion (a distribution over {len(vocab)} tokens each)", steps * len(vocab))
    ids = vocab.encode(prompt)
    note = vocab.unknown_note()
    if params is None:
        params = make_params(program, seed, weights, dtype)
    with progress_bar(steps, progress, f"{program.name}: completing", "token") as shown:
        result = drivers_complete(Executable.cached(program, backend, dtype), params, ids, steps, temperature, top_k,
                                  seed, greedy, shown)
    result.note = note
    result.text = vocab.decode(result.tokens)
    return result


def check_temperature(temperature: float) -> None:
    """Sampling divides log-probabilities by the temperature: it must be a finite number, not so small that
    the division overflows (the limit of a small temperature is greedy decoding)."""
    from .errors import UsageError

    if not (math.isfinite(temperature) and MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):
        raise UsageError(f"temperature {temperature!r}: give a number from {MIN_TEMPERATURE:g} to "
                         f"{MAX_TEMPERATURE:g} (for the most likely token every time, use --greedy)")


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


def _with_batch_axis(arrays: dict, infos: dict, what: str, time: bool, axes: dict | None = None) -> dict:
    """`arrays` with a batch axis (added when missing), checked against `infos`; inputs on one time axis
    (`axes`: input -> its time dim) agree on their steps, and every input on the batch size."""
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
    axes = axes or {}
    by_axis: dict = {}
    for name, x in out.items():
        by_axis.setdefault(str(axes.get(name)), []).append(x.shape[:2] if time else x.shape[:1])
    batches = {shape[0] for shapes in by_axis.values() for shape in shapes}
    if len(batches) > 1 or any(len(set(shapes)) > 1 for shapes in by_axis.values()):
        shapes = sorted({x.shape[:2] if time else x.shape[:1] for x in out.values()})
        raise DataError(f"{what}s disagree on batch size or steps: {shapes}")
    return out


def token_tables(program: Program) -> dict[str, tuple[int, str]]:
    """Each token input of the model -> how many ids it may hold and what sets that number (the vocabulary,
    or the smallest embedding table or one_hot width that reads it)."""
    plan = program.plan
    reads = []  # (model input, cell use, cell input)
    for layer in plan.stack.layers[:1] if plan.stack else []:
        reads += [(model, use, cell_input) for use in layer.uses for cell_input, model in layer.feed.items()]
    if plan.decoder is not None and plan.decoder.target:
        reads.append((plan.decoder.target, plan.decoder.use, plan.decoder.token_input))
    limits: dict[str, tuple[int, str]] = {}
    if program.vocab is not None:
        for name, dtype in plan.input_dtypes.items():
            if dtype == "token":
                limits[name] = (len(program.vocab.tokens), "the vocabulary")
    for model, use, cell_input in reads:
        if plan.input_dtypes.get(model) != "token":
            continue
        cell = program.cell(use)
        nid = cell.by_name("input").get(cell_input)
        for user in cell.users(nid) if nid is not None else ():
            node = cell.node(user)
            if node.op == "one_hot":
                bound = (node.attr("n"), f"one_hot in cell `{cell.name}`")
            elif node.op == "embed" and cell.args(user)[0] == nid:
                bound = (cell.node(cell.args(user)[1]).shape[0], f"the embedding table of cell `{cell.name}`")
            else:
                continue
            if model not in limits or bound[0] < limits[model][0]:
                limits[model] = bound
    return limits


def _check_token_ids(program: Program, inputs: dict) -> None:
    """Every token id within its table: one check for every backend (numpy would wrap a negative id)."""
    for name, (rows, what) in token_tables(program).items():
        ids = inputs.get(name)
        if ids is None or ids.size == 0:
            continue
        bad = (ids < 0) | (ids >= rows)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            inner = f", position {list(where[2:])}" if len(where) > 2 else ""
            raise DataError(f"input `{name}` holds token id {ids[where]} at sequence {where[0]}, step {where[1]}{inner}; "
                            f"{what} has {rows} entries, so ids go from 0 to {rows - 1} "
                            f"({int(bad.sum())} id(s) out of range)")


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
