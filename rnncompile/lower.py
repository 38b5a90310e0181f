"""Lowering one checked cell spec to its dataflow graph.

This is where names are resolved, expressions become nodes and shapes are
inferred; every problem is reported at the exact spot of the spec (all of
them, not just the first) through the diagnostic sink.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from . import expr as E
from . import functions as F
from . import memory
from .dims import MAX_RANK, MAX_SIZE, DimError, eval_dim, too_large
from .errors import DiagnosticSink, did_you_mean
from .graph import CellGraph, InputInfo, Node, ParamInfo, StateInfo, make_attrs
from .literals import as_tuples, filled, is_number as _is_number, literal_shape, short as _short, vector_value
from .ops import COMPARISONS, INT_ARGS, OPS, REQUIRED, STEP_SOURCES, ShapeError, fmt_shape
from .source import SourceMap, dotted
from .spec import CellSpec

BINARY = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "**": "pow", "%": "mod", "//": "floordiv",
          **COMPARISONS}
TIME_NAMES = {name: op for op, name in STEP_SOURCES.items()}  # t, seq_len: see ops.STEP_SOURCES
STEP_WORDS = {"step", "steps", "time", "timestep", "time_step", "step_index", "t_len", "seq_length", "length",
              "len", "n_steps", "num_steps"}  # what else a writer may try for t or seq_len
FUNCTIONS = {n for n, op in OPS.items() if op.kind not in ("source", "sink")}
MAX_ELEMENTS = 2**30  # one tensor (or all params) beyond this is refused before allocation
MAX_CONST_ELEMENTS = 100_000  # a constant's numbers are node attributes and literals in generated code
LINEAR = "linear"  # a gate's `act:` for no activation: the affine map (plus any `add:` terms) itself


class _Failed(Exception):
    """An expression could not be lowered; its diagnostic is already recorded."""


@dataclass(frozen=True)
class ModelInputs:
    """The model's inputs, as a state's `init:` may name them: context inputs (name -> shape; None where
    the shape is already reported as bad) start a state; sequence inputs only get a better error."""

    context: dict = field(default_factory=dict)
    sequences: frozenset = frozenset()


class CellLowering:
    def __init__(self, name: str, cell: CellSpec, dims: dict[str, int], smap: SourceMap, sink: DiagnosticSink,
                 invalid_dims: frozenset = frozenset(), base: tuple | None = None,
                 model_inputs: ModelInputs | None = None):
        self.name, self.cell, self.dims, self.smap, self.sink = name, cell, dims, smap, sink
        self.model_inputs = model_inputs or ModelInputs()
        self.invalid_dims = invalid_dims  # declared, but already reported as invalid
        self.errors_before = len(sink.errors)
        self.base = base if base is not None else ("cells", name)  # where the cell sits in the spec file
        self.graph = CellGraph(name)
        self.env: dict[str, int] = {}  # name -> node id, filled lazily for lets and gates
        self.kind_of: dict[str, str] = {}  # name -> input | state | param | gate | let
        self.resolving: list[str] = []  # let/gate names being lowered (cycle detection)
        self.failed: set[str] = set()
        self.silenced = False  # something failed on an error reported elsewhere (an invalid dim)
        self.shorthand_memory = None  # the state written by a `memory:` shorthand (its init is `memory.init`)
        self.time_nodes: dict[str, int] = {}  # t, seq_len -> their node, made at the first use
        if getattr(cell, "memory", None) is not None:
            self.shorthand_memory = cell.memory.name
            self.cell = self.expand_memory(cell)
        outer = F.visible()  # the spec's functions, then the cell's own
        own = getattr(self.cell, "functions", None) or {}
        self.functions = {**outer, **F.check_functions(own, self.base + ("functions",), smap, sink, FUNCTIONS, dims,
                                                       outer)} if own else outer
        self.gate_sizes: dict[str, int] = {}  # gates without `size:` whose width the cell's expressions fix
        self.expanded_nodes = 0  # nodes made by calls of spec functions (bounded: see functions.MAX_CELL_EXPANSION)
        self.gate_size_conflicts: dict[str, dict] = {}  # ... and those they use with two widths

    def expand_memory(self, cell: CellSpec) -> CellSpec:
        """The `memory:` shorthand, written out (rnncompile/memory.py); its entries point at `memory:`."""
        expanded, problems = memory.expand(cell, self.dims)
        for p in problems:
            if p.undefined not in self.invalid_dims:
                self.error(p.path, p.message, p.pos, p.width, p.hint)
        self.invalid_dims |= {p.undefined for p in problems if p.undefined} | {memory.UNKNOWN}  # reported here
        memory.locate(self.smap, self.base, cell, expanded)
        return expanded

    # -- diagnostics ---------------------------------------------------------
    def error(self, path, message, offset=None, width=1, hint=""):
        path = self.base + tuple(path)
        loc = self.smap.value_loc(path, offset, width) if offset is not None else self.smap.key_loc(path)
        self.sink.error(message, dotted(path), loc, hint)

    def warn(self, path, message, hint="", offset=None, width=1):
        path = self.base + tuple(path)
        loc = self.smap.value_loc(path, offset, width) if offset is not None else self.smap.key_loc(path)
        self.sink.warn(message, dotted(path), loc, hint)

    def cut_at_flow_comma(self, path, text: str) -> str:
        """The whole expression, when YAML cut this plain value at a comma of a flow mapping (`{h: maximum(a,
        0)}` gives `h: maximum(a` and a key `0)`), read off the line up to the comma or `}` outside brackets;
        else ""."""
        span = self.smap.values.get(self.base + tuple(path))
        if span is None or span.style is not None or span.line >= len(self.smap.lines):
            return ""
        line = self.smap.lines[span.line]
        end = span.col + len(text)
        if line[span.col:end] != text or not line[end:].lstrip().startswith(",") or "{" not in line[:span.col]:
            return ""
        depth = 0
        for i in range(span.col, len(line)):
            ch = line[i]
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif depth <= 0 and ch in ",}":
                if i > end:
                    return line[span.col:i].strip()
        return line[span.col:].split("#")[0].strip()

    def shape_of(self, path, dims_list) -> tuple | None:
        if len(dims_list) > MAX_RANK:
            self.error(path, f"a shape of {len(dims_list)} axes; shapes have at most {MAX_RANK}", 0)
            return None
        shape = []
        for i, d in enumerate(dims_list):
            try:
                n = eval_dim(d, self.dims)
            except DimError as e:
                if e.undefined not in self.invalid_dims:
                    self.error(tuple(path) + (i,), e.message, e.pos, e.width, e.hint)
                self.silenced = True
                return None
            if n < 1:
                self.error(tuple(path) + (i,), f"size `{d}` is {n}; sizes must be positive", 0)
                return None
            shape.append(n)
        if math.prod(shape) > MAX_ELEMENTS:
            self.error(path, f"shape {fmt_shape(shape)} has {_count(math.prod(shape))} elements; "
                             f"the limit is {MAX_ELEMENTS:.3g} ({MAX_ELEMENTS * 4 / 2**30:.0f} GiB as float32)",
                       0, hint="lower the dims (e.g. --dim H=64)")
            return None
        return tuple(shape)

    # -- declarations -----------------------------------------------------------
    def declare(self, kind: str, name: str, path) -> bool:
        if name in self.kind_of:
            self.error(path, f"`{name}` is already defined as a {self.kind_of[name]}",
                       hint="every input, state, param, gate and let needs its own name")
            return False
        if name in self.dims:
            self.error(path, f"`{name}` is already a dim", hint="rename one of them")
            return False
        self.kind_of[name] = kind
        return True

    def lower(self) -> CellGraph:
        cell, g = self.cell, self.graph
        for name, inp in cell.inputs.items():
            shape = self.shape_of(("inputs", name, "shape"), inp.shape)
            if self.declare("input", name, ("inputs", name)) and shape is not None:
                origin = dotted(self.base + ("inputs", name))
                g.inputs[name] = InputInfo(name, shape, inp.dtype, origin)
                self.env[name] = g.add(Node("input", shape, make_attrs({"name": name, "shape": shape}),
                                            inp.dtype, origin, name))
        for name, st in cell.state.items():
            shape = self.shape_of(("state", name, "shape"), st.shape)
            if self.declare("state", name, ("state", name)) and shape is not None:
                origin = dotted(self.base + ("state", name))
                g.states[name] = StateInfo(name, shape, st.init, origin)
                self.env[name] = g.add(Node("state", shape, make_attrs({"name": name, "shape": shape}),
                                            "float", origin, name))
        for name, p in cell.params.items():
            shape = self.shape_of(("params", name, "shape"), p.shape)
            if self.declare("param", name, ("params", name)) and shape is not None \
                    and self.check_values(("params", name, "values"), p.values, shape):
                self.add_param(ParamInfo(name, shape, p.init, p.scale, p.values,
                                         dotted(self.base + ("params", name))))
        for name, c in (getattr(cell, "consts", None) or {}).items():
            if self.declare("const", name, ("consts", name)):
                self.add_const(name, c)
        for name in cell.gates:
            if self.declare("gate", name, ("gates", name)):
                for pname in self.gate_param_names(name):
                    self.declare("param", pname, ("gates", name))
        for name in cell.let:
            self.declare("let", name, ("let", name))
        if any(g.size is None for g in cell.gates.values()):
            from .gate_sizes import infer_gate_sizes

            self.gate_sizes, self.gate_size_conflicts = infer_gate_sizes(self)

        for section, names in (("gates", cell.gates), ("let", cell.let)):
            for name in names:
                if self.kind_of.get(name) in ("gate", "let"):
                    try:
                        self.resolve(name, (section, name))
                    except _Failed:
                        pass  # reported where it failed
        self.check_param_total()

        updates = {}
        for name, text in cell.update.items():
            if name not in cell.state:
                self.error(("update", name), f"`{name}` is not a state, so it cannot be updated",
                           hint=did_you_mean(name, cell.state, "state") or "declare it under `state:`")
                continue
            nid = self.lower_text(text, ("update", name), label=name)
            if nid is not None:
                updates[name] = nid
        for name in cell.state:
            if name not in cell.update and name in g.states:
                self.error(("state", name), f"state `{name}` has no update",
                           hint=f"add `{name}: <expression>` under `update:`")
        for name, nid in updates.items():
            if name not in g.states:
                continue
            want, got = g.states[name].shape, g.node(nid).shape
            if want != got:
                self.error(("update", name), f"update of `{name}` has shape {fmt_shape(got)}, "
                                             f"but the state is {fmt_shape(want)}", 0)
            else:
                g.connect_update(nid, self.env[name])
        self.check_state_inits()

        out_env = dict(self.env)
        out_env.update(updates)
        for name, text in cell.outputs.items():
            if name in self.kind_of and self.kind_of[name] != "state":
                pass  # an output may share a let's or gate's name: outputs are a separate namespace
            nid = self.lower_text(text, ("outputs", name), env=out_env, label=name)
            if nid is not None:
                g.add(Node("output", g.node(nid).shape, make_attrs({"name": name}), g.node(nid).dtype,
                           dotted(self.base + ("outputs", name)), name), [nid])
        if len(self.sink.errors) == self.errors_before and not self.silenced:  # usage is known when all lowered
            if not cell.outputs:
                self.warn((), f"cell `{self.name}` declares no outputs", hint="add `outputs: {y: h}`")
            self.warn_unused()
        return g

    def check_values(self, path, values, shape: tuple) -> bool:
        """Literal values are one number, or nested lists of numbers of exactly the param's shape."""
        if values is None:
            return True
        problem, at = literal_problem(values, shape)
        if problem:
            self.error(tuple(path) + at, f"literal values {problem}", 0,
                       hint=f"write one number, or nested lists of numbers of shape {fmt_shape(shape)}")
        return not problem

    def gate_param_names(self, gate: str) -> list[str]:
        spec = self.cell.gates[gate]
        return [f"W_{gate}"] + ([f"b_{gate}"] if spec.bias else []) + ([f"gain_{gate}"] if spec.norm == "layer" else [])

    def add_const(self, name: str, spec) -> None:
        """A `consts:` entry: a const node holding its value, read by name like a param, in no weights file."""
        path = ("consts", name)
        values = spec.values
        if isinstance(values, str):
            try:
                tree = E.parse(values)
            except E.ExprSyntaxError as e:
                self.error(path + ("values",), f"syntax error: {e.message}", e.pos, e.width, e.hint)
                return
            try:
                shape, values = _ExprLowering(self, path + ("values",), values, None).literal(tree)
            except _Failed:
                return
        else:
            problem, shape = literal_shape(values)
            if problem:
                self.error(path + ("values",), f"constant `{name}` {problem}", 0,
                           hint="write one number, or nested lists of numbers, one level per axis")
                return
        if spec.shape is not None:
            want = self.shape_of(path + ("shape",), spec.shape)
            if want is None or not self.check_values(path + ("values",), values, want):
                return
            if math.prod(want) > MAX_CONST_ELEMENTS:
                self.error(path + ("shape",), f"constant `{name}` would hold {_count(math.prod(want))} numbers; a "
                                              f"constant is written out in the graph and in generated code, so the "
                                              f"limit is {MAX_CONST_ELEMENTS:,}", 0,
                           hint="for a large fixed tensor, declare a param with `init: constant` (or `values:`)")
                return
            if tuple(shape) != want:  # one number (or [[x]]) filling the declared shape
                one = values
                while isinstance(one, (list, tuple)):
                    one = one[0]
                values = filled(float(one), want)
            shape = want
        if math.prod(shape) > MAX_CONST_ELEMENTS:
            self.error(path + ("values",), f"constant `{name}` holds {math.prod(shape):,} numbers; the limit is "
                                           f"{MAX_CONST_ELEMENTS:,}", 0, hint="declare a large fixed tensor as a "
                                                                              "param with `values:`")
            return
        value = as_tuples(values)
        self.env[name] = self.graph.add(Node("const", tuple(shape), make_attrs({"value": value, "shape": tuple(shape)}),
                                             "float", dotted(self.base + path), name))

    def add_param(self, info: ParamInfo) -> int:
        nid = self.graph.add(Node("param", info.shape, make_attrs({"name": info.name, "shape": info.shape}),
                                  "float", info.origin, info.name))
        self.graph.params[info.name] = info
        self.env[info.name] = nid
        return nid

    def check_param_total(self):
        total = sum(math.prod(p.shape) for p in self.graph.params.values())
        if total > MAX_ELEMENTS:
            self.error((), f"the params of cell `{self.name}` hold {_count(total)} numbers in all; "
                           f"the limit is {MAX_ELEMENTS:.3g}",
                       hint="lower the dims (e.g. --dim H=64)")

    def check_state_inits(self):
        """A state starts from a constant, a param of the cell, or a model context input (in that order of lookup)."""
        outer = self.model_inputs
        for name, st in list(self.graph.states.items()):
            if not isinstance(st.init, str):
                continue
            path = ("memory", "init") if name == self.shorthand_memory else ("state", name, "init")
            width = len(st.init)
            p = self.graph.params.get(st.init)
            if p is not None:
                if p.shape != st.shape:
                    self.error(path, f"param `{st.init}` is {fmt_shape(p.shape)}, but state `{name}` is "
                                     f"{fmt_shape(st.shape)}", 0, width)
            elif st.init in outer.context:
                shape = outer.context[st.init]
                if shape is not None and shape != st.shape:
                    self.error(path, f"context input `{st.init}` is {fmt_shape(shape)}, but state `{name}` is "
                                     f"{fmt_shape(st.shape)}", 0, width,
                               f"declare it with the state's shape under model.context, e.g. "
                               f"{st.init}: [{', '.join(map(str, self.cell.state[name].shape))}]")
                else:
                    self.graph.states[name] = replace(st, from_context=True)
            elif st.init in outer.sequences:
                self.error(path, f"`{st.init}` is a sequence input (one value per step), but a state starts from one "
                                 f"value per sequence", 0, width, "declare it under model.context instead of model.input")
            else:
                close = did_you_mean(st.init, [*self.graph.params, *outer.context])
                self.error(path, f"initial value `{st.init}` is neither a param of this cell nor a model context "
                                 f"input", 0, width,
                           close if close.startswith("did you mean") else
                           f"declare it as a param of the cell, or as a context input: model: {{context: "
                           f"{{{st.init}: [{', '.join(map(str, self.cell.state[name].shape))}]}}}}")

    def warn_unused(self):
        used = set()
        roots = [n for n in self.graph.g.nodes if self.graph.node(n).op == "output"]
        roots += [u for u, _, d in self.graph.g.edges(data=True) if d["delay"] == 1]
        stack = list(roots)
        while stack:
            n = stack.pop()
            if n in used:
                continue
            used.add(n)
            stack.extend(self.graph.args(n))
        used_names = {self.graph.node(n).attr("name") for n in used if self.graph.node(n).op == "param"}
        for name, c in (getattr(self.cell, "consts", None) or {}).items():
            if self.env.get(name) is not None and self.env[name] not in used:
                self.warn(("consts", name), f"constant `{name}` is never used")
        init_params = {s.init for s in self.graph.states.values() if isinstance(s.init, str)}
        for name, info in self.graph.params.items():
            if name not in used_names and name not in init_params and name not in self.gate_params():
                self.warn(("params", name), f"param `{name}` is never used")
        for gate in self.cell.gates:
            nid = self.env.get(gate)
            if nid is not None and nid not in used:
                self.warn(("gates", gate), f"gate `{gate}` is never used")

    def gate_params(self) -> set[str]:
        return {p for gate in self.cell.gates for p in self.gate_param_names(gate)}

    # -- names -----------------------------------------------------------------
    def resolve(self, name: str, path) -> int:
        if name in self.env:
            return self.env[name]
        if name in self.failed:
            raise _Failed()
        if name in self.resolving:
            cycle = self.resolving[self.resolving.index(name):] + [name]
            self.failed.update(cycle)
            self.error(path, "algebraic loop: " + " → ".join(cycle) + " depend on each other within one step",
                       hint="a value used before it is computed needs a state (one step of delay) to break the loop")
            raise _Failed()
        self.resolving.append(name)
        try:
            if self.kind_of.get(name) == "let":
                nid = self.lower_text(self.cell.let[name], ("let", name), label=name)
            else:
                nid = self.lower_gate(name)
        finally:
            self.resolving.pop()
        if nid is None:
            self.failed.add(name)
            raise _Failed()
        self.env[name] = nid
        return nid

    def lower_gate(self, name: str) -> int | None:
        spec, path = self.cell.gates[name], ("gates", name)
        act = OPS.get(spec.act)
        if spec.act != LINEAR and (act is None or act.kind not in ("activation", "elementwise") or act.arity != (1, 1)):
            acts = [n for n, o in OPS.items() if o.kind == "activation" or n in ("exp", "neg")] + [LINEAR]
            self.error(path + ("act",), f"`{spec.act}` is not an activation", 0, len(spec.act),
                       did_you_mean(spec.act, acts, "activation"))
            return None
        if not spec.from_:
            self.error(path + ("from",), "a gate needs at least one input in `from:`", 0,
                       hint="e.g. from: [h, x]: the gate computes act(W @ concat(h, x) + b)")
            return None
        parts = []
        for i, src in enumerate(spec.from_):
            if isinstance(src, str) and not src.strip().isidentifier():  # an expression: from: [r * h, x]
                nid = self.lower_text(src, path + ("from", i), label=src.strip())
                if nid is None:
                    return None
            elif not isinstance(src, str) or not (src in self.kind_of or src in self.env):
                self.error(path + ("from", i), f"undefined name `{src}` in the gate's inputs", 0, len(str(src)),
                           did_you_mean(str(src), self.kind_of, ""))
                return None
            else:
                nid = self.name_node(src, path + ("from", i), 0)
            node = self.graph.node(nid)
            if len(node.shape) != 1 or node.dtype == "token":
                self.error(path + ("from", i), f"gate inputs must be vectors; `{src}` is "
                                               f"{'a token' if node.dtype == 'token' else fmt_shape(node.shape)}",
                           0, len(src), "embed or one_hot a token in a `let` first" if node.dtype == "token" else "")
                return None
            parts.append(nid)
        if spec.size is not None:
            try:
                size = eval_dim(spec.size, self.dims)
            except DimError as e:
                self.error(path + ("size",), e.message, e.pos, e.width, e.hint)
                return None
        elif name in self.gate_sizes:
            size = self.gate_sizes[name]
        elif name in self.gate_size_conflicts and self.shared_state_width() in self.gate_size_conflicts[name]:
            size = self.shared_state_width()  # as when sizes were not inferred: the other use is a shape error
        elif name in self.gate_size_conflicts:
            widths = sorted(self.gate_size_conflicts[name].items())
            uses = " and ".join(f"{w} (in {', '.join(dict.fromkeys(where))})" for w, where in widths)
            named = [f"size: {_dim_named(w, self.dims)}" for w, _ in widths]
            self.error(path, f"gate `{name}` needs a `size:`: the cell uses it with widths {uses}",
                       hint=f"say which you mean ({' or '.join(named)}); the other use is then a shape error to fix")
            return None
        else:
            widths = {s.shape for s in self.sized_states().values() if len(s.shape) == 1}
            if len(widths) != 1:
                by_width: dict[int, list[str]] = {}
                for sname, st in self.sized_states().items():
                    if len(st.shape) == 1:
                        by_width.setdefault(st.shape[0], []).append(sname)
                sizes = ", ".join(f"{', '.join(n)} {'is' if len(n) == 1 else 'are'} {w}"
                                  for w, n in sorted(by_width.items()))
                dims = sorted({str(self.cell.state[n].shape[0]) if n in self.cell.state else
                               str(self.sized_states()[n].shape[0]) for ns in by_width.values() for n in ns})
                self.error(path, f"gate `{name}` needs a `size:`: nothing in the cell fixes its width, and the "
                                 f"cell's states differ in width" + (f" ({sizes})" if sizes else ""),
                           hint=(f"add size: {dims[0]}" + (f" (or {', '.join(dims[1:])})" if dims[1:] else "")
                                 + ", or use the gate elementwise with a value of its width")
                           if dims else "add e.g. size: H")
                return None
            size = widths.pop()[0]
        origin = dotted(self.base + self.map_path(path))
        g = self.graph
        x = parts[0]
        if len(parts) > 1:
            width = sum(g.node(p).shape[0] for p in parts)
            x = g.add(Node("concat", (width,), make_attrs({"axis": -1}), "float", origin), parts)
        width = g.node(x).shape[0]
        w_name, *b_name = self.gate_param_names(name)
        w = self.add_param(ParamInfo(w_name, (size, width), spec.init, None, None, origin))
        z = g.add(Node("matmul", (size,), (), "float", origin), [w, x])
        if b_name and spec.norm != "layer":
            b = self.add_param(ParamInfo(b_name[0], (size,), "constant", spec.bias_init, None, origin,
                                         bias_init=spec.bias_init))
            z = g.add(Node("add", (size,), (), "float", origin), [z, b])
        for i, term in enumerate(spec.add):  # a peephole `P_i * c`, a multiplicative input, ...
            t = self.lower_text(term, path + ("add", i))
            if t is None:
                return None
            if g.node(t).shape not in ((size,), ()) or g.node(t).dtype == "token":
                self.error(path + ("add", i), f"a term added to gate `{name}` must be a vector of its width "
                                              f"[{size}] (or a number); `{term}` is {fmt_shape(g.node(t).shape)}", 0,
                           len(str(term)))
                return None
            z = g.add(Node("add", (size,), (), "float", origin), [z, t])
        if spec.norm == "layer":
            z = self.gate_layer_norm(name, spec, z, size, origin)
        if spec.act == LINEAR:  # the pre-activation is the gate
            node = g.node(z)
            g.replace(z, Node(node.op, node.shape, node.attrs, node.dtype, node.origin, name))
            return z
        return g.add(Node(spec.act, (size,), (), "float", origin, name), [z])

    def map_path(self, path) -> tuple:
        """The spec path of a cell-level path (a tree rule's lets and gates sit under the rule)."""
        return tuple(path)

    def sized_states(self) -> dict:
        """The states whose widths size the cell's gates (a tree rule's are the tree cell's)."""
        return self.graph.states

    def shared_state_width(self) -> int | None:
        """The width every vector state of the cell has, if they share one."""
        widths = {s.shape for s in self.sized_states().values() if len(s.shape) == 1}
        return next(iter(widths))[0] if len(widths) == 1 else None

    def gate_layer_norm(self, name: str, spec, z: int, size: int, origin: str) -> int:
        """`norm: layer`: LN(z) * gain_<gate> + b_<gate> (Ba, Kiros & Hinton 2016), LN(z) = (z - mean(z)) /
        sqrt(mean((z - mean(z))**2) + eps); recorded as a call of `layer_norm`, so a diagram draws one box."""
        g = self.graph
        gain = self.add_param(ParamInfo(f"gain_{name}", (size,), "ones", None, None, origin))
        start = g._next_id

        def node(op, args, shape=(size,), attrs=()):
            return g.add(Node(op, shape, attrs, "float", origin), args)

        mu = node("mean", [z], (), make_attrs({"axis": None}))
        d = node("sub", [z, mu])
        var = node("mean", [node("pow", [d, self.scalar(2.0, origin)])], (), make_attrs({"axis": None}))
        sd = node("sqrt", [node("add", [var, self.scalar(spec.norm_eps, origin)], ())], ())
        out = node("mul", [node("div", [d, sd]), gain])
        args = (z, gain)
        if spec.bias:
            b = self.add_param(ParamInfo(f"b_{name}", (size,), "constant", spec.bias_init, None, origin,
                                         bias_init=spec.bias_init))
            out = node("add", [out, b])
            args += (b,)
        g.calls.append(F.Expansion("layer_norm", out, frozenset(range(start, g._next_id)) - set(args), args,
                                   ("z", "gain", "b")[:len(args)]))
        return out

    def scalar(self, value: float, origin: str) -> int:
        return self.graph.add(Node("const", (), make_attrs({"value": float(value), "shape": ()}), "float", origin))

    def name_node(self, name: str, path, pos: int, env=None) -> int:
        env = self.env if env is None else env
        if name in env:
            return env[name]
        if self.kind_of.get(name) in ("let", "gate"):
            return self.resolve(name, path)
        if name in self.dims:
            return self.graph.add(Node("const", (), make_attrs({"value": float(self.dims[name]), "shape": ()}),
                                       "float", dotted(self.base + tuple(path))))
        if name in TIME_NAMES and name not in self.kind_of:
            return self.time_node(name, path, pos)
        if self.kind_of.get(name):
            raise _Failed()  # declared, but its declaration had an error already reported
        candidates = set(self.kind_of) | set(self.dims)
        hint = did_you_mean(name, candidates)
        if name.lower() in STEP_WORDS and not hint.startswith("did you mean"):
            hint = "the step index is `t` (0, 1, ...) and the sequence's length `seq_len`, e.g. t % 2 == 0"
        self.error(path, f"undefined name `{name}`", pos, len(name),
                   hint or "declare it as an input, state, param, gate or let")
        raise _Failed()

    steps_in_time = True  # a tree rule's lowering says False: its steps are nodes of a tree, not times

    def time_node(self, name: str, path, pos: int) -> int:
        """`t` (the step index) or `seq_len` (the sequence's real length): a scalar read like an input, whose
        value the scan gives at every step. Only a cell under `cells:` that runs over time has them; a name
        the spec declares (an input, state, param, gate, let or dim called `t`) hides them."""
        if self.base[0] != "cells" or not self.steps_in_time:
            where = "a tree cell's rules run on tree nodes, not steps" if self.base[0] == "cells" else \
                "a head or a decoder's init is computed once per sequence or output, not inside the scan"
            self.error(path, f"`{name}` ({'the step index' if name == 't' else 'the sequence length'}) is only "
                             f"defined inside a cell that a model scans over time", pos, len(name),
                       f"{where}; compute what needs `{name}` in the scanned cell and give it to this one as an "
                       f"output")
            raise _Failed()
        if name not in self.time_nodes:
            op = TIME_NAMES[name]
            self.time_nodes[name] = self.graph.add(Node(op, (), make_attrs({"name": name, "shape": ()}), "float",
                                                        dotted(self.base + tuple(path)), name))
        return self.time_nodes[name]

    # -- expressions -------------------------------------------------------------
    def lower_text(self, text, path, env=None, label: str = "") -> int | None:
        if isinstance(text, bool) or not isinstance(text, (str, int, float)):
            self.error(path, "expected an expression", 0)
            return None
        try:
            tree, mixed = E.parse_noting(str(text))
        except E.ExprSyntaxError as e:
            whole = self.cut_at_flow_comma(path, str(text))
            if whole:
                self.error(path, f"syntax error: `{text}` stops at a comma: inside `{{...}}` YAML ends an entry "
                                 f"at every comma", e.pos, e.width,
                           f"quote the expression (`{path[-1]}: \"{whole}\"`) or write the mapping one entry "
                           f"per line")
                return None
            self.error(path, f"syntax error: {e.message}", e.pos, e.width, e.hint)
            return None
        for m in mixed:
            self.warn(path, "`@` and `*` or `/` share one precedence level and group left to right",
                      m.hint(str(text)), m.pos, m.width)
        lowering = _ExprLowering(self, path, str(text), env)
        lowering.stretch_noted = bool(mixed)  # an unbracketed mix already warned of this expression
        try:
            nid = lowering.lower(tree)
        except _Failed:
            return None
        node = self.graph.node(nid)
        if label and not node.label and node.op not in ("input", "state", "param"):
            self.graph.replace(nid, Node(node.op, node.shape, node.attrs, node.dtype, node.origin, label))
        return nid


