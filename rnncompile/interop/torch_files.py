"""State_dict files: .pt read with torch.load(weights_only=True) (tensors only, no pickled objects run), or
.npz keyed by torch names. torch is imported only here, and only for .pt files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import MAX_FILE_BYTES, read_npz
from ..errors import DataError, UsageError
from ..files import atomic_write, open_input
from ..params import save_npz

TORCH_SUFFIXES = (".pt", ".pth")
STATE_DICT_SUFFIXES = TORCH_SUFFIXES + (".npz",)
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")  # where training scripts often keep it


def _torch(path: Path):
    try:
        import torch
    except ImportError:
        raise UsageError(f"{path}: .pt files need PyTorch: pip install torch==2.13.0 (or save the state_dict as "
                         f".npz: np.savez(path, **{{k: v.numpy() for k, v in model.state_dict().items()}}))") \
            from None
    return torch


def _suffix(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in STATE_DICT_SUFFIXES:
        raise UsageError(f"{path}: {what} a state_dict as .pt (torch.save) or .npz (np.savez), not "
                         f"`{path.suffix or 'no suffix'}`")
    return suffix


def read_state_dict(path) -> dict[str, np.ndarray]:
    """A state_dict's arrays by torch name."""
    p = Path(path)
    if _suffix(p, "reads") == ".npz":
        return read_npz(p, "state_dict arrays")
    torch = _torch(p)
    with open_input(p, MAX_FILE_BYTES) as f:
        try:
            loaded = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for a bad file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "weights_only" in str(e) or "Weights only" in str(e):
                raise DataError(f"{p}: holds pickled Python objects, not only tensors, and rnncompile does not "
                                f"unpickle them (torch.load(weights_only=True) refused: {first})\n  hint: save "
                                f"the state_dict alone: torch.save(model.state_dict(), path)") from None
            raise DataError(f"{p}: not a readable torch file ({first})") from None
    return _arrays(p, loaded, torch)


def _arrays(p: Path, loaded, torch) -> dict[str, np.ndarray]:
    if isinstance(loaded, dict) and not any(torch.is_tensor(v) for v in loaded.values()):
        for key in CHECKPOINT_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict):
        raise DataError(f"{p}: holds a {type(loaded).__name__}, not a state_dict (a dict of tensors)")
    out = {}
    for k, v in loaded.items():
        if not isinstance(k, str) or not torch.is_tensor(v):
            raise DataError(f"{p}: `{k}` holds a {type(v).__name__}, not a tensor; a state_dict maps names to "
                            f"tensors")
        v = v.detach().cpu()
        out[k] = (v.double() if v.is_floating_point() and v.dtype not in (torch.float32, torch.float64)
                  else v).numpy().copy()
    return out


def write_state_dict(path, arrays: dict[str, np.ndarray]) -> None:
    p = Path(path)
    if _suffix(p, "writes") == ".npz":
        save_npz(p, arrays)
        return
    torch = _torch(p)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    with atomic_write(p, "wb") as f:
        torch.save(tensors, f)
