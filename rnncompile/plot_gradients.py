"""Gradients over time as a picture: the norm of dL/dh_t against t, on a log scale.

The lecture's claim, shown: with the loss at the last step only, the curve
says how far back in time the gradient reaches. For a vanilla RNN
h_t = tanh(W_hh h_{t-1} + ...), dL/dh_{t-1} = W_hh^T diag(tanh') dL/dh_t, so
the norm shrinks or grows roughly geometrically with the spectral radius of
W_hh (`--radius` rescales it); an LSTM's cell state and a GRU's update gate
give the gradient a path that is not multiplied by W_hh at every step.

The numbers are the state adjoints `rnncompile grad --wrt-state` writes
(autodiff.bptt.GradProgram with `wrt_state`), averaged over a batch of seeded
random sequences. Where the loss is placed (`loss_at`):

    last    one loss, on the output after the last step (the spec's head is
            read at the last step only; a spec without a head gets one that
            passes its output through)
    every   the spec as written: the sum of a loss at every step
    K       one loss, after step K (the steps after it have no gradient)

Clipping (`clip`): the gradient carried back through time is clipped to norm
N at every step before it goes further back, the per-step form of Pascanu,
Mikolov & Bengio's (2013) norm clipping. With the loss at one step the
backward recursion is linear in the carried adjoint, so clipping at step s
scales every earlier adjoint by the same factor: the clipped adjoint of
step t is the unclipped one times min(1, min over s >= t of N / |d_s|),
where |d_s| is the norm of all the cell's state adjoints at step s together.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UsageError

FORMATS = (".png", ".svg", ".pdf")
RECURRENT = "W_hh"  # the Elman recurrent matrix, rescaled by `radius`


@dataclass
class Curve:
    label: str
    norms: np.ndarray  # [T]: the batch mean of |dL/d state_t| (NaN where no gradient reaches)
    loss_steps: list[int]  # the steps that carry a loss (all of them for `every`)
    state: str  # the state key, as grad --wrt-state names it (`dstate.<state>`)
    radius: float | None = None  # the spectral radius W_hh was rescaled to
    clip: float | None = None  # the per-step clipping limit, when this curve is clipped


def parse_loss_at(value) -> str | int:
    """`last`, `every` or a step index (a whole number from 0)."""
    text = str(value).strip()
    if text in ("last", "every"):
        return text
    try:
        step = int(text)
    except ValueError:
        raise UsageError(f"--loss-at {value}: write last, every or a step number (0 is the first step)") from None
    if step < 0:
        raise UsageError(f"--loss-at {value}: a step number is 0 or more")
    return step


def parse_radii(text: str | None) -> list[float]:
    """`0.5,1,2` -> [0.5, 1.0, 2.0] (each a positive finite number)."""
    if text is None:
        return []
    radii = []
    for item in text.split(","):
        try:
            r = float(item)
        except ValueError:
            raise UsageError(f"--radius {text}: `{item.strip()}` is not a number; write e.g. --radius 0.5,1,2") from None
        if not (np.isfinite(r) and r > 0):
            raise UsageError(f"--radius {text}: a spectral radius is a positive number, not `{item.strip()}`")
        radii.append(r)
    return radii


def spectral_radius(w: np.ndarray) -> float:
    """The largest absolute eigenvalue of a square matrix."""
    return float(np.abs(np.linalg.eigvals(np.asarray(w, np.float64))).max())


def with_radius(params: dict, radius: float, name: str = RECURRENT, spec: str = "the spec") -> dict:
    """A copy of `params` with the square matrix `name` scaled to spectral radius `radius`."""
    if name not in params:
        square = [k for k, v in params.items() if np.ndim(v) == 2 and np.shape(v)[0] == np.shape(v)[1]]
        raise UsageError(f"{spec}: --radius rescales the recurrent matrix `{name}`, which it has not; its square "
                         f"params: {', '.join(square) or 'none'} (name one with --recurrent)")
    w = np.asarray(params[name], np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise UsageError(f"{spec}: `{name}` is {list(w.shape)}; --radius needs a square recurrent matrix")
    now = spectral_radius(w)
    if now == 0:
        raise UsageError(f"{spec}: `{name}` is all zeros (spectral radius 0): it cannot be rescaled")
    return {**params, name: w * (radius / now)}


def check_sequence_model(program, path) -> None:
    if program.plan.kind != "sequence" or program.plan.decoder is not None:
        raise UsageError(f"{path}: gradients over time are drawn for sequence models (a scan over time); this is "
                         f"a {program.plan.kind} model" + (" with a decoder" if program.plan.kind == "sequence" else ""))


def loss_at_last_program(path, dims: dict | None = None):
    """The spec with its loss read at the last step only: its head read `at: last` (one passing the model's
    outputs through when it has none). Errors keep pointing at the spec file."""
    from .check import check_data
    from .program import compile as compile_program
    from .source import load_file

    program = compile_program(path, dims)
    check_sequence_model(program, path)
    data, smap = load_file(path)
    data = copy.deepcopy(data)
    model = data["model"]
    if model.get("head"):
        model["head"]["at"] = "last"
    else:
        model["head"] = {"at": "last", "outputs": {n: n for n in program.plan.stack.outputs}}
    if isinstance(data.get("train"), dict) and "at" in data["train"]:
        data["train"]["at"] = "last_step"  # a stated loss place follows the head
    return compile_program(check_data(data, smap, dims))


def state_gradients(program, params: dict, inputs: dict, target, dtype: str = "float64",
                    output: str | None = None) -> dict[str, np.ndarray]:
    """d loss / d state after every step, [B, T, ...] by state key (as `grad --wrt-state` writes them)."""
    from .autodiff.bptt import GradProgram
    from .autodiff.losses import default_loss

    gp = GradProgram(program, default_loss(program, None), output, "sum", "numpy", dtype, wrt_state=True)
    return gp(inputs, target, params).states


def seeded_target(program, params: dict, inputs: dict, seed: int, dtype: str = "float64") -> np.ndarray:
    """A seeded random target of the shape of the model's one output: token ids (xent, for a model with a
    vocabulary) or standard normal values (mse)."""
    from .api import run

    result = run(program, inputs=inputs, params=params, dtype=dtype, seed=seed)
    if len(result.outputs) != 1:
        raise UsageError(f"{program.checked.file}: the model has outputs {', '.join(result.outputs)}; gradients "
                         f"over time are drawn for a model with one output")
    (y,) = result.outputs.values()
    rng = np.random.default_rng(seed + 11)
    if program.vocab is not None:
        return rng.integers(0, y.shape[-1], y.shape[:-1])
    return rng.standard_normal(y.shape)


def clipped(adjoints: dict[str, np.ndarray], limit: float) -> np.ndarray:
    """The factor [B, T] each step's adjoints take when the gradient carried back is clipped to norm `limit`
    at every step (exact for a loss at one step: see the module's docstring)."""
    joint = sum((v.reshape(v.shape[0], v.shape[1], -1) ** 2).sum(axis=-1) for v in adjoints.values())
    with np.errstate(divide="ignore"):
        allowed = np.where(joint > 0, limit / np.sqrt(joint), np.inf)
    factor = np.minimum.accumulate(allowed[:, ::-1], axis=1)[:, ::-1]  # min over s >= t
    return np.minimum(factor, 1.0)


def norms_by_step(adjoint: np.ndarray, factor: np.ndarray | None = None) -> np.ndarray:
    """The batch mean of each step's adjoint norm, [T]; NaN where it is exactly zero (nothing to draw on a log
    axis: no loss after that step)."""
    each = np.sqrt((adjoint.reshape(adjoint.shape[0], adjoint.shape[1], -1) ** 2).sum(axis=-1))
    if factor is not None:
        each = each * factor
    mean = each.mean(axis=0)
    return np.where(mean > 0, mean, np.nan)


def _pick_state(states: dict, wanted: str | None, spec: str) -> str:
    if wanted is not None:
        if wanted not in states:
            raise UsageError(f"{spec}: no state `{wanted}` to draw; its states: {', '.join(states)}")
        return wanted
    return "h" if "h" in states else next(iter(states))


def curves(specs: list, weights: list | None = None, radii: list[float] | None = None, clip: float | None = None,
           loss_at="last", steps: int | None = None, batch: int = 8, seed: int = 0, state: str | None = None,
           recurrent: str = RECURRENT, dims: dict | None = None, input_scale: float = 1.0) -> list[Curve]:
    """One curve per spec (and per radius, with `radii`), and its clipped twin with `clip`. Every spec gets the
    same seeded inputs' shape: `steps` steps (default: each spec's time dim) of `batch` sequences, float inputs
    standard normal times `input_scale` (small inputs keep tanh units in their linear range, where the
    gradient grows or shrinks by about the spectral radius per step; large ones saturate them)."""
    from .api import seeded_inputs
    from .params import make_params
    from .program import compile as compile_program

    loss_at = parse_loss_at(loss_at)
    weights = list(weights or [])
    if weights and len(weights) != len(specs):
        raise UsageError(f"--weights: give one weights file per spec ({len(specs)}), or none; got {len(weights)}")
    if clip is not None and not (np.isfinite(clip) and clip > 0):
        raise UsageError(f"--clip {clip}: give a positive norm")
    if not (np.isfinite(input_scale) and input_scale >= 0):
        raise UsageError(f"--input-scale {input_scale}: give a number from 0 up")
    if clip is not None and loss_at == "every":
        raise UsageError("--clip is drawn for a loss at one step (--loss-at last or a step number): with a loss at "
                         "every step the clipped recursion is not one scale factor per step")
    out = []
    for i, spec in enumerate(specs):
        base = compile_program(spec, dims)
        check_sequence_model(base, spec)
        total = base.checked.steps(steps)
        if isinstance(loss_at, int) and loss_at >= total:
            raise UsageError(f"--loss-at {loss_at}: {spec} runs {total} steps (0..{total - 1}); use --steps to run "
                             f"more")
        if clip is not None and len(base.flow.of("scan")) != 1:
            raise UsageError(f"{spec}: --clip is drawn for a model with one scan; this one has "
                             f"{len(base.flow.of('scan'))}")
        program = base if loss_at == "every" else loss_at_last_program(spec, dims)
        run_steps = total if not isinstance(loss_at, int) else loss_at + 1
        loss_steps = list(range(total)) if loss_at == "every" else [run_steps - 1]
        inputs = {n: v if program.plan.input_dtypes.get(n) == "token" else v * input_scale
                  for n, v in seeded_inputs(program, batch, run_steps, seed, "float64").items()}
        params = make_params(program, seed, weights[i] if weights else None, "float64")
        for radius in (radii or [None]):
            p = params if radius is None else with_radius(params, radius, recurrent, str(spec))
            target = seeded_target(program, p, inputs, seed)
            adjoints = state_gradients(program, p, inputs, target)
            key = _pick_state(adjoints, state, str(spec))
            label = program.name + (f", radius {radius:g}" if radius is not None else "")
            norms = _padded(norms_by_step(adjoints[key]), total)
            out.append(Curve(label, norms, loss_steps, key, radius))
            if clip is not None:
                factor = clipped(adjoints, clip)
                out.append(Curve(f"{label}, clipped at {clip:g}", _padded(norms_by_step(adjoints[key], factor), total),
                                 loss_steps, key, radius, clip))
    return out


def _padded(norms: np.ndarray, total: int) -> np.ndarray:
    """Steps after a loss at step K ran no further: no gradient there (NaN, not drawn)."""
    return np.concatenate([norms, np.full(total - len(norms), np.nan)])


def draw(found: list[Curve], output, title: str | None = None) -> Path:
    """The curves on one log-scale figure."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("plot needs matplotlib: pip install 'rnncompile[plot]'") from None
    from .data import atomic_write

    out = Path(output)
    if out.suffix not in FORMATS:
        raise UsageError(f"{out}: write the picture as {', '.join(FORMATS)}")
    fig = Figure(figsize=(9, 5.2), layout="constrained")
    ax = fig.add_subplot()
    colors = {}
    for c in found:
        base = c.label.split(", clipped")[0]
        color = colors.setdefault(base, f"C{len(colors) % 10}")
        steps = np.arange(len(c.norms))
        ax.plot(steps, c.norms, color=color, lw=2.2 if c.clip is None else 1.6,
                ls="-" if c.clip is None else "--", label=c.label)
    ax.set_yscale("log")
    every = found and len(found[0].loss_steps) > 1
    if found and not every:
        ax.axvline(found[0].loss_steps[0], color="0.5", lw=0.8, ls=":")
        ax.annotate("loss", (found[0].loss_steps[0], 1), xycoords=("data", "axes fraction"), xytext=(-4, -14),
                    textcoords="offset points", ha="right", color="0.35", fontsize=9)
    for limit in sorted({c.clip for c in found if c.clip is not None}):
        ax.axhline(limit, color="0.6", lw=0.8, ls="-.", label=f"clip limit {limit:g}")
    state = found[0].state if found else "h"
    ax.set_xlabel("step t")
    ax.set_ylabel(f"‖∂L/∂{state}_t‖  (mean over the batch, log scale)")
    where = "the sum of a loss at every step" if every else f"one loss, after step {found[0].loss_steps[0]}"
    ax.set_title(title or f"How far back the gradient reaches: {where}", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    with atomic_write(out, "wb") as f:
        fig.savefig(f, format=out.suffix[1:], dpi=110)
    return out


def summary(c: Curve) -> str:
    """One line per curve: the norm at the loss and at a few steps before it."""
    finite = np.flatnonzero(np.isfinite(c.norms))
    if not len(finite):
        return f"{c.label}: no gradient"
    last = int(finite[-1])
    shown = sorted({last, last * 3 // 4, last // 2, last // 4, int(finite[0])}, reverse=True)
    return f"{c.label}: |dL/d{c.state}_t| " + "  ".join(f"t={t} {c.norms[t]:.3g}" for t in shown)
