"""A sweep's results table: one row per grid point and seed, kept in a .csv or .parquet file that is
rewritten whole (a temporary file renamed into place) each time rows arrive, so the file on disk always
holds every finished row and never half of one; a sweep that starts on an existing file resumes.

A list (a training row's loss per epoch) is a list in Parquet and JSON text in CSV.

Also the sweep's figure: a metric against a swept value, one line per value of the other swept keys;
for a training sweep, beside it the loss curve of every point.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .errors import DataError, UsageError
from .files import atomic_write, read_text

FORMATS = (".csv", ".parquet")
MAX_TABLE_BYTES = 256 * 2**20
HEAD = ("key", "spec", "spec_sha")
TAIL = ("compile_s", "build_s", "float_s", "run_s", "train_s", "eval_s")
NOT_METRICS = ("backend", "dtype", "batch", "steps", "seed", "params")


def check_format(path) -> None:
    if Path(path).suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError(f"-o {path}: writing Parquet needs pyarrow (python3 -m pip install pyarrow); "
                             f"or write -o {Path(path).with_suffix('.csv')}") from None


class ResultsTable:
    """The rows of one results file, by key, in the order they are to be written."""

    def __init__(self, path):
        self.path = Path(path)
        self.rows: dict[str, dict] = {}
        self.rank: dict[str, int] = {}  # key -> place in the sweep's grid order; rows of other sweeps go first
        if self.path.exists():
            for row in read_rows(self.path):
                if not row.get("key"):
                    raise DataError(f"{self.path}: a row without a `key` column: not a results file of "
                                    f"`rnncompile sweep`; write to another file")
                self.rows[row["key"]] = row

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def add(self, rows: list[dict]) -> None:
        """Record finished rows and rewrite the file at once."""
        for row in rows:
            self.rows[row["key"]] = row
        ordered = sorted(self.rows.values(), key=lambda r: self.rank.get(r["key"], -1))
        write_rows(self.path, ordered)


def _columns(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    middle = [c for c in seen if c not in HEAD and c not in TAIL]
    return [c for c in HEAD if c in seen] + middle + [c for c in TAIL if c in seen]


def write_rows(path: Path, rows: list[dict]) -> None:
    columns = _columns(rows)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
        with atomic_write(path, "wb") as f:
            pq.write_table(table, f)
        return
    with atomic_write(path, "w") as f:
        w = csv.DictWriter(f, columns, restval="", lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: _cell(v) for k, v in row.items()})


def _cell(v):
    if isinstance(v, (list, tuple)):
        return json.dumps(list(v))  # floats as repr: they read back the same
    return repr(float(v)) if isinstance(v, float) else v  # repr: the shortest text that reads back the same float


def read_rows(path: Path) -> list[dict]:
    """A results file's rows; CSV values come back as text, except that numbers are read as numbers."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow's errors have no common base
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    text = read_text(path, MAX_TABLE_BYTES)
    try:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]
    except csv.Error as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None


def _number(text):
    if text is None or text == "":
        return None
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# ---- the figure ------------------------------------------------------------------------------------

