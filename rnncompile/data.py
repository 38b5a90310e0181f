"""Run inputs and outputs: random seeded inputs, .npy/.npz/.json files, text.

Data files are untrusted: every size is checked before anything is
allocated (the zip directory, each .npy header, the JSON text), and every
array must hold plain numbers. Every file we write goes through
:func:`atomic_write` (in files.py), so an error never leaves a half-written
output behind.
"""
from __future__ import annotations

import ast
import json
import math
import struct
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import atomic_write, open_input, read_text

__all__ = ["atomic_write", "read_arrays", "read_npz", "save_outputs", "random_inputs", "check_budget"]

MAX_RUN_ELEMENTS = 2**30  # inputs, outputs or a trace beyond this are refused before allocation
MAX_FILE_BYTES = 2**30  # the arrays of one data file, uncompressed
MAX_JSON_BYTES = 64 * 2**20  # JSON is parsed into Python objects, ~10x its size: larger data belongs in .npz
MAX_NPY_HEADER = 10_000  # numpy's own limit for untrusted files
MAX_ZIP_DIRECTORY = 4 * 2**20  # bytes of zip directory: about 50,000 members
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats

_KIND_NAMES = {"c": "complex numbers", "U": "text", "S": "bytes", "M": "dates or times", "m": "time spans",
               "O": "Python objects (mixed types, null, or integers too large for 64 bits)",
               "V": "a structured record (named fields)"}


class DataWarning(UserWarning):
    """A data file that is read, but holds something the user should know about (NaN, inf)."""


def check_budget(what: str, elements: int) -> None:
    if elements > MAX_RUN_ELEMENTS:
        raise DataError(f"{what} would hold {elements:.3g} numbers ({elements * 4 / 2**30:.1f} GiB as float32); "
                        f"the limit is {MAX_RUN_ELEMENTS:.3g}. Use a smaller --batch, --steps or --dim.")


def random_inputs(inputs: dict, batch: int, steps: int, seed: int, dtype="float32", vocab_size: int | None = None,
                  steps_of: dict[str, int] | None = None):
    """Seeded inputs: standard normal floats, uniform tokens. inputs: name -> InputInfo; `steps_of` gives an
    input on another time axis its own steps (a decoder's target)."""
    rng = np.random.default_rng(seed + 1_000_003)
    out = {}
    for name, info in inputs.items():
        n = (steps_of or {}).get(name, steps)
        check_budget(f"input `{name}`", batch * n * math.prod(info.shape))
        if info.dtype == "token":
            if not vocab_size:
                raise DataError(f"input `{name}` is a token but the spec has no vocabulary; give --input or --text")
            out[name] = rng.integers(0, vocab_size, (batch, n) + info.shape)
        else:
            out[name] = rng.standard_normal((batch, n) + info.shape).astype(dtype)
    return out


def read_arrays(path, only: str | None = None) -> dict[str, np.ndarray]:
    """Input or state arrays keyed by name from .npz or .json; a .npy file holds the one array named `only`.
    Every array holds plain numbers and at least one value."""
    p = Path(path)
    if p.suffix == ".npy":
        if only is None:
            raise DataError(f"{p}: a .npy file holds one array, but the model takes several; "
                            f"use .npz or .json keyed by name")
        with open_input(p, MAX_FILE_BYTES) as f:
            arrays = {only: _read_npy(f, str(p), _file_size(f))}
    elif p.suffix == ".npz":
        arrays = read_npz(p)
    elif p.suffix == ".json":
        arrays = _read_json(p)
    else:
        what = f"unknown format `{p.suffix}`" if p.suffix else "no file extension"
        raise DataError(f"{p}: {what}; use .npy, .npz or .json")
    for name, a in arrays.items():
        if a.size == 0:
            raise DataError(f"{p}: `{name}` is empty (shape {list(a.shape)}); give at least one sequence "
                            f"and one step")
    warn_non_finite(p, arrays)
    return arrays


