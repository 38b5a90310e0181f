"""`rnncompile sweep`: check the grid against the spec, skip the points the results file already holds,
run the rest on Dask, write each finished point's rows at once, and draw the figure. With --train, every
point trains (sweep_train.py) on data read here once and shipped to each worker once."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError


@dataclass
class SweepOptions:
    spec: str
    grid: tuple
    dims: dict
    seeds: int
    backend: str
    dtype: str
    batch: int
    steps: int | None
    output: str
    plot: str | None
    metric: str | None
    plot_x: str | None
    scheduler: str | None
    workers: int | None
    progress: bool
    train: str | None = None  # the training data: a training sweep
    val_split: float | None = None


def sweep(opts: SweepOptions, echo, warn) -> None:
    from . import registry
    from .check import check_file
    from .files import read_text
    from .source import MAX_SPEC_BYTES
    from .sweep import parse_grid, points, spec_digest, spec_facts, row_key
    from .sweep_table import ResultsTable, plot

    checked = check_file(opts.spec, opts.dims)
    facts = spec_facts(checked, registry.available())
    if opts.val_split is not None and opts.train is None:
        raise UsageError("--val-split holds out part of the training data: give --train DATA too")
    grid = parse_grid(opts.grid, facts, training=opts.train is not None)
    if not grid:
        raise UsageError(f"give at least one --grid KEY=VALUES, e.g. --grid H=32,64,128 (the dims of "
                         f"{opts.spec}: {', '.join(facts.dims)})")
    swept_cells = set(grid.get("cell", ()))
    for w in checked.warnings:  # a cell the grid swaps in is not used by the spec as written: no news
        if not any(w.path == f"cells.{c}" for c in swept_cells):
            warn(w)
    if opts.backend not in facts.backends:
        registry.get(opts.backend)  # the located error for an unknown backend
    _check_quant_backends(grid, opts.backend)
    fixed = {"backend": opts.backend, "dtype": opts.dtype, "batch": opts.batch, "steps": opts.steps, **opts.dims}
    data = None
    if opts.train is not None:
        from .program import compile as compile_program
        from .sweep import TRAIN_KEYS
        from .sweep_train import read_train_data

        data = read_train_data(opts.train, compile_program(checked), opts.val_split)
        fixed.update({k: default for k, (_, default) in TRAIN_KEYS.items()})
        fixed.update({"data_sha": data.sha, "val_split": opts.val_split})  # other data: other rows
    text = read_text(opts.spec, MAX_SPEC_BYTES)
    sha = spec_digest(text)
    table = ResultsTable(opts.output)
    todo, seeds, done = [], {}, 0
    all_points = points(grid, fixed)
    for p in all_points:
        keys = [row_key(sha, p.settings, s) for s in range(opts.seeds)]
        table.rank.update((k, p.index * opts.seeds + s) for s, k in enumerate(keys))
        missing = [s for s, k in enumerate(keys) if k not in table]
        done += opts.seeds - len(missing)
        if missing:
            todo.append(p)
            seeds[p.index] = missing
    total = len(all_points) * opts.seeds
    if done and todo:
        echo(f"resuming: {done} of {total} rows are already in {opts.output}; running the other {total - done} "
             f"({len(todo)} of {len(all_points)} points)")
    failures = []
    if todo:
        from .distributed import connect, run_sweep

        with connect(opts.scheduler, opts.workers, note=echo) as client:
            failures = run_sweep(client, text, str(opts.spec), sha, todo, seeds, facts.dims, table.add,
                                 opts.progress, train_data=data)
        ran = len(todo) - len(failures)
        echo(f"ran {ran} point{'s' if ran != 1 else ''} × {opts.seeds} seed{'s' if opts.seeds != 1 else ''}; "
             f"{len(table.rows)} row{'s' if len(table.rows) != 1 else ''} in {opts.output}")
    else:
        echo(f"nothing to run: all {total} rows are already in {opts.output}")
    mine = {row_key(sha, p.settings, s) for p in all_points for s in range(opts.seeds)}
    rows = [r for k, r in table.rows.items() if k in mine]
    if opts.plot and rows:  # with no row at all, the failures below say why
        note = plot(rows, list(grid), opts.plot, opts.metric, opts.plot_x, checked.spec.name)
        echo(f"wrote {opts.plot} ({note})")
    if failures:
        from .distributed import EngineError

        lines = [f"  {f.point.label()}: {f.error}" for f in failures]
        raise EngineError(f"{len(failures)} of {len(all_points)} grid points failed (their rows are not in "
                            f"{opts.output}; run the same command again to retry them):\n" + "\n".join(lines))


def _check_quant_backends(grid: dict, backend: str) -> None:
    """`quant=` points run on a fixed-point backend: say so before any cluster starts."""
    if "quant" not in grid:
        return
    from .quant import FIXED_BACKENDS

    odd = [b for b in grid.get("backend", [backend]) if b not in FIXED_BACKENDS]
    if odd:
        raise UsageError(f"--grid quant={','.join(grid['quant'])}: fixed-point formats run on the fixed-point "
                         f"backends ({', '.join(FIXED_BACKENDS)}), not {odd[0]}; add --backend fixed (or sweep "
                         f"--grid backend=fixed,fixed_c)")
