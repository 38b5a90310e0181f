"""The one place backends plug in.

Backends are found through the ``rnncompile.backends`` entry-point group
(see pyproject.toml), so the core never imports one by name; a third-party
package can add a backend the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Protocol

from .errors import UsageError


@dataclass
class ScanResult:
    """What a scan returns."""

    outputs: dict  # name -> [B, T, ...]
    final_state: dict  # name -> [B, ...]
    trace: dict = field(default_factory=dict)  # node id -> [B, T, ...] (const nodes: their value)


class BoundCell(Protocol):
    """One cell's graph with its params bound: what the drivers (rnncompile/drivers.py, rnncompile/trees/)
    call. Arrays have a leading batch axis; sequence inputs are [B, T, ...]."""

    def initial_state(self, batch: int) -> dict: ...

    def scan(self, inputs: dict, state=None, lengths=None, reverse: bool = False, trace: bool = False,
             batch: int | None = None, steps: int | None = None): ...  # -> outputs [B, T, ...], final state, trace

    def step(self, inputs_t: dict, state: dict): ...  # one step, for loops that feed back their own output

    def rows(self, inputs: dict, trace: bool = False): ...  # a stateless graph over a batch of rows


class CellRunner(Protocol):
    def bind(self, params: dict) -> BoundCell: ...


class Backend(Protocol):
    """A backend runs one cell's graph; time, direction, stacking, heads, decoding and trees are the
    drivers' (the model's flow, rnncompile.flow). It declares what it can do in `capabilities`:

        run             cell_runner(cell, dtype) runs a cell's graph (every backend)
        trace           its scans can record every node at every step
        export          export(program, spec_file, module_name, ...) writes the model as standalone code,
                        into a file named `export_file` (a pattern of the spec's name)
        embeds_weights  export also takes params= and dtype=: the weights go into the file
    """

    name: str
    capabilities: frozenset

    def cell_runner(self, cell, dtype: str = "float32") -> CellRunner: ...


_LOADED: dict[str, Backend] = {}


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="rnncompile.backends"))


CAPABILITIES = ("run", "trace", "export", "embeds_weights")


def can(name: str, capability: str) -> bool:
    """Whether backend `name` declares `capability` (see Backend)."""
    return capability in getattr(get(name), "capabilities", frozenset())


def able(capability: str) -> list[str]:
    """The installed backends that declare `capability`."""
    return [n for n in available() if can(n, capability)]


def get(name: str) -> Backend:
    if name not in _LOADED:
        found = [ep for ep in entry_points(group="rnncompile.backends") if ep.name == name]
        if not found:
            names = ", ".join(available()) or "none (is rnncompile installed with pip install -e .?)"
            raise UsageError(f"unknown backend `{name}`; available: {names}")
        _LOADED[name] = found[0].load()()
    return _LOADED[name]
