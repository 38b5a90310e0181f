"""Build generated C: compile it with the system compiler, cache it by content, load it.

    source -> <cache>/<sha256>/module.c -> cc -std=c99 -O2 -shared -fPIC -> module.so -> ctypes.CDLL

The key hashes the source and the compiler command, so a changed file or
another $CC builds anew and an unchanged one loads at once, in any process.
The cache is $XDG_CACHE_HOME/rnncompile/c (default ~/.cache/rnncompile/c). A
library is compiled under a temporary name and renamed into place, so a
crashed or concurrent build never leaves a half-written one.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from rnncompile.errors import UsageError

FLAGS = ["-std=c99", "-O2", "-shared", "-fPIC"]
LIBS = ["-lm"]
_LOADED: dict[str, ctypes.CDLL] = {}


def compiler() -> list[str]:
    """The compiler command: $CC (which may carry flags, e.g. `ccache gcc`), else `cc`."""
    return shlex.split(os.environ.get("CC") or "cc")


def find_compiler() -> str | None:
    """The compiler's path, or None when it is not installed."""
    cmd = compiler()
    return shutil.which(cmd[0]) if cmd else None


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "rnncompile" / "c"


def _writable(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:  # a read-only home: a private directory under the system's temp dir
        fallback = Path(tempfile.gettempdir()) / f"rnncompile-c-{os.getuid() if hasattr(os, 'getuid') else 0}"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def key(source: str) -> str:
    return hashlib.sha256("\0".join([source, *compiler(), *FLAGS, *LIBS]).encode()).hexdigest()


def build(source: str) -> Path:
    """The shared library of `source`, compiled now or found in the cache."""
    digest = key(source)
    where = cache_dir() / digest
    lib = where / "module.so"
    if lib.exists():
        return lib
    cmd = compiler()
    if find_compiler() is None:
        raise UsageError(f"the c backend needs a C compiler, and `{cmd[0] if cmd else ''}` was not found; "
                         f"install one (e.g. `apt install gcc`) or set CC to one")
    where = _writable(where)
    lib = where / "module.so"
    src = where / "module.c"
    if not src.exists():
        _write_atomically(src, source.encode())
    fd, tmp = tempfile.mkstemp(prefix=".module.", suffix=".so", dir=where)
    os.close(fd)
    try:
        done = subprocess.run([*cmd, *FLAGS, "-o", tmp, str(src), *LIBS], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            first = "\n".join((done.stderr or done.stdout).strip().splitlines()[:12])
            raise UsageError(f"the C compiler (`{shlex.join(cmd)}`) failed on {src}:\n{first}")
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return lib


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(source: str) -> ctypes.CDLL:
    """The loaded library of `source` (one per content in a process)."""
    digest = key(source)
    if digest not in _LOADED:
        _LOADED[digest] = ctypes.CDLL(str(build(source)))
    return _LOADED[digest]
