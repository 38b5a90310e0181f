"""Symbolic sizes: evaluate `H + I` or `[N, W]` against the spec's dims.

Every size, and every step of working one out, stays within MAX_SIZE (a C
`int`), so a typo like `H * 1e308` is an error, not an overflow later; a
shape has at most MAX_RANK axes.
"""
from __future__ import annotations

from . import expr as E
from .errors import did_you_mean


MAX_SIZE = 2**31 - 1
MAX_RANK = 8


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
        return _bounded(value, 0)
    if isinstance(value, float):
        if value.is_integer():
            return _bounded(int(value), 0)
        raise DimError(f"size `{value}` is not a whole number")
    if not isinstance(value, str):
        raise DimError(f"`{value}` is not a size; write a number or a dim name")
    try:
        tree = E.parse(value)
    except E.ExprSyntaxError as e:
        raise DimError(e.message, e.pos, e.width, e.hint) from None
    return _eval(tree, dims)


def too_large(value: int) -> str:
    """How a message shows a size beyond MAX_SIZE (formatting a 400-digit int as a float overflows)."""
    digits = len(str(abs(value))) if value.bit_length() < 10_000 else int(value.bit_length() * 0.30103) + 1
    return f"{value:,}" if digits <= 16 else f"a {digits}-digit number"


def _bounded(value: int, pos: int, width: int = 1) -> int:
    if abs(value) > MAX_SIZE:
        raise DimError(f"size {too_large(value)} is too large; sizes are at most {MAX_SIZE:,}", pos, width)
    return value


def _eval(node, dims) -> int:
    base, chain = E.left_chain(node)  # a loop over `H + H + ...`: no recursion per term
    value = _eval_operand(base, dims)
    for n in chain:
        if not isinstance(n, E.BinOp) or n.op not in "+-*/":
            raise DimError("a size may only use numbers, dim names, + - * / and parentheses", n.pos)
        value = _bounded(_apply(n, value, _eval(n.right, dims)), n.pos)
    return value


def _apply(node, a: int, b: int) -> int:
    if node.op == "+":
        return a + b
    if node.op == "-":
        return a - b
    if node.op == "*":
        return a * b
    if b == 0 or a % b:
        raise DimError(f"{a} / {b} is not a whole number", node.pos)
    return a // b


def _eval_operand(node, dims) -> int:
    if isinstance(node, E.Num):
        if not float(node.value).is_integer():
            raise DimError(f"size `{node.text}` is not a whole number", node.pos, len(node.text))
        return _bounded(int(node.value), node.pos, len(node.text))
    if isinstance(node, E.Name):
        if node.id not in dims:
            raise DimError(f"undefined dim `{node.id}`", node.pos, len(node.id),
                           did_you_mean(node.id, dims, "dim") or "declare it under `dims:`", undefined=node.id)
        return dims[node.id]
    if isinstance(node, E.Neg):
        return -_eval(node.operand, dims)
    raise DimError("a size may only use numbers, dim names, + - * / and parentheses", getattr(node, "pos", 0))


def parse_dim_options(values) -> dict[str, int]:
    """`--dim NAME=SIZE` options, as every command reads them."""
    from .errors import UsageError

    dims = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"--dim {item}: write --dim NAME=SIZE, e.g. --dim H=64")
        try:
            dims[name.strip()] = int(value)
        except ValueError:
            raise UsageError(f"--dim {item}: `{value}` is not a whole number") from None
    return dims
