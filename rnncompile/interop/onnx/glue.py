"""Transpose, Squeeze, Unsqueeze, Reshape, Flatten and Identity, followed on axis names.

A sequence's axes are named (values.Seq): T, B, D (directions), F (features), DF (directions then features,
merged), U (a unit axis). Time and batch sizes are known only at run time, so a Reshape is followed only where
each entry covers whole axes whose sizes are known. `dirs` is the number of directions of the layer a value
comes from (None before the first layer).
"""
from __future__ import annotations

from .nodes import fail, node_attrs

GLUE = {"Transpose", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Flatten"}


def is_unit(axis, dirs) -> bool:
    """Whether `axis` has size 1 whatever the run: U, or D of a single-direction layer."""
    if axis == "U":
        return True
    if axis == "D":
        return dirs == 1 if dirs is not None else False
    return False


def glue_axes(node, axes: list, dirs, sizes: dict, second) -> list:
    """The axis names after `node` (one of GLUE) on a value with `axes`; `sizes`: the known axis sizes;
    `second(what, required)`: the node's second input as a constant (None where it has none, unless required)."""
    op, at = node.op_type, node_attrs(node)
    if op == "Identity":
        return axes
    if op == "Transpose":
        perm = at.get("perm", list(range(len(axes)))[::-1])
        return [axes[p] for p in perm]
    if op in ("Squeeze", "Unsqueeze"):
        given = at.get("axes")
        if given is None:
            given = second("the axes")
            given = None if given is None else [int(a) for a in given.reshape(-1)]
        if op == "Squeeze":
            if given is None:
                raise fail(node, "a Squeeze without axes is not supported (the batch may be 1)")
            given = sorted(a % len(axes) for a in given)
            for a in given:
                if not is_unit(axes[a], dirs):
                    raise fail(node, f"squeezes axis {a} ({axes[a]}), which is not of size 1")
            return [x for k, x in enumerate(axes) if k not in given]
        new = list(axes)
        for a in sorted(a % (len(axes) + len(given)) for a in given):
            new.insert(a, "U")
        return new
    if op == "Reshape":
        shape = [int(s) for s in second("the target shape", True).reshape(-1)]
        return reshape_axes(node, axes, shape, at.get("allowzero", 0), sizes, dirs)
    k = at.get("axis", 1) % max(len(axes), 1)  # Flatten
    return merge_axes(node, axes[:k], dirs) + merge_axes(node, axes[k:], dirs)


def merge_axes(node, group, dirs) -> list:
    """`group`'s axes merged into one (unit axes drop out); only [D, F] merges, into DF."""
    group = [a for a in group if not is_unit(a, dirs)]
    if not group:
        return ["U"]
    if len(group) == 1:
        return group
    if group == ["D", "F"]:
        return ["DF"]
    raise fail(node, f"merges axes {'×'.join(group)}, which rnncompile cannot follow",
               "only [directions, features] may be merged, into each step's features (forward, then reverse)")


def reshape_axes(node, axes, shape, allowzero, sizes, dirs) -> list:
    """Axis names after a Reshape: 0 copies, -1 takes the rest, a known size takes the axes it covers."""
    out, k, rest_at = [], 0, None
    for j, s in enumerate(shape):
        if s == 0 and not allowzero:
            if j >= len(axes):
                raise fail(node, f"shape entry {j} copies an axis that does not exist")
            if k != j:
                raise fail(node, "a 0 (copy) entry after a merged or split axis is not supported")
            out.append([axes[j]])
            k += 1
        elif s == -1:
            rest_at = len(out)
            out.append(None)
        elif s == 1 and (k >= len(axes) or sizes.get(axes[k]) != 1):
            out.append(["U"])
        else:
            group, prod = [], 1
            while k < len(axes) and prod < s and axes[k] in sizes:
                prod *= sizes[axes[k]]
                group.append(axes[k])
                k += 1
            while k < len(axes) and sizes.get(axes[k]) == 1 and prod == s and s != 1:
                group.append(axes[k])
                k += 1
            if prod != s or not group:
                raise fail(node, f"reshapes to {shape}: entry {s} does not cover whole axes "
                                 f"({', '.join(axes)}) and time or batch sizes are only known at run time")
            out.append(group)
    if rest_at is not None:
        out[rest_at] = axes[k:]
        k = len(axes)
    if k != len(axes):
        raise fail(node, f"reshapes to {shape}, which drops axes {axes[k:]}")
    new = []
    for group in out:
        new += merge_axes(node, group, dirs) if len(group) > 1 else (group or ["U"])
    return new