def literal_problem(values, shape: tuple) -> tuple[str, tuple]:
    """What is wrong with literal param values for `shape`, and where ("" when nothing): they must be one
    number, or nested lists of numbers of exactly that shape. Walked with a stack: never deeper
    than the shape, so a deep or ragged nesting is reported, not followed."""
    one = values
    while isinstance(one, list) and len(one) == 1:
        one = one[0]
    if _is_number(one):  # one number stands for every entry
        return "", ()
    stack = [(values, 0, ())]
    while stack:
        v, axis, at = stack.pop()
        where = "".join(f"[{i}]" for i in at)
        if axis == len(shape):
            if not _is_number(v):
                got = "a list" if isinstance(v, list) else f"`{_short(v)}`"
                return f"hold {got} at values{where}, where a number belongs", at
            continue
        if not isinstance(v, list):
            got = "a number" if _is_number(v) else f"`{_short(v)}`"
            return f"hold {got} at values{where}, where a list of {shape[axis]} belongs", at
        if len(v) != shape[axis]:
            return (f"have {len(v)} entr{'y' if len(v) == 1 else 'ies'} at values{where}, where the shape "
                    f"{fmt_shape(shape)} needs {shape[axis]}", at)
        stack.extend((x, axis + 1, at + (i,)) for i, x in reversed(list(enumerate(v))))
    return "", ()


