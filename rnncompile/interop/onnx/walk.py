"""The walk over an ONNX graph: each node's output read as a symbolic value (values.py), RNN/GRU/LSTM
nodes recognised as layers, the glue around them followed, heads after the last one collected."""
from __future__ import annotations

import numpy as np

from ...errors import DataError
from .expr_text import ident
from .glue import GLUE, glue_axes, is_unit
from .heads import HEAD_OPS, head_expr
from .model_file import require_onnx
from .nodes import fail, node_attrs
from .recurrent import RECURRENT, initial_state, read_layer
from .values import Const, Last, Layer, Seq, ShapeVal, Zeros, with_axes, with_expr

FOLDABLE = {"Unsqueeze", "Squeeze", "Concat", "Gather", "Slice", "Cast", "Reshape", "Transpose", "Identity", "Shape",
            "Add", "Sub", "Mul", "Div", "Neg"}  # evaluated on constants; none can grow a tensor or loop
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Reshape", "Identity"}


class GraphWalk:
    def __init__(self, model, source: str):
        onnx = require_onnx()

        self.model, self.source = model, source
        self.g = model.graph
        self.vals: dict[str, object] = {}
        self.used: set = set()
        self.layers: list[Layer] = []
        self.inputs: dict = {}
        self.context: dict = {}
        self.lengths: str | None = None
        self.notes: list = []
        self.head_params: dict = {}  # name -> array
        self.head_notes: dict = {}  # name -> where it came from
        self.head_outputs: dict = {}  # spec name -> (expr, onnx name)
        self.head_at = None
        self.outputs: dict = {}
        for t in self.g.initializer:
            self.vals[t.name] = Const(onnx.numpy_helper.to_array(t))
        if len(self.g.sparse_initializer):
            raise DataError(f"{source}: sparse initializers are not supported")
        inits = {t.name for t in self.g.initializer}
        self.graph_inputs = {i.name: i for i in self.g.input if i.name not in inits}
        self.opset = max([d.version for d in model.opset_import if d.domain in ("", "ai.onnx")] or [1])
        for dom in model.opset_import:
            if dom.domain not in ("", "ai.onnx"):
                raise DataError(f"{source}: operators from domain `{dom.domain}` are not supported")
        self.dtype = np.float32

    # -- helpers --

    def val(self, node, name):
        if name not in self.vals:
            if name in self.graph_inputs:
                return ("graph_input", name)
            raise fail(node, f"input `{name}` is not produced by any node before it")
        return self.vals[name]

    def const(self, node, name, what):
        v = self.val(node, name)
        if not isinstance(v, Const):
            raise fail(node, f"{what} (`{name}`) must be a constant (an initializer or Constant)")
        return v.value

    def run(self):
        for node in self.g.node:
            self.visit(node)
        self.finish_outputs()

    # -- one node --

    def visit(self, node):
        op = node.op_type
        ins = list(node.input)
        if op == "Constant":
            from onnx import helper, numpy_helper

            if len(node.attribute) != 1:
                raise fail(node, "a Constant needs exactly one value attribute")
            a = node.attribute[0]
            if a.name == "value":
                v = numpy_helper.to_array(a.t)
            elif a.name in ("value_float", "value_int", "value_floats", "value_ints"):
                v = np.asarray(helper.get_attribute_value(a))
            else:
                raise fail(node, f"a Constant given by `{a.name}` is not supported")
            self.vals[node.output[0]] = Const(v)
            return
        if op in RECURRENT:
            return self.recurrent(node)
        args = [self.val(node, n) if n else None for n in ins]
        real = [a for a in args if a is not None]
        if all(isinstance(a, Const) for a in real) and op in FOLDABLE:
            return self.fold(node, args)
        if any(isinstance(a, ShapeVal) for a in real) and op in SHAPE_OPS and not isinstance(args[0], (Seq, Last)):
            if not (op == "Reshape" and isinstance(args[0], Zeros)):
                self.vals[node.output[0]] = ShapeVal()
                return
        if op == "Shape":
            self.vals[node.output[0]] = ShapeVal()
            return
        if op == "ConstantOfShape":
            value = node_attrs(node).get("value")
            from onnx import numpy_helper
            v = numpy_helper.to_array(value) if value is not None else np.zeros(1)
            if np.any(v != 0):
                raise fail(node, "a ConstantOfShape of a non-zero value is not supported (only zero states)")
            self.vals[node.output[0]] = Zeros()  # only ever a zero start state here; never allocated
            return
        if isinstance(args[0], Zeros) and op in GLUE | {"Slice", "Expand", "Gather", "Cast"}:
            self.vals[node.output[0]] = Zeros()
            return
        if op == "Expand" and isinstance(args[0], Const) and np.all(args[0].value == 0):
            self.vals[node.output[0]] = Zeros()
            return
        if op == "Gather":
            return self.gather(node, args)
        first = args[0]
        if isinstance(first, tuple) and first[0] == "graph_input":
            first = self.sequence_input(node, first[1])
            args[0] = first
        if op in GLUE:
            return self.glue(node, args)
        if op in HEAD_OPS:
            return self.head(node, args)
        raise fail(node, "this operator is not supported",
                   "rnncompile imports RNN, GRU and LSTM nodes, Gather embeddings, MatMul/Gemm/Add heads, "
                   "Softmax/LogSoftmax, and Squeeze/Unsqueeze/Transpose/Reshape between them")

    def fold(self, node, args):
        """Constant folding with onnx's reference evaluator (small tensors only: shapes, indices)."""
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        vals = [a.value for a in args if a is not None]
        if sum(v.size for v in vals) > 1 << 20:
            raise fail(node, "computes on large constants; fold them into initializers first")
        names = [f"i{k}" if a is not None else "" for k, a in enumerate(args)]
        n = helper.make_node(node.op_type, names, list(node.output), domain=node.domain)
        n.attribute.extend(node.attribute)
        ins = [helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
               for nm, v in zip([x for x in names if x], vals)]
        outs = [helper.make_tensor_value_info(o, 0, None) for o in node.output]
        g = helper.make_graph([n], "fold", ins, outs)
        m = helper.make_model(g, opset_imports=list(self.model.opset_import))
        try:
            res = ReferenceEvaluator(m).run(None, {nm: v for nm, v in zip([x for x in names if x], vals)})
        except Exception as e:
            raise fail(node, f"cannot evaluate it on its constant inputs ({type(e).__name__}: {e})") from None
        for o, r in zip(node.output, res):
            self.vals[o] = Const(np.asarray(r))

    # -- the sequence input and embeddings --

    def graph_input_info(self, name):
        from onnx import helper

        info = self.graph_inputs[name]
        elem = info.type.tensor_type.elem_type
        return helper.tensor_dtype_to_np_dtype(elem) if elem else None

    def sequence_input(self, node, name):
        """A float graph input read as a sequence: its axes are found by the first recurrent node."""
        dtype = self.graph_input_info(name)
        if dtype is not None and not np.issubdtype(dtype, np.floating):
            raise fail(node, f"graph input `{name}` holds {dtype} numbers, read here as a float sequence")
        shape = self.graph_inputs[name].type.tensor_type.shape
        rank = len(shape.dim) if shape.dim else 3
        if rank != 3:
            raise fail(node, f"graph input `{name}` has rank {rank}; a sequence input is [T, B, I] or [B, T, I]")
        return Seq(("?0", "?1", "F"), static_dim(shape, 2), "input", expr=f"input:{name}")

    def gather(self, node, args):
        table, ids = args
        axis = node_attrs(node).get("axis", 0)
        if isinstance(table, Const) and isinstance(ids, tuple) and ids[0] == "graph_input" and axis == 0:
            tab = table.value
            if tab.ndim != 2:
                raise fail(node, f"an embedding table must be [V, E], got {list(tab.shape)}")
            dtype = self.graph_input_info(ids[1])
            if dtype is not None and not np.issubdtype(dtype, np.integer):
                raise fail(node, f"the ids `{ids[1]}` are {dtype}, not integers")
            self.vals[node.output[0]] = Seq(("?0", "?1", "F"), tab.shape[1], "input",
                                            expr=f"embed:{ids[1]}:{node.input[0]}")
            return
        src = args[0]
        if isinstance(src, (Seq, Last)) and isinstance(ids, Const) and ids.value.ndim == 0:
            return self.index(node, src, int(ids.value), axis)
        raise fail(node, "only an embedding lookup (Gather of a constant [V, E] table by a token-id graph input, "
                         "axis 0) or taking one step of a sequence is supported")

    def index(self, node, src, i, axis):
        axes = src.axes
        axis = axis % len(axes)
        if isinstance(src, Last) and axes[axis] == "D" and src.axes.count("D") and self.layers[src.layer].dirs == 1:
            self.vals[node.output[0]] = Last(axes[:axis] + axes[axis + 1:], src.size, src.layer, src.state, src.expr)
            return
        if isinstance(src, Seq) and src.stage == "layer" and axes[axis] == "T" and i == -1:
            lay = self.layers[src.layer]
            if lay.direction != "forward" or src.layer != len(self.layers) - 1:
                raise fail(node, f"takes the last step of a {lay.direction} layer's Y",
                           "only the top layer's forward Y at step -1 is its final state (rnncompile's at: last)")
            if self.lengths:
                raise fail(node, "takes step -1 of Y with sequence_lens: ONNX gives zeros there for shorter "
                                 "sequences, rnncompile's last step is each sequence's own", "use Y_h instead")
            self.vals[node.output[0]] = Last(axes[:axis] + axes[axis + 1:], src.size, src.layer, "h", src.expr)
            return
        raise fail(node, f"Gather of index {i} along axis {axis} ({axes[axis]}) is not supported",
                   "only step -1 of a forward layer's Y (its last step) can be taken")

    # -- glue: Transpose, Squeeze, Unsqueeze, Reshape, Flatten --

    def glue(self, node, args):
        src = args[0]
        if not isinstance(src, (Seq, Last)):
            raise fail(node, f"its input `{node.input[0]}` is not a sequence or a recurrent node's state")
        axes = list(src.axes)

        def second(what, required=False):
            if required or len(args) > 1 and args[1] is not None:
                return self.const(node, node.input[1], what)
            return None
        new = glue_axes(node, axes, self.dirs(src), self.sizes(src), second)
        out = with_axes(src, tuple(new))
        if "DF" in new and "DF" not in axes and src.layer >= 0:  # directions merged into the features
            out = with_expr(out, out.expr, src.size * self.layers[src.layer].dirs) if isinstance(out, Seq) else \
                Last(out.axes, src.size * self.layers[src.layer].dirs, out.layer, out.state, out.expr)
        self.vals[node.output[0]] = out

    def dirs(self, src):
        """The number of directions of the layer `src` comes from (None before the first layer)."""
        return self.layers[src.layer].dirs if src.layer >= 0 else None

    def unit(self, src, axis) -> bool:
        return is_unit(axis, self.dirs(src))

    def sizes(self, src) -> dict:
        """The sizes of `src`'s axes known before a run (features, directions, unit axes)."""
        sizes = {"F": src.size, "DF": src.size, "U": 1}
        if src.layer >= 0:
            sizes["D"] = self.layers[src.layer].dirs
        if isinstance(src, Seq) and src.axes.count("D") and src.layer >= 0:
            sizes["F"] = self.layers[src.layer].hidden
        return sizes

    # -- recurrent nodes --

    def recurrent(self, node):
        lay, names = read_layer(node, lambda name, what: self.const(node, name, what))
        w = lay.weights[0]
        if np.issubdtype(w.dtype, np.floating):
            self.dtype = w.dtype.type
        op, hidden, dirs, layout, x_name = lay.op, lay.hidden, lay.dirs, lay.layout, names["x"]
        k = len(self.layers)
        # the input sequence
        x = self.val(node, x_name)
        if isinstance(x, tuple):
            x = self.sequence_input(node, x[1])
        if not isinstance(x, Seq):
            raise fail(node, f"its input X (`{x_name}`) is not a sequence")
        want = ("T", "B", "F") if layout == 0 else ("B", "T", "F")
        if x.stage == "input":
            if k:
                raise fail(node, "reads the model's input, but an earlier recurrent node does too",
                           "layers in parallel are not supported, only a stack")
            self.bind_input(node, x, want)
            if x.expr.startswith("embed:"):
                _, ids, table = x.expr.split(":", 2)
                lay.embed = (table, self.vals[table].value)
        elif x.stage == "layer":
            if x.layer != k - 1:
                raise fail(node, "reads the output of a layer that is not the one just below it")
            below = self.layers[x.layer]
            feat = "DF" if below.dirs == 2 else ("F" if "F" in x.axes else "DF")
            got = tuple(a for a in x.axes if not self.unit(x, a) or a in ("DF", "F"))
            expect = tuple(feat if a == "F" else a for a in want)
            if got != expect:
                raise fail(node, f"reads the layer below with axes {list(x.axes)}; a stack needs "
                                 f"{list(expect)} (layout {layout})")
        else:
            raise fail(node, "reads a computed value; only the model input, an embedding or the layer below "
                             "can feed a recurrent node")
        if x.size and w.shape[2] != x.size:  # 0: a feature size the graph leaves symbolic
            raise fail(node, f"W takes inputs of size {w.shape[2]}, but X has {x.size} features")
        # lengths and initial state
        lens_name = names["lengths"]
        if lens_name:
            lv = self.val(node, lens_name)
            if not (isinstance(lv, tuple) and lv[0] == "graph_input"):
                raise fail(node, "sequence_lens must be a graph input (it becomes the run's `lengths`)")
            if self.lengths not in (None, lens_name):
                raise fail(node, "its sequence_lens differ from the layer below's")
            self.lengths = lens_name
        elif self.lengths is not None:
            raise fail(node, "has no sequence_lens but the layer below has")
        for state in ("h", "c"):
            name = names[state]
            lay.init[state] = initial_state(node, lay, state, name, self.val(node, name) if name else None)
        self.layers.append(lay)
        base = ("T", "D", "B", "F") if layout == 0 else ("B", "T", "D", "F")
        outs = list(node.output) + ["", "", ""]
        if outs[0]:
            self.vals[outs[0]] = Seq(base, hidden, "layer", layer=k, dirs=dirs)
        lastax = ("D", "B", "F") if layout == 0 else ("B", "D", "F")
        for state, name in (("h", outs[1]), ("c", outs[2] if op == "LSTM" else "")):
            if name:
                self.vals[name] = Last(lastax, hidden, k, state)

    def bind_input(self, node, x, want):
        """The graph input's axes follow from what the node reads (after any transposes)."""
        perm = {a: want[i] for i, a in enumerate(x.axes)}
        if sorted(perm.values()) != sorted(want) or perm.get("F") != "F":
            raise fail(node, f"its input X has axes {list(x.axes)}, which cannot be read as {list(want)}")
        kind, name = x.expr.split(":", 1)[0], x.expr.split(":")[1]
        order = "BT" if perm["?0"] == "B" else "TB"
        self.inputs[name] = (name, order, kind)

    # -- heads after the last layer --

    def head(self, node, args):
        op = node.op_type
        src = args[0]
        if op == "Add" and not isinstance(src, (Seq, Last)) and isinstance(args[1], (Seq, Last)):
            src, args = args[1], [args[1], args[0]]
        if not isinstance(src, (Seq, Last)):
            raise fail(node, f"its input `{node.input[0]}` is not computed from a recurrent node")
        if isinstance(src, Seq) and src.stage == "input":
            raise fail(node, "computes on the model input before the recurrent node",
                       "only a Gather embedding may come before it")
        if src.layer != len(self.layers) - 1:
            raise fail(node, "a head must follow the last recurrent layer")
        feat = src.axes[-1]
        if feat not in ("F", "DF") or "D" in src.axes and not self.unit(src, "D"):
            raise fail(node, f"computes over axes {list(src.axes)}; a head needs each step's features last",
                       "a bidirectional Y needs its directions merged into the features first (Transpose, "
                       "then Reshape to [T, B, 2*H])")
        out, size = head_expr(self, node, src, args)
        self.vals[node.output[0]] = with_expr(src, out, size)

    def param(self, onnx_name, fallback, value, how=""):
        name = ident(fallback, self.used, fallback)
        self.head_params[name] = np.asarray(value)
        self.head_notes[name] = f"ONNX `{onnx_name}`{how}"
        return name

    # -- the graph's outputs --

    def finish_outputs(self):
        if not self.layers:
            raise DataError(f"{self.source}: the graph has no RNN, GRU or LSTM node")
        top = len(self.layers) - 1
        for out in self.g.output:
            v = self.vals.get(out.name)
            if v is None and out.name in self.graph_inputs:
                raise DataError(f"{self.source}: graph output `{out.name}` is a graph input")
            if isinstance(v, Last) and not v.expr:
                self.outputs[out.name] = ("state", v.layer, v.state, v.axes)
            elif isinstance(v, Last):
                if self.layers[v.layer].dirs != 1 or v.layer != top or v.state != "h":
                    raise DataError(f"{self.source}: graph output `{out.name}` is a head over a final state that is "
                                    f"not the top layer's single-direction h; not supported")
                self.add_head(out.name, v.expr, "last", v.axes)
            elif isinstance(v, Seq) and v.stage == "layer" and not v.expr:
                if v.layer != top:
                    raise DataError(f"{self.source}: graph output `{out.name}` is the Y of layer {v.layer}, not of "
                                    f"the top layer; rnncompile gives only the top layer's outputs")
                self.outputs[out.name] = ("y", v.axes)
            elif isinstance(v, Seq) and v.stage == "layer":
                self.add_head(out.name, v.expr, "every_step", v.axes)
            else:
                raise DataError(f"{self.source}: graph output `{out.name}` is not computed from a recurrent node's "
                                f"outputs")
        if self.head_outputs:
            for name, desc in list(self.outputs.items()):
                if desc[0] == "y":
                    self.add_head(name, "h", "every_step", desc[1])

    def add_head(self, onnx_name, expr, at, axes):
        if self.head_at not in (None, at):
            raise DataError(f"{self.source}: outputs at every step and at the last step only cannot both be "
                            f"imported (rnncompile's head is one or the other); `{onnx_name}` is {at}")
        self.head_at = at
        name = ident(onnx_name, self.used, "y")
        self.head_outputs[name] = expr
        self.outputs[onnx_name] = ("head", name, axes)



def static_dim(shape, i):
    d = shape.dim[i] if len(shape.dim) > i else None
    return d.dim_value if d is not None and d.HasField("dim_value") else 0

