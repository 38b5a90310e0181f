"""The model-level program: a flat, typed list of flow ops.

The plan (rnncompile.plan) says what a model composes out of cells; `flow_of`
writes it as a list of ops, each reading named bundles (dicts of arrays with
a batch axis) and producing new ones:

    start_state  a cell use's start state: a state the caller gives wins, then
                 the values of a bundle (the encoder's summary, a bridge's
                 outputs), then the cell's own init (constant, param, context)
    scan         a cell over the time axis of its inputs (forward or reverse,
                 with each sequence's length): its outputs at every step and
                 its final state
    merge        two bundles joined: concat, sum, mean, or kept apart (separate)
    take_last    each sequence's value after its last real step
    apply        a stateless cell (a head, a bridge) at every step, or once per
                 sequence (at `last`, or a decoder's start)
    decode       a decoder loop: teacher forcing over a target, or feeding back
                 each step's own token until the end token, reading the
                 encoder's outputs at every source step (its memory) if asked
    tree_fold    a tree cell folded leaves to root over each tree (its head at
                 the root or at every node)
    output       what the model returns: its outputs, every use's final state

Each op carries the spec path it came from. The drivers (rnncompile.drivers)
interpret the flow, one method per op name; each code generator renders it,
one renderer per op name (backends/python/export.py, backends/c/export.py);
tests/test_flow.py fails when an interpreter or a renderer misses an op and
gives no reason. `rnncompile inspect SPEC --flow` prints it (`format_flow`).

Bundle names: `input` (the model's sequence inputs), `context` (its
per-sequence inputs), and each op's own (`<use prefix>out`, `layer.1`, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .plan import CellUse, Decoder, Head, Plan, Stack

INPUT, CONTEXT = "input", "context"


@dataclass(frozen=True)
class Read:
    """One cell input (or a whole bundle, `member` None) read from a bundle."""

    bundle: str
    member: str | None = None
    rename: str = ""  # a whole bundle read with this prefix on every name (a bridge reads `encoder.h`)

    def __str__(self) -> str:
        if self.member is None:
            return f"{self.rename}*={self.bundle}" if self.rename else self.bundle
        return f"{self.bundle}.{self.member}"


@dataclass(frozen=True)
class FlowOp:
    op: ClassVar[str]
    path: tuple  # where in the spec it comes from

    def reads(self) -> list[str]:
        return []

    def writes(self) -> list[str]:
        return []


@dataclass(frozen=True)
class StartState(FlowOp):
    op: ClassVar[str] = "start_state"
    use: CellUse
    out: str
    over: str | None = None  # a bundle whose values set states (by name)
    given: bool = True  # a state the caller gives (`<prefix><state>`) wins

    def reads(self):
        return [self.over] if self.over else []

    def writes(self):
        return [self.out]


@dataclass(frozen=True)
class Scan(FlowOp):
    op: ClassVar[str] = "scan"
    use: CellUse
    feed: tuple[tuple[str, Read], ...]  # cell input -> what it reads
    state: str
    out: str
    final: str
    lengths: tuple[str, ...]  # the model inputs whose lengths bound each sequence
    reverse: bool = False

    def reads(self):
        return sorted({r.bundle for _, r in self.feed}) + [self.state]

    def writes(self):
        return [self.out, self.final]


@dataclass(frozen=True)
class Merge(FlowOp):
    op: ClassVar[str] = "merge"
    how: str  # concat | sum | mean | separate
    a: str
    b: str
    out: str

    def reads(self):
        return [self.a, self.b]

    def writes(self):
        return [self.out]


@dataclass(frozen=True)
class TakeLast(FlowOp):
    op: ClassVar[str] = "take_last"
    src: str
    out: str
    lengths: tuple[str, ...]
    reverse: bool = False  # a reverse scan ends at step 0

    def reads(self):
        return [self.src]

    def writes(self):
        return [self.out]


@dataclass(frozen=True)
class Apply(FlowOp):
    op: ClassVar[str] = "apply"
    use: CellUse
    feed: tuple[Read, ...]  # whole bundles; `context` is repeated over the steps
    at: str  # every_step | once
    out: str
    lengths: tuple[str, ...] = ()

    def reads(self):
        return [r.bundle for r in self.feed]

    def writes(self):
        return [self.out]


@dataclass(frozen=True)
class Decode(FlowOp):
    op: ClassVar[str] = "decode"
    decoder: Decoder
    state: str
    out: str  # the head's outputs [B, N, ...]
    final: str
    tokens: str  # `tokens` [B, N] and `lengths` [B]
    memory: tuple[tuple[str, Read], ...] = ()  # decoder cell input -> a bundle's value at every source step
    memory_mask: tuple[str, tuple[str, ...]] | None = None  # cell input -> the source inputs whose lengths mask it

    @property
    def use(self) -> CellUse:
        return self.decoder.use

    def reads(self):
        return [self.state, CONTEXT] + sorted({r.bundle for _, r in self.memory})

    def writes(self):
        return [self.out, self.final, self.tokens]


@dataclass(frozen=True)
class TreeFold(FlowOp):
    op: ClassVar[str] = "tree_fold"
    node: CellUse
    leaf: CellUse | None
    input: str
    head: CellUse | None
    head_at: str  # root | every_node
    out: str

    def writes(self):
        return [self.out]


@dataclass(frozen=True)
class Output(FlowOp):
    op: ClassVar[str] = "output"
    outputs: str
    finals: tuple[tuple[CellUse, str], ...]  # each scanned or decoded use and its final-state bundle
    tokens: str | None = None

    def reads(self):
        return [self.outputs] + [b for _, b in self.finals] + ([self.tokens] if self.tokens else [])


OP_NAMES = ("start_state", "scan", "merge", "take_last", "apply", "decode", "tree_fold", "output")
OP_TYPES = {cls.op: cls for cls in (StartState, Scan, Merge, TakeLast, Apply, Decode, TreeFold, Output)}


@dataclass
class Flow:
    name: str
    ops: list[FlowOp] = field(default_factory=list)
    inputs: dict[str, tuple] = field(default_factory=dict)
    context: dict[str, tuple] = field(default_factory=dict)
    time_dims: dict[str, object] = field(default_factory=dict)  # each sequence input's time axis

    def __iter__(self):
        return iter(self.ops)

    def of(self, op: str) -> list[FlowOp]:
        return [o for o in self.ops if o.op == op]

    @property
    def output(self) -> Output:
        return self.ops[-1]


class _Writer:
    def __init__(self, plan: Plan, name: str):
        self.plan = plan
        self.flow = Flow(name, inputs=dict(plan.inputs), context=dict(plan.context),
                         time_dims={n: plan.time_dims.get(n, plan.time_dim) for n in plan.inputs})
        self.finals: list[tuple[CellUse, str]] = []

    def add(self, op: FlowOp) -> FlowOp:
        self.flow.ops.append(op)
        return op

    def stack(self, stack: Stack, path: tuple, keep_last: bool) -> tuple[str, str | None, str]:
        """The stack's ops: (its top bundle, the top's last-step bundle if `keep_last`, its summary bundle)."""
        below = INPUT
        lengths = tuple(stack.inputs)
        last = summary = None
        for i, layer in enumerate(stack.layers):
            lpath = layer.path
            outs, finals, lasts = [], [], []
            top = i == len(stack.layers) - 1
            for use in layer.uses:
                start = self.add(StartState(lpath, use, f"{use.prefix}start"))
                feed = tuple((cin, Read(below, src)) for cin, src in layer.feed.items())
                scan = self.add(Scan(lpath, use, feed, start.out, f"{use.prefix}out", f"{use.prefix}final", lengths,
                                     use.reverse))
                self.finals.append((use, scan.final))
                outs.append(scan.out)
                finals.append(scan.final)
                if top and keep_last:
                    lasts.append(self.add(TakeLast(lpath, scan.out, f"{use.prefix}last", lengths, use.reverse)).out)
            name = f"{_bundle_prefix(path)}layer.{i}" if len(stack.layers) > 1 else f"{_bundle_prefix(path)}layer"
            below = self.merge(lpath, layer.merge, outs, name)
            if top:
                if lasts:
                    last = self.merge(lpath, layer.merge, lasts, f"{name}.last")
                summary = self.merge(lpath, layer.merge, finals, f"{name}.summary") if self.plan.decoder else None
        return below, last, summary

    def merge(self, path, how: str, bundles: list[str], name: str) -> str:
        if len(bundles) == 1:
            return bundles[0]
        return self.add(Merge(path + ("merge",), how, bundles[0], bundles[1], name)).out

    def head(self, head: Head, top: str, last: str | None, lengths: tuple, path: tuple) -> str:
        if head.at == "last":
            return self.add(Apply(path, head.use, (Read(last), Read(CONTEXT)), "once", f"{head.use.prefix}out")).out
        return self.add(Apply(path, head.use, (Read(top), Read(CONTEXT)), "every_step", f"{head.use.prefix}out",
                              lengths)).out

    def decoder(self, dec: Decoder, summary: str | None, top: str | None, source: tuple) -> None:
        path = ("model", "decoder")
        over = None
        if dec.init == "encoder":
            over = summary
        elif isinstance(dec.init, CellUse):
            feed = ((Read(summary, rename="encoder."),) if summary else ()) + (Read(CONTEXT),)
            over = self.add(Apply(path + ("init",), dec.init, feed, "once", f"{dec.init.prefix}out")).out
        start = self.add(StartState(path, dec.use, f"{dec.use.prefix}start", over, given=False))
        memory = tuple((cin, Read(top, src)) for cin, src in dec.memory.items()) if top else ()
        mask = (dec.memory_mask, source) if dec.memory_mask and top else None
        op = self.add(Decode(path, dec, start.out, f"{dec.head.use.prefix}out", f"{dec.use.prefix}final", "tokens",
                             memory, mask))
        self.finals.append((dec.use, op.final))
        self.add(Output(("model",), op.out, tuple(self.finals), op.tokens))

    def write(self) -> Flow:
        plan = self.plan
        if plan.fold is not None:
            fold, head = plan.fold, plan.head
            op = self.add(TreeFold(("model", "fold"), fold.node, fold.leaf, fold.input,
                                   head.use if head else None, head.at if head else "root", "nodes"))
            self.add(Output(("model",), op.out, ()))
            return self.flow
        top = last = summary = None
        if plan.stack is not None:
            path = ("model", "encoder") if plan.kind == "seq2seq" else ("model",)
            keep_last = plan.head is not None and plan.head.at == "last"
            top, last, summary = self.stack(plan.stack, path, keep_last)
        if plan.decoder is not None:
            self.decoder(plan.decoder, summary, top, tuple(plan.stack.inputs) if plan.stack else ())
            return self.flow
        out = top
        if plan.head is not None:
            out = self.head(plan.head, top, last, tuple(plan.stack.inputs), ("model", "head"))
        self.add(Output(("model",), out, tuple(self.finals)))
        return self.flow


def _bundle_prefix(path: tuple) -> str:
    """An encoder's bundles are named `encoder.layer...`, a sequence model's `layer...`."""
    return "encoder." if path[-1:] == ("encoder",) else ""


def flow_of(plan: Plan, name: str = "model") -> Flow:
    """The plan as a flat list of flow ops, in the order they run."""
    return _Writer(plan, name).write()


# -- printing ---------------------------------------------------------------------------------------
def _where(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _lengths(names: tuple) -> str:
    return f", lengths of {', '.join(names)}" if names else ""



def _describe(op: FlowOp) -> tuple[str, str]:
    """(what it writes, what it does) for one op."""
    if isinstance(op, StartState):
        inits = ", ".join(f"{n}: {_init_text(st)}" for n, st in op.use.cell.states.items()) or "no state"
        first = ("given | " if op.given else "") + (f"{op.over} | " if op.over else "")
        return op.out, f"start_state {_use(op.use)}  [{first}{inits}]"
    if isinstance(op, Scan):
        feed = ", ".join(f"{cin}: {r}" for cin, r in op.feed)
        return f"{op.out}, {op.final}", (f"scan {_use(op.use)}{' reverse' if op.reverse else ''} ({feed}) "
                                         f"from {op.state}{_lengths(op.lengths)}")
    if isinstance(op, Merge):
        return op.out, f"merge {op.how}({op.a}, {op.b})"
    if isinstance(op, TakeLast):
        return op.out, f"take_last {op.src}" + (" (step 0: reverse)" if op.reverse else "") + _lengths(op.lengths)
    if isinstance(op, Apply):
        feed = ", ".join(map(str, op.feed))
        at = "at every step" if op.at == "every_step" else "once per sequence"
        return op.out, f"apply {_use(op.use)} ({feed}) {at}{_lengths(op.lengths)}"
    if isinstance(op, Decode):
        d = op.decoder
        feed = (f"input.{d.target} (teacher forcing) | " if d.feed == "target" else "") + \
               f"its own {d.sample} token" + (f" (temperature {d.temperature:g}" + (f", top_k {d.top_k}" if d.top_k
                                                                                     else "") + ")"
                                              if d.sample == "sample" else "")
        stop = ", stop at the end token" if d.stop_at_end else ""
        memory = "".join(f", memory {cin}: {r}" for cin, r in op.memory)
        mask = f", {op.memory_mask[0]}: mask of {', '.join(op.memory_mask[1])}" if op.memory_mask else ""
        return (f"{op.out}, {op.final}, {op.tokens}",
                f"decode {_use(d.use)} from {op.state}, feeding {feed}, at most {d.steps} steps{stop}; "
                f"head {_use(d.head.use)}{memory}{mask}")
    if isinstance(op, TreeFold):
        rules = _use(op.node) + (f", leaves {_use(op.leaf)}" if op.leaf else "")
        head = f"; head {_use(op.head)} at {op.head_at.replace('_', ' ')}" if op.head else ""
        return op.out, f"tree_fold {rules} over input.{op.input}, leaves to root{head}"
    if isinstance(op, Output):
        finals = ", ".join(b for _, b in op.finals) or "none"
        tokens = f"; tokens {op.tokens}" if op.tokens else ""
        return "", f"output {op.outputs}; final state {finals}{tokens}"
    raise TypeError(f"not a flow op: {op!r}")


def _use(use: CellUse) -> str:
    where = use.prefix.rstrip(".")
    return use.cell.name + (f" as {where}" if where and where != use.cell.name else "")


def _init_text(state) -> str:
    if state.from_context:
        return f"context.{state.init}"
    if isinstance(state.init, str):
        return f"param {state.init}"
    value = state.init
    try:
        return "0" if float(value) == 0 else f"{float(value):g}"
    except (TypeError, ValueError):
        return "a constant"


def format_flow(flow: Flow) -> str:
    """The flow as text, one op a line: `writes = op ...   # spec path` (tests diff it)."""
    from .ops import fmt_shape

    head = [f"flow {flow.name}"]
    if flow.inputs:
        head.append("  input   " + ", ".join(f"{n} [B, {flow.time_dims.get(n, 'T')}, {fmt_shape(s)[1:-1]}]"
                                             .replace(", ]", "]") for n, s in flow.inputs.items()))
    if flow.context:
        head.append("  context " + ", ".join(f"{n} [B, {fmt_shape(s)[1:-1]}]".replace(", ]", "]")
                                             for n, s in flow.context.items()))
    rows = []
    for op in flow.ops:
        out, text = _describe(op)
        rows.append((f"{out} = {text}" if out else text, _where(op.path)))
    width = min(max(len(r) for r, _ in rows), 100) if rows else 0
    return "\n".join(head + [f"  {r:<{width}}   # {p}" for r, p in rows]) + "\n"


def flow_data(flow: Flow) -> dict:
    """The flow for `inspect --flow --format json`: each op's name, spec path, bundles read and written, text."""
    ops = []
    for op in flow.ops:
        out, text = _describe(op)
        ops.append({"op": op.op, "path": _where(op.path), "reads": op.reads(), "writes": op.writes(),
                    "use": getattr(op, "use", None) and op.use.prefix, "text": text})
    return {"name": flow.name, "inputs": {n: list(s) for n, s in flow.inputs.items()},
            "context": {n: list(s) for n, s in flow.context.items()}, "ops": ops}
