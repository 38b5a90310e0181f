"""Formats from the ranges a float run sees, and how far the fixed-point run then lands from float.

Calibration runs the float64 interpreter with a trace over the calibration set and takes, per tensor class
(assign.py), the largest magnitude any of its nodes holds (params: their values); each class gets the
format of its width with the most fraction bits whose range holds HEADROOM times that (formats.fitting),
and each state its own format from its own range (a `tensors:` entry), since an LSTM's h and c differ.
sigmoid, tanh and softmax outputs lie in [-1, 1]: the activations class is q0.N.

The accuracy report runs float64 and the fixed interpreter on the same inputs and gives, per output, the
largest and the mean absolute difference, and for an output that is a distribution (each row non-negative,
summing to 1: a predictor's softmax) the fraction of rows whose most likely class agrees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .assign import assign
from .config import CLASSES, QuantConfig, uniform
from .formats import QFormat, fitting

WIDE = ("accumulators",)
HEADROOM = 1.25  # a format's range holds 1.25 times the largest magnitude seen (held-out data runs a little wider)


def ranges(program, params: dict, inputs: dict, lengths=None, context=None) -> tuple[dict, dict]:
    """(class -> largest magnitude, "cell.state" -> largest magnitude) over a float64 traced run."""
    import rnncompile

    result = rnncompile.run(program, inputs=inputs, params=params, lengths=lengths, context=context,
                            dtype="float64", trace=True)
    by_class = dict.fromkeys(CLASSES, 0.0)
    by_state: dict[str, float] = {}
    probe = uniform("q3.12")
    for use in program.plan.uses():
        cell = program.cell(use)
        classes = assign(cell, probe).classes
        traced = result.trace.get(use.prefix, {})
        states = {sid: name for name, sid in cell.by_name("state").items()}
        updates = {nid: name for name, nid in cell.updates().items()}
        for nid, cls in classes.items():
            if cls not in by_class:
                continue
            node = cell.node(nid)
            if node.op == "param":
                value = params[use.key(node.attr("name"))]
            elif nid in traced:
                value = traced[nid]
            else:
                continue
            top = float(np.max(np.abs(np.nan_to_num(np.asarray(value, np.float64))), initial=0.0))
            by_class[cls] = max(by_class[cls], top)
            name = states.get(nid) or updates.get(nid)
            if name is not None:
                key = f"{cell.name}.{name}"
                by_state[key] = max(by_state.get(key, 0.0), top)
    return by_class, by_state


def choose(by_class: dict, by_state: dict, bits: int = 16, spec: str = "", weight_bits: int | None = None) \
        -> QuantConfig:
    """Formats of `bits` bits (the weights: `weight_bits`, default `bits`; the accumulators: 32) from the ranges."""
    formats = {}
    for cls in CLASSES:
        width = 32 if cls in WIDE else (weight_bits or bits) if cls == "weights" else bits
        formats[cls] = QFormat(0, width - 1) if cls == "activations" else fitting(by_class[cls] or 1.0, width, HEADROOM)
    tensors = {name: fitting(top or 1.0, bits, HEADROOM) for name, top in sorted(by_state.items())}
    return QuantConfig(formats, tensors, spec)


@dataclass
class Accuracy:
    name: str
    max_error: float
    mean_error: float
    top1: float | None  # agreement of the most likely class (distributions only)
    size: int


def distribution_rows(x: np.ndarray) -> np.ndarray | None:
    """For an output whose rows (last axis) are distributions — non-negative, summing to 1, or all zero at
    padded steps and after a decoder's end token — the mask of its non-zero rows; else None."""
    x = np.asarray(x, np.float64)
    if x.ndim < 2 or x.shape[-1] < 2 or not np.all(x >= -1e-12):
        return None
    sums = x.sum(axis=-1)
    real = sums > 0.5
    if not real.any() or not np.allclose(sums[real], 1.0, atol=1e-6) or not np.all(sums[~real] == 0):
        return None
    return real


def accuracy(program, config: QuantConfig, params: dict, inputs: dict, lengths=None, context=None) -> list[Accuracy]:
    """Float64 against the fixed interpreter, output by output (padded steps left out)."""
    import rnncompile

    from . import using

    steps = next((v.shape[1] for v in inputs.values()), None)
    float_run = rnncompile.run(program, inputs=inputs, params=params, lengths=lengths, context=context,
                               dtype="float64")
    with using(config, program):
        fixed_run = rnncompile.run(program, inputs=inputs, params=params, lengths=lengths, context=context,
                                   dtype="float64", backend="fixed")
    out = []
    for name, want in float_run.outputs.items():
        got = np.asarray(fixed_run.outputs[name], np.float64)
        want = np.asarray(want, np.float64)
        keep = _real_rows(want, lengths, steps)
        diff = np.abs(got - want)[keep]
        top1 = None
        rows = distribution_rows(want)
        if rows is not None:
            rows = rows & keep.reshape(keep.shape + (1,) * (rows.ndim - keep.ndim))
            agree = np.argmax(got, axis=-1) == np.argmax(want, axis=-1)
            top1 = float(np.mean(agree[rows])) if rows.any() else None
        out.append(Accuracy(name, float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0, top1,
                            int(diff.size)))
    return out


def _real_rows(x: np.ndarray, lengths, steps) -> np.ndarray:
    """A mask over x's leading axes [B, T] (or [B]) that leaves padded input steps out (an output over
    other steps, a decoder's, is kept whole)."""
    if lengths is None or isinstance(lengths, dict) or x.ndim < 3 or x.shape[1] != steps:
        return np.ones(x.shape[:min(2, x.ndim - 1) or 1], bool)
    lengths = np.asarray(lengths)
    return np.arange(x.shape[1])[None, :] < lengths[:, None]


def format_report(title: str, rows: list[Accuracy]) -> str:
    lines = [f"{title}:", f"  {'output':<12} {'max |err|':>11} {'mean |err|':>11} {'top-1':>7}"]
    for r in rows:
        top = "" if r.top1 is None else f"{100 * r.top1:6.2f}%"
        lines.append(f"  {r.name:<12} {r.max_error:11.3e} {r.mean_error:11.3e} {top:>7}")
    return "\n".join(lines)
