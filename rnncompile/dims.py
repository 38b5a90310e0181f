"""Symbolic sizes: evaluate `H + I` or `[N, W]` against the spec's dims."""
from __future__ import annotations

from . import expr as E
from .errors import did_you_mean


class DimError(Exception):
    def __init__(self, message: str, pos: int = 0, width: int = 1, hint: str = "", undefined: str | None = None):
        super().__init__(message)
        self.message, self.pos, self.width, self.hint = message, pos, width, hint
        self.undefined = undefined  # the dim name, when the problem is an undefined dim


def eval_dim(value, dims: dict[str, int]) -> int:
    """An int, or an expression over dim names with + - * / (exact) and parentheses."""
    if isinstance(value, bool):
        raise DimError(f"`{value}` is not a size")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise DimError(f"size `{value}` is not a whole number")
    if not isinstance(value, str):
        raise DimError(f"`{value}` is not a size; write a number or a dim name")
    try:
        tree = E.parse(value)
    except E.ExprSyntaxError as e:
        raise DimError(e.message, e.pos, e.width, e.hint) from None
    return _eval(tree, dims)


def _eval(node, dims) -> int:
    if isinstance(node, E.Num):
        if not float(node.value).is_integer():
            raise DimError(f"size `{node.text}` is not a whole number", node.pos, len(node.text))
        return int(node.value)
    if isinstance(node, E.Name):
        if node.id not in dims:
            raise DimError(f"undefined dim `{node.id}`", node.pos, len(node.id),
                           did_you_mean(node.id, dims, "dim") or "declare it under `dims:`", undefined=node.id)
        return dims[node.id]
    if isinstance(node, E.Neg):
        return -_eval(node.operand, dims)
    if isinstance(node, E.BinOp) and node.op in "+-*/":
        a, b = _eval(node.left, dims), _eval(node.right, dims)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        if b == 0 or a % b:
            raise DimError(f"{a} / {b} is not a whole number", node.pos)
        return a // b
    raise DimError("a size may only use numbers, dim names, + - * / and parentheses", getattr(node, "pos", 0))
