"""`rnncompile export SPEC --format onnx`: the model's flow as one ONNX graph.

One more renderer of the flow (rnncompile.flow): `RENDERERS` has a method per flow op name, each adding
the ONNX nodes that compute what the drivers' INTERPRETER computes for that op, and `NOT_EXPORTED` says
why the others are refused. Each bundle the flow names becomes a dict of ONNX values, batch-major as the
drivers hold them ([B, T, ...] over time, [B, ...] once per sequence).

    start_state  the cell's own init (constant, param, context input) repeated for every example
    scan         ONNX's own LSTM / GRU node when the cell computes exactly it (onnx_native.py, float32),
                 else an ONNX Scan over axis 1 whose body is the cell's graph (onnx_cell.py, onnx_ops.py), so
                 any cell exports; reverse scans set scan_input_directions/scan_output_directions; with
                 lengths, a padded step keeps the state and gives zero outputs, as the drivers' masking does
    merge        Concat on the feature axis, Add, the mean, or the two kept apart
    take_last    GatherND at each sequence's last real step (step 0 for a reverse scan)
    apply        a head: a state-less Scan at every step, or its nodes inline once per sequence
    decode       teacher forcing (a decoder that reads a target) as two Scans; greedy decoding as a Loop
                 that stops at the end token (onnx_decode.py); a sampling decoder is refused
    output       the graph's outputs: the outputs bundle by member name, each final state as `final.<key>`

The model's inputs are the spec's sequence inputs [B, T, ...] (token ids as int64), its context inputs
[B, ...] and, unless exported without, `sequence_lens` [B] (int32, as ONNX's RNN/GRU/LSTM take it). Params
are initializers named by their weight-file keys (`layers.0.W_i`, `head.W_y`); a native node's stacks are
`<use>.<LSTM|GRU>.<W|R|B>`, the doc string saying which keys each stacks. The model starts from the
spec's own initial state: a state the caller gives (`run --init-state`) is not an input of the ONNX model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import rnncompile
from ... import flow
from ...errors import UsageError
from ...flow import CONTEXT, INPUT
from ...plan import CellUse
from .onnx_cell import Bound, per_example, write_cell
from .onnx_decode import refusal as decode_refusal
from .onnx_decode import render_decode
from .onnx_native import Native, recognise
from .onnx_graph import BATCH, IR_VERSION, OPSET, TIME, ExportError, Graph, Names

LENGTHS = "sequence_lens"

NOT_EXPORTED = {
    "tree_fold": "a tree fold's shape is the tree's, different for every input: ONNX tensors have no form for a "
                 "forest (the schedule of levels is data), so tree models run in rnncompile or its generated code",
}


@dataclass(frozen=True)
class Val:
    """A bundle member: its ONNX value, its per-example shape, whether it has a time axis (axis 1), its type."""

    name: str
    shape: tuple
    timed: bool
    dtype: str  # "float" | "token"
    steps: str = TIME  # the time axis' symbolic name (a decoder's: N)


class FlowExporter:
    """Writes the ONNX graph of a program's flow, one op at a time (`model()`)."""

    def __init__(self, program, params: dict, dtype: str = "float32", lengths: bool = True, native: bool = True):
        self.program, self.flow, self.params = program, program.flow, params
        # onnxruntime's CPU GRU and LSTM kernels run float32 only, so a float64 model keeps every cell a Scan
        self.dtype, self.with_lengths = np.dtype(dtype), lengths
        self.native = native and self.dtype == np.float32
        refused = [(op, NOT_EXPORTED[op.op]) for op in self.flow if op.op in NOT_EXPORTED]
        refused += [(op, why) for op in self.flow.of("decode") if (why := decode_refusal(program, op))]
        if refused:
            op, why = refused[0]
            raise ExportError(f"{program.name} does not export to ONNX: its {op.op} "
                              f"({'.'.join(map(str, op.path))}) cannot be written yet: {why}")
        self.names = Names()
        self.g = Graph(self.names, "model", self.dtype)
        self.bundles: dict[str, dict[str, Val]] = {}
        self._cache: dict = {}
        self._written: set[str] = set()  # the weight keys written as initializers so far
        self._over: set[str] = set()  # start-state bundles that take values from another bundle
        self.val_type = Val
        self.natives: list[str] = []  # what ran as ONNX's own LSTM/GRU, for the doc string
        for key in program.params:  # claimed first, so no other value takes a weight key's name
            self.names.claim(key)
        self._interface()

    # -- the model's inputs, and what every op shares ------------------------------------------------
    def _interface(self) -> None:
        plan = self.program.plan
        inputs = {}
        for n, shape in self.flow.inputs.items():
            token = plan.input_dtypes.get(n) == "token"
            time = self.flow.time_dims.get(n)
            self.g.add_input(self.names.claim(n), np.int64 if token else self.dtype,
                             [BATCH, time if isinstance(time, str) else TIME, *shape])
            inputs[n] = Val(n, tuple(shape), True, "token" if token else "float")
        context = {}
        for n, shape in self.flow.context.items():
            self.g.add_input(self.names.claim(n), self.dtype, [BATCH, *shape])
            context[n] = Val(n, tuple(shape), False, "float")
        self.bundles[INPUT], self.bundles[CONTEXT] = inputs, context
        # one `sequence_lens`, as `run --lengths` takes one array: the lengths of the inputs on the first time
        # axis; an input on another axis (a teacher-forcing target) runs its whole length
        self.first_axis = {n for n, t in self.flow.time_dims.items()
                           if str(t) == str(self.program.plan.time_dim)} or set(inputs)
        self.lengths = None
        if self.with_lengths and any(set(op.lengths) & self.first_axis for op in self.flow.of("scan")):
            self.lengths = self.g.add_input(self.names.claim(LENGTHS), np.int32, [BATCH])
        first = next((n for n in inputs if n in self.first_axis), None) or next(iter(context), None)
        if first is None:
            raise ExportError(f"{self.program.name}: a model without inputs has no batch size to export")
        self.batch = self.g.op("Shape", [first], "batch", start=0, end=1)
        self.steps = self.g.op("Shape", [first], "steps", start=1, end=2) if inputs else None

    def once(self, key, make):
        """A value every op may share (the mask of real steps, the step indices), made on first use."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def live(self) -> str:
        """[B, T] bool: step t of sequence b is real (t < its length)."""
        def make():
            g = self.g
            t = g.op("Range", [g.const(0, np.int64), g.squeeze(self.steps, [0]), g.const(1, np.int64)], "t")
            n = g.op("Cast", [self.lengths], "lengths", to=_onnx_type(np.int64))
            return g.op("Less", [g.unsqueeze(t, [0]), g.unsqueeze(n, [1])], "live")
        return self.once("live", make)

    def step_indices(self) -> str:
        """[B, T] floats 0..T-1, one row per sequence (what `t` reads)."""
        def make():
            g = self.g
            t = g.op("Range", [g.const(0, np.int64), g.squeeze(self.steps, [0]), g.const(1, np.int64)], "t")
            t = g.op("Cast", [g.unsqueeze(t, [0])], "t_float", to=_onnx_type(self.dtype))
            return g.op("Expand", [t, g.op("Concat", [self.batch, self.steps], "batch_steps", axis=0)], "step_index")
        return self.once("t", make)

    def seq_len(self, masked: bool) -> str:
        """[B] floats: each sequence's real steps (what `seq_len` reads), or T for every one."""
        def make():
            g = self.g
            if masked:
                return g.op("Cast", [self.lengths], "seq_len", to=_onnx_type(self.dtype))
            t = g.op("Cast", [self.steps], "steps_float", to=_onnx_type(self.dtype))
            return g.op("Expand", [t, self.batch], "seq_len")
        return self.once(("seq_len", masked), make)

    def param(self, key: str) -> str:
        """The initializer of weight `key` (written on first use, so a model holds only the weights it reads)."""
        if key not in self._written:
            self.g.initializer(key, np.asarray(self.params[key], self.dtype))
            self._written.add(key)
        return key

    def params_of(self, use: CellUse) -> dict[str, str]:
        """The cell's params -> their initializers, named by their weight-file keys."""
        return {name: self.param(use.key(name)) for name in use.cell.params}

    def masked(self, op_lengths: tuple) -> bool:
        return bool(op_lengths) and self.lengths is not None and set(op_lengths) <= self.first_axis

    # -- the flow's ops, one renderer each (RENDERERS below names them) --------------------------------
    def start_state(self, op: flow.StartState) -> None:
        """The cell's own init for every example, then the values of `over` (the drivers' rule without a
        given state: the ONNX model has no initial-state inputs)."""
        g, out = self.g, {}
        for name, info in op.use.cell.states.items():
            if info.from_context:
                ctx = self.bundles[CONTEXT][info.init]
                if ctx.shape != tuple(info.shape):
                    raise ExportError(f"state `{op.use.key(name)}` starts from context input `{info.init}` "
                                      f"{list(ctx.shape)}, but is {list(info.shape)}")
                value = ctx.name
            else:
                start = self.param(op.use.key(info.init)) if isinstance(info.init, str) else g.const(
                    np.broadcast_to(np.asarray(info.init, self.dtype), info.shape))
                value = g.expand_to_batch(start, self.batch, info.shape)
            out[name] = Val(value, tuple(info.shape), False, "float")
        if op.over is not None:
            out.update({n: v for n, v in self.bundles[op.over].items() if n in out})
            self._over.add(op.out)
        self.bundles[op.out] = out

    def scan(self, op: flow.Scan) -> None:
        feed = {cin: self.bundles[r.bundle][r.member] for cin, r in op.feed}
        start = self.bundles[op.state]
        found = recognise(self.program, op.use, self.params) if self.native else None
        if found is not None:
            self.bundles[op.out], self.bundles[op.final] = self._native(found, op, feed, start)
            return
        outs, final = self._scan(op.use, feed, {}, start, self.masked(op.lengths), op.reverse, op.path)
        self.bundles[op.out], self.bundles[op.final] = outs, final

    def _scan(self, use: CellUse, feed: dict[str, Val], context: dict[str, Val], start: dict[str, Val],
              masked: bool, reverse: bool, path: tuple) -> tuple[dict, dict]:
        """An ONNX Scan of `use`'s cell over axis 1 of the `feed` values (the `context` ones read whole at every
        step); its outputs [B, T, ...] and final state."""
        cell, g = self.program.cell(use), self.g
        where = ".".join(map(str, path)) + (f" ({use.prefix.rstrip('.')})" if use.prefix else "")
        body = Graph(self.names, (use.prefix.rstrip(".") or use.cell.name) + "/scan", self.dtype)
        sources, scan_inputs, state_inputs = {}, [], []
        for name, info in cell.states.items():
            sources[f"state:{name}"] = Bound(body.add_input(body.name(name), self.dtype, [BATCH, *info.shape]), True)
            state_inputs.append(start[name].name)
        for name, info in cell.inputs.items():
            if name in context:
                sources[f"input:{name}"] = Bound(context[name].name, True)
                continue
            if name not in feed:
                raise ExportError(f"{where}: cell input `{name}` is fed nothing")
            val = feed[name]
            sources[f"input:{name}"] = Bound(body.add_input(body.name(name), _np_type(val.dtype, self.dtype),
                                                            [BATCH, *val.shape]), True)
            scan_inputs.append(val.name)
        live = None
        if masked:
            live = body.add_input(body.name("live"), "bool", [BATCH])
            scan_inputs.append(self.live())
        if cell.nodes_of("step_index") or not scan_inputs:  # a Scan needs one scanned input at least
            sources["step_index"] = Bound(body.add_input(body.name("t"), self.dtype, [BATCH]), True)
            scan_inputs.append(self.step_indices())
        if cell.nodes_of("seq_length"):
            sources["seq_length"] = Bound(self.seq_len(masked), True)
        env = write_cell(cell, body, sources, self.params_of(use), self.batch, once=g, where=where)

        def keep_real(value: str, shape, otherwise: str) -> str:  # a padded step: the old state, or zeros
            if live is None:
                return value
            mask = body.unsqueeze(live, list(range(1, len(shape) + 1))) if shape else live
            return body.op("Where", [mask, value, otherwise], "masked")

        for name, nid in cell.updates().items():
            shape = cell.states[name].shape
            new = keep_real(per_example(body, env[nid], shape, self.batch), shape, sources[f"state:{name}"].name)
            body.add_output(new, body.name(f"{name}_next"), self.dtype, [BATCH, *shape])
        out_names = []
        for name, nid in cell.outputs().items():
            node = cell.node(nid)
            dtype = _np_type(node.dtype, self.dtype)
            zero = body.const(0, dtype) if live is not None else None
            body.add_output(keep_real(per_example(body, env[nid], node.shape, self.batch), node.shape, zero),
                            body.name(f"{name}_step"), dtype, [BATCH, *node.shape])
            out_names.append((name, node))
        k = len(scan_inputs)
        directions = {"scan_input_directions": [1] * k, "scan_output_directions": [1] * len(out_names)} \
            if reverse else {}
        results = g.op("Scan", state_inputs + scan_inputs, f"{body.scope}",
                       outputs=len(state_inputs) + len(out_names),
                       body=body.make(f"{body.scope}"), num_scan_inputs=k, scan_input_axes=[1] * k,
                       scan_output_axes=[1] * len(out_names), **directions)
        results = results if isinstance(results, list) else [results]
        final = {name: Val(v, tuple(cell.states[name].shape), False, "float")
                 for name, v in zip(cell.states, results)}
        outs = {name: Val(v, tuple(node.shape), True, node.dtype)
                for (name, node), v in zip(out_names, results[len(state_inputs):])}
        return outs, final

    def _native(self, native: Native, op: flow.Scan, feed: dict[str, Val], start: dict[str, Val]):
        """ONNX's own LSTM / GRU node for a cell that computes exactly it (onnx_native.py), time-major inside."""
        g, use = self.g, op.use
        scope = use.prefix.rstrip(".") or use.cell.name
        weights = []
        for part, value in (("W", native.W), ("R", native.R), ("B", native.B)):
            weights.append(g.initializer(self.names.fresh(f"{scope}.{native.op}.{part}"), value.astype(self.dtype)))
        x = g.op("Transpose", [feed[native.x].name], f"{scope}/x_time_major", perm=[1, 0, 2])
        lengths = self.lengths if self.masked(op.lengths) else ""
        inits = []
        for state in (native.h, native.c) if native.c else (native.h,):
            info = use.cell.states[state]
            zero = not info.from_context and not isinstance(info.init, str) and not np.any(np.asarray(info.init))
            inits.append("" if zero and op.state not in self._over else g.unsqueeze(start[state].name, [0]))
        args = [x, *weights, lengths] + inits
        while args[-1] == "":
            args.pop()
        outs = g.op(native.op, args, f"{scope}/{native.op.lower()}", outputs=3 if native.c else 2,
                    hidden_size=native.hidden, direction="reverse" if op.reverse else "forward", **native.attrs)
        y = g.op("Transpose", [g.squeeze(outs[0], [1])], f"{scope}/y", perm=[1, 0, 2])
        final = {native.h: Val(g.squeeze(outs[1], [0]), (native.hidden,), False, "float")}
        if native.c:
            final[native.c] = Val(g.squeeze(outs[2], [0]), (native.hidden,), False, "float")
        self.natives.append(f"{scope}: {native.op} ({', '.join(native.sources)} stacked into "
                            f"{', '.join(weights)})")
        cell = self.program.cell(use)
        return {name: Val(y, (native.hidden,), True, "float") for name in cell.outputs()}, final

    def merge(self, op: flow.Merge) -> None:
        a, b, g = self.bundles[op.a], self.bundles[op.b], self.g
        if op.how == "separate":
            out = {f"{n}_forward": v for n, v in a.items()}
            out.update({f"{n}_reverse": v for n, v in b.items()})
        elif op.how == "concat":
            out = {n: Val(g.op("Concat", [v.name, b[n].name], f"{op.out}.{n}", axis=-1),
                          v.shape[:-1] + (v.shape[-1] + b[n].shape[-1],), v.timed, v.dtype) for n, v in a.items()}
        elif op.how in ("sum", "mean"):
            out = {}
            for n, v in a.items():
                total = g.op("Add", [v.name, b[n].name], f"{op.out}.{n}")
                if op.how == "mean":
                    total = g.op("Mul", [total, g.const(0.5)], f"{op.out}.{n}")
                out[n] = Val(total, v.shape, v.timed, v.dtype)
        else:
            raise ExportError(f"{'.'.join(map(str, op.path))}: merge `{op.how}` has no ONNX form")
        self.bundles[op.out] = out

    def take_last(self, op: flow.TakeLast) -> None:
        g, out = self.g, {}
        masked = self.masked(op.lengths)
        for n, v in self.bundles[op.src].items():
            if op.reverse or not masked:  # a reverse scan ends at step 0; full sequences at step T-1
                value = g.op("Gather", [v.name, g.const(0 if op.reverse else -1, np.int64)], f"{op.out}.{n}", axis=1)
            else:
                last = g.op("Sub", [g.op("Cast", [self.lengths], "lengths", to=_onnx_type(np.int64)),
                                    g.const(1, np.int64)], "last_step")
                last = g.unsqueeze(g.op("Max", [last, g.const(0, np.int64)], "last_step"), [1])
                value = g.op("GatherND", [v.name, last], f"{op.out}.{n}", batch_dims=1)
            out[n] = Val(value, v.shape, False, v.dtype)
        self.bundles[op.out] = out

    def apply(self, op: flow.Apply) -> None:
        """A stateless cell: a Scan without state over the steps (context read whole), or once per sequence."""
        values = {}
        for r in op.feed:
            values.update({r.rename + n: v for n, v in self.bundles[r.bundle].items()})
        wanted = {n: values[n] for n in op.use.cell.inputs if n in values}
        if op.at == "every_step":
            feed = {n: v for n, v in wanted.items() if v.timed}
            context = {n: v for n, v in wanted.items() if not v.timed}
            self.bundles[op.out], _ = self._scan(op.use, feed, context, {}, self.masked(op.lengths), False, op.path)
            return
        cell = self.program.cell(op.use)
        where = ".".join(map(str, op.path))
        sources = {f"input:{n}": Bound(v.name, True) for n, v in wanted.items()}
        env = write_cell(cell, self.g, sources, self.params_of(op.use), self.batch, where=where)
        self.bundles[op.out] = {n: Val(per_example(self.g, env[nid], cell.node(nid).shape, self.batch),
                                       tuple(cell.node(nid).shape), False, cell.node(nid).dtype)
                                for n, nid in cell.outputs().items()}

    def output(self, op: flow.Output) -> None:
        for n, v in self.bundles[op.outputs].items():
            self._graph_output(n, v)
        for use, bundle in op.finals:
            for n, v in self.bundles[bundle].items():
                self._graph_output(f"final.{use.key(n)}", v)
        if op.tokens:  # a decoder's tokens [B, N] and how many each sequence wrote (the end token counted)
            tokens = self.bundles[op.tokens]
            self._graph_output("tokens", tokens["tokens"])
            self._graph_output("token_lengths", tokens["lengths"])

    def _graph_output(self, name: str, v: Val) -> None:
        shape = [BATCH] + ([v.steps] if v.timed else []) + list(v.shape)
        self.g.add_output(v.name, self.names.claim(name), _np_type(v.dtype, self.dtype), shape)

    # -- the whole model ---------------------------------------------------------------------------
    def model(self, source_name: str = "", weights_from: str = ""):
        from onnx import helper

        for op in self.flow:
            RENDERERS[op.op](self, op)
        graph = self.g.make(self.program.name)
        graph.doc_string = self.doc()
        model = helper.make_model(graph, producer_name="rnncompile", producer_version=rnncompile.__version__,
                                  opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
        model.doc_string = graph.doc_string
        meta = {"rnncompile.spec": source_name or str(self.program.checked.file), "rnncompile.weights": weights_from,
                "rnncompile.flow": " ".join(op.op for op in self.flow)}
        helper.set_model_props(model, {k: v for k, v in meta.items() if v})
        return model

    def doc(self) -> str:
        ins = [f"{i.name} [{', '.join(map(str, _dims(i)))}]" for i in self.g.inputs if i.name != LENGTHS]
        lengths = (f"; {LENGTHS} [B] int32: each sequence's real steps (padded steps keep the state and give "
                   f"zeros)") if self.lengths else ""
        return (f"{self.program.name}, exported by rnncompile {rnncompile.__version__}. Inputs: {', '.join(ins)}"
                f"{lengths}. Outputs: the model's outputs by name, each final state as final.<weight-file key>. "
                f"Starts from the spec's initial state."
                + (" ONNX's own operators: " + "; ".join(self.natives) + "." if self.natives else ""))


def _dims(info) -> list:
    return [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]


def _np_type(kind: str, dtype):
    return np.int64 if kind == "token" else dtype


def _onnx_type(dtype) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


RENDERERS = {
    "start_state": FlowExporter.start_state,
    "scan": FlowExporter.scan,
    "merge": FlowExporter.merge,
    "take_last": FlowExporter.take_last,
    "apply": FlowExporter.apply,
    "decode": render_decode,
    "output": FlowExporter.output,
}


def export_onnx(program, params: dict, dtype: str = "float32", lengths: bool = True, native: bool = True,
                source_name: str = "", weights_from: str = ""):
    """The program as an ONNX ModelProto (checked with onnx.checker, full check); `lengths`: give the model a
    `sequence_lens` input and mask padded steps (without: every sequence runs its whole length); `native`:
    ONNX's own LSTM/GRU node for a cell that computes exactly it (float32 only: onnxruntime runs those in
    float32 alone; else, and in float64, every cell is a Scan)."""
    try:
        import onnx
    except ImportError:
        raise UsageError("exporting ONNX models needs the onnx package: pip install onnx") from None
    model = FlowExporter(program, params, dtype, lengths, native).model(source_name, weights_from)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # a bug here, not in the user's spec: say which model and what the checker found
        raise ExportError(f"{program.name}: the ONNX model written does not pass onnx.checker "
                          f"({type(e).__name__}: {e})") from None
    return model
