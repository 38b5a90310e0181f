"""`rnncompile sweep`: check the grid against the spec, skip the points the results file already holds,
run the rest on Dask, write each finished point's rows at once, and draw the figure."""
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


def sweep(opts: SweepOptions, echo, warn) -> None:
    from . import registry
    from .check import check_file
    from .files import read_text
    from .source import MAX_SPEC_BYTES
    from .sweep import parse_grid, points, spec_digest, spec_facts, row_key
    from .sweep_table import ResultsTable, plot

    checked = check_file(opts.spec, opts.dims)
    facts = spec_facts(checked, registry.available())
    grid = parse_grid(opts.grid, facts)
    if not grid:
        raise UsageError(f"give at least one --grid KEY=VALUES, e.g. --grid H=32,64,128 (the dims of "
                         f"{opts.spec}: {', '.join(facts.dims)})")
    swept_cells = set(grid.get("cell", ()))
    for w in checked.warnings:  # a cell the grid swaps in is not used by the spec as written: no news
        if not any(w.path == f"cells.{c}" for c in swept_cells):
            warn(w)
    if opts.backend not in facts.backends:
        registry.get(opts.backend)  # the located error for an unknown backend
    fixed = {"backend": opts.backend, "dtype": opts.dtype, "batch": opts.batch, "steps": opts.steps, **opts.dims}
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
                                 opts.progress)
        ran = len(todo) - len(failures)
        echo(f"ran {ran} point{'s' if ran != 1 else ''} × {opts.seeds} seed{'s' if opts.seeds != 1 else ''}; "
             f"{len(table.rows)} row{'s' if len(table.rows) != 1 else ''} in {opts.output}")
    else:
        echo(f"nothing to run: all {total} rows are already in {opts.output}")
    if opts.plot:
        mine = {row_key(sha, p.settings, s) for p in all_points for s in range(opts.seeds)}
        rows = [r for k, r in table.rows.items() if k in mine]
        note = plot(rows, list(grid), opts.plot, opts.metric, opts.plot_x, checked.spec.name)
        echo(f"wrote {opts.plot} ({note})")
    if failures:
        from .distributed import EngineError

        lines = [f"  {f.point.label()}: {f.error}" for f in failures]
        raise EngineError(f"{len(failures)} of {len(all_points)} grid points failed (their rows are not in "
                            f"{opts.output}; run the same command again to retry them):\n" + "\n".join(lines))
