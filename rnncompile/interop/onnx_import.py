"""An ONNX model with RNN, GRU or LSTM nodes -> a readable spec and its weights.

ONNX stacks a recurrent node's gates in W [D, G*H, I] (over x), R [D, G*H, H]
(over h) and B [D, 2*G*H] (= [Wb, Rb]), gate order i o f c (LSTM), z r h (GRU);
the spec written here gives each gate its own W_g, R_g and one bias b_g (Wb +
Rb), except the GRU candidate's with linear_before_reset=1, whose Rb stays
inside r * (...). The graph around the nodes is read as a symbolic tensor per
value: which axis is time, batch, direction or features, so transposes,
squeezes and reshapes are followed rather than guessed. Anything that does
not map is refused with the node's name, its op type and what is unsupported.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError

MAX_MODEL_BYTES = 1 << 30  # the .onnx file plus its external data
MAX_ID_VOCAB = 4096  # up to this many token ids get a vocabulary of their numbers (so `run` can make inputs)
RECURRENT = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
GLUE = {"Transpose", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Flatten"}
FOLDABLE = {"Unsqueeze", "Squeeze", "Concat", "Gather", "Slice", "Cast", "Reshape", "Transpose", "Identity", "Shape",
            "Add", "Sub", "Mul", "Div", "Neg"}  # evaluated on constants; none can grow a tensor or loop
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Reshape", "Identity"}
ATTRS = {  # attributes each op may carry (anything else is refused by name)
    "RNN": {"activations", "activation_alpha", "activation_beta", "clip", "direction", "hidden_size", "layout"},
    "GRU": {"activations", "activation_alpha", "activation_beta", "clip", "direction", "hidden_size", "layout",
            "linear_before_reset"},
    "LSTM": {"activations", "activation_alpha", "activation_beta", "clip", "direction", "hidden_size", "layout",
             "input_forget"},
}


def _fail(node, what: str, hint: str = "") -> DataError:
    name = f"`{node.name}` " if node.name else ""
    return DataError(f"ONNX node {name}({node.op_type}): {what}" + (f"\n  hint: {hint}" if hint else ""))


# ---- reading a model safely ------------------------------------------------------

def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise UsageError("importing ONNX models needs the onnx package: pip install onnx") from None
    return onnx


def read_model(path):
    """The ModelProto of `path`: a regular file of bounded size; external data only from files inside the
    model's folder (no absolute paths, no `..`)."""
    onnx = _require_onnx()
    from onnx import external_data_helper

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such file" if not p.exists() else f"{path}: not a regular file")
    size = p.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise DataError(f"{path}: {size:,} bytes is over the {MAX_MODEL_BYTES:,}-byte limit for a model")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise DataError(f"{path}: not an ONNX model ({type(e).__name__}: {e})") from None
    folder = p.resolve().parent
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        loc = info.get("location", "")
        parts = Path(loc).parts
        target = (folder / loc).resolve()
        if not loc or Path(loc).is_absolute() or ".." in parts or folder not in target.parents:
            raise DataError(f"{path}: tensor `{tensor.name}` keeps its data at `{loc}`, outside the model's folder; "
                            f"refused (external data must be a relative path without `..`)")
        if not target.is_file():
            raise DataError(f"{path}: tensor `{tensor.name}`: external data file `{loc}` is missing or not a file")
        size += target.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise DataError(f"{path}: the model and its external data are over the {MAX_MODEL_BYTES:,}-byte limit")
    try:
        external_data_helper.load_external_data_for_model(model, str(folder))
    except Exception as e:
        raise DataError(f"{path}: cannot read external data ({type(e).__name__}: {e})") from None
    return model


# ---- what a value in the graph is ---------------------------------------------------

@dataclass(frozen=True)
class Const:
    value: np.ndarray


@dataclass(frozen=True)
class Zeros:
    """A tensor of zeros of a run-time shape (torch's default initial_h)."""


@dataclass(frozen=True)
class ShapeVal:
    """A run-time shape or a piece of one (only feeds ConstantOfShape, Expand, Reshape's shape)."""


@dataclass(frozen=True)
class Seq:
    """A tensor over time: `axes` names each axis: T, B, D (directions), F (features), DF (directions
    then features, merged), U (a unit axis). `expr` is its per-step value as a spec expression."""
    axes: tuple
    size: int  # the feature axis' size (F or DF)
    stage: str  # "input" (before the first recurrent node), "layer" (a node's Y), "head" (after the last)
    expr: str = ""
    layer: int = -1
    dirs: int = 1


@dataclass(frozen=True)
class Last:
    """A per-sequence tensor: a node's Y_h or Y_c (axes D, B, F), or a head over it (axes B, F)."""
    axes: tuple
    size: int
    layer: int
    state: str  # "h" or "c"
    expr: str = ""


@dataclass
class Layer:
    node: object
    op: str
    hidden: int
    dirs: int
    direction: str
    acts: list  # [(name, alpha, beta)] for one direction
    clip: float | None
    lbr: int
    input_forget: int
    bias: bool
    peepholes: bool
    init: dict  # state -> ("zeros",) | ("param", {prefix: array}) | ("context", graph input name)
    cell: str = ""
    embed: tuple | None = None  # (param name, table) when the layer reads a token input through Gather


@dataclass
class Imported:
    """The spec's text, its weights and how the ONNX graph's inputs and outputs map onto a run."""
    text: str
    weights: dict
    inputs: dict = field(default_factory=dict)  # ONNX input -> (rnncompile input, "BT" | "TB")
    context: dict = field(default_factory=dict)  # ONNX input -> (context name, the node's layout)
    lengths: str | None = None  # the ONNX input holding sequence_lens
    outputs: dict = field(default_factory=dict)  # ONNX output -> description (see onnx_outputs)
    notes: list = field(default_factory=list)
    top_hidden: int = 0  # the top layer's hidden size (to split ONNX's Y per direction)


