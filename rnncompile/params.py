"""Parameter values: seeded initialisers, literal values, and .npz files."""
from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import numpy as np

from .data import read_npz, warn_non_finite
from .errors import DataError
from .files import atomic_write
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
                  partial: bool = False, consts: dict[str, str] | None = None) -> None:
    """One error listing every missing, unexpected or misshapen array. `consts`: weight-file key -> where the
    spec declares that constant (a constant is fixed by the spec, so a file may not give it)."""
    consts = consts or {}
    problems = []
    for key, info in infos.items():
        if key not in given:
            if not partial:
                problems.append(f"  missing `{key}` {fmt_shape(info.shape)}")
        elif tuple(given[key].shape) != info.shape:
            problems.append(f"  `{key}` has shape {list(given[key].shape)}, the spec wants {fmt_shape(info.shape)}")
    for key in given:
        if key in consts and key not in infos:
            problems.append(f"  `{key}` is a constant, declared at {consts[key]}: its value is fixed by the spec, "
                            f"not read from weights\n    hint: remove `{key}` from {source}, or to load or train it, "
                            f"declare it under the cell's `params:` instead of `consts:`")
        elif key not in infos:
            problems.append(f"  unexpected `{key}` {list(np.shape(given[key]))} (the spec has no such param)")
    if problems:
        torch_like = any(re.search(r"(^|\.)(weight|bias)_(ih|hh)_l\d+", k) for k in given if k not in infos)
        raise DataError(f"{source}: weights do not match the spec:\n" + "\n".join(problems)
                        + "\n  expected names: " + ", ".join(infos)
                        + (f"\n  hint: these are a PyTorch state_dict's names; convert it with "
                           f"`rnncompile weights SPEC --from-torch {source} -o W.npz`" if torch_like else ""))


def load_npz(path, infos: dict[str, ParamInfo], dtype="float32", partial: bool = False,
             consts: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Param values from an .npz keyed by param name: numbers only, checked against the spec; one warning
    when any are NaN or infinite (or too large for `dtype`)."""
    p = Path(path)
    given = read_npz(p, "weights")
    check_against(infos, given, str(p), partial, consts)
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: inf, reported just below
        values = {k: np.asarray(v, dtype=dtype) for k, v in given.items()}
    warn_non_finite(p, values, "weights", f" (or values too large for {dtype})" if dtype != "float64" else "")
    return values


def save_npz(path, values: dict[str, np.ndarray]) -> None:
    with atomic_write(path, "wb") as f:
        np.savez(f, **values)


def make_params(program, seed: int = 0, weights=None, dtype="float32") -> dict[str, np.ndarray]:
    """Seeded (or literal) values for every param of a program, overridden by a weights file or dict."""
    infos = program.params
    values = init_params(infos, seed, dtype)
    if weights is None:
        return values
    consts = const_keys(program)
    if isinstance(weights, dict):
        check_against(infos, weights, "weights", consts=consts)
        given = {k: np.asarray(v, dtype) for k, v in weights.items()}
    else:
        given = load_npz(weights, infos, dtype, consts=consts)
    values.update(given)
    return values


def const_keys(program) -> dict[str, str]:
    """The weight-file keys that name a spec constant (`consts:`), each with where it is declared
    (`file:line:col (cells.<cell>.consts.<name>)`): a weights file giving one is refused, located."""
    out = {}
    smap = program.checked.smap
    for use in program.plan.uses():
        for nid in use.cell.nodes_of("const"):
            node = use.cell.node(nid)
            parts = tuple(node.origin.split("."))
            if node.label and len(parts) >= 2 and parts[-2] == "consts":
                out[use.key(node.label)] = f"{smap.key_loc(parts)} ({node.origin})"
    return out