def _count(n: int) -> str:
    """A count for a message; a float would overflow on the products of some hostile shapes."""
    return f"{n:.3g}" if n < 10**300 else too_large(n)


class _ExprLowering:
    """Turns one parsed expression into nodes."""

    def __init__(self, cell: CellLowering, path, text: str, env):
        self.cell, self.path, self.text, self.env = cell, tuple(path), text, env
        self.origin = dotted(cell.base + self.path)
        self.g = cell.graph
        self.stretch_noted = False

    def fail(self, message, pos, width=1, hint=""):
        self.cell.error(self.path, message, pos, width, hint)
        raise _Failed()

    def lower(self, node) -> int:
        """Nodes for one expression. Chains (`a + b + ...`, `x.T.T`, `x[0:8][0:8]`) are walked by a
        loop, and only their other operands by recursion, so a long chain needs no deep stack."""
        chain = []
        while True:
            if isinstance(node, E.BinOp):
                chain.append(node)
                node = node.left
            elif isinstance(node, E.Attr) and isinstance(node.value, E.Index) \
                    and isinstance(node.value.value, E.Name) \
                    and f"{node.value.value.id}.{node.name}" in self.cell.kind_of:
                inner = node.value  # children[0].h reads children.h[0] (a tree cell's children axis)
                node = E.Index(E.Attr(inner.value, node.name, node.pos), inner.index, inner.pos)
            elif isinstance(node, E.Attr) and node.name == "T" \
                    and not (isinstance(node.value, E.Name) and f"{node.value.id}.T" in self.cell.kind_of):
                chain.append(node)
                node = node.value
            elif isinstance(node, E.Index):
                chain.append(node)
                node = node.value
            else:
                break
        value = self.lower_operand(node)
        for link in reversed(chain):
            value = self.lower_link(link, value)
        return value

    def lower_link(self, node, value: int) -> int:
        """One link of a chain, applied to the value of what it follows."""
        if isinstance(node, E.BinOp):
            if node.op in ("%", "//") and self.static_value(node.right) == 0:
                self.fail(f"division by zero: the divisor of `{node.op}` in `{E.to_text(node)}` is 0", node.pos,
                          len(node.op), "x % 0 and x // 0 have no value; check the divisor")
            return self.apply(BINARY[node.op], [value, self.lower(node.right)], {}, node.pos, node)
        if isinstance(node, E.Attr):
            return self.apply("transpose", [value], {}, node.pos, node)
        if isinstance(node.index, E.Slice):
            attrs = {"start": self.const(node.index.start, int) if node.index.start is not None else None,
                     "stop": self.const(node.index.stop, int) if node.index.stop is not None else None}
            return self.apply("slice", [value], attrs, node.pos, node)
        return self.apply("index", [value], {"i": self.const(node.index, int)}, node.pos, node)

    def lower_operand(self, node) -> int:
        if isinstance(node, E.Num):
            return self.g.add(Node("const", (), make_attrs({"value": node.value, "shape": ()}), "float", self.origin))
        if isinstance(node, E.Name):
            return self.cell.name_node(node.id, self.path, node.pos, self.env)
        if isinstance(node, E.Neg):
            return self.apply("neg", [self.lower(node.operand)], {}, node.pos, node)
        if isinstance(node, E.Attr):  # what the chain loop leaves: a dotted name, or an unknown attribute
            if isinstance(node.value, E.Name) and f"{node.value.id}.{node.name}" in self.cell.kind_of:
                return self.cell.name_node(f"{node.value.id}.{node.name}", self.path, node.value.pos, self.env)
            self.fail(f"`.{node.name}` is not known here", node.pos, len(node.name),
                      "only `.T` (transpose) is defined on values of a step cell")
        if isinstance(node, E.Call):
            return self.call(node)
        if isinstance(node, E.Vector):
            shape, value = self.literal(node)
            return self.g.add(Node("const", shape, make_attrs({"value": as_tuples(value), "shape": shape}), "float",
                                   self.origin))
        raise TypeError(node)  # the parser produces nothing else

    def literal(self, node) -> tuple[tuple, object]:
        """The shape and nested values of a literal `[...]` (or of one constant number)."""
        if not isinstance(node, E.Vector):
            return (), self.const(node, float)
        return vector_value(node, self.const, self.fail, self.cell.dims, self.cell.kind_of)

    def static_value(self, node) -> float | None:
        """The value of an expression of numbers and dims alone (None when it reads anything else)."""
        if isinstance(node, E.Num):
            return node.value
        if isinstance(node, E.Name):
            known = node.id in self.cell.dims and node.id not in self.cell.kind_of
            return float(self.cell.dims[node.id]) if known else None
        if isinstance(node, E.Neg):
            v = self.static_value(node.operand)
            return None if v is None else -v
        if isinstance(node, E.BinOp) and node.op in "+-*":
            a, b = self.static_value(node.left), self.static_value(node.right)
            if a is None or b is None:
                return None
            return {"+": a + b, "-": a - b, "*": a * b}[node.op]
        return None

    def const(self, node, kind=float):
        """A compile-time number: literals, dims, and arithmetic on them (a chain by a loop)."""
        base, chain = E.left_chain(node)
        value = self.const_operand(base)
        for link in chain:
            if not isinstance(link, E.BinOp) or link.op not in ("+", "-", "*", "/", "//", "%"):
                self.const_operand(link)  # fails
            a, b = value, self.const(link.right, float)
            if link.op in ("//", "%") and b == 0:
                self.fail(f"division by zero: the divisor of `{link.op}` in `{E.to_text(link)}` is 0", link.pos,
                          len(link.op), "x % 0 and x // 0 have no value; check the divisor")
            value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else math.inf,
                     "//": a // b if b else 0.0, "%": a % b if b else 0.0}[link.op]
        if kind is int:
            if not float(value).is_integer():
                self.fail(f"expected a whole number, got {value}", getattr(node, "pos", 0))
            if abs(value) > MAX_SIZE:
                self.fail(f"{value:.3g} is too large here; the limit is {MAX_SIZE:,}", getattr(node, "pos", 0))
            return int(value)
        return value

    def const_operand(self, node) -> float:
        if isinstance(node, E.Num):
            return node.value
        if isinstance(node, E.Name) and node.id in self.cell.dims:
            return self.cell.dims[node.id]
        if isinstance(node, E.Neg):
            return -self.const(node.operand, float)
        self.fail("expected a constant (a number or a dim)", getattr(node, "pos", 0), 1,
                  "attributes like axis=, n and i must be known before running")

    def call(self, node: E.Call) -> int:
        if node.func in self.cell.functions:
            fn = self.cell.functions[node.func]
            if fn is None:  # its definition's error is reported
                self.cell.silenced = True
                raise _Failed()
            return self.expand(fn, node)
        op = OPS.get(node.func)
        if op is None or node.func not in FUNCTIONS:
            self.fail(f"unknown function `{node.func}`", node.pos, len(node.func),
                      did_you_mean(node.func, FUNCTIONS | set(self.cell.functions), "function"))
        lo, hi = op.arity
        n_tensors = len(node.args) if hi is None else min(len(node.args), hi)
        tensor_args, attr_args = node.args[:n_tensors], node.args[n_tensors:]
        if len(tensor_args) < lo:
            self.fail(f"{node.func} takes {self._arity_text(op)}, got {len(node.args)}", node.pos, len(node.func))
        attr_names = list(op.attrs)
        if len(attr_args) > len(attr_names):
            self.fail(f"{node.func} takes {self._arity_text(op)}, got {len(node.args)}", node.pos, len(node.func))
        attrs = {}
        for name, value in zip(attr_names, attr_args):
            attrs[name] = self.const(value, self._attr_kind(op, name))
        for name, value in node.kwargs:
            if name not in op.attrs:
                self.fail(f"{node.func} has no argument `{name}`", value.pos if hasattr(value, "pos") else node.pos,
                          1, did_you_mean(name, op.attrs, "argument") if op.attrs else f"{node.func} takes no options")
            attrs[name] = self.const(value, self._attr_kind(op, name))
        args = [self.lower(a) for a in tensor_args]
        for name, default in op.attrs.items():
            if name not in attrs:
                if default is REQUIRED:
                    self.fail(f"{node.func} needs `{name}`", node.pos, len(node.func),
                              f"write {node.func}(..., {name}=<number>)")
                attrs[name] = default
        return self.apply(node.func, args, attrs, node.pos, node)

    def where(self, pos: int, width: int = 1) -> str:
        """`file:line:col (spec path)` of a character of this expression, for messages that point at two places."""
        path = self.cell.base + self.path
        return f"{self.cell.smap.value_loc(path, pos, width)} ({dotted(path)})"

    def expand(self, fn: F.FunctionDef, node: E.Call) -> int:
        """A call of a spec function: its arguments lowered here, then its body with the parameters bound."""
        defined = f"`{fn.signature}` is defined at {self.cell.smap.value_loc(fn.path)}"
        bound = dict(zip(fn.params, node.args))
        if len(node.args) > len(fn.params):
            self.fail(f"{fn.name} takes {len(fn.params)} argument{'s' if len(fn.params) != 1 else ''} "
                      f"({', '.join(fn.params)}), got {len(node.args) + len(node.kwargs)}", node.pos, len(node.func),
                      defined)
        for key, value in node.kwargs:
            if key not in fn.params:
                self.fail(f"{fn.name} has no parameter `{key}`", node.pos, len(node.func),
                          f"{defined}; " + did_you_mean(key, fn.params, "parameter"))
            if key in bound:
                self.fail(f"{fn.name} is given `{key}` twice", node.pos, len(node.func), defined)
            bound[key] = value
        missing = [p for p in fn.params if p not in bound]
        if missing:
            self.fail(f"{fn.name} takes {len(fn.params)} argument{'s' if len(fn.params) != 1 else ''} "
                      f"({', '.join(fn.params)}), got {len(node.args) + len(node.kwargs)}: "
                      f"`{'`, `'.join(missing)}` missing", node.pos, len(node.func), defined)
        if fn.name in self.active_functions():
            self.fail(f"function `{fn.name}` calls itself", node.pos, len(node.func),
                      "functions are expanded where they are called, so a recursive one never ends")
        args = {p: self.lower(bound[p]) for p in fn.params}
        start = self.g._next_id
        result = _FunctionBody(self, fn, args, node).lower(fn.body)
        made = frozenset(range(start, self.g._next_id))
        self.cell.expanded_nodes += len(made)
        if self.cell.expanded_nodes > F.MAX_CELL_EXPANSION:
            self.fail(f"the calls of spec functions in cell `{self.cell.name}` expand to more than "
                      f"{F.MAX_CELL_EXPANSION:,} nodes", node.pos, len(node.func),
                      "name a value that is used again under `let:` and call the function once")
        if result in made:
            self.g.calls.append(F.Expansion(fn.name, result, made, tuple(args.values()), fn.params))
        return result

    def active_functions(self) -> set[str]:
        return set()

    @staticmethod
    def _attr_kind(op, name):
        return float if name in ("alpha", "beta") or isinstance(op.attrs.get(name), float) else int

    @staticmethod
    def _arity_text(op) -> str:
        lo, hi = op.arity
        extra = len(op.attrs)
        if hi is None:
            return f"at least {lo} argument{'s' if lo != 1 else ''}"
        if extra:
            return f"{lo} argument{'s' if lo != 1 else ''} (plus {', '.join(op.attrs)})"
        return f"{lo} argument{'s' if lo != 1 else ''}"

    def apply(self, opname: str, args: list[int], attrs: dict, pos: int, ast) -> int:
        op = OPS[opname]
        nodes = [self.g.node(a) for a in args]
        int_positions = INT_ARGS.get(opname, ())
        for i, n in enumerate(nodes):
            if n.dtype == "token" and i not in int_positions:
                self.fail(f"`{E.to_text(ast)}` uses the token `{n.label or n.attr('name')}` as a number", pos, 1,
                          f"turn it into a vector first: one_hot({n.label or 'x'}, V) or embed({n.label or 'x'}, E)")
            if i in int_positions and n.dtype != "token":
                self.fail(f"{opname} needs a token (an integer index) as argument {i + 1}", pos, 1,
                          "declare the input as `x: token`")
        try:
            shape = tuple(op.shape([n.shape for n in nodes], attrs))
        except ShapeError as e:
            what = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide", "matmul": "multiply",
                    "mod": "take the remainder of", "floordiv": "floor-divide", "where": "choose between",
                    **{op: "compare" for op in COMPARISONS.values()}}
            verb = what.get(opname, f"apply {opname} to")
            shapes = " and ".join(fmt_shape(n.shape) for n in nodes)
            self.fail(f"shape mismatch: cannot {verb} {shapes} in `{E.to_text(ast)}`: {e}", pos,
                      len(opname) if isinstance(ast, E.Call) else 1)
        if math.prod(shape) > MAX_ELEMENTS:
            self.fail(f"`{E.to_text(ast)}` would have {_count(math.prod(shape))} elements", pos)
        if isinstance(ast, E.BinOp) and op.kind == "elementwise":
            self.note_stretch(ast, nodes)
        return self.g.add(Node(opname, shape, make_attrs(attrs), "float", self.origin), args)

    def note_stretch(self, ast: E.BinOp, nodes) -> None:
        """Warn when an operator (`*`, `+`, ...) broadcasts a vector against a matrix: `M * h` with M [H, H]
        and h [H] is valid NumPy and almost always a slip for `M @ h`. The call form (`mul(M, h)`) says the
        broadcast is meant and stays quiet; so does a tree cell's rule, whose children axis is broadcast by design."""
        ranks = [len(n.shape) for n in nodes]
        if min(ranks) != 1 or max(ranks) < 2 or not self.cell.steps_in_time or self.stretch_noted:
            return
        self.stretch_noted = True  # one warning an expression
        vector, matrix = (ast.left, ast.right) if ranks[0] == 1 else (ast.right, ast.left)
        vshape, mshape = (nodes[0].shape, nodes[1].shape) if ranks[0] == 1 else (nodes[1].shape, nodes[0].shape)
        fn = BINARY.get(ast.op, ast.op)
        left, right = E.to_text(ast.left), E.to_text(ast.right)
        hint = f"each row of `{E.to_text(matrix)}` meets `{E.to_text(vector)}` elementwise"
        if ast.op == "*" and len(mshape) == 2 and mshape[-1] == vshape[0]:
            hint += f"; for the matrix-vector product write `{left} @ {right}`" if ranks[0] == 2 else \
                f"; for the matrix-vector product write `{right} @ {left}`"
        hint += f"; if the broadcast is meant, write `{fn}({left}, {right})`"
        self.warn_at(f"`{E.to_text(ast)}` broadcasts the vector `{E.to_text(vector)}` {fmt_shape(vshape)} "
                     f"against the matrix `{E.to_text(matrix)}` {fmt_shape(mshape)}", ast.pos, 1, hint)

    def warn_at(self, message, pos, width=1, hint=""):
        self.cell.warn(self.path, message, hint, pos, width)


