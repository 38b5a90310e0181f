"""Pieces of spec text the importer writes: identifiers made from ONNX names, exact numbers, operands."""
from __future__ import annotations

import re

import numpy as np


def ident(name: str, used: set, fallback: str) -> str:
    base = re.sub(r"\W+", "_", name.encode("ascii", "replace").decode()).strip("_") or fallback
    if base[0].isdigit():
        base = f"{fallback}_{base}"
    out, n = base, 2
    while out in used:
        out, n = f"{base}_{n}", n + 1
    used.add(out)
    return out


def num_text(v: float) -> str:
    """An attribute (float32 in ONNX) written as the exact double it stands for."""
    text = repr(float(np.float32(v)))
    return text[:-2] if text.endswith(".0") and "e" not in text else text



def as_operand(expr: str) -> str:
    """`expr` as a right operand of @: a name or one call stays as it is."""
    if re.fullmatch(r"[\w.]+", expr) or re.fullmatch(r"\w+\(.*\)", expr) and _balanced(expr):
        return expr
    return f"({expr})"


def _balanced(expr: str) -> bool:
    depth = 0
    for i, ch in enumerate(expr):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(expr) - 1 and ch == ")":
            return False
    return True

