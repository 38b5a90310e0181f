"""The cell writer: one cell graph as C99 — two structs, a step and a scan.

    <cell>_consts   the param-only values the step reads, laid out once per set of weights
                    (the exported file holds them as `static const` data)
    <cell>_values   every value of one step of one example: inputs, the state before the step,
                    then one member per node the step computes
    <cell>_step     one step of one example: fills a <cell>_values, one commented block per node
    <cell>_scan     the loop over examples and time, with masking of padded steps and an optional
                    trace (every <cell>_values of every step)

Sizes are numbers fixed when the code is written; nothing is allocated.
Param-only nodes are not computed in C: their values come from the op
table's meanings, once per set of weights (see consts.py), and a matrix
that multiplies a vector is stored transposed, so that loop runs along
memory. A node that reads one contiguous run of another (a leading-axis
slice, `x[i]`, an output) is a view: it is read in place, not copied.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rnncompile.errors import UsageError
from rnncompile.graph import CellGraph, stages
from rnncompile.ops import OPS, fmt_shape

from .emitters import EMITTERS, UNSUPPORTED, Arg, CType, Site, View, block, emit
from .names import Namer, identifier, value_names

IND = "    "
# the scan's own names; an input, state or output called one of these gets a trailing `_`
SCAFFOLD = {"k", "B", "T", "b", "s", "t", "bt", "live", "lengths", "reverse", "work", "trace", "memcpy", "memset"}


@dataclass(frozen=True)
class Field:
    """A struct member: a node's value (or its transpose), `length` elements from `offset` on."""

    name: str
    nid: int
    shape: tuple
    offset: int
    transposed: bool = False

    @property
    def length(self) -> int:
        return max(1, math.prod(self.shape))  # ISO C has no empty arrays


@dataclass
class CellCode:
    fn: str
    structs: str  # the two typedefs (an exported file declares them before any function)
    functions: str  # the step and the scan
    helpers: set
    consts: list[Field]  # the members of <fn>_consts, in order
    values: list[Field]  # the members of <fn>_values, in order
    views: dict[int, tuple[int, int]]  # node -> (the node it is read from, offset)
    shapes: dict[int, tuple]
    inputs: list[str]  # the scan's arguments: inputs, states, outputs (spec names), in order
    states: list[str]
    outputs: list[str]
    scan_signature: str = ""  # `int <fn>_scan(...)`, for a prototype

    @property
    def source(self) -> str:
        return self.structs + "\n\n" + self.functions

    @property
    def k_size(self) -> int:
        return sum(f.length for f in self.consts) or 1

    @property
    def v_size(self) -> int:
        return sum(f.length for f in self.values)


class UnsupportedOp(UsageError):
    pass


def _declares(lines: list[str]) -> bool:
    return any(re.match(r"(const |int32_t |float |double )", x) for x in lines)


