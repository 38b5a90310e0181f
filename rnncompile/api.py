"""The public Python API: compile a spec, then run it on a backend.

    import rnncompile
    prog = rnncompile.compile("specs/lstm.yaml", dims={"H": 32})
    result = rnncompile.run(prog, batch=4, steps=20, seed=0)
    result.outputs["y"].shape   # (4, 20, 32)
"""
from __future__ import annotations

import numpy as np

from . import registry
from .data import check_budget, random_inputs
from .errors import DataError
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


def run(program: Program, inputs: dict | None = None, params: dict | None = None, weights=None,
        init_state: dict | None = None, batch: int = 1, steps: int | None = None, seed: int = 0,
        dtype: str = "float32", backend: str = "numpy", trace: bool = False):
    """Run the model; inputs are [B, T, ...] arrays keyed by input name (random when omitted)."""
    cell = program.scan_cell
    if inputs is None:
        check_run_budget(program, batch, program.checked.steps(steps), trace)
        vocab = len(program.vocab.tokens) if program.vocab else None
        inputs = random_inputs(cell.inputs, batch, program.checked.steps(steps), seed, dtype, vocab)
    for name, info in cell.inputs.items():
        if name not in inputs:
            raise DataError(f"missing input `{name}`")
        x = np.asarray(inputs[name])
        if x.ndim == len(info.shape) + 1:
            inputs = {**inputs, name: x[None]}
    first = next(iter(inputs.values()))
    check_run_budget(program, first.shape[0], first.shape[1], trace)
    if params is None:
        params = make_params(program, seed, weights, dtype)
    if init_state is not None:
        _check_state(program, init_state, first.shape[0])
    return registry.get(backend).prepare(program, dtype).run(inputs, params, init_state, trace)


def check_run_budget(program: Program, batch: int, steps: int, trace: bool = False) -> None:
    """Refuse, before allocating, a run whose values would not fit in memory."""
    per_step = sum(program.scan_cell.node(n).size for n in program.scan_cell.g.nodes)
    check_budget("the run's values" if trace else "one step's values", batch * per_step * (steps if trace else 1))


def _check_state(program: Program, init_state: dict, batch: int) -> None:
    states = program.scan_cell.states
    for name, value in init_state.items():
        if name not in states:
            raise DataError(f"initial state `{name}` is not a state of the cell; states: {', '.join(states)}")
        want = (batch,) + states[name].shape
        if tuple(np.shape(value)) != want:
            raise DataError(f"initial state `{name}` has shape {list(np.shape(value))}, expected {list(want)}")
    missing = [n for n in states if n not in init_state]
    if missing:
        raise DataError(f"initial state given without {', '.join(missing)}")
