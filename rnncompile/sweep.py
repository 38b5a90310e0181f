"""Sweeps: a grid of settings (`--grid H=32,64 --grid cell=lstm,gru`), its points, and the task that
compiles and runs one point for each seed and returns its rows of the results table.

A grid key is a dim of the spec, `cell` (the cell that `scan:` runs, or every layer's `scan:`), a
run setting: backend, dtype, batch, steps, a fixed-point format (`quant`, on the fixed-point backends:
sweep_quant.py), or with `--train DATA` a training setting: lr, optimizer, epochs, clip, bptt
(sweep_train.py). A point is one value of every key; every seed of a point runs the same compiled program
with `rnncompile run --seed S`'s weights and inputs (or trains from them).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import time
from dataclasses import dataclass

from .errors import UsageError, did_you_mean

RUN_KEYS = {"backend": str, "dtype": str, "batch": int, "steps": int}
# with --train, key -> (type, what `rnncompile train` takes when the grid leaves it out)
TRAIN_KEYS = {"lr": (float, 0.01), "optimizer": (str, "adam"), "epochs": (int, 10), "clip": (float, 5.0),
              "bptt": (int, None)}
DTYPES = ("float32", "float64")
MAX_POINTS = 100_000
EXAMPLE = "--grid H=32,64,128"


class GridError(UsageError):
    """A bad --grid argument: the argument, a caret under the offending part, a hint."""

    def __init__(self, arg: str, message: str, at: int = 0, width: int = 0, hint: str = ""):
        self.arg, self.message, self.at, self.width, self.hint = arg, message, at, width, hint
        super().__init__(f"--grid {arg}: {message}")

    def format(self) -> str:
        shown = f"--grid {self.arg}"
        lines = [f"error: --grid {self.arg}: {self.message}", f"    {shown}",
                 "    " + " " * (len("--grid ") + self.at) + "^" * max(1, self.width or len(self.arg) - self.at)]
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


@dataclass(frozen=True)
class SpecFacts:
    """What a grid is checked against: the spec's dims, its cells and whether `cell=` can apply."""

    file: str
    dims: tuple[str, ...]
    cells: tuple[str, ...]  # the cells `cell=` may pick (not tree cells)
    scan_where: str | None  # "scan", "layers", or None: a model without `scan:`
    backends: tuple[str, ...]


def spec_facts(checked, backends) -> SpecFacts:
    model = checked.spec.model
    scan_where = "scan" if getattr(model, "scan", None) else "layers" if getattr(model, "layers", None) else None
    if scan_where == "layers" and any(getattr(layer, "scan", None) is None for layer in model.layers):
        scan_where = None
    cells = tuple(n for n, c in checked.spec.cells.items() if getattr(c, "kind", None) != "tree")
    return SpecFacts(checked.file, tuple(checked.dims), cells, scan_where, tuple(backends))


def parse_grid(args, facts: SpecFacts, training: bool = False) -> dict[str, list]:
    """`KEY=V1,V2,...` arguments -> key -> values (in the order given), each checked against the spec;
    `training`: a training sweep (--train), whose grid may hold training settings."""
    grid: dict[str, list] = {}
    for arg in args:
        key, sep, text = arg.partition("=")
        name = key.strip()
        if not sep:
            raise GridError(arg, "expected KEY=VALUE,VALUE,...", 0, len(arg), f"e.g. {EXAMPLE} or --grid cell=lstm,gru")
        if not name:
            raise GridError(arg, "no key before `=`", 0, 1, f"name a dim, `cell` or a run setting, e.g. {EXAMPLE}")
        kind = _key_kind(arg, name, facts, training)
        if name in grid:
            raise GridError(arg, f"`{name}` is swept twice", 0, len(key),
                            f"give all its values in one argument: --grid {name}=" +
                            ",".join(str(v) for v in grid[name] + ["..."]))
        values, seen, at = [], set(), len(key) + 1
        for piece in text.split(","):
            value = _value(arg, name, kind, piece, at, facts)
            if value in seen:
                raise GridError(arg, f"`{piece.strip()}` is given twice", at, len(piece), "give each value once")
            seen.add(value)
            values.append(value)
            at += len(piece) + 1
        grid[name] = values
    total = math.prod(len(v) for v in grid.values())
    if total > MAX_POINTS:
        raise UsageError(f"the grid has {total:,} points; the limit is {MAX_POINTS:,}")
    return grid


