"""Attacks on the C build cache (issue 15 items 4 and 7): the c backend loads only a library it built from
the source it holds, in a directory only this user can write, never one shared between builds.

Every test runs the real c backend on a shipped spec and checks its numbers against the numpy backend.
Tests run as root here, which ignores file permissions: a read-only cache root is a path under a regular
file, and "another user's directory" is one chowned to uid 65534.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest

from rnncompile.backends.c import build
from conftest import SPECS

pytestmark = pytest.mark.skipif(build.find_compiler() is None, reason="no C compiler on PATH")

NOBODY = 65534
PLANTED = """#include <stdio.h>
__attribute__((constructor)) static void planted(void) {{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh cache root, a fresh temp dir, no library loaded yet in this process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(build, "_LOADED", {})
    monkeypatch.setattr(build, "_SCRATCH", None, raising=False)
    return tmp_path


def _agrees(cli, tmp_path, spec, *args):
    """Run `spec` on the c backend and check its outputs and final state against the numpy backend."""
    got = {}
    for backend in ("numpy", "c"):
        out = tmp_path / f"{backend}-{spec}-{'-'.join(args)}.npz"
        code, _, err = cli("run", SPECS / spec, "--backend", backend, *args, "-o", out)
        assert code == 0, err
        with np.load(out) as f:
            got[backend] = dict(f)
    assert got["c"].keys() == got["numpy"].keys()
    for name, want in got["numpy"].items():
        np.testing.assert_allclose(got["c"][name], want, rtol=1e-4, atol=1e-5, err_msg=name)


def _digests(cli, env, monkeypatch, spec, *args) -> dict[str, Path]:
    """The cache entries `spec` builds, found by a run in a probe cache: digest -> its directory there."""
    probe = env / "probe"
    monkeypatch.setenv("XDG_CACHE_HOME", str(probe))
    code, _, err = cli("run", SPECS / spec, "--backend", "c", *args)
    assert code == 0, err
    build._LOADED.clear()  # so the next run loads from the cache under test, not this process's table
    monkeypatch.setenv("XDG_CACHE_HOME", str(env / "cache"))
    entries = {p.name: p for p in (probe / "rnncompile" / "c").iterdir()}
    assert entries
    return entries


def _planted_library(env) -> tuple[Path, Path]:
    """A shared library whose constructor creates a marker file: (the library, the marker)."""
    marker, src, lib = env / "PLANTED-CODE-RAN", env / "planted.c", env / "planted.so"
    src.write_text(PLANTED.format(marker=marker))
    build.subprocess.run([*build.compiler(), "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib, marker


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plant(where: Path, env) -> Path:
    """A complete, self-consistent entry made by someone else: planted source and library, and a record
    of their hashes in `sha256sum` format. Only the directory's owner and mode can tell it apart."""
    lib, marker = _planted_library(env)
    where.mkdir(parents=True, exist_ok=True)
    (where / "module.c").write_text(PLANTED.format(marker=marker))
    shutil.copy(lib, where / "module.so")
    (where / "module.sha256").write_text(f"{_sha256(where / 'module.c')}  module.c\n"
                                         f"{_sha256(where / 'module.so')}  module.so\n")
    return marker


def _read_only_cache_root(env, monkeypatch):
    """Root ignores permission bits, so a cache root that cannot be created is one under a regular file."""
    (env / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(env / "a-file" / "cache"))


def _tree(path: Path) -> dict[str, tuple[int, str]]:
    """Every file under `path` (following a symlinked top): relative name -> (mode, content hash)."""
    out = {}
    for p in sorted(Path(path).resolve().rglob("*")):
        out[str(p.relative_to(Path(path).resolve()))] = (p.lstat().st_mode, _sha256(p) if p.is_file() else "")
    return out


def _private(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700


# ---- a planted or tampered entry under the digest of a real build --------------------------------

@pytest.mark.parametrize("tamper", ["library", "source", "library-alone"])
def test_a_tampered_cache_entry_is_rebuilt_not_loaded(cli, env, monkeypatch, tamper):
    """library: a planted module.so beside the genuine source and record; source: the library removed and
    module.c replaced (a build must compile the bytes it holds); library-alone: only a module.so planted."""
    lib, marker = _planted_library(env)
    for digest, genuine in _digests(cli, env, monkeypatch, "lstm.yaml", "--dim", "H=16").items():
        where = env / "cache" / "rnncompile" / "c" / digest
        if tamper == "library-alone":
            where.mkdir(parents=True)
        else:
            shutil.copytree(genuine, where)
        if tamper == "source":
            (where / "module.so").unlink()
            (where / "module.c").write_text(PLANTED.format(marker=marker))
        else:
            shutil.copy(lib, where / "module.so")
    _agrees(cli, env, "lstm.yaml", "--dim", "H=16")
    assert not marker.exists(), "code planted in the cache ran"
    for where in (env / "cache" / "rnncompile" / "c").iterdir():  # rebuilt in place, and verifiable
        assert _sha256(where / "module.so") != _sha256(lib)
        assert (where / "module.sha256").read_text() == (f"{_sha256(where / 'module.c')}  module.c\n"
                                                         f"{_sha256(where / 'module.so')}  module.so\n")


@pytest.mark.parametrize("level", ["rnncompile", "c", "digest", "c owned by another user"])
def test_a_cache_directory_others_can_write_is_not_trusted(cli, env, monkeypatch, level):
    """An entry that verifies (planted with a matching record) in a directory another user could write."""
    digests = _digests(cli, env, monkeypatch, "lstm.yaml", "--dim", "H=16")
    root = env / "cache" / "rnncompile"
    markers = [_plant(root / "c" / digest, env) for digest in digests]
    for p in (root, root / "c", *(root / "c" / d for d in digests)):
        p.chmod(0o700)
    if level == "c owned by another user":
        for p in [root / "c", *(root / "c").rglob("*")]:
            os.lchown(p, NOBODY, NOBODY)
    else:
        for p in [root] if level == "rnncompile" else [root / "c"] if level == "c" else root.glob("c/*"):
            p.chmod(0o777)
    _agrees(cli, env, "lstm.yaml", "--dim", "H=16")
    assert not any(m.exists() for m in markers), "code planted in the cache ran"
    if level == "digest":  # inside our own private root: replaced by a private build
        assert all(_private(root / "c" / d) for d in digests)


# ---- a read-only cache root: the fallback directory -----------------------------------------------

@pytest.mark.parametrize("how", ["another user's", "a symlink", "world-writable"])
def test_a_pre_made_fallback_directory_is_not_used(cli, env, monkeypatch, how):
    """With a read-only cache root the build falls back under $TMPDIR; a `rnncompile-c-<uid>` there that
    someone else made (or could write) holds planted code, at the top (the old shared layout) and under
    each digest, and must be neither used nor changed."""
    digests = _digests(cli, env, monkeypatch, "lstm.yaml", "--dim", "H=16")
    _read_only_cache_root(env, monkeypatch)
    shared = env / "tmp" / f"rnncompile-c-{os.getuid()}"
    made = env / "elsewhere" if how == "a symlink" else shared
    markers = [_plant(made, env)] + [_plant(made / digest, env) for digest in digests]
    made.chmod(0o777 if how == "world-writable" else 0o700)
    if how == "a symlink":
        shared.symlink_to(made, target_is_directory=True)
    if how == "another user's":
        for p in [made, *made.rglob("*")]:
            os.lchown(p, NOBODY, NOBODY)
    before = _tree(shared)
    _agrees(cli, env, "lstm.yaml", "--dim", "H=16")
    assert not any(m.exists() for m in markers), "code planted in the fallback directory ran"
    assert _tree(shared) == before, "the build wrote into a directory it does not own"


@pytest.mark.parametrize("runs", [[("lstm.yaml", "--dim", "H=16"), ("lstm.yaml", "--dim", "H=32")],
                                  [("lstm.yaml",), ("gru.yaml",)]], ids=["two dims", "two specs"])
def test_builds_in_a_read_only_cache_root_never_share_a_directory(cli, env, monkeypatch, runs):
    _read_only_cache_root(env, monkeypatch)
    for spec, *args in runs:
        _agrees(cli, env, spec, *args)
    fallback = env / "tmp" / f"rnncompile-c-{os.getuid()}"
    assert _private(fallback)
    entries = list(fallback.iterdir())
    assert len(entries) >= 2 and all(_private(p) and len(p.name) == 64 for p in entries)  # one per digest


def test_no_private_directory_anywhere_is_a_clear_error(cli, env, monkeypatch):
    _read_only_cache_root(env, monkeypatch)
    monkeypatch.setattr(tempfile, "tempdir", str(env / "a-file" / "tmp"))
    code, out, err = cli("run", SPECS / "elman.yaml", "--backend", "c", "--dim", "H=7")
    assert code == 2 and "internal error" not in err, err
    assert err.strip() == (f"error: the c backend found no private directory to build in "
                           f"({env}/a-file/cache: Not a directory; {env}/a-file/tmp: Not a directory); "
                           f"set XDG_CACHE_HOME to a directory only you can write")


# ---- permissions, whatever the umask -------------------------------------------------------------

@pytest.mark.parametrize("root", ["cache", "fallback"])
def test_cache_directories_are_private_under_umask_000(cli, env, monkeypatch, root):
    if root == "fallback":
        _read_only_cache_root(env, monkeypatch)
    old = os.umask(0)
    try:
        _agrees(cli, env, "elman.yaml", "--dim", "H=7")
    finally:
        os.umask(old)
    top = env / "cache" / "rnncompile" if root == "cache" else env / "tmp" / f"rnncompile-c-{os.getuid()}"
    made = [top, *top.rglob("*")]
    assert len(made) >= 4  # the root, a digest directory, its source, library and record
    for p in made:
        mode = stat.S_IMODE(p.lstat().st_mode)
        if p.is_dir():
            assert mode == 0o700, f"{p}: {oct(mode)}"
        else:
            assert mode & 0o077 == 0, f"{p}: {oct(mode)}"


# ---- the compiler command ------------------------------------------------------------------------

def test_a_compiler_command_that_does_not_parse_is_a_usage_error(cli, env, monkeypatch):
    monkeypatch.setenv("CC", 'cc -DX="')
    code, out, err = cli("run", SPECS / "elman.yaml", "--backend", "c", "--dim", "H=7")
    assert code == 2 and "internal error" not in err, err
    assert err.strip() == "error: CC is not a compiler command a shell could run (`cc -DX=\"`): No closing quotation"
