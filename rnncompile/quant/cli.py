"""What `rnncompile quantize` and `rnncompile run --quant` do (rnncompile/cli.py holds only the options)."""
from __future__ import annotations

import numpy as np

from rnncompile.errors import DataError, UsageError

from . import FIXED_BACKENDS
from .config import load

HELD_OUT = 0.25  # without --holdout, this share of the calibration sequences (the last ones) is held out


def configure_run(quant: str, backend: str, program, engine: str = "local") -> None:
    """`run --quant`: the fixed-point backends take these formats for the rest of this process."""
    if backend not in FIXED_BACKENDS:
        raise UsageError(f"--quant is for the fixed-point backends ({', '.join(FIXED_BACKENDS)}); "
                         f"add --backend fixed (or leave --quant out)")
    if engine != "local":
        raise UsageError("--quant runs on this machine only (the Dask workers are not given the formats); "
                         "leave out --engine dask")
    from rnncompile import registry

    from .assign import check_tensors

    config = load(quant)
    check_tensors(config, [program.cell(u) for u in program.plan.uses()])
    registry.get(backend).config = config


def read_set(program, path: str) -> tuple[dict, np.ndarray | None, dict | None]:
    """A data file's sequence inputs, lengths (`lengths` [B] or `mask` [B, T]) and context inputs."""
    from rnncompile import api
    from rnncompile.data import read_arrays

    infos = api.input_infos(program)
    raw = read_arrays(path, next(iter(infos)) if len(infos) == 1 else None)
    lengths = raw.pop("lengths", None)
    if "mask" in raw:
        lengths = api.lengths_from_mask(raw.pop("mask"))
    context = {n: raw.pop(n) for n in program.plan.context if n in raw} or None
    missing = [n for n in infos if n not in raw]
    if missing:
        raise DataError(f"{path}: holds no input `{missing[0]}`; the model reads {', '.join(infos)}")
    return {n: raw[n] for n in infos}, lengths, context


def _batch(inputs, context) -> int:
    first = next(iter(inputs.values()), None)
    return first.shape[0] if first is not None else next(iter((context or {}).values())).shape[0]


def _split(inputs, lengths, context, share: float):
    b = _batch(inputs, context)
    if b < 2:
        raise DataError("the calibration set has one sequence: give --holdout DATA.npz, or more sequences")
    cut = max(1, min(b - 1, int(round(b * (1 - share)))))

    def part(s):
        return ({k: v[s] for k, v in inputs.items()}, None if lengths is None else np.asarray(lengths)[s],
                None if context is None else {k: v[s] for k, v in context.items()})
    return part(slice(0, cut)), part(slice(cut, None))


def quantize(spec: str, dims: dict, weights: str | None, calibrate: str | None, holdout: str | None,
             output: str, bits: int, seed: int, echo, weight_bits: int | None = None,
             c_file: str | None = None) -> None:
    from rnncompile import api
    from rnncompile.files import atomic_write
    from rnncompile.program import compile as compile_program

    from .calibrate import accuracy, choose, format_report, ranges

    program = compile_program(spec, dims)
    if program.plan.kind == "tree":
        raise UsageError(f"{spec} is a tree model; quantize calibrates sequence models (scan, layers, decoders)")
    params = api.make_params(program, seed, weights, "float64")
    if calibrate:
        data = read_set(program, calibrate)
        what = calibrate
    else:
        data = (api.seeded_inputs(program, 64, None, seed, "float64"), None,
                api.seeded_context(program, 64, seed, "float64") if program.plan.context else None)
        what = f"64 seeded random sequences (seed {seed})"
        echo("no --calibrate: calibrating on seeded random inputs; give real data for formats that fit it")
    if holdout:
        calib, held = data, read_set(program, holdout)
    else:
        calib, held = _split(*data, HELD_OUT)
    by_class, by_state = ranges(program, params, *calib)
    config = choose(by_class, by_state, bits, program.name, weight_bits)
    reports = [format_report("fixed point against float64, calibration set", accuracy(program, config, params, *calib))]
    held_name = holdout or f"held-out set (the last {int(HELD_OUT * 100)}% of the sequences)"
    reports.append(format_report(f"fixed point against float64, {held_name}", accuracy(program, config, params, *held)))
    source = None
    if c_file:
        from rnncompile.backends.fixed.standalone import standalone_source

        source = standalone_source(program, config, params)
    with atomic_write(output) as f:  # after every run worked: no file when one fails
        f.write(config.to_yaml())
    if source is not None:
        with atomic_write(c_file) as f:
            f.write(source)
    echo(f"formats from {what} ({_batch(calib[0], calib[2])} sequences):")
    for cls, fmt in config.formats.items():
        echo(f"  {cls:<13} {str(fmt):<7} ({fmt.ctype}; largest magnitude seen {by_class[cls]:.4g})")
    for name, fmt in config.tensors.items():
        echo(f"  {name:<13} {str(fmt):<7} ({fmt.ctype}; largest magnitude seen {by_state[name]:.4g})")
    echo(f"written to {output}" + (f"; the cells as integer C in {c_file}" if c_file else ""))
    for report in reports:
        echo("")
        echo(report)