def read_npz(path, what: str = "arrays") -> dict[str, np.ndarray]:
    """Every array of an .npz file, its sizes checked from the zip directory and the .npy headers first."""
    p = Path(path)
    with open_input(p, MAX_FILE_BYTES) as f:
        head = f.read(6)
        if head == b"\x93NUMPY":
            raise DataError(f"{p}: is a .npy file (one unnamed array); {what} come in an .npz keyed by name "
                            f"(np.savez(path, name=array, ...))")
        _check_zip_directory(f, p)
        try:
            with zipfile.ZipFile(f) as z:
                members = z.infolist()
                _check_members(members, p)
                out = {}
                for info in members:
                    with z.open(info) as m:
                        out[info.filename[:-4]] = _read_npy(m, f"{p}: member `{info.filename}`", info.file_size)
                        m.read(1)  # at the member's end: zipfile checks the CRC
                return out
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, OSError, NotImplementedError,
                ValueError, struct.error) as e:
            raise DataError(f"{p}: not a readable .npz file: damaged or truncated ({e})") from None


def _check_zip_directory(f, p: Path) -> None:
    """The zip directory's size, from the end record, before zipfile reads it all into memory."""
    size = _file_size(f)
    f.seek(max(0, size - 22 - 65535))
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise DataError(f"{p}: not an .npz file (no zip directory: truncated, or another format)")
    entries, directory = struct.unpack("<HL", tail[at + 10:at + 16])
    if entries == 0xFFFF or directory == 0xFFFFFFFF:  # zip64: the real figures are in the zip64 end record
        locator = tail[at - 20:at] if at >= 20 else b""
        if locator[:4] != b"PK\x06\x07":
            raise DataError(f"{p}: not a readable .npz file (a damaged zip64 directory)")
        f.seek(struct.unpack("<Q", locator[8:16])[0])
        record = f.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            raise DataError(f"{p}: not a readable .npz file (a damaged zip64 directory)")
        entries, directory = struct.unpack("<QQ", record[32:48])
    if directory > MAX_ZIP_DIRECTORY:
        raise DataError(f"{p}: its zip directory is {directory} bytes ({entries} members); the limit is "
                        f"{MAX_ZIP_DIRECTORY}")
    f.seek(0)


def _check_members(members, p: Path) -> None:
    total = 0
    for info in members:
        if not info.filename.endswith(".npy") or info.is_dir():
            raise DataError(f"{p}: member `{info.filename}` is not a .npy array; an .npz holds only arrays")
        total += info.file_size
        if total > MAX_FILE_BYTES:
            raise DataError(f"{p}: member `{info.filename}` unpacks to {info.file_size} bytes "
                            f"({info.compress_size} packed), and the arrays of a file may hold at most "
                            f"{MAX_FILE_BYTES} bytes; refused before reading")


def _file_size(f) -> int:
    here = f.tell()
    size = f.seek(0, 2)
    f.seek(here)
    return size


def _read_npy(f, where: str, stored: int) -> np.ndarray:
    """One .npy array from a stream of `stored` bytes: its header is checked before any data is read."""
    magic = f.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise DataError(f"{where}: not a .npy array (no NUMPY header)")
    length_format = "<H" if magic[6] == 1 else "<I"
    raw = f.read(struct.calcsize(length_format))
    if len(raw) < struct.calcsize(length_format):
        raise DataError(f"{where}: truncated in the .npy header")
    length = struct.unpack(length_format, raw)[0]
    if length > MAX_NPY_HEADER:
        raise DataError(f"{where}: its .npy header is {length} bytes; the limit is {MAX_NPY_HEADER}")
    header = f.read(length)
    if len(header) < length:
        raise DataError(f"{where}: truncated in the .npy header")
    shape, fortran, dtype = _parse_header(header, magic[6], where)
    count = math.prod(shape)
    if count > MAX_RUN_ELEMENTS or count * dtype.itemsize > MAX_FILE_BYTES:
        raise DataError(f"{where}: the header declares shape {list(shape)} ({count:.3g} {dtype} values, "
                        f"{count * dtype.itemsize:.3g} bytes); the limit is {MAX_RUN_ELEMENTS:.3g} values and "
                        f"{MAX_FILE_BYTES:.3g} bytes; refused before reading")
    data_at = 8 + len(raw) + length
    if data_at + count * dtype.itemsize != stored:
        raise DataError(f"{where}: the header declares shape {list(shape)} ({count * dtype.itemsize} bytes of "
                        f"{dtype}), but the file holds {stored - data_at} bytes of data: truncated or damaged")
    arr = np.empty(count, dtype)
    view, done = memoryview(arr).cast("B"), 0
    while done < len(view):  # in chunks: zip members read at most what they are asked for
        chunk = f.readinto(view[done:done + 2**24])
        if not chunk:
            raise DataError(f"{where}: truncated: ended after {done} of {len(view)} bytes of data")
        done += chunk
    return arr.reshape(shape, order="F" if fortran else "C")