def _key_kind(arg: str, name: str, facts: SpecFacts, training: bool = False) -> str:
    if name in facts.dims:
        return "dim"
    if name == "cell":
        if facts.scan_where is None:
            raise GridError(arg, f"`cell` picks the cell that `scan:` runs, and the model of {facts.file} has no "
                                 f"`scan:` (every layer needs one)", 0, len(name), "sweep its dims instead")
        return "cell"
    if name in RUN_KEYS:
        return name
    if name in TRAIN_KEYS:
        if not training:
            raise GridError(arg, f"`{name}` is a training setting", 0, len(name),
                            "give the training data too: --train DATA (a text, or a .npz of inputs and target)")
        return name
    if name == "quant":
        if training:
            raise GridError(arg, "a training sweep trains float weights; `quant` sweeps the fixed-point formats "
                                 "of a run", 0, len(name), "sweep quant without --train")
        return name
    if name == "seed":
        raise GridError(arg, "seeds are not a grid key", 0, len(name), "give --seeds N: every point runs seeds 0..N-1")
    known = sorted(facts.dims) + ["cell", "quant"] + sorted(RUN_KEYS) + sorted(TRAIN_KEYS)
    hint = did_you_mean(name, known, "grid")
    raise GridError(arg, f"unknown grid key `{name}`: not a dim of {facts.file} ({', '.join(facts.dims) or 'none'}), "
                         f"`cell`, or a run setting ({', '.join(RUN_KEYS)})", 0, len(name),
                    hint or f"with --train, also a training setting ({', '.join(TRAIN_KEYS)}); `quant` "
                            f"sweeps fixed-point formats")


def _value(arg, name, kind, piece, at, facts: SpecFacts):
    text = piece.strip()
    if not text:
        raise GridError(arg, "an empty value" if piece == "" else "a blank value", at, max(1, len(piece)),
                        f"separate values with single commas, e.g. --grid {name}=" +
                        EXAMPLES.get(kind, "32,64,128"))
    if kind in TRAIN_KEYS or kind == "quant":
        return _setting(arg, name, text, piece, at)
    if kind in ("dim", "batch", "steps"):
        try:
            value = int(text)
        except ValueError:
            raise GridError(arg, f"`{text}` is not a whole number", at, len(piece),
                            f"{name} takes sizes, e.g. --grid {name}=32,64,128") from None
        if value < 1:
            raise GridError(arg, f"{name} = {value}: sizes are at least 1", at, len(piece))
        return value
    if kind == "cell":
        if text not in facts.cells:
            raise GridError(arg, f"{facts.file} defines no cell `{text}`", at, len(piece),
                            did_you_mean(text, facts.cells, "cell") or
                            f"its cells: {', '.join(facts.cells)}; add the cell under `cells:` to sweep it")
        return text
    if kind == "backend":
        if text not in facts.backends:
            raise GridError(arg, f"unknown backend `{text}`", at, len(piece),
                            did_you_mean(text, facts.backends, "backend") or f"backends: {', '.join(facts.backends)}")
        return text
    if text not in DTYPES:
        raise GridError(arg, f"unknown dtype `{text}`", at, len(piece), f"dtypes: {', '.join(DTYPES)}")
    return text


EXAMPLES = {"cell": "lstm,gru", "backend": "numpy,c", "dtype": "float32,float64", "lr": "0.001,0.01,0.1",
            "optimizer": "sgd,adam", "epochs": "1,2,5", "clip": "1,5,none", "bptt": "10,25", "quant": "q7,q15,q3.12"}


def _setting(arg, name, text, piece, at):
    """A training setting's value, or a fixed-point format."""
    hint = f"e.g. --grid {name}={EXAMPLES[name]}"
    if name == "quant":
        from .quant.formats import FormatError, parse

        try:
            parse(text)
        except FormatError as e:
            raise GridError(arg, str(e), at, len(piece), hint + " (a format as `run --quant` takes)") from None
        return text
    if name == "optimizer":
        from .autodiff.train import Optimizer

        try:
            Optimizer(text, 1.0)
        except UsageError as e:
            raise GridError(arg, str(e), at, len(piece), hint) from None
        return text
    if name == "clip" and text.lower() in ("none", "off"):
        return None
    kind = TRAIN_KEYS[name][0]
    try:
        value = kind(text)
    except ValueError:
        raise GridError(arg, f"`{text}` is not a{' whole' if kind is int else ''} number", at, len(piece),
                        hint) from None
    if not (math.isfinite(value) and value > 0):
        raise GridError(arg, f"{name} = {text}: give a positive {'whole ' if kind is int else ''}number", at,
                        len(piece), hint)
    return value


