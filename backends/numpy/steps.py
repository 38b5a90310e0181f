"""How a planned node becomes a call in the NumPy backend's loop.

Three things make the loop fast without changing a value: a kernel's
run-once argument is prepared once per bind (W^T laid out for the GEMM of
`W @ x`); a temporary that dies at its only reader is overwritten by it
(`np.add(F, S, out=F)`: no allocation, memory that stays in cache), and a
value an output shows is written straight into the output's row of the step
(`closure_into`); and the loop body is a flat list of argument-free closures
over the value table.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from rnncompile.graph import CellGraph

from .kernels import Prepared

# ops whose kernel always returns a new array that nothing else holds, so its last reader may overwrite it
FRESH = {"matmul", "add", "sub", "mul", "div", "pow", "maximum", "minimum", "neg", "sigmoid", "tanh", "exp",
         "log", "sqrt", "abs"}


@dataclass
class Step:
    nid: int
    fn: object
    args: tuple
    prepared: Prepared | None = None  # the kernel's form for a run-once argument, if it has one
    into: int | None = None  # the argument position whose buffer the result may be written into


def one_branch(flags, out_shape: tuple):
    """where(c, a, a) with `a` computed once per bind: `a` broadcast to the result's shape, a view. The derivative
    rules' ones_like and zeros_like are such wheres; this skips a pass over c (over every step's rows, when c is
    made before the loop). Exactly the values of where: each element is `a`'s."""
    def fn(c, a, b):
        return np.broadcast_to(a, ((c.shape[0],) if flags[0] else ()) + out_shape)
    return fn


def writes_into(fn) -> bool:
    """Whether a kernel takes `out=` (a bare ufunc, or a kernel that says so)."""
    return isinstance(fn, np.ufunc) or getattr(fn, "takes_out", False)


def plan_in_place(cell: CellGraph, stage: dict, plan: dict, updates: dict, dtype: np.dtype) -> None:
    """Set `into` on every seq and loop step that may write into an argument: a new array made at the
    same stage that this step alone reads, with the result's shape, which is no state's next value;
    under float64, never an array that may be float32 (made from one_hot)."""
    keep = set(updates.values())
    narrow = _maybe_float32(cell) if dtype != np.float32 else set()
    for name in ("seq", "loop"):
        for s in plan[name]:
            if not writes_into(s.fn):
                continue
            shape = cell.node(s.nid).shape
            for i, a in enumerate(s.args):
                node = cell.node(a)
                if (stage[a] == name and node.op in FRESH and node.shape == shape and node.dtype == "float"
                        and a not in keep and a not in narrow and cell.users(a) == [s.nid]):
                    s.into = i
                    break


def _maybe_float32(cell: CellGraph) -> set:
    """Nodes whose value may be float32 in a float64 run: one_hot (float32 by definition) and what is
    computed from such values alone."""
    out = set()
    for nid in cell.order():
        node = cell.node(nid)
        args = [a for a in cell.args(nid) if cell.node(a).dtype == "float"]
        if node.op == "one_hot" or (args and all(a in out for a in args)):
            out.add(nid)
    return out


def call(s: Step, env: dict, in_place: bool = True) -> tuple:
    """(node, function, args) for one planned step: its run-once argument prepared (from env) when the
    kernel has a prepared form, and writing into a dying argument when planned and `in_place`."""
    if s.prepared is not None:
        i, prepare, fast = s.prepared
        fixed = prepare(env[s.args[i]])
        fn = functools.partial(fast, fixed) if i == 0 else (lambda *xs: fast(*xs[:i], fixed, *xs[i:]))
        return s.nid, fn, s.args[:i] + s.args[i + 1:]
    if in_place and s.into is not None:
        return s.nid, _into(s.fn, s.into, len(s.args)), s.args
    return s.nid, s.fn, s.args


def _into(fn, i: int, arity: int):
    if arity == 1:
        return lambda a: fn(a, out=a)
    if i == 0:
        return lambda a, b: fn(a, b, out=a)
    return lambda a, b: fn(a, b, out=b)


def closure_into(fn, out: int, args: tuple, env: dict, rows: dict):
    """One call that writes its result into the array rows[out] (an output's row of this step, set by the loop
    before the step): env[out] = fn(*env[args], out=rows[out])."""
    if len(args) == 1:
        (a,) = args

        def step():
            env[out] = fn(env[a], out=rows[out])
    elif len(args) == 2:
        a, b = args

        def step():
            env[out] = fn(env[a], env[b], out=rows[out])
    else:
        def step():
            env[out] = fn(*[env[i] for i in args], out=rows[out])
    return step


def closure(fn, out: int, args: tuple, env: dict):
    """One call as a function without arguments: env[out] = fn(*env[args])."""
    if len(args) == 1:
        (a,) = args

        def step():
            env[out] = fn(env[a])
    elif len(args) == 2:
        a, b = args

        def step():
            env[out] = fn(env[a], env[b])
    else:
        def step():
            env[out] = fn(*[env[i] for i in args])
    return step
