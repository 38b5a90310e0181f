"""Shared test setup.

The repository root goes first on sys.path so `import rnncompile` is this
checkout's package even where an older editable install maps `rnncompile` to a
namespace package (setuptools records namespaces at install time; an install
made before rnncompile/__init__.py existed keeps resolving it that way).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
