"""Build generated C: compile it with the system compiler, cache it by content, load what was verified.

    source -> <root>/<key>/module.c -> cc -std=c99 -O3 -march=native ... -shared -fPIC -> module.so (+ module.sha256) -> ctypes.CDLL

The key hashes the source, the compiler command (and the compiler it resolves to), the flags and the
host's CPU (the flags say -march=native), so a changed file, another $CC or another CPU builds anew and
an unchanged one loads at once, in any process. Every build
has its own directory, named by its key. The root is $XDG_CACHE_HOME/rnncompile/c (default
~/.cache/rnncompile/c); when that cannot be made or is not private, $TMPDIR/rnncompile-c-<uid>; when
neither is, a fresh directory of this process's own (tempfile.mkdtemp), removed at exit.

What the cache guarantees: a library is loaded only from a directory that is a real directory (not a
symlink), owned by this user and writable by no one else, as is each rnncompile directory above it
(rnncompile/ and c/, or rnncompile-c-<uid>), all made with mode 0700 whatever the umask, in a directory
only this user or root may rename them in (or a sticky one, like /tmp); and only if its bytes hash to
what module.sha256 (`sha256sum` format) records, beside a module.c whose bytes are the source asked for. A build compiles
the source it was given, written afresh, never a module.c it finds; the library is compiled under a
temporary name and renamed into place, then recorded, so a crashed or concurrent build never leaves a
half-written one that loads. An entry that does not verify is rebuilt; a root that is not private is
not used. Out of scope: this user itself (or root) — whoever can write a 0700 directory of ours can
plant a library with a matching record, or swap the file between its check and its load.
"""
from __future__ import annotations

import atexit
import ctypes
import errno
import hashlib
import json
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from rnncompile.errors import UsageError

# The simulation's build, for this host: -march=native lets the compiler use its vector units and its fused
# multiply-add, and -ffp-contract=fast lets it fuse a * b + c (one rounding instead of two; ISO C mode
# would keep them apart): about 15% off a large LSTM, well inside the conformance tolerances. No
# -ffast-math: NaN, inf and the order of every sum stay as written. The exported source is portable C99
# and takes the user's own flags. On a host with AVX-512, the elementwise loops (the activations) vectorise
# 512 bits wide too (GCC keeps to 256 unless told): about 10% off a tiny LSTM; the blocked products use
# those registers in any case (gemm.py).
FLAGS = ["-std=c99", "-O3", "-march=native", "-ffp-contract=fast", "-shared", "-fPIC"]
WIDE = "-mprefer-vector-width=512"
LIBS = ["-lm"]
SOURCE, LIBRARY, RECORD = "module.c", "module.so", "module.sha256"
LAYOUT = 2  # in the key: entries of an older layout are never taken for this one's
_LOADED: dict[str, ctypes.CDLL] = {}
_SCRATCH: Path | None = None  # this process's own build directory, made when no shared root is private
_UID = os.getuid() if hasattr(os, "getuid") else None
_HOST: str | None = None
_FLAGS: set[str] | None = None


def compiler() -> list[str]:
    """The compiler command: $CC (which may carry flags, e.g. `ccache gcc`), else `cc`."""
    text = os.environ.get("CC", "").strip() or "cc"
    try:
        return shlex.split(text)
    except ValueError as e:
        raise UsageError(f"CC is not a compiler command a shell could run (`{text}`): {e}") from None


def find_compiler() -> str | None:
    """The compiler's path, or None when it is not installed."""
    return shutil.which(compiler()[0])


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "rnncompile" / "c"


def key(source: str) -> str:
    """The full sha256 of everything that decides the library: layout, source, compiler and flags."""
    cmd = compiler()
    what = [LAYOUT, source, cmd, shutil.which(cmd[0]) or "", flags(), LIBS, host()]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def flags() -> list[str]:
    """The simulation's compiler flags on this host."""
    return FLAGS[:3] + ([WIDE] if "avx512f" in cpu_flags() else []) + FLAGS[3:]


def cpu_flags() -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where there is none): what the
    simulation's blocked products size their vectors by (gemm.host_tiling)."""
    global _FLAGS
    if _FLAGS is None:
        _FLAGS = set()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.split(":", 1)[0].strip() in ("flags", "Features"):
                    _FLAGS = set(line.split(":", 1)[1].split())
                    break
        except OSError:
            pass
    return set(_FLAGS)


def host() -> str:
    """What -march=native means here: the machine and its CPU's features, so a cache shared by hosts of
    different CPUs (a network home) never loads a library built for instructions this one lacks."""
    global _HOST
    if _HOST is None:
        features = ""
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.split(":", 1)[0].strip() in ("flags", "Features", "model name", "cpu model"):
                    features += line + "\n"
        except OSError:
            pass
        _HOST = f"{platform.machine()} {hashlib.sha256(features.encode()).hexdigest()}"
    return _HOST


def build(source: str) -> Path:
    """The verified shared library of `source`, found in the cache or compiled now."""
    cmd, digest, data = compiler(), key(source), source.encode()
    problems = []
    for root in _roots(problems):
        try:
            where = _entry(root, digest)
            if not _verified(where, data):
                if find_compiler() is None:
                    raise UsageError(f"the c backend needs a C compiler, and `{cmd[0]}` was not found; "
                                     f"install one (e.g. `apt install gcc`) or set CC to one")
                _compile(where, data, cmd)
                if not _verified(where, data):  # a concurrent build of this key recorded its library over ours
                    _compile(where, data, cmd)
            if _verified(where, data):
                return where / LIBRARY
            problems.append(f"{where} changed while it was built")
        except OSError as e:
            problems.append(f"{e.filename or root}: {e.strerror or e}")
    why = "; ".join(dict.fromkeys(problems))
    raise UsageError(f"the c backend found no private directory to build in ({why}); "
                     f"set XDG_CACHE_HOME to a directory only you can write")


