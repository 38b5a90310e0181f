"""The one place backends plug in.

Backends are found through the ``rnncompile.backends`` entry-point group
(see pyproject.toml), so the core never imports one by name; a third-party
package can add a backend the same way.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol

from .errors import UsageError


class Executable(Protocol):
    def run(self, inputs: dict, params: dict, init_state: dict | None = None, trace: bool = False): ...


class Backend(Protocol):
    name: str

    def prepare(self, program, dtype: str = "float32") -> Executable: ...


_LOADED: dict[str, Backend] = {}


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="rnncompile.backends"))


def get(name: str) -> Backend:
    if name not in _LOADED:
        found = [ep for ep in entry_points(group="rnncompile.backends") if ep.name == name]
        if not found:
            names = ", ".join(available()) or "none (is rnncompile installed with pip install -e .?)"
            raise UsageError(f"unknown backend `{name}`; available: {names}")
        _LOADED[name] = found[0].load()()
    return _LOADED[name]