def _ident(name: str, used: set, fallback: str) -> str:
    base = re.sub(r"\W+", "_", name.encode("ascii", "replace").decode()).strip("_") or fallback
    if base[0].isdigit():
        base = f"{fallback}_{base}"
    out, n = base, 2
    while out in used:
        out, n = f"{base}_{n}", n + 1
    used.add(out)
    return out


def _num(v: float) -> str:
    """An attribute (float32 in ONNX) written as the exact double it stands for."""
    text = repr(float(np.float32(v)))
    return text[:-2] if text.endswith(".0") and "e" not in text else text


def _attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else [x.decode() if isinstance(x, bytes) else x for x in v] \
            if isinstance(v, list) else v
    return out


# ---- activations ----------------------------------------------------------------------

ALPHA_BETA = {  # ONNX activation -> (uses alpha, uses beta, default alpha, default beta)
    "Sigmoid": (False, False, None, None), "Tanh": (False, False, None, None), "Relu": (False, False, None, None),
    "Softsign": (False, False, None, None), "Softplus": (False, False, None, None),
    "HardSigmoid": (True, True, 0.2, 0.5), "LeakyRelu": (True, False, 0.01, None), "Elu": (True, False, 1.0, None),
    "Affine": (True, True, 1.0, 0.0), "ScaledTanh": (True, True, 1.0, 1.0),
}


def _activations(node, op, attrs, dirs) -> list:
    """[(name, alpha, beta)] per activation of one direction; both directions must agree (one cell)."""
    per = len(DEFAULT_ACTS[op])
    names = attrs.get("activations") or DEFAULT_ACTS[op] * dirs
    if len(names) != per * dirs:
        raise _fail(node, f"`activations` lists {len(names)} functions; a {attrs.get('direction', 'forward')} "
                          f"{op} takes {per * dirs} ({per} per direction)")
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    out = []
    for name in names:
        canon = {k.lower(): k for k in ALPHA_BETA}.get(name.lower())
        if canon is None:
            known = ", ".join(sorted(ALPHA_BETA))
            raise _fail(node, f"activation `{name}` has no rnncompile equivalent",
                        f"supported: {known} (ThresholdedRelu needs a comparison, which specs do not have)")
        ua, ub, da, db = ALPHA_BETA[canon]
        a = alphas.pop(0) if ua and alphas else da
        b = betas.pop(0) if ub and betas else db
        out.append((canon, a, b))
    if alphas or betas:
        raise _fail(node, "`activation_alpha`/`activation_beta` hold more values than its activations use")
    if dirs == 2 and out[:per] != out[per:]:
        raise _fail(node, f"the two directions use different activations ({out[:per]} and {out[per:]})",
                    "rnncompile runs both directions of a layer with one cell; export the directions as two nodes")
    return out[:per]


def _act(spec, arg: str, lets: dict, name: str) -> str:
    """The activation `spec` applied to `arg` as an expression; arguments used twice get their own let."""
    kind, a, b = spec
    simple = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "Softplus": "softplus"}
    if kind in simple:
        return f"{simple[kind]}({arg})"
    if kind == "HardSigmoid":
        if (np.float32(a), np.float32(b)) == (np.float32(0.2), np.float32(0.5)):
            return f"hard_sigmoid({arg})"
        return f"hard_sigmoid({arg}, alpha={_num(a)}, beta={_num(b)})"
    if kind == "Affine":
        return f"({_num(a)} * ({arg}) + {_num(b)})"
    if kind == "ScaledTanh":
        return f"({_num(a)} * tanh({_num(b)} * ({arg})))"
    if not re.fullmatch(r"\w+", arg):
        lets[name] = arg
        arg = name
    if kind == "Softsign":
        return f"({arg} / (1 + abs({arg})))"
    if kind == "LeakyRelu":
        return f"(maximum({arg}, 0) + {_num(a)} * minimum({arg}, 0))"
    if kind == "Elu":
        return f"(maximum({arg}, 0) + {_num(a)} * (exp(minimum({arg}, 0)) - 1))"
    raise AssertionError(kind)


# ---- the importer -----------------------------------------------------------------------