def _parse_header(header: bytes, version: int, where: str):
    try:
        d = ast.literal_eval(header.decode("utf-8" if version == 3 else "latin1"))
        if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
            raise ValueError("not a dict of descr, fortran_order and shape")
        shape = d["shape"]
        if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 64:
            raise ValueError(f"shape {shape!r}")
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError, UnicodeDecodeError) as e:
        raise DataError(f"{where}: a damaged .npy header ({str(e)[:200]})") from None
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(f"{where}: holds {_kind_name(dtype)}, not numbers ({dtype})")
    return shape, bool(d["fortran_order"]), dtype


def _kind_name(dtype: np.dtype) -> str:
    if dtype.fields is not None or dtype.subdtype is not None:
        return _KIND_NAMES["V"]
    return _KIND_NAMES.get(dtype.kind, f"values of type {dtype}")


def _read_json(p: Path) -> dict[str, np.ndarray]:
    text = read_text(p, MAX_JSON_BYTES)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{p}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except RecursionError:
        raise DataError(f"{p}: the JSON nests too deeply (arrays have at most 64 axes)") from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise DataError(f"{p}: {e}") from None
    if not isinstance(data, dict):
        raise DataError(f"{p}: expected a JSON object mapping names to nested lists")
    out = {}
    for name, value in data.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr = np.asarray(value)
        except (ValueError, OverflowError, RecursionError):
            raise DataError(f"{p}: `{name}` is not a rectangular array of numbers (ragged lists, or nested "
                            f"deeper than 64 axes)") from None
        if arr.dtype.kind not in NUMERIC_KINDS:
            raise DataError(f"{p}: `{name}` holds {_kind_name(arr.dtype)}, not numbers")
        out[name] = arr
    return out


def warn_non_finite(path, arrays: dict[str, np.ndarray], what: str = "arrays", note: str = "") -> None:
    """One warning for a file whose arrays hold NaN or inf (a run then computes NaN everywhere)."""
    bad = {}
    for name, a in arrays.items():
        if a.dtype.kind == "f" and (n := a.size - int(np.count_nonzero(np.isfinite(a)))):
            bad[name] = n
    if bad:
        shown = ", ".join(f"`{k}` ({n} values)" for k, n in list(bad.items())[:8]) + (" …" if len(bad) > 8 else "")
        warnings.warn(DataWarning(f"{path}: {what} hold NaN or infinite values{note}: {shown}"), stacklevel=2)


def save_outputs(path, arrays: dict[str, np.ndarray]) -> None:
    """Arrays keyed by name to .npz or .json, or as JSON on stdout when `path` is `-`."""
    if str(path) == STDOUT:
        sys.stdout.write(json.dumps({k: np.asarray(v).tolist() for k, v in arrays.items()}) + "\n")
        sys.stdout.flush()
        return
    p = Path(path)
    if p.suffix == ".npz":
        with atomic_write(p, "wb") as f:
            np.savez(f, **arrays)
    elif p.suffix == ".json":
        with atomic_write(p, "w") as f:
            json.dump({k: np.asarray(v).tolist() for k, v in arrays.items()}, f)
    else:
        raise DataError(f"{p}: unknown output format `{p.suffix}`; use .npz or .json")


OUTPUT_FORMATS = (".npz", ".json")
STDOUT = "-"  # `-o -`: the outputs as JSON on stdout (and everything else a run prints on stderr)


def lengths_from_mask(mask) -> np.ndarray:
    """A [B, T] mask of real steps (ones then zeros) as lengths."""
    mask = np.asarray(mask).astype(bool)
    lengths = mask.sum(axis=1)
    if not np.array_equal(mask, np.arange(mask.shape[1])[None] < lengths[:, None]):
        raise DataError("a mask must mark each sequence's real steps as a prefix: ones, then zeros")
    return lengths