class _FunctionBody(_ExprLowering):
    """The body of a spec function, expanded at one call: names are its parameters (bound to the call's
    argument nodes) or dims; an error points into the definition and names the call."""

    def __init__(self, caller: _ExprLowering, fn: F.FunctionDef, args: dict[str, int], call: E.Call):
        super().__init__(caller.cell, caller.path, fn.text, None)
        self.origin = caller.origin  # generated code and tooltips point at the call's spec entry
        self.caller, self.fn, self.args, self.call_node = caller, fn, args, call

    def active_functions(self) -> set[str]:
        return self.caller.active_functions() | {self.fn.name}

    def where(self, pos: int, width: int = 1) -> str:
        return f"{self.cell.smap.value_loc(self.fn.path, pos, width)} ({dotted(self.fn.path)})"

    def fail(self, message, pos, width=1, hint=""):
        shapes = ", ".join(f"{p}: {fmt_shape(self.g.node(n).shape)}" for p, n in self.args.items())
        at = self.caller.where(self.call_node.pos, len(self.fn.name))
        call = f"in the call `{E.to_text(self.call_node)}` at {at}" + (f" ({shapes})" if shapes else "")
        self.cell.sink.error(f"{message} (in `{self.fn.name}`)", dotted(self.fn.path),
                             self.cell.smap.value_loc(self.fn.path, pos, width), "; ".join(x for x in (call, hint) if x))
        raise _Failed()

    def warn_at(self, message, pos, width=1, hint=""):
        at = self.caller.where(self.call_node.pos, len(self.fn.name))
        self.cell.sink.warn(f"{message} (in `{self.fn.name}`)", dotted(self.fn.path),
                            self.cell.smap.value_loc(self.fn.path, pos, width),
                            "; ".join(x for x in (f"in the call `{E.to_text(self.call_node)}` at {at}", hint) if x))

    def lower_operand(self, node) -> int:
        if isinstance(node, E.Name):
            if node.id in self.args:
                return self.args[node.id]
            if node.id in self.cell.dims:
                return self.cell.scalar(float(self.cell.dims[node.id]), self.origin)
            self.fail(f"`{node.id}` is not a parameter of `{self.fn.signature}`", node.pos, len(node.id))
        return super().lower_operand(node)

    def static_value(self, node):
        if isinstance(node, E.Name) and node.id in self.args:
            return None
        return super().static_value(node)


def _dim_named(width: int, dims: dict) -> str:
    """A dim whose value is `width` (the first declared), else the number itself."""
    return next((name for name, v in dims.items() if v == width), str(width))