class _Importer:
    def __init__(self, model, source: str):
        onnx = _require_onnx()

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
            raise _fail(node, f"input `{name}` is not produced by any node before it")
        return self.vals[name]

    def const(self, node, name, what):
        v = self.val(node, name)
        if not isinstance(v, Const):
            raise _fail(node, f"{what} (`{name}`) must be a constant (an initializer or Constant)")
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
                raise _fail(node, "a Constant needs exactly one value attribute")
            a = node.attribute[0]
            if a.name == "value":
                v = numpy_helper.to_array(a.t)
            elif a.name in ("value_float", "value_int", "value_floats", "value_ints"):
                v = np.asarray(helper.get_attribute_value(a))
            else:
                raise _fail(node, f"a Constant given by `{a.name}` is not supported")
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
            value = _attrs(node).get("value")
            from onnx import numpy_helper
            v = numpy_helper.to_array(value) if value is not None else np.zeros(1)
            if np.any(v != 0):
                raise _fail(node, "a ConstantOfShape of a non-zero value is not supported (only zero states)")
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
        if op in ("MatMul", "Gemm", "Add", "Softmax", "LogSoftmax", "Tanh", "Sigmoid", "Relu"):
            return self.head(node, args)
        raise _fail(node, "this operator is not supported",
                    "rnncompile imports RNN, GRU and LSTM nodes, Gather embeddings, MatMul/Gemm/Add heads, "
                    "Softmax/LogSoftmax, and Squeeze/Unsqueeze/Transpose/Reshape between them")

    def fold(self, node, args):
        """Constant folding with onnx's reference evaluator (small tensors only: shapes, indices)."""
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        vals = [a.value for a in args if a is not None]
        if sum(v.size for v in vals) > 1 << 20:
            raise _fail(node, "computes on large constants; fold them into initializers first")
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
            raise _fail(node, f"cannot evaluate it on its constant inputs ({type(e).__name__}: {e})") from None
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
            raise _fail(node, f"graph input `{name}` holds {dtype} numbers, read here as a float sequence")
        shape = self.graph_inputs[name].type.tensor_type.shape
        rank = len(shape.dim) if shape.dim else 3
        if rank != 3:
            raise _fail(node, f"graph input `{name}` has rank {rank}; a sequence input is [T, B, I] or [B, T, I]")
        return Seq(("?0", "?1", "F"), _dim(shape, 2), "input", expr=f"input:{name}")

    def gather(self, node, args):
        table, ids = args
        axis = _attrs(node).get("axis", 0)
        if isinstance(table, Const) and isinstance(ids, tuple) and ids[0] == "graph_input" and axis == 0:
            tab = table.value
            if tab.ndim != 2:
                raise _fail(node, f"an embedding table must be [V, E], got {list(tab.shape)}")
            dtype = self.graph_input_info(ids[1])
            if dtype is not None and not np.issubdtype(dtype, np.integer):
                raise _fail(node, f"the ids `{ids[1]}` are {dtype}, not integers")
            self.vals[node.output[0]] = Seq(("?0", "?1", "F"), tab.shape[1], "input",
                                            expr=f"embed:{ids[1]}:{node.input[0]}")
            return
        src = args[0]
        if isinstance(src, (Seq, Last)) and isinstance(ids, Const) and ids.value.ndim == 0:
            return self.index(node, src, int(ids.value), axis)
        raise _fail(node, "only an embedding lookup (Gather of a constant [V, E] table by a token-id graph input, "
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
                raise _fail(node, f"takes the last step of a {lay.direction} layer's Y",
                            "only the top layer's forward Y at step -1 is its final state (rnncompile's at: last)")
            if self.lengths:
                raise _fail(node, "takes step -1 of Y with sequence_lens: ONNX gives zeros there for shorter "
                                  "sequences, rnncompile's last step is each sequence's own", "use Y_h instead")
            self.vals[node.output[0]] = Last(axes[:axis] + axes[axis + 1:], src.size, src.layer, "h", src.expr)
            return
        raise _fail(node, f"Gather of index {i} along axis {axis} ({axes[axis]}) is not supported",
                    "only step -1 of a forward layer's Y (its last step) can be taken")

    # -- glue: Transpose, Squeeze, Unsqueeze, Reshape, Flatten --

    def glue(self, node, args):
        src = args[0]
        if not isinstance(src, (Seq, Last)):
            raise _fail(node, f"its input `{node.input[0]}` is not a sequence or a recurrent node's state")
        axes = list(src.axes)
        op, at = node.op_type, _attrs(node)
        if op == "Identity":
            new = axes
        elif op == "Transpose":
            perm = at.get("perm", list(range(len(axes)))[::-1])
            new = [axes[p] for p in perm]
        elif op in ("Squeeze", "Unsqueeze"):
            given = at.get("axes")
            if given is None and len(args) > 1 and args[1] is not None:
                given = [int(a) for a in self.const(node, node.input[1], "the axes").reshape(-1)]
            if op == "Squeeze":
                if given is None:
                    raise _fail(node, "a Squeeze without axes is not supported (the batch may be 1)")
                given = sorted(a % len(axes) for a in given)
                for a in given:
                    if not self.unit(src, axes[a]):
                        raise _fail(node, f"squeezes axis {a} ({axes[a]}), which is not of size 1")
                new = [x for k, x in enumerate(axes) if k not in given]
            else:
                new = list(axes)
                for a in sorted(a % (len(axes) + len(given)) for a in given):
                    new.insert(a, "U")
        elif op == "Reshape":
            shape = [int(s) for s in self.const(node, node.input[1], "the target shape").reshape(-1)]
            new = self.reshape(node, src, axes, shape, at.get("allowzero", 0))
        else:  # Flatten
            k = at.get("axis", 1) % max(len(axes), 1)
            new = self.merge(node, src, axes[:k]) + self.merge(node, src, axes[k:])
        out = _with_axes(src, tuple(new))
        if "DF" in new and "DF" not in axes and src.layer >= 0:  # directions merged into the features
            out = _with_expr(out, out.expr, src.size * self.layers[src.layer].dirs) if isinstance(out, Seq) else \
                Last(out.axes, src.size * self.layers[src.layer].dirs, out.layer, out.state, out.expr)
        self.vals[node.output[0]] = out

    def unit(self, src, axis) -> bool:
        if axis == "U":
            return True
        if axis == "D":
            return self.layers[src.layer].dirs == 1 if src.layer >= 0 else False
        return False

    def merge(self, node, src, group):
        group = [a for a in group if not self.unit(src, a)]
        if not group:
            return ["U"]
        if len(group) == 1:
            return group
        if group == ["D", "F"]:
            return ["DF"]
        raise _fail(node, f"merges axes {'×'.join(group)}, which rnncompile cannot follow",
                    "only [directions, features] may be merged, into each step's features (forward, then reverse)")

    def reshape(self, node, src, axes, shape, allowzero):
        """Axis names after a Reshape: 0 copies, -1 takes the rest, a known size takes the axes it covers."""
        sizes = {"F": src.size, "DF": src.size, "U": 1}
        if src.layer >= 0:
            sizes["D"] = self.layers[src.layer].dirs
        if isinstance(src, Seq) and src.axes.count("D") and src.layer >= 0:
            sizes["F"] = self.layers[src.layer].hidden
        out, k, rest_at = [], 0, None
        for j, s in enumerate(shape):
            if s == 0 and not allowzero:
                if j >= len(axes):
                    raise _fail(node, f"shape entry {j} copies an axis that does not exist")
                if k != j:
                    raise _fail(node, "a 0 (copy) entry after a merged or split axis is not supported")
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
                    raise _fail(node, f"reshapes to {shape}: entry {s} does not cover whole axes "
                                      f"({', '.join(axes)}) and time or batch sizes are only known at run time")
                out.append(group)
        if rest_at is not None:
            out[rest_at] = axes[k:]
            k = len(axes)
        if k != len(axes):
            raise _fail(node, f"reshapes to {shape}, which drops axes {axes[k:]}")
        new = []
        for group in out:
            new += self.merge(node, src, group) if len(group) > 1 else (group or ["U"])
        return new

    # -- recurrent nodes --

    def recurrent(self, node):
        op, at = node.op_type, _attrs(node)
        for name in at:
            if name not in ATTRS[op]:
                raise _fail(node, f"attribute `{name}` is not supported")
        ins = list(node.input) + [""] * (8 - len(node.input))
        x_name, w_name, r_name, b_name, lens_name, h0_name = ins[:6]
        c0_name, p_name = (ins[6], ins[7]) if op == "LSTM" else ("", "")
        if op != "LSTM" and any(ins[6:]):
            raise _fail(node, f"has {len(node.input)} inputs; {op} takes at most 6")
        direction = at.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise _fail(node, f"direction `{direction}` is not forward, reverse or bidirectional")
        dirs = 2 if direction == "bidirectional" else 1
        layout = at.get("layout", 0)
        if layout not in (0, 1):
            raise _fail(node, f"layout {layout} is not 0 or 1")
        w = self.const(node, w_name, "W")
        r = self.const(node, r_name, "R")
        gates = RECURRENT[op]
        if w.ndim != 3 or w.shape[0] != dirs or w.shape[1] % gates:
            raise _fail(node, f"W has shape {list(w.shape)}; a {direction} {op} needs [{dirs}, {gates}*H, I]")
        hidden = at.get("hidden_size", w.shape[1] // gates)
        if w.shape[1] != gates * hidden or r.shape != (dirs, gates * hidden, hidden):
            raise _fail(node, f"W {list(w.shape)} and R {list(r.shape)} do not fit hidden_size {hidden}")
        b = self.const(node, b_name, "B") if b_name else None
        if b is not None and b.shape != (dirs, 2 * gates * hidden):
            raise _fail(node, f"B has shape {list(b.shape)}, not [{dirs}, {2 * gates * hidden}]")
        p = self.const(node, p_name, "P") if p_name else None
        if p is not None and p.shape != (dirs, 3 * hidden):
            raise _fail(node, f"P has shape {list(p.shape)}, not [{dirs}, {3 * hidden}]")
        if np.issubdtype(w.dtype, np.floating):
            self.dtype = w.dtype.type
        clip = at.get("clip")
        if clip is not None and not clip > 0:
            raise _fail(node, f"clip {clip} is not positive")
        lay = Layer(node, op, hidden, dirs, direction, _activations(node, op, at, dirs), clip,
                    at.get("linear_before_reset", 0), at.get("input_forget", 0), b is not None, p is not None, {})
        lay.weights = (w, r, b, p)
        k = len(self.layers)
        # the input sequence
        x = self.val(node, x_name)
        if isinstance(x, tuple):
            x = self.sequence_input(node, x[1])
        if not isinstance(x, Seq):
            raise _fail(node, f"its input X (`{x_name}`) is not a sequence")
        want = ("T", "B", "F") if layout == 0 else ("B", "T", "F")
        if x.stage == "input":
            if k:
                raise _fail(node, "reads the model's input, but an earlier recurrent node does too",
                            "layers in parallel are not supported, only a stack")
            self.bind_input(node, x, want)
            if x.expr.startswith("embed:"):
                _, ids, table = x.expr.split(":", 2)
                lay.embed = (table, self.vals[table].value)
        elif x.stage == "layer":
            if x.layer != k - 1:
                raise _fail(node, "reads the output of a layer that is not the one just below it")
            below = self.layers[x.layer]
            feat = "DF" if below.dirs == 2 else ("F" if "F" in x.axes else "DF")
            got = tuple(a for a in x.axes if not self.unit(x, a) or a in ("DF", "F"))
            expect = tuple(feat if a == "F" else a for a in want)
            if got != expect:
                raise _fail(node, f"reads the layer below with axes {list(x.axes)}; a stack needs "
                                  f"{list(expect)} (layout {layout})")
        else:
            raise _fail(node, "reads a computed value; only the model input, an embedding or the layer below "
                              "can feed a recurrent node")
        if x.size and w.shape[2] != x.size:  # 0: a feature size the graph leaves symbolic
            raise _fail(node, f"W takes inputs of size {w.shape[2]}, but X has {x.size} features")
        # lengths and initial state
        if lens_name:
            lv = self.val(node, lens_name)
            if not (isinstance(lv, tuple) and lv[0] == "graph_input"):
                raise _fail(node, "sequence_lens must be a graph input (it becomes the run's `lengths`)")
            if self.lengths not in (None, lens_name):
                raise _fail(node, "its sequence_lens differ from the layer below's")
            self.lengths = lens_name
        elif self.lengths is not None:
            raise _fail(node, "has no sequence_lens but the layer below has")
        lay.layout = layout
        for state, name in (("h", h0_name), ("c", c0_name)):
            lay.init[state] = self.initial(node, lay, state, name)
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
            raise _fail(node, f"its input X has axes {list(x.axes)}, which cannot be read as {list(want)}")
        kind, name = x.expr.split(":", 1)[0], x.expr.split(":")[1]
        order = "BT" if perm["?0"] == "B" else "TB"
        self.inputs[name] = (name, order, kind)

    def initial(self, node, lay, state, name):
        if not name:
            return ("zeros",)
        v = self.val(node, name)
        if isinstance(v, Zeros):
            return ("zeros",)
        if isinstance(v, Const):
            a = v.value if lay.layout == 0 or v.value.ndim != 3 else v.value.transpose(1, 0, 2)  # -> [D, B, H]
            if a.ndim != 3 or a.shape[0] != lay.dirs or a.shape[2] != lay.hidden:
                raise _fail(node, f"initial_{state} has shape {list(a.shape)}, not [{lay.dirs}, B, {lay.hidden}]")
            if not np.all(a == a[:, :1]):
                raise _fail(node, f"initial_{state} is a constant that differs from batch row to batch row",
                            "rnncompile starts every sequence from one param; feed it as a graph input instead")
            if not a.any():
                return ("zeros",)
            return ("param", a[:, 0])
        if isinstance(v, tuple) and v[0] == "graph_input":
            if lay.dirs == 2:
                raise _fail(node, f"initial_{state} is a graph input of a bidirectional node",
                            "rnncompile takes a start state from a context input for one direction only; "
                            "split the node into a forward and a reverse one, or make initial_h an initializer")
            return ("context", v[1])
        raise _fail(node, f"initial_{state} (`{name}`) must be an initializer, zeros or a graph input")

    # -- heads after the last layer --

    def head(self, node, args):
        op = node.op_type
        src = args[0]
        if op == "Add" and not isinstance(src, (Seq, Last)) and isinstance(args[1], (Seq, Last)):
            src, args = args[1], [args[1], args[0]]
        if not isinstance(src, (Seq, Last)):
            raise _fail(node, f"its input `{node.input[0]}` is not computed from a recurrent node")
        if isinstance(src, Seq) and src.stage == "input":
            raise _fail(node, "computes on the model input before the recurrent node",
                        "only a Gather embedding may come before it")
        if src.layer != len(self.layers) - 1:
            raise _fail(node, "a head must follow the last recurrent layer")
        feat = src.axes[-1]
        if feat not in ("F", "DF") or "D" in src.axes and not self.unit(src, "D"):
            raise _fail(node, f"computes over axes {list(src.axes)}; a head needs each step's features last",
                        "a bidirectional Y needs its directions merged into the features first (Transpose, "
                        "then Reshape to [T, B, 2*H])")
        expr = src.expr or "h"
        if op in ("Softmax", "LogSoftmax"):
            axis = _attrs(node).get("axis", 1 if self.opset < 13 else -1)  # before opset 13: over axes axis..
            if axis % len(src.axes) != len(src.axes) - 1:
                raise _fail(node, f"{op} over axis {axis} is not over the features (the last axis)")
            out = f"softmax({expr})" if op == "Softmax" else f"log(softmax({expr}))"
            size = src.size
        elif op in ("Tanh", "Sigmoid", "Relu"):
            out, size = f"{op.lower()}({expr})", src.size
        elif op == "MatMul":
            wt = self.const(node, node.input[1], "the weight of a MatMul head")
            if wt.ndim != 2 or wt.shape[0] != src.size:
                raise _fail(node, f"multiplies {src.size} features by a {list(wt.shape)} matrix")
            pname = self.param(node.input[1], "W_y", wt.T, ", transposed (MatMul)")
            out, size = f"{pname} @ {_paren(expr)}", wt.shape[1]
        elif op == "Gemm":
            at = _attrs(node)
            if len(src.axes) != 2 or at.get("transA", 0):
                raise _fail(node, "Gemm over a sequence (or with transA) is not supported; use MatMul")
            wt = self.const(node, node.input[1], "B of a Gemm head")
            wt = wt if at.get("transB", 0) else wt.T  # [out, in]
            alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
            if wt.ndim != 2 or wt.shape[1] != src.size:
                raise _fail(node, f"multiplies {src.size} features by a {list(wt.shape)} matrix")
            pname = self.param(node.input[1], "W_y", wt * np.asarray(alpha, wt.dtype) if alpha != 1 else wt)
            out, size = f"{pname} @ {_paren(expr)}", wt.shape[0]
            if len(node.input) > 2 and node.input[2]:
                c = self.const(node, node.input[2], "C of a Gemm head")
                c = np.broadcast_to(c, (size,)) * (np.asarray(beta, c.dtype) if beta != 1 else 1)
                out = f"{out} + {self.param(node.input[2], 'b_y', np.array(c))}"
        else:  # Add
            c = args[1]
            if not isinstance(c, Const):
                raise _fail(node, "adds two computed values; a head may only add a constant bias")
            bias = c.value
            if bias.size != src.size or bias.shape[-1:] != (src.size,):
                raise _fail(node, f"adds a {list(bias.shape)} constant to {src.size} features per step")
            cname = [n for n in node.input if isinstance(self.vals.get(n), Const)][0]
            out, size = f"{expr} + {self.param(cname, 'b_y', bias.reshape(-1))}", src.size
        self.vals[node.output[0]] = _with_expr(src, out, size)

    def param(self, onnx_name, fallback, value, how=""):
        name = _ident(fallback, self.used, fallback)
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
        name = _ident(onnx_name, self.used, "y")
        self.head_outputs[name] = expr
        self.outputs[onnx_name] = ("head", name, axes)


def _dim(shape, i):
    d = shape.dim[i] if len(shape.dim) > i else None
    return d.dim_value if d is not None and d.HasField("dim_value") else 0


def _paren(expr: str) -> str:
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


def _with_axes(src, axes):
    if isinstance(src, Seq):
        return Seq(axes, src.size, src.stage, src.expr, src.layer, src.dirs)
    return Last(axes, src.size, src.layer, src.state, src.expr)


def _with_expr(src, expr, size):
    if isinstance(src, Seq):
        return Seq(src.axes, size, src.stage, expr, src.layer, src.dirs)
    return Last(src.axes, size, src.layer, src.state, expr)


# ---- writing the spec ----------------------------------------------------------------

def _gate_pre(g: str, lay: Layer, xin: str, peep: str = "") -> str:
    terms = [f"W_{g} @ {xin}", f"R_{g} @ h"]
    if peep:
        terms.append(f"P_{g} * {peep}")
    if lay.bias:
        terms.append(f"b_{g}")
    return " + ".join(terms)


def _clip(expr: str, lay: Layer) -> str:
    if lay.clip is None:
        return expr
    c = _num(lay.clip)
    return f"minimum(maximum({expr}, -{c}), {c})"


def _cell_params(lay: Layer, x_size: str) -> dict:
    """param name -> shape text, in the order the equations use them."""
    names = {"RNN": "i", "GRU": "zrn", "LSTM": "iofg"}[lay.op]
    out = {}
    for g in names:
        out[f"W_{g}"] = f"[H, {x_size}]"
        out[f"R_{g}"] = "[H, H]"
    if lay.bias:
        for g in names:
            if lay.op == "GRU" and g == "n" and lay.lbr:
                out["b_Wn"], out["b_Rn"] = "[H]", "[H]"
            else:
                out[f"b_{g}"] = "[H]"
    if lay.peepholes:
        for g in "iof":
            out[f"P_{g}"] = "[H]"
    for state, init in lay.init.items():
        if init[0] == "param":
            out[f"{state}0"] = "[H]"
    return out


def _cell_weights(lay: Layer, d: int) -> dict:
    """This direction's arrays keyed by the cell's param names."""
    w, r, b, p = lay.weights
    H = lay.hidden
    blocks = {"RNN": "i", "GRU": "zrn", "LSTM": "iofg"}[lay.op]  # ONNX row-block order (c and h renamed)
    out = {}
    for k, g in enumerate(blocks):
        out[f"W_{g}"] = w[d, k * H:(k + 1) * H]
        out[f"R_{g}"] = r[d, k * H:(k + 1) * H]
    if b is not None:
        n = len(blocks) * H
        for k, g in enumerate(blocks):
            wb, rb = b[d, k * H:(k + 1) * H], b[d, n + k * H:n + (k + 1) * H]
            if lay.op == "GRU" and g == "n" and lay.lbr:
                out["b_Wn"], out["b_Rn"] = wb, rb
            else:
                out[f"b_{g}"] = wb + rb
    if p is not None:
        for k, g in enumerate("iof"):
            out[f"P_{g}"] = p[d, k * H:(k + 1) * H]
    for state, init in lay.init.items():
        if init[0] == "param":
            out[f"{state}0"] = init[1][d]
    return out


def _equations(lay: Layer, xin: str) -> tuple[dict, dict]:
    """(let, update) of the cell, ONNX's equations written out."""
    f, g = lay.acts[0], lay.acts[1] if len(lay.acts) > 1 else None
    let: dict = {}
    if lay.op == "RNN":
        return let, {"h": _act(f, _clip(_gate_pre("i", lay, xin), lay), let, "a")}
    if lay.op == "GRU":
        let["z"] = _act(f, _clip(_gate_pre("z", lay, xin), lay), let, "z_in")
        let["r"] = _act(f, _clip(_gate_pre("r", lay, xin), lay), let, "r_in")
        if lay.lbr:
            inner = "R_n @ h + b_Rn" if lay.bias else "R_n @ h"
            pre = f"W_n @ {xin} + " + ("b_Wn + " if lay.bias else "") + f"r * ({inner})"
        else:
            pre = f"W_n @ {xin} + R_n @ (r * h)" + (" + b_n" if lay.bias else "")
        let["n"] = _act(g, _clip(pre, lay), let, "n_in")
        return let, {"h": "(1 - z) * n + z * h"}
    h_act = lay.acts[2]
    peep = "c" if lay.peepholes else ""
    let["i"] = _act(f, _clip(_gate_pre("i", lay, xin, peep), lay), let, "i_in")
    if lay.input_forget:
        let["f"] = "1 - i"
    else:
        let["f"] = _act(f, _clip(_gate_pre("f", lay, xin, peep), lay), let, "f_in")
    let["g"] = _act(g, _clip(_gate_pre("g", lay, xin), lay), let, "g_in")
    let["c_next"] = "f * c + i * g"
    let["o"] = _act(f, _clip(_gate_pre("o", lay, xin, "c_next" if peep else ""), lay), let, "o_in")
    return let, {"c": "c_next", "h": "o * " + _act(h_act, "c_next", let, "c_act")}


def _act_text(lay: Layer) -> str:
    def one(spec):
        name, a, b = spec
        args = [f"{k}={np.float32(v)}" for k, v in (("alpha", a), ("beta", b)) if v is not None]
        return name + (f"({', '.join(args)})" if args else "")
    return ", ".join(one(s) for s in lay.acts)


class _Writer:
    def __init__(self, imp: _Importer, name: str, source: str):
        self.imp, self.name, self.source = imp, name, source
        self.lines: list[str] = []
        self.weights: dict = {}
        self.notes: list = []

    def write(self) -> str:
        imp = self.imp
        layers = imp.layers
        seq_input = next(iter(imp.inputs.values())) if imp.inputs else None
        if seq_input is None:
            raise DataError(f"{self.source}: no graph input feeds the first recurrent node")
        in_name, order, kind = seq_input
        used = {"h", "c", "i", "o", "f", "g", "z", "r", "n", "c_next", "T", "H", "I", "V", "E"}
        if kind == "embed":
            used.add("x")  # the embedded vector's let
        x_spec = _ident(in_name, used, "x")
        imp.spec_input = x_spec
        # cells: one per distinct configuration; the first layer's may read tokens
        cells, keys = {}, {}
        for k, lay in enumerate(layers):
            key = (lay.op, tuple(lay.acts), lay.clip, lay.lbr, lay.input_forget, lay.bias, lay.peepholes,
                   tuple((s, i[0]) for s, i in lay.init.items()), lay.embed is not None,
                   tuple(i[1] for i in lay.init.values() if i[0] == "context"), k == 0 and x_spec != "x")
            if key not in keys:
                base = lay.op.lower() if not cells else f"{lay.op.lower()}{len(cells) + 1}"
                keys[key] = base
                cells[base] = (k, lay)
            lay.cell = keys[key]
        first = layers[0]
        dims, vocab = {}, None
        if first.embed:
            dims["V"], dims["E"] = first.embed[1].shape
            if dims["V"] <= MAX_ID_VOCAB:  # ONNX has no vocabulary: the tokens are the ids, so `run --text "3 1 4"`
                vocab = dims.pop("V")
        else:
            dims["I"] = layers[0].weights[0].shape[2]
        dims["H"] = first.hidden
        dims["T"] = 10
        L = self.lines
        L.append("rnncompile: 1")
        L.append(f"name: {self.name}")
        L.append("description: >")
        ops = ", ".join(f"{lay.op} ({lay.direction}, hidden_size {lay.hidden})" for lay in layers)
        L.append(f"  Imported from {Path(self.source).name} by `rnncompile import`: {ops}.")
        L.append("  ONNX's W (over x), R (over h) and B = [Wb, Rb] are split per gate into W_g, R_g and one")
        L.append("  bias b_g = Wb_g + Rb_g; gate order in ONNX: i o f c (LSTM), z r h (GRU).")
        if vocab is not None:
            L.append("vocab:                 # ONNX has no vocabulary: token k is the id k")
            L.append("  level: word")
            L.append("  tokens: [" + ", ".join(f'"{k}"' for k in range(vocab)) + "]")
        L.append("dims: {" + ", ".join(f"{k}: {v}" for k, v in dims.items()) + "}"
                 + "   # T: any length at run time")
        L.append("cells:")
        for cname, (k, lay) in cells.items():
            self.cell(cname, k, lay, x_spec if k == 0 else "x", kind if k == 0 else "input")
        self.model(layers, x_spec, kind, order, dims)
        return "\n".join(L) + "\n"

    def cell(self, cname, k, lay, xin_name, kind):
        L = self.lines
        nodes = [lay2.node.name or lay2.op for lay2 in self.imp.layers if lay2.cell == cname]
        L.append(f"  {cname}:")
        L.append(f"    description: ONNX {lay.op} node{'s' if len(nodes) > 1 else ''} "
                 + ", ".join(f"`{n}`" for n in nodes) + f"; activations {_act_text(lay)}"
                 + (f"; clip {_num(lay.clip)}" if lay.clip is not None else "")
                 + (f"; linear_before_reset {lay.lbr}" if lay.op == "GRU" else "")
                 + (f"; input_forget {lay.input_forget}" if lay.op == "LSTM" else ""))
        xin = "x"
        if kind == "embed":
            L.append(f"    inputs: {{{xin_name}: token}}")
        else:
            L.append(f"    inputs: {{{xin_name}: I}}")
            xin = xin_name
        state = []
        for s in (("h", "c") if lay.op == "LSTM" else ("h",)):
            init = lay.init[s]
            if init[0] == "zeros":
                state.append(f"{s}: H")
            elif init[0] == "param":
                state.append(f"{s}: {{shape: H, init: {s}0}}")
            else:
                state.append(f"{s}: {{shape: H, init: {self.imp.context_names[init[1]]}}}")
        L.append("    state: {" + ", ".join(state) + "}"
                 + ("   # initial_h/initial_c from ONNX" if any(lay.init[s][0] != "zeros" for s in lay.init
                                                           if s in ("h", "c")) else ""))
        L.append("    params:")
        if kind == "embed":
            L.append(f"      E_x: {{shape: [V, E]}}     # the Gather's embedding table `{lay.embed[0]}`")
        for pname, shape in _cell_params(lay, "E" if kind == "embed" else "I").items():
            note = {"W_g": "   # g: ONNX's c (cell candidate)", "W_n": "   # n: ONNX's h (candidate)",
                    "b_Wn": "   # Wbh, kept apart: linear_before_reset=1", "P_i": "   # peepholes P = [P_i, P_o, P_f]",
                    "h0": "   # initial_h", "c0": "   # initial_c"}.get(pname, "")
            L.append(f"      {pname}: {{shape: {shape}}}{note}")
        let, update = _equations(lay, xin)
        if kind == "embed":
            let = {"x": f"embed({xin_name}, E_x)", **let}
        L.append("    let:" if let else "    let: {}")
        for kk, vv in let.items():
            note = "   # ONNX's f = 1 - i (input_forget=1)" if kk == "f" and lay.input_forget else ""
            L.append(f"      {kk}: {vv}{note}")
        L.append("    update:")
        for kk, vv in update.items():
            L.append(f"      {kk}: {vv}")
        L.append("    outputs: {h: h}")

    def model(self, layers, x_spec, kind, order, dims):
        imp, L = self.imp, self.lines
        L.append("model:")
        L.append(f"  input: {{{x_spec}: [T]}}" if kind == "embed" else f"  input: {{{x_spec}: [T, I]}}")
        if imp.context_names:
            L.append("  context: {" + ", ".join(f"{v}: [H]" for v in imp.context_names.values()) + "}"
                     + "   # initial states given with the data")
        if len(layers) == 1:
            lay = layers[0]
            L.append(f"  scan: {lay.cell}")
            if lay.direction != "forward":
                L.append(f"  direction: {lay.direction}" + ("   # merge: concat (ONNX's Y, directions side by side)"
                                                           if lay.dirs == 2 else ""))
        else:
            L.append("  layers:")
            for k, lay in enumerate(layers):
                parts = [f"scan: {lay.cell}"]
                if lay.direction != "forward":
                    parts.append(f"direction: {lay.direction}")
                if lay.hidden != dims["H"]:
                    parts.append(f"dims: {{H: {lay.hidden}}}")
                L.append("    - {" + ", ".join(parts) + "}" + f"   # ONNX node `{lay.node.name or lay.op}`")
        if imp.head_outputs:
            L.append("  head:")
            L.append(f"    at: {imp.head_at}")
            if imp.head_params:
                L.append("    params:")
                for pname, value in imp.head_params.items():
                    L.append(f"      {pname}: {{shape: {list(value.shape)}}}   # {imp.head_notes[pname]}")
            L.append("    outputs:")
            for name, expr in imp.head_outputs.items():
                L.append(f"      {name}: {expr}")
        for lk, lay in enumerate(layers):
            for d in range(lay.dirs):
                prefix = ("" if len(layers) == 1 else f"layers.{lk}.") + \
                         (("forward.", "reverse.")[d] if lay.dirs == 2 else "")
                cw = _cell_weights(lay, d)
                if lay.embed:
                    cw["E_x"] = lay.embed[1]
                self.weights.update({prefix + k: v for k, v in cw.items()})
        self.weights.update({"head." + k: v for k, v in imp.head_params.items()})


def import_model(model, source: str = "model.onnx", name: str | None = None) -> Imported:
    """A ModelProto (or a path to one) -> the spec text, its weights and the input/output mapping."""
    if isinstance(model, (str, os.PathLike)):
        source = str(model)
        model = read_model(model)
    imp = _Importer(model, source)
    imp.run()
    used = {"h", "c", "x", "T", "H", "I", "V", "E"}
    imp.context_names = {}
    for lay in imp.layers:
        for s, init in lay.init.items():
            if init[0] == "context":
                imp.context_names.setdefault(init[1], _ident(init[1], used, f"{s}0"))
    spec_name = _ident(name or Path(source).stem, set(), "model")
    writer = _Writer(imp, spec_name, source)
    text = writer.write()
    weights = {k: np.ascontiguousarray(v, dtype=imp.dtype) for k, v in writer.weights.items()}
    out = Imported(text, weights)
    name0, order, kind = next(iter(imp.inputs.values()))
    out.inputs = {name0: (imp.spec_input, order)}
    out.context = {}
    for k, lay in enumerate(imp.layers):
        for s, init in lay.init.items():
            if init[0] == "context":
                out.context[init[1]] = (imp.context_names[init[1]], lay.layout)
    out.lengths = imp.lengths
    out.outputs = _describe_outputs(imp)
    out.notes = _notes(imp, out)
    out.top_hidden = imp.layers[-1].hidden
    return out


def _describe_outputs(imp) -> dict:
    """ONNX output -> ("y", axes) | ("head", name, axes) | ("state", key, axes): what of a run it is."""
    out = {}
    n = len(imp.layers)
    for onnx_name, desc in imp.outputs.items():
        if desc[0] == "state":
            _, k, state, axes = desc
            lay = imp.layers[k]
            pre = "" if n == 1 else f"layers.{k}."
            keys = [pre + (f"{d}." if lay.dirs == 2 else "") + state for d in
                    (("forward", "reverse") if lay.dirs == 2 else ("",))]
            out[onnx_name] = ("state", keys, axes)
        elif desc[0] == "y":
            out[onnx_name] = ("y", "h", desc[1])
        else:
            out[onnx_name] = desc
    return out


def _notes(imp, out: Imported) -> list:
    notes = []
    for onnx_name, (spec_name, order) in out.inputs.items():
        if order == "TB":
            notes.append(f"ONNX input `{onnx_name}` is time-major [T, B, ...]; rnncompile reads `{spec_name}` as "
                         f"[B, T, ...] (transpose the first two axes)")
    if imp.lengths:
        notes.append(f"ONNX input `{imp.lengths}` (sequence_lens) is the run's `lengths`")
        if imp.head_outputs:
            notes.append("at padded steps ONNX applies the head to Y's zeros, rnncompile gives zeros: compare the "
                         "real steps only")
    for onnx_name, (ctx, layout) in out.context.items():
        shape = "[1, B, H]" if layout == 0 else "[B, 1, H]"
        notes.append(f"ONNX input `{onnx_name}` (an initial state {shape}) is the context input `{ctx}` [B, H]")
    for onnx_name, desc in out.outputs.items():
        if desc[0] == "state":
            notes.append(f"ONNX output `{onnx_name}` is the final state " + ", ".join(f"`{k}`" for k in desc[1]))
        elif desc[0] == "y":
            axes = ", ".join("H" if a == "F" else "D*H" if a == "DF" else "1" if a == "U" else a for a in desc[2])
            notes.append(f"ONNX output `{onnx_name}` [{axes}] is the output `h` [B, T, D*H]")
        else:
            notes.append(f"ONNX output `{onnx_name}` is the head output `{desc[1]}`")
    return notes


# ---- running an imported spec on ONNX-shaped data (for checking) -------------------------

def run_like_onnx(imported: Imported, program, feeds: dict, params: dict, **run_args) -> dict:
    """Run `program` (the imported spec, compiled) on the ONNX model's feeds; return each ONNX output
    shaped as ONNX gives it. What `rnncompile import` claims, stated as code."""
    from .. import api

    inputs, context, lengths = {}, {}, None
    for onnx_name, (spec_name, order) in imported.inputs.items():
        a = np.asarray(feeds[onnx_name])
        inputs[spec_name] = np.swapaxes(a, 0, 1) if order == "TB" else a
    for onnx_name, (ctx, layout) in imported.context.items():
        a = np.asarray(feeds[onnx_name])  # [1, B, H], or [B, 1, H] for layout 1
        context[ctx] = a[0] if layout == 0 else a[:, 0]
    if imported.lengths:
        lengths = np.asarray(feeds[imported.lengths])
    res = api.run(program, inputs=inputs, params=params, lengths=lengths, context=context or None, **run_args)
    out = {}
    for onnx_name, desc in imported.outputs.items():
        if desc[0] == "state":
            arr = np.stack([res.final_state[k] for k in desc[1]])  # [D, B, H]
            out[onnx_name] = _to_axes(arr, ("D", "B", "F"), desc[2])
        else:
            arr = res.outputs[desc[1]]
            axes = desc[2]
            have = ("B", "F") if len(arr.shape) == 2 else ("B", "T", "F")
            if "D" in axes and "DF" not in axes:  # ONNX's Y: [.., D, .., H] from [B, T, D*H]
                d = arr.shape[-1] // imported.top_hidden
                arr = arr.reshape(arr.shape[:-1] + (d, arr.shape[-1] // d))
                have = have[:-1] + ("D", "F")
            out[onnx_name] = _to_axes(arr, have, axes)
    return out


def _to_axes(arr, have, want):
    """Permute `arr` (axes named `have`) into `want`, inserting unit axes (U) and mapping DF to F."""
    have = ["F" if a == "DF" else a for a in have]
    want_clean = ["F" if a == "DF" else a for a in want if a != "U"]
    if sorted(want_clean) != sorted(have):
        missing = [a for a in have if a not in want_clean]
        for a in missing:  # a unit axis ONNX squeezed away (D of one direction)
            arr = arr.take(0, axis=have.index(a))
            have.remove(a)
    arr = np.transpose(arr, [have.index(a) for a in want_clean])
    shape = []
    it = iter(arr.shape)
    for a in want:
        shape.append(1 if a == "U" else next(it))
    return arr.reshape(shape)
