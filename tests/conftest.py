"""Shared test setup.

The repository root goes first on sys.path so `import rnncompile` is this
checkout's package even where an older editable install maps `rnncompile` to a
namespace package (setuptools records namespaces at install time; an install
made before rnncompile/__init__.py existed keeps resolving it that way).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SPECS = ROOT / "specs"


def outputs_under_hash_seeds(code: str, specs=("ntm.yaml", "bigru.yaml"), seeds=("1", "2")) -> list[str]:
    """What `code` (formatted with {root} and {spec}) prints for each seed, then each spec, in a fresh
    interpreter with that PYTHONHASHSEED: generated text must not depend on set or dict order."""
    outs = []
    for seed in seeds:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        for spec in specs:
            outs.append(subprocess.run([sys.executable, "-c", code.format(root=str(ROOT), spec=str(SPECS / spec))],
                                       capture_output=True, text=True, env=env, check=True).stdout)
    return outs

from rnncompile.cli import main  # noqa: E402


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def run(*args, cwd=None):
        old = os.getcwd()
        if cwd:
            os.chdir(cwd)
        try:
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as e:
                code = e.code
        finally:
            os.chdir(old)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


# Known bugs, each found by a test written before its fix (see the closing notes of issue 3): test name -> reason.
# Each is a strict xfail, so a fix that makes its test pass must remove the entry. None are open.
KNOWN_BUGS: dict[str, str] = {}


def pytest_collection_modifyitems(items):
    for item in items:
        reason = KNOWN_BUGS.get(item.name)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.fixture
def torch_float64():
    """PyTorch in float64, seeded, for comparisons to 1e-10; its default dtype is put back afterwards."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield torch
    torch.set_default_dtype(old)