def load(source: str) -> ctypes.CDLL:
    """The loaded library of `source` (one per content in a process)."""
    digest = key(source)
    if digest not in _LOADED:
        _LOADED[digest] = ctypes.CDLL(str(build(source)))
    return _LOADED[digest]


# ---- private directories -------------------------------------------------------------------------

def _roots(problems: list[str]):
    """The private roots to build in, best first; each one passed over says why in `problems`."""
    home = cache_dir()
    shared = Path(tempfile.gettempdir()) / f"rnncompile-c-{_UID if _UID is not None else 0}"
    for root, ours in ((home, [home.parent, home]), (shared, [shared])):
        try:
            _make_private(root)
            why = next((w for w in map(_not_private, ours) if w), None) or _unsafe_parent(ours[0])
        except OSError as e:
            why = f"{e.filename or root}: {e.strerror or e}"
        if why is None:
            yield root
        else:
            problems.append(why)
    global _SCRATCH
    if _SCRATCH is None or _not_private(_SCRATCH):
        try:
            _SCRATCH = Path(tempfile.mkdtemp(prefix="rnncompile-c-build-"))
        except OSError as e:
            problems.append(f"{tempfile.gettempdir()}: {e.strerror or e}")  # (its filename is a random one)
            return
        atexit.register(shutil.rmtree, _SCRATCH, True)
    if not _not_private(_SCRATCH):
        yield _SCRATCH


def _make_private(path: Path) -> None:
    """Make `path` and any missing parent with mode 0700 (whatever the umask); an existing one is kept."""
    if os.path.lexists(path):
        return
    _make_private(path.parent)
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)
    except FileExistsError:  # made by a concurrent build: checked like any other
        pass


def _not_private(path: Path) -> str | None:
    """Why `path` is no directory to trust (None: it is a real directory of ours no one else can write).
    One of ours readable by others is tightened to 0700; one writable by others is refused, not repaired:
    anything may already be in it."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"{path}: {e.strerror or e}"
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if _UID is not None and st.st_uid != _UID:
        return f"{path} belongs to another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by other users"
    if stat.S_IMODE(st.st_mode) != 0o700:
        try:
            os.chmod(path, 0o700)
        except OSError:
            pass
    return None


def _unsafe_parent(path: Path) -> str | None:
    """Why the directory holding our top one lets others replace it (writable by others and not sticky,
    or owned by another user); a sticky /tmp is fine."""
    try:
        st = os.stat(path.parent)
    except OSError as e:
        return f"{path.parent}: {e.strerror or e}"
    if _UID is not None and st.st_uid not in (_UID, 0):
        return f"{path.parent} belongs to another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        return f"{path.parent} is writable by other users"
    return None


def _entry(root: Path, digest: str) -> Path:
    """The directory of one key under a private root, made private; one that is not (only this user could
    have made it so, e.g. an older rnncompile under umask 000) is moved aside and made afresh."""
    where = root / digest
    for _ in range(2):
        try:
            os.mkdir(where, 0o700)
            os.chmod(where, 0o700)
        except FileExistsError:
            pass
        if _not_private(where) is None:
            return where
        aside = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}.stale.", dir=root))
        os.replace(where, aside / "entry")
        shutil.rmtree(aside, ignore_errors=True)
    raise OSError(errno.EPERM, "cannot make it a private directory", str(where))


# ---- one entry: verify, compile ------------------------------------------------------------------

def _verified(where: Path, data: bytes) -> bool:
    """Whether `where` holds a library recorded by a build of `data`: module.c is `data`, and module.so
    and module.c hash to what module.sha256 records."""
    try:
        recorded = {}
        for line in _read(where / RECORD).decode().splitlines():
            digest, name = line.split("  ", 1)
            recorded[name] = digest
        source = hashlib.sha256(data).hexdigest()
        return (recorded.get(SOURCE) == source == hashlib.sha256(_read(where / SOURCE)).hexdigest()
                and recorded.get(LIBRARY) == hashlib.sha256(_read(where / LIBRARY)).hexdigest())
    except (OSError, ValueError):  # missing, not a regular file, or not a record: not verified
        return False


def _read(path: Path) -> bytes:
    """A regular file's bytes, not following a symlink."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        return f.read()


def _compile(where: Path, data: bytes, cmd: list[str]) -> None:
    """Compile `data` in `where`: the source written afresh, the library under a temporary name, renamed
    into place and then recorded."""
    src = where / SOURCE
    _write_atomically(src, data)
    fd, tmp = tempfile.mkstemp(prefix=".module.", suffix=".so", dir=where)
    os.close(fd)
    try:
        done = subprocess.run([*cmd, *flags(), "-o", tmp, str(src), *LIBS], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            first = "\n".join((done.stderr or done.stdout).strip().splitlines()[:12])
            raise UsageError(f"the C compiler (`{shlex.join(cmd)}`) failed on {src}:\n{first}")
        os.chmod(tmp, 0o700)  # the linker made it under the umask
        library = hashlib.sha256(_read(Path(tmp))).hexdigest()
        os.replace(tmp, where / LIBRARY)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    record = f"{hashlib.sha256(data).hexdigest()}  {SOURCE}\n{library}  {LIBRARY}\n"
    _write_atomically(where / RECORD, record.encode())


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
