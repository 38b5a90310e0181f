"""Heads after the last recurrent layer (MatMul, Gemm, Add, Softmax, LogSoftmax, Tanh, Sigmoid, Relu) as the
spec expression of each step's (or the last step's) output."""
from __future__ import annotations

import numpy as np

from .expr_text import as_operand
from .nodes import fail, node_attrs
from .values import Const

HEAD_OPS = ("MatMul", "Gemm", "Add", "Softmax", "LogSoftmax", "Tanh", "Sigmoid", "Relu")


def head_expr(walk, node, src, args) -> tuple[str, int]:
    """The expression `node` computes on `src` (already checked to be the top layer's features), and its size.
    `walk`: the GraphWalk, for its constants (const, vals), head params (param) and opset."""
    op = node.op_type
    expr = src.expr or "h"
    if op in ("Softmax", "LogSoftmax"):
        axis = node_attrs(node).get("axis", 1 if walk.opset < 13 else -1)  # before opset 13: over axes axis..
        if axis % len(src.axes) != len(src.axes) - 1:
            raise fail(node, f"{op} over axis {axis} is not over the features (the last axis)")
        out = f"softmax({expr})" if op == "Softmax" else f"log(softmax({expr}))"
        size = src.size
    elif op in ("Tanh", "Sigmoid", "Relu"):
        out, size = f"{op.lower()}({expr})", src.size
    elif op == "MatMul":
        wt = walk.const(node, node.input[1], "the weight of a MatMul head")
        if wt.ndim != 2 or wt.shape[0] != src.size:
            raise fail(node, f"multiplies {src.size} features by a {list(wt.shape)} matrix")
        pname = walk.param(node.input[1], "W_y", wt.T, ", transposed (MatMul)")
        out, size = f"{pname} @ {as_operand(expr)}", wt.shape[1]
    elif op == "Gemm":
        at = node_attrs(node)
        if len(src.axes) != 2 or at.get("transA", 0):
            raise fail(node, "Gemm over a sequence (or with transA) is not supported; use MatMul")
        wt = walk.const(node, node.input[1], "B of a Gemm head")
        wt = wt if at.get("transB", 0) else wt.T  # [out, in]
        alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
        if wt.ndim != 2 or wt.shape[1] != src.size:
            raise fail(node, f"multiplies {src.size} features by a {list(wt.shape)} matrix")
        pname = walk.param(node.input[1], "W_y", wt * np.asarray(alpha, wt.dtype) if alpha != 1 else wt)
        out, size = f"{pname} @ {as_operand(expr)}", wt.shape[0]
        if len(node.input) > 2 and node.input[2]:
            c = walk.const(node, node.input[2], "C of a Gemm head")
            c = np.broadcast_to(c, (size,)) * (np.asarray(beta, c.dtype) if beta != 1 else 1)
            out = f"{out} + {walk.param(node.input[2], 'b_y', np.array(c))}"
    else:  # Add
        c = args[1]
        if not isinstance(c, Const):
            raise fail(node, "adds two computed values; a head may only add a constant bias")
        bias = c.value
        if bias.size != src.size or bias.shape[-1:] != (src.size,):
            raise fail(node, f"adds a {list(bias.shape)} constant to {src.size} features per step")
        cname = [n for n in node.input if isinstance(walk.vals.get(n), Const)][0]
        out, size = f"{expr} + {walk.param(cname, 'b_y', bias.reshape(-1))}", src.size
    return out, size
