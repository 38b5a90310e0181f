"""Parameter values: seeded initialisers, literal values, and .npz files."""
from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError
from .graph import ParamInfo
from .ops import fmt_shape


def _rng(seed: int, name: str) -> np.random.Generator:
    # one stream per param name: adding a param leaves the others' values unchanged
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def init_value(info: ParamInfo, seed: int, dtype="float32", key: str | None = None) -> np.ndarray:
    shape, key = info.shape, key or info.name
    if info.values is not None:
        arr = np.asarray(info.values, dtype=np.float64)
        if arr.shape != shape:
            if arr.size == 1:
                arr = np.full(shape, float(arr.reshape(-1)[0]))
            else:
                raise DataError(f"{info.origin}: values have shape {list(arr.shape)}, "
                                f"but the param is declared {fmt_shape(shape)}")
        return arr.astype(dtype)
    rng = _rng(seed, key)
    fan_in = shape[-1] if shape else 1
    fan_out = shape[0] if len(shape) > 1 else fan_in
    init = info.init
    if init in ("glorot", "xavier"):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        out = rng.uniform(-bound, bound, shape)
    elif init == "uniform":
        bound = info.scale if info.scale is not None else 1.0 / math.sqrt(fan_in)
        out = rng.uniform(-bound, bound, shape)
    elif init == "normal":
        out = rng.normal(0.0, info.scale if info.scale is not None else 1.0 / math.sqrt(fan_in), shape)
    elif init == "zeros":
        out = np.zeros(shape)
    elif init == "ones":
        out = np.ones(shape)
    elif init == "constant":
        out = np.full(shape, info.scale if info.scale is not None else 0.0)
    elif init == "one_hot":
        out = np.zeros(shape) if shape else np.ones(shape)
        if shape:
            out[..., 0] = 1.0
    elif init == "orthogonal":
        a = rng.normal(size=(max(shape[0], fan_in), min(shape[0], fan_in)) if len(shape) == 2 else shape)
        if len(shape) == 2:
            q, r = np.linalg.qr(a)
            q = q * np.sign(np.diag(r))
            out = q if q.shape == shape else q.T
        else:
            out = a
    else:  # the spec schema admits no other names
        raise ValueError(init)
    return out.astype(dtype)


def init_params(infos: dict[str, ParamInfo], seed: int = 0, dtype="float32") -> dict[str, np.ndarray]:
    return {key: init_value(info, seed, dtype, key) for key, info in infos.items()}


def check_against(infos: dict[str, ParamInfo], given: dict[str, np.ndarray], source: str,
                  partial: bool = False) -> None:
    """One error listing every missing, unexpected or misshapen array."""
    problems = []
    for key, info in infos.items():
        if key not in given:
            if not partial:
                problems.append(f"  missing `{key}` {fmt_shape(info.shape)}")
        elif tuple(given[key].shape) != info.shape:
            problems.append(f"  `{key}` has shape {list(given[key].shape)}, the spec wants {fmt_shape(info.shape)}")
    for key in given:
        if key not in infos:
            problems.append(f"  unexpected `{key}` {list(np.shape(given[key]))} (the spec has no such param)")
    if problems:
        raise DataError(f"{source}: weights do not match the spec:\n" + "\n".join(problems)
                        + "\n  expected names: " + ", ".join(infos))


def load_npz(path, infos: dict[str, ParamInfo], dtype="float32", partial: bool = False) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such weights file")
    try:
        with np.load(p, allow_pickle=False) as f:
            given = {k: f[k] for k in f.files}
    except (ValueError, OSError) as e:
        raise DataError(f"{p}: not a readable .npz file ({e})") from None
    check_against(infos, given, str(p), partial)
    return {k: np.asarray(v, dtype=dtype) for k, v in given.items()}


def save_npz(path, values: dict[str, np.ndarray]) -> None:
    from .data import atomic_write

    with atomic_write(path, "wb") as f:
        np.savez(f, **values)
