"""Chunked output of a sharded run (`rnncompile run --engine dask -o out.zarr`, or `-o outdir/`): every
worker writes its chunk's rows of each array straight into the output, and nothing is gathered in the
client.

    out.zarr/            a Zarr (v3) group: one array per name, chunked along the batch axis
      outputs.y  state.h  ...  (tokens, lengths for a decoder)
    outdir/              one .npy per name, each filled row range by row range
      outputs.y.npy  state.h.npy  ...  rnncompile-run.json

The names and the arrays are those of the .npz a local run writes (`run -o out.npz`), bit for bit. The
client makes every array, at its full shape, in a temporary folder beside the output; workers write their
rows (a chunk starts at a multiple of the Zarr chunk, so no two workers write one Zarr chunk); the folder
is renamed into place when every chunk is in. A run that fails leaves no output (and an older output of
the same name as it was). The workers must see the folder: on one machine they do; on a cluster, write to
a file system every worker mounts.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError, UsageError

ZARR = ".zarr"
MANIFEST = "rnncompile-run.json"  # in a .npy folder; a Zarr store keeps it in its attributes
MARK = "rnncompile"


def is_store(path) -> bool:
    """An output the workers write chunk by chunk: a .zarr name, a name ending in `/`, or a folder."""
    if path is None or str(path) == "-":
        return False
    text = str(path)
    return text.endswith(("/", os.sep)) or Path(text).suffix.lower() == ZARR or Path(text).is_dir()


def kind_of(path) -> str:
    return "zarr" if Path(str(path).rstrip("/" + os.sep)).suffix.lower() == ZARR else "npy"


def check_store(path, option: str = "--output") -> None:
    """Refuse, before any work, a chunked output that cannot be written or would replace something else."""
    p = Path(str(path).rstrip("/" + os.sep) or "/")
    name = f"{option} {path}"
    if kind_of(path) == "zarr":
        try:
            import zarr  # noqa: F401
        except ImportError:
            raise UsageError(f"{name}: writing Zarr needs zarr (python3 -m pip install zarr); or write a folder "
                             f"of .npy files: {option} {p.with_suffix('')}/") from None
    if p.exists() and not p.is_dir():
        raise UsageError(f"{name}: a file of that name exists; chunked output is a folder: give another name")
    if p.is_dir() and any(p.iterdir()) and not _ours(p):
        raise UsageError(f"{name}: the folder exists and is not the output of a run (it holds no "
                         f"{'Zarr store' if kind_of(path) == 'zarr' else MANIFEST}); give a new name")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{name}: cannot write into `{parent}` (permission denied)")


def _ours(folder: Path) -> bool:
    try:
        if (folder / MANIFEST).is_file():
            return True
        meta = json.loads((folder / "zarr.json").read_text())
        return MARK in meta.get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class Layout:
    """What the client made and the workers fill: the temporary folder and every array's shape and dtype."""

    kind: str  # "zarr" or "npy"
    folder: str
    arrays: tuple  # (name, shape, dtype str)
    rows: int  # rows per Zarr chunk along the batch axis

    def shape(self, name):
        return next(tuple(s) for n, s, _ in self.arrays if n == name)


def run_arrays(result) -> dict:
    """A run's arrays by the names `run -o out.npz` gives them."""
    arrays = {f"outputs.{k}": v for k, v in result[0].items()}
    arrays.update({f"state.{k}": v for k, v in result[1].items()})
    if result[2] is not None:
        arrays["tokens"], arrays["lengths"] = result[2], result[3]
    return arrays


def chunk_rows(bounds) -> int:
    """Rows per Zarr chunk: a divisor of every chunk's start, so each task writes whole Zarr chunks."""
    starts = [a for a, _ in bounds if a]
    return math.gcd(*starts) if starts else bounds[-1][1]


def create(path, probe: dict, batch: int, bounds, about: dict) -> Layout:
    """A temporary folder beside `path` holding every array at its full shape (`probe`: one sequence's run)."""
    import numpy as np

    final = Path(str(path).rstrip("/" + os.sep)).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)  # mkdtemp makes it private; give it a folder's usual mode
    arrays = tuple((n, (batch,) + tuple(np.shape(v)[1:]), np.asarray(v).dtype.str) for n, v in probe.items())
    layout = Layout(kind_of(path), folder, arrays, chunk_rows(bounds))
    try:
        meta = {**about, "arrays": {n: {"shape": list(s), "dtype": d} for n, s, d in arrays}}
        if layout.kind == "zarr":
            import zarr

            group = zarr.open_group(folder, mode="w", zarr_format=3)
            group.attrs[MARK] = meta
            for n, s, d in arrays:
                group.create_array(n, shape=s, chunks=(min(layout.rows, batch),) + s[1:], dtype=np.dtype(d))
        else:
            for n, s, d in arrays:
                np.lib.format.open_memmap(Path(folder) / f"{n}.npy", mode="w+", dtype=np.dtype(d), shape=s).flush()
            (Path(folder) / MANIFEST).write_text(json.dumps(meta, indent=2) + "\n")
    except BaseException:
        discard(layout)
        raise
    return layout


def write_chunk(layout: Layout, start: int, arrays: dict) -> str | None:
    """On a worker: this chunk's rows of every array, from row `start`. Returns an error text, or None."""
    import numpy as np

    if not os.path.isdir(layout.folder):
        return (f"this worker cannot see {layout.folder}: chunked output is written by the workers, so it needs a "
                f"folder every worker mounts (or write .npz, gathered by the client)")
    for name, value in arrays.items():
        value = np.asarray(value)
        want = layout.shape(name)
        if value.shape[1:] != want[1:]:
            return (f"`{name}` has shape {value.shape[1:]} per sequence in this chunk and {want[1:]} in the first "
                    f"sequence's run: chunked output needs one shape for every sequence; write .npz")
        stop = start + value.shape[0]
        if layout.kind == "zarr":
            import zarr

            zarr.open_array(layout.folder, path=name, mode="r+")[start:stop] = value
        else:
            out = np.load(Path(layout.folder) / f"{name}.npy", mmap_mode="r+")
            out[start:stop] = value
            out.flush()
            del out
    return None


def commit(layout: Layout, path) -> None:
    """Move the filled folder into place (an older output of the same name goes only once this one is in)."""
    final = Path(str(path).rstrip("/" + os.sep)).resolve()
    old = None
    if final.exists() and any(final.iterdir()):
        old = tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent)
        os.replace(final, Path(old) / "previous")
    elif final.exists():
        final.rmdir()
    try:
        os.replace(layout.folder, final)
    except OSError as e:
        if old is not None:
            os.replace(Path(old) / "previous", final)
        raise DataError(f"cannot write {final}: {e.strerror or e}") from None
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def discard(layout: Layout) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(layout.folder)
