"""Training checkpoints: everything a run needs to continue exactly, in one .npz written atomically.

    params.<key>      the weights after the epoch (as weight files key them)
    optimizer.<key>   the optimizer's moments (m.<param>, v.<param>) and step count t
    best.<key>        with early stopping: the weights of the best validation epoch so far
    meta              JSON (as UTF-8 bytes): the epochs done, the shuffling generator's state, the
                      history so far, the early-stopping record, and the run's settings

`rnncompile train --checkpoint DIR` writes DIR/epoch-0001.npz, DIR/epoch-0002.npz, ... after every
epoch; `--resume` reads one file, or the last epoch's file of a folder.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import DataError

FORMAT = 1
_EPOCH_FILE = re.compile(r"epoch-(\d+)\.npz$")


def path_for(folder, epoch: int) -> Path:
    return Path(folder) / f"epoch-{epoch:04d}.npz"


def save(path, params: dict, optimizer: dict, meta: dict, best: dict | None = None) -> None:
    from ..params import save_npz

    arrays = {f"params.{k}": np.asarray(v) for k, v in params.items()}
    arrays.update({f"optimizer.{k}": np.asarray(v) for k, v in optimizer.items()})
    arrays.update({f"best.{k}": np.asarray(v) for k, v in (best or {}).items()})
    text = json.dumps({"format": FORMAT, **meta}, sort_keys=True)
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), np.uint8)
    save_npz(path, arrays)


def find(path) -> Path:
    """The checkpoint file: `path` itself, or the last epoch's file in the folder `path`."""
    p = Path(path)
    if p.is_dir():
        found = sorted((int(m.group(1)), q) for q in p.iterdir() if (m := _EPOCH_FILE.search(q.name)))
        if not found:
            raise DataError(f"{p}: holds no checkpoints (epoch-NNNN.npz, as `train --checkpoint` writes them)")
        return found[-1][1]
    if not p.exists():
        raise DataError(f"{p}: no such checkpoint")
    return p


def load(path) -> dict:
    """{"params", "optimizer", "best", "meta", "path"} of a checkpoint file (or a folder's last)."""
    from ..data import read_npz

    p = find(path)
    arrays = read_npz(p, "checkpoints")
    if "meta" not in arrays:
        raise DataError(f"{p}: not a training checkpoint (no `meta`; a weights file is given with --weights)")
    try:
        meta = json.loads(arrays.pop("meta").astype(np.uint8).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{p}: a damaged checkpoint (`meta` is not JSON: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{p}: a checkpoint of another format ({meta.get('format') if isinstance(meta, dict) else '?'}"
                        f"; this version reads format {FORMAT})")
    parts: dict[str, dict] = {"params": {}, "optimizer": {}, "best": {}}
    for key, value in arrays.items():
        head, _, rest = key.partition(".")
        if head not in parts or not rest:
            raise DataError(f"{p}: unexpected `{key}` in a checkpoint")
        parts[head][rest] = value
    return {**parts, "meta": meta, "path": p}