class CellWriter:
    def __init__(self, cell: CellGraph, fn: str, c: CType, shapes: dict | None = None):
        self.cell, self.fn, self.c = cell, fn, c
        self.stage = stages(cell)
        self.order = cell.order()
        self.number = {nid: i for i, nid in enumerate(self.order)}
        self.shapes = shapes or {n: cell.node(n).shape for n in cell.g.nodes}
        self.names = value_names(cell, Namer())
        self.inputs = cell.by_name("input")
        self.states = cell.by_name("state")
        self.updates = cell.updates()
        self.outputs = cell.outputs()
        self.kept: dict[int, set] = {}  # param-only node -> {"plain", "t"}: the forms the step reads
        self.t_names: dict[int, str] = {}
        self.views: dict[int, tuple[int, int]] = {}
        self.stored: list[int] = []
        self.helpers: set = set()
        params = Namer(SCAFFOLD)
        self.tokens = {nid: params.fresh(f"{name}_ids") for name, nid in self.inputs.items()
                       if cell.node(nid).dtype == "token"}

    # -- where a value is --------------------------------------------------------------------
    def is_literal(self, nid) -> bool:
        node = self.cell.node(nid)
        return node.op == "const" and self.shapes[nid] == () and not isinstance(node.attr("value"), (list, tuple))

    def arg(self, nid, values: str = "v", keep: bool = True) -> Arg:
        """How code reads node `nid`: a struct member, a view into one, a token pointer or a literal;
        a param-only one is `keep`t in the consts (else the caller keeps it if its code reads it)."""
        shape, name = self.shapes[nid], self.names[nid]
        if self.stage[nid] == "const":
            if self.is_literal(nid):
                return Arg("", (), scalar=self.c.lit(self.cell.node(nid).attr("value")))
            if keep:
                self.kept.setdefault(nid, set()).add("plain")
            return Arg(f"k->{name}", shape)
        if nid in self.tokens:
            return Arg(self.tokens[nid], shape)
        root, offset = self.views.get(nid, (nid, 0))
        return Arg(f"{values}->{self.names[root]}", shape, offset)

    def transposed(self, nid) -> Arg | None:
        shape = self.shapes[nid]
        if self.stage[nid] != "const" or len(shape) != 2 or self.is_literal(nid):
            return None
        self.kept.setdefault(nid, set()).add("t")
        if nid not in self.t_names:
            self.t_names[nid] = f"{self.names[nid]}_t"
        return Arg(f"k->{self.t_names[nid]}", shape[::-1])

    # -- the step ------------------------------------------------------------------------
    def describe(self, nid) -> str:
        node = self.cell.node(nid)
        args = ", ".join(self.names[a] if not self.is_literal(a) else self.arg(a).scalar for a in self.cell.args(nid))
        attrs = "".join(f" {k}={v}" for k, v in node.attrs if k not in ("shape", "name"))
        origin = f"  {node.origin}" if node.origin else ""
        return f"%{self.number[nid]} {self.names[nid]} = {node.op}({args}){attrs} : {fmt_shape(self.shapes[nid])}{origin}"

    def node_code(self, nid) -> list[str]:
        node = self.cell.node(nid)
        if node.op not in EMITTERS or node.op in UNSUPPORTED:
            why = UNSUPPORTED.get(node.op, "it has no C emitter")
            raise UnsupportedOp(f"the c backend cannot run `{node.op}` in cell `{self.cell.name}` "
                                f"[{node.origin or self.names[nid]}]: {why}; run this spec with --backend numpy")
        args = self.cell.args(nid)
        site = Site([self.arg(a, keep=False) for a in args], {**OPS[node.op].attrs, **node.attr_dict},
                    Arg(f"v->{self.names[nid]}", self.shapes[nid]), self.c,
                    transposed=lambda i: self.transposed(args[i]))
        got = emit(node.op, site)
        self.helpers |= site.helpers
        text = "\n".join(got) if isinstance(got, list) else ""
        for a, arg in zip(args, site.args):  # a param-only argument is kept in the form the code reads
            if arg.base.startswith("k->") and re.search(rf"{re.escape(arg.base)}\[", text):
                self.kept.setdefault(a, set()).add("plain")
        if isinstance(got, View):
            src = args[got.arg]
            root, offset = self.views.get(src, (src, 0))
            self.views[nid] = (root, offset + got.offset)
            return [f"/* {self.describe(nid)}: read in place */"]
        self.stored.append(nid)
        return [f"/* {self.describe(nid)} */"] + (block(got) if _declares(got) else got)

    def step(self) -> str:
        body = []
        for nid in self.order:
            if self.stage[nid] != "const" and self.cell.node(nid).op not in ("input", "state"):
                body += self.node_code(nid)
        if not any("k->" in line for line in body):
            body.insert(0, "(void)k;")
        for p in self.tokens.values():  # a token input only another rule reads (a tree's leaf word)
            if not any(re.search(rf"\b{p}\b", line) for line in body):
                body.insert(0, f"(void){p};")
        toks = "".join(f", const int32_t *restrict {p}" for p in self.tokens.values())
        head = [f"/* Cell `{self.cell.name}`, one step of one example: reads v's inputs and state, fills the rest of v.",
                " * Returns 0, or 1 when a token id is beyond its table. */",
                f"static int {self.fn}_step(const {self.fn}_consts *restrict k, {self.fn}_values *restrict v{toks})",
                "{"]
        return "\n".join(head + [IND + x if x else "" for x in body] + [IND + "return 0;", "}"])

    # -- the scan --------------------------------------------------------------------------
    def source_of(self, nid) -> str:
        """A pointer to node `nid`'s value, from the scan (work: the step's values)."""
        if self.is_literal(nid):  # a state or output set to a number: kept like any param-only value
            self.kept.setdefault(nid, set()).add("plain")
            return f"k->{self.names[nid]}"
        a = self.arg(nid, "work")
        return a.base + (f" + {a.offset}" if a.offset else "")

    def scan(self, static: bool = False) -> str:
        cell, T = self.cell, self.c.name
        names = Namer(SCAFFOLD)
        ins = {n: names.fresh(n) for n in cell.inputs}
        sts = {n: names.fresh(n) for n in cell.states}
        outs = {n: names.fresh(n, f"{n}_out") for n in self.outputs}
        size = {nid: math.prod(self.shapes[nid]) for nid in cell.g.nodes}
        params = [f"const {self.fn}_consts *k", "int B", "int T"]
        params += [f"const {'int32_t' if nid in self.tokens else T} *{ins[n]}" for n, nid in self.inputs.items()]
        params += [f"{T} *{sts[n]}" for n in cell.states] + ["const int32_t *lengths", "int reverse"]
        params += [f"{T} *{outs[n]}" for n in self.outputs] + [f"{self.fn}_values *work", f"{self.fn}_values *trace"]
        doc = [f"/* Cell `{cell.name}` over a batch of B sequences of T steps, one example after another.",
               f" * inputs: {self._shapes(ins, self.inputs, 'B][T')}",
               f" * state:  {self._shapes(sts, self.states, 'B')}: the start state in, the final state out",
               " * lengths: [B] real steps per sequence, or NULL for all T (a padded step keeps the state and",
               " *          outputs zeros); reverse: run from the last step to the first",
               f" * outputs: {self._shapes(outs, self.outputs, 'B][T')}",
               f" * work: one {self.fn}_values; trace: NULL, or [B][T] {self.fn}_values (every value at every step)",
               " * Returns 0, or 1 when a token id is beyond its table. */"]
        per_step = []
        for n, nid in self.inputs.items():
            if nid not in self.tokens:
                per_step.append(f"memcpy(work->{self.names[nid]}, {ins[n]} + bt * {size[nid]}, "
                                f"{size[nid]} * sizeof({T}));")
        for n, nid in self.states.items():
            per_step.append(f"memcpy(work->{self.names[nid]}, {sts[n]} + b * {size[nid]}, {size[nid]} * sizeof({T}));")
        toks = "".join(f", {ins[n]} + bt * {size[nid]}" for n, nid in self.inputs.items() if nid in self.tokens)
        per_step.append(f"if ({self.fn}_step(k, work{toks})) return 1;")
        if self.states:
            per_step.append("if (live) {  /* every next state is read before any is written */")
            per_step += [f"{IND}memcpy({sts[n]} + b * {size[sid]}, {self.source_of(self.updates[n])}, "
                         f"{size[sid]} * sizeof({T}));" for n, sid in self.states.items()]
            per_step.append("}")
        for n, nid in self.outputs.items():
            out = f"{outs[n]} + bt * {size[nid]}"
            per_step += [f"if (live) memcpy({out}, {self.source_of(nid)}, {size[nid]} * sizeof({T}));",
                         f"else memset({out}, 0, {size[nid]} * sizeof({T}));"]
        per_step.append("if (trace != NULL) trace[bt] = *work;")
        loop = ["for (int b = 0; b < B; ++b) {",
                f"{IND}for (int s = 0; s < T; ++s) {{",
                f"{IND * 2}const int t = reverse ? T - 1 - s : s;",
                f"{IND * 2}const long bt = (long)b * T + t;  /* example b at step t */",
                f"{IND * 2}const int live = lengths == NULL || t < lengths[b];"]
        if not self.states and not self.outputs:
            loop.append(f"{IND * 2}(void)live;")
        loop += [IND * 2 + x for x in per_step] + [f"{IND}}}", "}"]
        head = f"{'static ' if static else ''}int {self.fn}_scan("
        self.scan_signature = _wrap_params(head, params)
        lines = doc + [self.scan_signature] + ["{"] + [IND + x for x in loop] + [IND + "return 0;", "}"]
        return "\n".join(lines)

    def _shapes(self, params: dict, nodes: dict, lead: str) -> str:
        return ", ".join(f"{params[n]} [{lead}]" + "".join(f"[{d}]" for d in self.shapes[nid])
                         for n, nid in nodes.items()) or "none"

    # -- the structs -------------------------------------------------------------------------
    def structs(self) -> tuple[str, list[Field], list[Field]]:
        T, cell = self.c.name, self.cell
        consts, offset = [], 0
        for nid in self.order:
            for form in ("plain", "t"):
                if form in self.kept.get(nid, ()):
                    shape = self.shapes[nid] if form == "plain" else self.shapes[nid][::-1]
                    name = self.names[nid] if form == "plain" else self.t_names[nid]
                    consts.append(Field(name, nid, shape, offset, form == "t"))
                    offset += consts[-1].length
        values, offset = [], 0
        firsts = [nid for nid in self.inputs.values() if nid not in self.tokens] + list(self.states.values())
        for nid in firsts + self.stored:
            values.append(Field(self.names[nid], nid, self.shapes[nid], offset))
            offset += values[-1].length

        def member(f: Field) -> str:
            node = cell.node(f.nid)
            what = f"{self.names[f.nid]} transposed" if f.transposed else (
                "the state before the step" if node.op == "state" else "")
            note = "  ".join(x for x in (fmt_shape(f.shape), what, node.origin) if x)
            return f"{IND}{T} {f.name}[{f.length}];  /* {note} */"

        k_doc = f"/* Cell `{cell.name}`: the param-only values the step reads, laid out once per set of weights. */"
        k_body = [member(f) for f in consts] or [f"{IND}char none;  /* the step reads no param-only value */"]
        v_doc = (f"/* Cell `{cell.name}`: every value of one step of one example: the inputs, the state before the "
                 "step, then each node the step computes. */")
        parts = [k_doc, "typedef struct {", *k_body, f"}} {self.fn}_consts;"]
        if consts:
            parts.append(_packed(f"{self.fn}_consts", sum(f.length for f in consts), T))
        parts += ["", v_doc, "typedef struct {", *[member(f) for f in values], f"}} {self.fn}_values;",
                  _packed(f"{self.fn}_values", sum(f.length for f in values), T)]
        return "\n".join(parts), consts, values

    def write(self, static_scan: bool = False) -> CellCode:
        step = self.step()  # first: it decides what the structs hold
        scan = self.scan(static_scan)
        structs, consts, values = self.structs()
        rule = f"/* ---- cell `{self.cell.name}` " + "-" * max(4, 100 - 20 - len(self.cell.name)) + " */"
        return CellCode(self.fn, rule + "\n\n" + structs, step + "\n\n" + scan, self.helpers, consts, values,
                        dict(self.views), self.shapes, list(self.cell.inputs), list(self.cell.states),
                        list(self.outputs), self.scan_signature)


def _packed(struct: str, n: int, T: str) -> str:
    """A compile-time check that the members are contiguous (the caller lays the struct out as n numbers)."""
    return f"typedef char {struct}_is_packed[sizeof({struct}) == {n} * sizeof({T}) ? 1 : -1];"


def _wrap_params(head: str, params: list[str], width: int = 110) -> str:
    lines, line = [], head
    for i, p in enumerate(params):
        piece = p + (", " if i < len(params) - 1 else ")")
        if len(line) + len(piece) > width and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = " " * len(head)
        line += piece
    return "\n".join(lines + [line])


def cell_prefix(name: str) -> str:
    return identifier(name)