def plot(rows: list[dict], swept: list[str], output, metric: str | None = None, x: str | None = None,
         name: str = "") -> str:
    """Draw `metric` against swept key `x` (default: quant, else the first numeric one, else the first), the mean over
    seeds with their standard deviation as error bars; one line for each combination of the other swept
    keys. The metric defaults to the held-out loss (else the final training loss) of a training sweep, the
    first output's largest error of a fixed-point one, else the first output's std. A training sweep's
    figure has the loss of every epoch of every point (mean over seeds) beside it. Returns a note."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise DataError("no results to plot")
    curves = any(isinstance(r.get("loss_per_epoch"), list) for r in rows)
    varied = [k for k in swept if len({str(r.get(k)) for r in rows}) > 1]  # a key of one value labels nothing
    swept = varied if varied and (x is None or x in varied) else swept
    if x is None:
        if not swept:
            raise UsageError("--plot draws a metric against a swept value; sweep one, e.g. --grid H=16,32,64")
        x = "quant" if "quant" in swept else next((k for k in swept if _numeric(rows, k)), swept[0])
    elif x not in swept:
        raise UsageError(f"--plot-x {x}: not a swept key; swept: {', '.join(swept)}")
    metric = _metric(rows, swept, metric)
    if curves:
        fig, (left, ax) = plt.subplots(1, 2, figsize=(11.5, 4.4), dpi=110)
        _loss_curves(left, rows, swept)
    else:
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    lines = _metric_against(ax, rows, swept, metric, x)
    seeds = len({r.get("seed") for r in rows})
    ax.set_title((f"{name}: " if name and not curves else "") + f"{metric} against {x}" +
                 (f" (mean of {seeds} seeds, ±1 std)" if seeds > 1 else ""), fontsize=10)
    if curves and name:
        fig.suptitle(name, fontsize=11)
    fig.tight_layout()
    with atomic_write(output, "wb") as f:
        fig.savefig(f, format=Path(output).suffix.lstrip(".") or "png")
    plt.close(fig)
    return f"{metric} against {x}, {lines} line{'s' if lines != 1 else ''}" + \
        (f"; loss curves of {len(_by_point(rows, swept))} points" if curves else "")


def _numeric(rows, key) -> bool:
    return all(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) for r in rows)


def _metric(rows, swept, metric):
    metrics = [c for c in _columns(rows) if c not in HEAD and c not in swept and c not in NOT_METRICS
               and any(isinstance(r.get(c), (int, float)) for r in rows)]
    if metric is None:
        has = {c for c in metrics if any(r.get(c) is not None for r in rows)}
        metric = next((c for c in ("val_loss", "train_loss") if c in has), None) or \
            next((c for c in metrics if c.endswith(".max_err")), None) or \
            next((c for c in metrics if c.endswith(".std")), None) or metrics[0]
    if metric not in metrics:
        from .errors import did_you_mean

        raise UsageError(f"--metric {metric}: no such column; " + (did_you_mean(metric, metrics) or
                                                                   "columns: " + ", ".join(metrics)))
    return metric


def _in_order(values):
    """Numbers ascending; anything else in the order the rows (grid order) give it."""
    if all(isinstance(v, (int, float)) for v in values):
        return sorted(values)
    return list(dict.fromkeys(values))


def _metric_against(ax, rows, swept, metric, x) -> int:
    others = [k for k in swept if k != x]
    numeric = _numeric(rows, x)
    groups: dict[tuple, dict] = {}
    for r in rows:
        if r.get(metric) is None:
            continue
        groups.setdefault(tuple(r.get(k) for k in others), {}).setdefault(r[x], []).append(float(r[metric]))
    order = _in_order([r[x] for r in rows])
    for label, by_x in sorted(groups.items(), key=lambda kv: _label_order(kv[0])):
        xs = [v for v in order if v in by_x]
        means = [sum(by_x[v]) / len(by_x[v]) for v in xs]
        stds = [math.sqrt(sum((y - m) ** 2 for y in by_x[v]) / len(by_x[v])) for v, m in zip(xs, means)]
        line = ", ".join(f"{k}={v}" for k, v in zip(others, label)) or metric
        ax.errorbar(xs if numeric else [str(v) for v in xs], means, yerr=stds if any(stds) else None, marker="o",
                    capsize=3, label=line)
    if numeric:
        values = sorted({r[x] for r in rows})
        if values[0] > 0 and values[-1] / values[0] >= 8:
            ax.set_xscale("log", base=2 if all(isinstance(v, int) for v in values) else 10)
            ax.set_xticks(values, [f"{v:g}" for v in values])
    drawn = [float(r[metric]) for r in rows if r.get(metric) is not None]
    if metric.endswith("_err") and drawn and min(drawn) > 0 and max(drawn) / min(drawn) >= 20:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    if len(groups) > 1 or others:
        ax.legend(fontsize=8)
    return len(groups)


def _label_order(values: tuple) -> tuple:
    return tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in values)


def _by_point(rows, swept) -> dict[tuple, list]:
    points: dict[tuple, list] = {}
    for r in rows:
        if isinstance(r.get("loss_per_epoch"), list):
            points.setdefault(tuple(r.get(k) for k in swept), []).append(r["loss_per_epoch"])
    return points


MAX_LEGEND = 16


def _loss_curves(ax, rows, swept) -> None:
    """The training loss of every epoch, one line per point (the mean over its seeds)."""
    points = _by_point(rows, swept)
    for label, curves in points.items():
        n = min(len(c) for c in curves)
        mean = [sum(c[e] for c in curves) / len(curves) for e in range(n)]
        ax.plot(range(1, n + 1), mean, marker="o" if n <= 20 else None, markersize=3,
                label=", ".join(f"{k}={v}" for k, v in zip(swept, label)))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"training loss ({next((r['loss'] for r in rows if r.get('loss')), 'loss')} per step)")
    seeds = len({r.get("seed") for r in rows})
    ax.set_title("loss per epoch" + (f" (mean of {seeds} seeds)" if seeds > 1 else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    if len(points) <= MAX_LEGEND:
        ax.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
