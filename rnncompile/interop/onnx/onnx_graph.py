"""Building ONNX graphs: nodes, constants and typed values, with names unique across the whole model.

One `Names` is shared by the main graph and every Scan body: ONNX wants each value written once in the
model (a body may read the main graph's values, never redefine them), so every value gets a fresh name.
Internal names hold a `/` (`layers.0.forward/scan/h_next`), which no spec name, weight key or model input
can hold, so they never collide with the model's own inputs, outputs and initializers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import RnnCompileError

OPSET = 18  # Reduce* take their axes as an input; onnxruntime 1.14 (2023) and later run it
IR_VERSION = 8  # the lowest IR version opset 18 allows, for the widest choice of runtimes
BATCH, TIME = "B", "T"  # the symbolic dims of the model's inputs and outputs


class ExportError(RnnCompileError):
    """What cannot be exported (yet), said with the spec path it comes from."""


@dataclass
class Names:
    used: set = field(default_factory=set)

    def fresh(self, hint: str) -> str:
        name, n = hint, 1
        while name in self.used:
            n += 1
            name = f"{hint}.{n}"
        self.used.add(name)
        return name

    def claim(self, name: str) -> str:
        """A name the model's interface fixes (an input, an output, a weight key): taken as it is."""
        if name in self.used:
            raise ExportError(f"the name `{name}` would be given to two ONNX values (an input, output or weight)")
        self.used.add(name)
        return name


def elem_type(dtype) -> int:
    from onnx import TensorProto, helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype)) if dtype != "bool" else TensorProto.BOOL


def value_info(name: str, dtype, shape):
    """A typed value: `shape` of ints and symbolic names (B, T)."""
    from onnx import helper

    return helper.make_tensor_value_info(name, elem_type(dtype), list(shape))


class Graph:
    """One ONNX graph being written (the model's, or a Scan body): `op` adds a node and returns its output."""

    def __init__(self, names: Names, scope: str, dtype):
        self.names, self.scope, self.dtype = names, scope, np.dtype(dtype)
        self.nodes: list = []
        self.inputs: list = []
        self.outputs: list = []
        self.initializers: list = []
        self._consts: dict = {}

    def name(self, hint: str) -> str:
        return self.names.fresh(f"{self.scope}/{hint}" if self.scope else hint)

    def op(self, op_type: str, inputs: list[str], hint: str = "", outputs: int = 1, **attrs):
        """A node of `op_type` reading `inputs` ("" for an omitted optional one); its output name (a list of
        them when `outputs` > 1)."""
        from onnx import helper

        outs = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=outs[0] + ":" + op_type,
                                           **{k: v for k, v in attrs.items() if v is not None}))
        return outs[0] if outputs == 1 else outs

    def const(self, value, dtype=None, hint: str = "const") -> str:
        """A Constant node holding `value` (the graph's float type unless `dtype`); equal constants are shared."""
        from onnx import helper, numpy_helper

        arr = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            out = self.name(hint)
            self.nodes.append(helper.make_node("Constant", [], [out], name=out + ":Constant",
                                               value=numpy_helper.from_array(arr, out)))
            self._consts[key] = out
        return self._consts[key]

    def ints(self, values) -> str:
        """A 1-D int64 constant (axes, shapes, slice bounds)."""
        return self.const(np.asarray(values, np.int64).reshape(-1), np.int64, "ints")

    def initializer(self, name: str, value) -> str:
        """An initializer under a name the caller has claimed or made fresh."""
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def add_input(self, name: str, dtype, shape) -> str:
        self.inputs.append(value_info(name, dtype, shape))
        return name

    def add_output(self, value: str, name: str, dtype, shape) -> None:
        """`value` as the graph output `name` (through an Identity, so an output never is an input as well)."""
        self.nodes.append(_identity(value, name))
        self.outputs.append(value_info(name, dtype, shape))

    # -- small compositions every renderer needs ------------------------------------------------
    def unsqueeze(self, x: str, axes) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes)], "unsqueeze")

    def squeeze(self, x: str, axes) -> str:
        return self.op("Squeeze", [x, self.ints(axes)], "squeeze")

    def expand_to_batch(self, x: str, batch: str, shape) -> str:
        """An unbatched value of `shape` repeated for every example: [B, *shape]."""
        dims = self.op("Concat", [batch, self.ints(shape)], "batch_shape", axis=0) if shape else batch
        return self.op("Expand", [x, dims], "per_example")

    def make(self, name: str):
        from onnx import helper

        return helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)


def _identity(src: str, dst: str):
    from onnx import helper

    return helper.make_node("Identity", [src], [dst], name=dst + ":Identity")
