"""Run inputs and outputs: random seeded inputs, .npy/.npz/.json files, text.

Every file we write goes through :func:`atomic_write`, so an error never
leaves a half-written output behind.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import DataError

MAX_RUN_ELEMENTS = 2**30  # inputs, outputs or a trace beyond this are refused before allocation


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """Write to a temporary file beside `path`, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_budget(what: str, elements: int) -> None:
    if elements > MAX_RUN_ELEMENTS:
        raise DataError(f"{what} would hold {elements:.3g} numbers ({elements * 4 / 2**30:.1f} GiB as float32); "
                        f"the limit is {MAX_RUN_ELEMENTS:.3g}. Use a smaller --batch, --steps or --dim.")


def random_inputs(inputs: dict, batch: int, steps: int, seed: int, dtype="float32", vocab_size: int | None = None):
    """Seeded inputs: standard normal floats, uniform tokens. inputs: name -> InputInfo."""
    rng = np.random.default_rng(seed + 1_000_003)
    out = {}
    for name, info in inputs.items():
        check_budget(f"input `{name}`", batch * steps * math.prod(info.shape))
        if info.dtype == "token":
            if not vocab_size:
                raise DataError(f"input `{name}` is a token but the spec has no vocabulary; give --input or --text")
            out[name] = rng.integers(0, vocab_size, (batch, steps) + info.shape)
        else:
            out[name] = rng.standard_normal((batch, steps) + info.shape).astype(dtype)
    return out


def read_arrays(path, only: str | None = None) -> dict[str, np.ndarray]:
    """Arrays keyed by name from .npz or .json; a .npy file holds the one array named `only`."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    try:
        if p.suffix == ".npy":
            if only is None:
                raise DataError(f"{p}: a .npy file holds one array, but the model takes several; "
                                f"use .npz or .json keyed by name")
            return {only: np.load(p, allow_pickle=False)}
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        if p.suffix == ".json":
            data = json.loads(p.read_text())
            if not isinstance(data, dict):
                raise DataError(f"{p}: expected a JSON object mapping names to nested lists")
            return {k: np.asarray(v) for k, v in data.items()}
    except (ValueError, OSError) as e:
        raise DataError(f"{p}: cannot read arrays ({e})") from None
    raise DataError(f"{p}: unknown format `{p.suffix}`; use .npy, .npz or .json")


def save_outputs(path, arrays: dict[str, np.ndarray]) -> None:
    p = Path(path)
    if p.suffix == ".npz":
        with atomic_write(p, "wb") as f:
            np.savez(f, **arrays)
    elif p.suffix == ".json":
        with atomic_write(p, "w") as f:
            json.dump({k: np.asarray(v).tolist() for k, v in arrays.items()}, f)
    else:
        raise DataError(f"{p}: unknown output format `{p.suffix}`; use .npz or .json")
