"""Shared test setup.

The repository root goes first on sys.path so `import rnncompile` is this
checkout's package even where an older editable install maps `rnncompile` to a
namespace package (setuptools records namespaces at install time; an install
made before rnncompile/__init__.py existed keeps resolving it that way).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SPECS = ROOT / "specs"

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


# Known bugs, each found by a test written before its fix (see the closing notes of issue 3).
KNOWN_BUGS = {
    "test_cli_run_trace_prints_a_step_table[captioner]": "bug: decoders are not traced",
    "test_decoder_steps_are_traced[captioner]": "bug: decoders are not traced",
    "test_decoder_steps_are_traced[seq2seq]": "bug: decoders are not traced",
    "test_cli_trace_table_shows_decoder_steps[captioner]": "bug: decoders are not traced",
    "test_cli_trace_table_shows_decoder_steps[seq2seq]": "bug: decoders are not traced",
    "test_cli_many_to_one_header_counts_the_text_steps": "bug: many-to-one run header counts the time dim",
    "test_decoder_dims_apply_to_its_head": "bug: a decoder's dims are not applied to its head",
    "test_inspect_reports_the_decoders_steps": "bug: inspect uses the default steps for generate models",
}


def pytest_collection_modifyitems(items):
    for item in items:
        reason = KNOWN_BUGS.get(item.name)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
