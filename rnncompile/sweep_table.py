"""A sweep's results table: one row per grid point and seed, kept in a .csv or .parquet file that is
rewritten whole (a temporary file renamed into place) each time rows arrive, so the file on disk always
holds every finished row and never half of one; a sweep that starts on an existing file resumes.

Also the sweep's figure: a metric against a swept value, one line per value of the other swept keys.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from .errors import DataError, UsageError
from .files import atomic_write, read_text

FORMATS = (".csv", ".parquet")
MAX_TABLE_BYTES = 256 * 2**20
HEAD = ("key", "spec", "spec_sha")
TAIL = ("compile_s", "build_s", "run_s")


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
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# ---- the figure ------------------------------------------------------------------------------------

def plot(rows: list[dict], swept: list[str], output, metric: str | None = None, x: str | None = None,
         name: str = "") -> str:
    """Draw `metric` (default: the first output's std) against swept key `x` (default: the first numeric
    one), the mean over seeds with their standard deviation as error bars; one line for each combination
    of the other swept keys. Returns a note on what was drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise DataError("no results to plot")
    numeric = [k for k in swept if all(isinstance(r.get(k), (int, float)) for r in rows)]
    if x is None:
        if not numeric:
            raise UsageError("--plot needs a numeric swept value for its x axis (a dim, batch or steps); "
                             "sweep one, e.g. --grid H=16,32,64")
        x = numeric[0]
    elif x not in swept:
        raise UsageError(f"--plot-x {x}: not a swept key; swept: {', '.join(swept)}")
    metrics = [c for c in _columns(rows) if c not in HEAD and c not in swept and c not in
               ("backend", "dtype", "batch", "steps", "seed", "params")]
    metric = metric or next((c for c in metrics if c.endswith(".std")), metrics[0])
    if metric not in metrics:
        from .errors import did_you_mean

        raise UsageError(f"--metric {metric}: no such column; " + (did_you_mean(metric, metrics) or
                                                                   "columns: " + ", ".join(metrics)))
    others = [k for k in swept if k != x]
    groups: dict[tuple, dict] = {}
    for r in rows:
        if r.get(metric) is None:
            continue
        groups.setdefault(tuple(r.get(k) for k in others), {}).setdefault(r[x], []).append(float(r[metric]))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for label, by_x in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        xs = sorted(by_x, key=lambda v: (isinstance(v, str), v))
        means = [sum(by_x[v]) / len(by_x[v]) for v in xs]
        stds = [math.sqrt(sum((y - m) ** 2 for y in by_x[v]) / len(by_x[v])) for v, m in zip(xs, means)]
        line = ", ".join(f"{k}={v}" for k, v in zip(others, label)) or metric
        ax.errorbar([str(v) for v in xs] if x not in numeric else xs, means,
                    yerr=stds if any(stds) else None, marker="o", capsize=3, label=line)
    if x in numeric:
        values = sorted({r[x] for r in rows})
        if values[0] > 0 and values[-1] / values[0] >= 8:
            ax.set_xscale("log", base=2)
            ax.set_xticks(values, [str(v) for v in values])
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    seeds = len({r.get("seed") for r in rows})
    ax.set_title((f"{name}: " if name else "") + f"{metric} against {x}" +
                 (f" (mean of {seeds} seeds, ±1 std)" if seeds > 1 else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    if len(groups) > 1 or others:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(output, "wb") as f:
        fig.savefig(f, format=Path(output).suffix.lstrip(".") or "png")
    plt.close(fig)
    return f"{metric} against {x}, {len(groups)} line{'s' if len(groups) != 1 else ''}"
