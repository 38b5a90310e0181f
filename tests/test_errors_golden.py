"""Golden tests: the exact text a person sees for each kind of bad spec.

Each tests/golden/errors/<case>.yaml (or .json) has its expected output in
<case>.expected. To accept new texts after a deliberate change:
RNNCOMPILE_UPDATE_GOLDEN=1 pytest tests/test_errors_golden.py
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from rnncompile.cli import main

HERE = Path(__file__).parent / "golden" / "errors"
CASES = sorted(p for p in HERE.iterdir() if p.suffix in (".yaml", ".json"))


def run_cli(args, capsys, cwd) -> tuple[int, str]:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    return exit_info.value.code, out.err + out.out


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_error_text(case, capsys):
    code, text = run_cli(["validate", case.name], capsys, HERE)
    expected_file = case.with_suffix(".expected")
    got = f"exit {code}\n{text}"
    if os.environ.get("RNNCOMPILE_UPDATE_GOLDEN"):
        expected_file.write_text(got)
    assert expected_file.exists(), f"no {expected_file.name}; review the text, then set RNNCOMPILE_UPDATE_GOLDEN=1"
    assert got == expected_file.read_text()


def test_every_case_has_expected_text():
    for case in CASES:
        assert case.with_suffix(".expected").exists(), case


def test_errors_never_traceback(capsys):
    for case in CASES:
        code, text = run_cli(["validate", case.name], capsys, HERE)
        assert "Traceback" not in text and "internal error" not in text, case
        assert code in (0, 1), case
