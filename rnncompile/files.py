"""Reading and writing the user's files safely.

Every file rnncompile reads (specs, vocabularies, trees, data) is opened
here: only regular files (or the process's own stdin), never more than a
size limit, and a FIFO nobody writes to cannot hang the read. Every file it
writes goes through :func:`atomic_write`: a temporary file beside the target,
renamed into place, so an error or a signal never leaves a half-written
output; a FIFO or a device such as /dev/stdout is written to directly, never
replaced.
"""
from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path

from .errors import DataError, UsageError


class FileReadError(DataError):
    """A file that cannot be read; `reason` is the short why, for messages that name the file their own way."""

    def __init__(self, path, reason: str, message: str = ""):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {message or reason}")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _is_stdin(st: os.stat_result) -> bool:
    with contextlib.suppress(OSError):
        own = os.fstat(0)
        return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)
    return False


@contextlib.contextmanager
def open_input(path, limit: int):
    """A binary file object for a regular file of at most `limit` bytes (or for /dev/stdin)."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens at once, without a writer
    except OSError as e:
        raise FileReadError(p, e.strerror or str(e), "no such file" if isinstance(e, FileNotFoundError) else "") \
            from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) and not (_is_stdin(st) and not stat.S_ISDIR(st.st_mode)):
        os.close(fd)
        raise FileReadError(p, f"is {_kind(st.st_mode)}; rnncompile reads regular files only")
    if stat.S_ISREG(st.st_mode) and st.st_size > limit:
        os.close(fd)
        raise FileReadError(p, f"is {_size(st.st_size)}; the limit is {_size(limit)}")
    if not stat.S_ISREG(st.st_mode):
        os.set_blocking(fd, True)  # our own stdin: wait for whoever writes it
    with os.fdopen(fd, "rb") as f:
        yield f


def read_bytes(path, limit: int) -> bytes:
    with open_input(path, limit) as f:
        st = os.fstat(f.fileno())
        n = min(st.st_size if stat.S_ISREG(st.st_mode) else limit, limit) + 1  # read(n) reserves n bytes
        try:
            data = f.read(n)
            if len(data) == n <= limit:  # the file grew since we looked
                data += f.read(limit + 1 - n)
        except OSError as e:
            raise FileReadError(path, f"cannot be read ({e.strerror or e})") from None
    if len(data) > limit:  # stdin, or a file that grew after we looked
        raise FileReadError(path, f"holds more than {_size(limit)}, the limit")
    return data


def read_text(path, limit: int) -> str:
    """UTF-8 text of a regular file of at most `limit` bytes."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileReadError(path, f"is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _is_special(path: Path) -> bool:
    """A FIFO, a device, or a name for one (/dev/stdout, /proc/self/fd/1, even when that is redirected to a
    file): written to in place, never renamed over."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if not stat.S_ISREG(mode):
        return not stat.S_ISDIR(mode)
    return any(str(q).startswith(("/dev/", "/proc/")) for q in (Path(os.path.abspath(path)), Path(path).resolve()))


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """Write to a temporary file beside `path`, then move it into place (through a symlink, to its target).
    A FIFO or a device is appended to directly: renaming over it would replace it with a regular file."""
    path = Path(path)
    if _is_special(path):
        sys.stdout.flush()  # what we printed comes before what we write, on a redirected /dev/stdout
        try:
            f = open(path, mode.replace("w", "a"))
        except OSError as e:
            raise DataError(f"cannot write {path}: {e.strerror or e}") from None
        with f:
            yield f
        return
    check_output(path)
    path = path.resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise DataError(f"cannot write {path}: {e.strerror or e}") from None
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


def check_output(path, formats: tuple[str, ...] | None = None, option: str = "", folder: bool = False) \
        -> list[Path]:
    """Refuse, before any work, an output path that cannot be written: an unknown format, a directory, a path
    below a regular file or in a read-only folder (with `folder`: a folder to write into). Returns the folders
    that are missing, outermost first (made when written)."""
    p = Path(path)
    name = f"{option} {p}" if option else str(p)
    if folder:
        return _check_folder(p, name)
    if formats is not None and p.suffix.lower() not in formats:
        shown = f"`{p.suffix}`" if p.suffix else "none"
        raise UsageError(f"{name}: unknown output format ({shown}); use {' or '.join(formats)}"
                         + (" (the format comes from the name, so a FIFO needs one such as out.json)"
                            if _is_special(p) else ""))
    if _is_special(p):
        return []
    if p.is_dir():
        raise UsageError(f"{name}: is a directory; give a file name")
    missing = _check_folder(p.parent, name)
    if p.exists() and not os.access(p, os.W_OK):
        raise UsageError(f"{name}: the file exists and is read-only")
    return missing


def _check_folder(folder: Path, name: str) -> list[Path]:
    """The missing folders down to `folder`, outermost first, once the nearest existing one is writable."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{name}: cannot write below `{folder}`, which is a file, not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{name}: cannot write into `{folder}` (permission denied)")
    return missing[::-1]


def prepare_output(path, formats: tuple[str, ...] | None = None, option: str = "") -> list[Path]:
    """:func:`check_output`, then make the missing folders; returns them, outermost first, for the caller to
    say so."""
    missing = check_output(path, formats, option)
    if missing:
        try:
            missing[-1].mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"{option + ' ' if option else ''}{path}: cannot make `{missing[-1]}` "
                             f"({e.strerror or e})") from None
    return missing
