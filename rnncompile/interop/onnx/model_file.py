"""Reading an .onnx file safely: a regular file of bounded size, external data only from inside its folder."""
from __future__ import annotations

from pathlib import Path

from ...errors import DataError, UsageError

MAX_MODEL_BYTES = 1 << 30  # the .onnx file plus its external data


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise UsageError("importing ONNX models needs the onnx package: pip install onnx") from None
    return onnx


def read_model(path):
    """The ModelProto of `path`: a regular file of bounded size; external data only from files inside the
    model's folder (no absolute paths, no `..`)."""
    onnx = require_onnx()
    from onnx import external_data_helper

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such file" if not p.exists() else f"{path}: not a regular file")
    size = p.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise DataError(f"{path}: {size:,} bytes is over the {MAX_MODEL_BYTES:,}-byte limit for a model")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise DataError(f"{path}: not an ONNX model ({type(e).__name__}: {e})") from None
    folder = p.resolve().parent
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        loc = info.get("location", "")
        parts = Path(loc).parts
        target = (folder / loc).resolve()
        if not loc or Path(loc).is_absolute() or ".." in parts or folder not in target.parents:
            raise DataError(f"{path}: tensor `{tensor.name}` keeps its data at `{loc}`, outside the model's folder; "
                            f"refused (external data must be a relative path without `..`)")
        if not target.is_file():
            raise DataError(f"{path}: tensor `{tensor.name}`: external data file `{loc}` is missing or not a file")
        size += target.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise DataError(f"{path}: the model and its external data are over the {MAX_MODEL_BYTES:,}-byte limit")
    try:
        external_data_helper.load_external_data_for_model(model, str(folder))
    except Exception as e:
        raise DataError(f"{path}: cannot read external data ({type(e).__name__}: {e})") from None
    return model
