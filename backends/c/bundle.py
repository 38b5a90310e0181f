"""A flow bundle as the exported C holds it (export.py, decode.py)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Bundle:
    """A flow bundle in C: each member's pointer and its numbers (at every step, or once per sequence)."""

    members: dict[str, tuple[str, int]]  # name -> (pointer, numbers per step or per sequence)
    per_step: bool  # [steps][n] or [n]
    role: str = ""  # steps | last | final | once | state ...: what it holds (its scratch names, a start state's comment)
    cell: str = ""  # the cell that wrote it
