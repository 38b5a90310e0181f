"""One ONNX node as the importer reads it: its attributes as Python values, and errors that name it."""
from __future__ import annotations

from ...errors import DataError


def fail(node, what: str, hint: str = "") -> DataError:
    name = f"`{node.name}` " if node.name else ""
    return DataError(f"ONNX node {name}({node.op_type}): {what}" + (f"\n  hint: {hint}" if hint else ""))



def node_attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else [x.decode() if isinstance(x, bytes) else x for x in v] \
            if isinstance(v, list) else v
    return out