@dataclass(frozen=True)
class Point:
    """One point of the grid: the values of every swept key, and the settings held fixed."""

    index: int
    swept: tuple[tuple[str, object], ...]
    fixed: tuple[tuple[str, object], ...]  # run and training settings (steps None: the spec's), fixed dims

    @property
    def settings(self) -> dict:
        return dict(self.fixed) | dict(self.swept)

    def dims(self, dim_names) -> dict[str, int]:
        s = self.settings
        return {k: v for k, v in s.items() if k in dim_names}

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.swept) or "(no swept keys)"


def points(grid: dict[str, list], fixed: dict) -> list[Point]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    out = []
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        swept = tuple(zip(keys, combo))
        out.append(Point(i, swept, tuple((k, v) for k, v in fixed.items() if k not in grid)))
    return out


def spec_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def row_key(spec_sha: str, settings: dict, seed: int) -> str:
    """The key a results row is found by when a sweep resumes: the spec's text and every setting."""
    parts = [f"spec={spec_sha}"] + [f"{k}={'auto' if v is None else v}" for k, v in sorted(settings.items())]
    return ";".join(parts + [f"seed={seed}"])


# ---- one point: compile, then run each seed (runs on a worker) --------------------------------------

def set_scan_cell(data: dict, cell: str) -> None:
    """Make the model's `scan:` (or every layer's) run `cell`."""
    model = data["model"]
    if "scan" in model:
        model["scan"] = cell
    else:
        for layer in model["layers"]:
            layer["scan"] = cell


def compile_point(spec_text: str, spec_file: str, settings: dict, dim_names):
    """The point's Program: the spec with its cell variant, checked with the point's dims."""
    from .check import check_data
    from .program import compile as compile_program
    from .source import load_text

    data, smap = load_text(spec_text, spec_file)
    if settings.get("cell") is not None:
        set_scan_cell(data, settings["cell"])
    dims = {k: v for k, v in settings.items() if k in dim_names}
    return compile_program(check_data(data, smap, dims))


def output_stats(result) -> dict[str, float]:
    """Mean, standard deviation and largest magnitude of each output; the mean over sequences of each
    final state's norm."""
    import numpy as np

    out = {}
    for name, v in result.outputs.items():
        v = np.asarray(v, np.float64)
        out[f"{name}.mean"] = float(v.mean())
        out[f"{name}.std"] = float(v.std())
        out[f"{name}.absmax"] = float(np.abs(v).max())
    for name, v in result.final_state.items():
        v = np.asarray(v, np.float64).reshape(len(v), -1)
        out[f"state.{name}.norm"] = float(np.linalg.norm(v, axis=1).mean())
    return out


def run_point(spec_text: str, spec_file: str, spec_sha: str, point: Point, seeds, dim_names) -> list[dict]:
    """Compile the point once and run it for every seed: one row each (settings, statistics, timings)."""
    from . import api
    from .drivers import Executable

    s = point.settings
    t0 = time.perf_counter()
    program = compile_point(spec_text, spec_file, s, dim_names)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    Executable.cached(program, s["backend"], s["dtype"])  # the C backend builds here (or finds its cache)
    build_s = time.perf_counter() - t0
    params = sum(math.prod(p.shape) for p in program.params.values())
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        result = api.run(program, batch=s["batch"], steps=s["steps"], seed=seed, dtype=s["dtype"],
                         backend=s["backend"])
        run_s = time.perf_counter() - t0
        steps = program.checked.steps(s["steps"])
        row = {"key": row_key(spec_sha, s, seed), "spec": spec_file, "spec_sha": spec_sha, **dict(point.swept),
               **{k: v for k, v in point.fixed if k != "steps"}, "steps": steps, "seed": seed, "params": params}
        row.update(output_stats(result))
        row.update({"compile_s": compile_s, "build_s": build_s, "run_s": run_s})
        rows.append(row)
    return rows
