"""rnncompile: a declarative graph-spec compiler and simulator for recurrent neural networks.

The public names load on first use (PEP 562), so `import rnncompile` and the
CLI's `--help` do not pay for NumPy, networkx and pydantic; `from rnncompile
import run` and `rnncompile.run` work as if they were imported here.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_PUBLIC = {  # name -> the module that defines it
    "compile": "program", "compile_text": "program", "Program": "program",
    "run": "api", "make_params": "api", "complete": "api", "lengths_from_mask": "api", "grad": "api", "train": "api",
    "Executable": "drivers", "RunResult": "drivers",
    "check_file": "check", "check_text": "check",
    "RnnCompileError": "errors", "SpecError": "errors", "UsageError": "errors", "DataError": "errors",
    "Tree": "trees", "Forest": "trees", "read_tree": "trees", "read_trees": "trees",
}
__all__ = list(_PUBLIC)
__version__ = "0.1.0"

if TYPE_CHECKING:  # what editors and type checkers see
    from .api import complete, grad, lengths_from_mask, make_params, run, train
    from .check import check_file, check_text
    from .drivers import Executable, RunResult
    from .errors import DataError, RnnCompileError, SpecError, UsageError
    from .program import Program, compile, compile_text
    from .trees import Forest, Tree, read_tree, read_trees


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value  # the next lookup is a plain module attribute
        return value
    if name.startswith("__"):  # probes such as __wrapped__ are not submodules
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # a submodule, as when this file imported them all: `import rnncompile; rnncompile.registry.get(...)`
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":  # the submodule exists and lacks something it imports
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
