"""Fixed-point formats as grid points (`rnncompile sweep SPEC --grid quant=q7,q15,q3.12 --backend fixed`):
each point runs the seed's inputs and weights in float64 on the numpy backend and on its fixed-point
backend with the point's formats (as `rnncompile run --quant FORMAT` would), and its row gives the error
of the fixed-point outputs against float: the largest and mean absolute error of each output and, for an
output that is a distribution (a predictor's softmax), how often both pick the same most likely class.
"""
from __future__ import annotations

import math
import threading
import time

from .errors import UsageError

_USING = threading.Lock()  # the fixed-point backends read their formats from one global: one point at a time


def quant_errors(float_outputs: dict, fixed_outputs: dict) -> dict[str, float]:
    """Per output: max and mean |fixed - float|, and the top-1 agreement of a distribution output."""
    import numpy as np

    from .quant.calibrate import distribution_rows

    out = {}
    for name, want in float_outputs.items():
        want = np.asarray(want, np.float64)
        got = np.asarray(fixed_outputs[name], np.float64)
        diff = np.abs(got - want)
        out[f"{name}.max_err"] = float(diff.max(initial=0.0))
        out[f"{name}.mean_err"] = float(diff.mean()) if diff.size else 0.0
        rows = distribution_rows(want)
        if rows is not None and rows.any():
            agree = np.argmax(got, axis=-1) == np.argmax(want, axis=-1)
            out[f"{name}.top1"] = float(np.mean(agree[rows]))
    return out


def quant_point(spec_text: str, spec_file: str, spec_sha: str, point, seeds, dim_names) -> list[dict]:
    """Compile the point once; for every seed, run float64 and fixed point on the same inputs and weights."""
    from . import api, quant
    from .quant import FIXED_BACKENDS
    from .sweep import compile_point, row_key

    s = point.settings
    if s["backend"] not in FIXED_BACKENDS:
        raise UsageError(f"quant={s['quant']} runs on a fixed-point backend ({', '.join(FIXED_BACKENDS)}); "
                         f"give --backend fixed")
    t0 = time.perf_counter()
    program = compile_point(spec_text, spec_file, s, dim_names)
    config = quant.uniform(s["quant"])  # as `run --quant q15` reads a format
    compile_s = time.perf_counter() - t0
    params_count = sum(math.prod(p.shape) for p in program.params.values())
    rows = []
    for seed in seeds:
        inputs = api.seeded_inputs(program, s["batch"], s["steps"], seed, "float64")
        context = api.seeded_context(program, s["batch"], seed, "float64") if program.plan.context else None
        params = api.make_params(program, seed, None, "float64")
        t0 = time.perf_counter()
        want = api.run(program, inputs=inputs, params=params, context=context, steps=s["steps"], seed=seed,
                       dtype="float64")
        float_s = time.perf_counter() - t0
        with _USING, quant.using(config, program):
            t0 = time.perf_counter()
            got = api.run(program, inputs=inputs, params=params, context=context, steps=s["steps"], seed=seed,
                          dtype="float64", backend=s["backend"])
            run_s = time.perf_counter() - t0
        row = {"key": row_key(spec_sha, s, seed), "spec": spec_file, "spec_sha": spec_sha, **dict(point.swept),
               **{k: v for k, v in point.fixed if k not in ("steps", "dtype")}, "dtype": "float64",
               "steps": program.checked.steps(s["steps"]), "seed": seed, "params": params_count}
        row.update(quant_errors(want.outputs, got.outputs))
        row.update({"compile_s": compile_s, "float_s": float_s, "run_s": run_s})
        rows.append(row)
    return rows
