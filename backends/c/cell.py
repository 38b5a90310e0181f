"""The cell writer: one cell graph as C99 — two structs, a step and a scan.

    <cell>_consts   the param-only values the step reads, laid out once per set of weights
                    (the exported file holds them as `static const` data)
    <cell>_values   every value of one step of one example: inputs, the state before the step,
                    then one member per node the step computes
    <cell>_step     one step of one example: fills a <cell>_values, one commented block per node
    <cell>_scan     the loop over examples and time, with masking of padded steps and an optional
                    trace (every <cell>_values of every step)

With `rows` > 1 (the simulation; the exported file keeps rows = 1) the step
takes a block of up to `rows` examples' values and runs each node for all of
them before the next node: a matrix-vector product with a param-only matrix
becomes one register-tiled matrix product over the block's examples
(gemm.gemm_kernel, the matrix laid out in panels once per set of weights), so
the matrix is read once per tile of rows instead of once per example. One whose
vector is (a run of) an input — the input half of an affine map, hoisted by the
passes — is computed for every step of the block's examples in one such product
before each run of STEPS steps, into `pre`, and each step copies its row in.
Each sum still runs in index order: the same numbers as one example at a time.

A cell that reads the step index `t` or the sequence length `seq_len` has them as members of
<cell>_values, set by the scan at every step, and one more function: <cell>_scan_from, the scan with
`int start, int total` after `reverse` (the `t` of the first step, for a scan that is a chunk of a
longer one; the sequence length when lengths is NULL). <cell>_scan keeps its signature and is
<cell>_scan_from(..., 0, T, ...). A cell that reads neither is written as before.

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
from rnncompile.ops import OPS, STEP_SOURCES, fmt_shape

from .emitters import EMITTERS, UNSUPPORTED, Arg, CType, Site, View, block, emit, matmul_rows
from .build import cpu_flags
from .gemm import Tiling, gemm_kernel, host_tiling, panel_length
from .names import Namer, comment, comment_text, identifier, value_names

IND = "    "
STEPS = 32  # steps whose input projections the simulation computes together (and holds: rows * STEPS rows)
# the scan's own names; an input, state or output called one of these gets a trailing `_`
SCAFFOLD = {"k", "B", "T", "b", "s", "t", "bt", "live", "lengths", "reverse", "work", "trace", "memcpy", "memset",
            "b0", "n", "r", "rows", "pre", "s0", "ts", "t0", "start", "total"}
LEAVES = ("input", "state", *STEP_SOURCES)  # values the scan puts into a step's values: never computed by it


@dataclass(frozen=True)
class Field:
    """A struct member: a node's value (or its transpose), `length` elements from `offset` on. A transpose
    in panels (`panel` columns each: gemm.panels) for a blocked product has its own, padded, `size`."""

    name: str
    nid: int
    shape: tuple
    offset: int
    transposed: bool = False
    panel: int = 0
    size: int = 0

    @property
    def length(self) -> int:
        return self.size or max(1, math.prod(self.shape))  # ISO C has no empty arrays


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
    rows: int = 1  # examples a step computes together: the scan's work is this many <fn>_values
    pre_size: int = 0  # numbers the scan's `pre` holds (rows > 1): rows * STEPS rows of input projections
    reads_time: bool = False  # it reads t or seq_len: <fn>_scan_from takes `int start, int total` after reverse
    tiling: Tiling | None = None  # the blocked products' vectors (rows > 1): the file declares their type

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
    def __init__(self, cell: CellGraph, fn: str, c: CType, shapes: dict | None = None, rows: int = 1,
                 tiling: Tiling | None = None):
        self.cell, self.fn, self.c = cell, fn, c
        self.rows = rows  # examples the step computes together (1: one example at a time)
        # the blocked products' vectors (rows > 1): this host's, unless told
        self.tiling = (tiling or host_tiling(cpu_flags())) if rows > 1 else None
        self.blocked: dict[int, tuple[Arg, Arg]] = {}  # matmul node -> (x, W^T) of its blocked product (rows > 1)
        self.hoisted: dict[int, tuple[str, int, int]] = {}  # matmul node of an input -> (input, offset, start in pre)
        self.pre_width = 0
        self.stage = stages(cell)
        self.order = cell.order()
        self.number = {nid: i for i, nid in enumerate(self.order)}
        self.shapes = shapes or {n: cell.node(n).shape for n in cell.g.nodes}
        self.names = value_names(cell, Namer())
        self.inputs = cell.by_name("input")
        self.times = [n for n in self.order if cell.node(n).op in STEP_SOURCES]  # t, seq_len: set by the scan
        self.states = cell.by_name("state")
        self.updates = cell.updates()
        self.outputs = cell.outputs()
        self.kept: dict[int, set] = {}  # param-only node -> {"plain", "t", "p"}: the forms the step reads
        self.t_names: dict[int, str] = {}  # (form "p": the transpose in panels, for a blocked product)
        self.p_names: dict[int, str] = {}
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

    def transposed(self, nid, form: str | None = "t") -> Arg | None:
        """A param-only matrix's transpose, kept in `form` (t: row-major; p: in panels; None: not kept)."""
        shape = self.shapes[nid]
        if self.stage[nid] != "const" or len(shape) != 2 or self.is_literal(nid):
            return None
        if form is None:
            return Arg("", shape[::-1])
        self.kept.setdefault(nid, set()).add(form)
        names = self.p_names if form == "p" else self.t_names
        if nid not in names:
            names[nid] = f"{self.names[nid]}_{form}"
        return Arg(f"k->{names[nid]}", shape[::-1])

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
        ins, out = [self.arg(a, keep=False) for a in args], Arg(f"v->{self.names[nid]}", self.shapes[nid])
        # a product the step computes for its block of rows at once reads its matrix in panels (only)
        blocked = self.rows > 1 and node.op == "matmul" and matmul_rows(
            Site(ins, {}, out, self.c, transposed=lambda i: self.transposed(args[i], None))) is not None
        form = "p" if blocked else "t"
        site = Site(ins, {**OPS[node.op].attrs, **node.attr_dict}, out, self.c,
                    transposed=lambda i: self.transposed(args[i], form))
        got = emit(node.op, site)
        if blocked:
            self.blocked[nid] = matmul_rows(site)
            root, offset = self.views.get(args[1], (args[1], 0))
            if self.cell.node(root).op == "input" and root not in self.tokens:
                self.hoisted[nid] = (self.cell.node(root).attr("name"), offset, self.pre_width)
                self.pre_width += math.prod(self.shapes[nid])
        self.helpers |= site.helpers
        text = "\n".join(got) if isinstance(got, list) else ""
        for a, arg in zip(args, site.args):  # a param-only argument is kept in the form the code reads
            if arg.base.startswith("k->") and re.search(rf"{re.escape(arg.base)}\[", text):
                self.kept.setdefault(a, set()).add("plain")
        if isinstance(got, View):
            src = args[got.arg]
            root, offset = self.views.get(src, (src, 0))
            self.views[nid] = (root, offset + got.offset)
            return [comment(f"{self.describe(nid)}: read in place")]
        self.stored.append(nid)
        return [comment(self.describe(nid))] + (block(got) if _declares(got) else got)

    def step(self) -> str:
        if self.rows > 1:
            return self.step_rows()
        body = []
        for nid in self.order:
            if self.stage[nid] != "const" and self.cell.node(nid).op not in LEAVES:
                body += self.node_code(nid)
        if not any("k->" in line for line in body):
            body.insert(0, "(void)k;")
        if not any("v->" in line for line in body):  # every output a view of an input (a bridge passing C on)
            body.insert(0, "(void)v;")
        for p in self.tokens.values():  # a token input only another rule reads (a tree's leaf word)
            if not any(re.search(rf"\b{p}\b", line) for line in body):
                body.insert(0, f"(void){p};")
        toks = "".join(f", const int32_t *restrict {p}" for p in self.tokens.values())
        head = [f"/* Cell `{comment_text(self.cell.name)}`, one step of one example: reads v's inputs and state, fills the rest of v.",
                " * Returns 0, or 1 when a token id is beyond its table. */",
                f"static int {self.fn}_step(const {self.fn}_consts *restrict k, {self.fn}_values *restrict v{toks})",
                "{"]
        return "\n".join(head + [IND + x if x else "" for x in body] + [IND + "return 0;", "}"])

    def step_rows(self) -> str:
        """The step for n <= rows examples at once: each node for every example before the next node, so a
        matrix-vector product becomes one blocked product over the examples (gemm_kernel), and one of an
        input is only copied in by the scan (see _blocks); every other node runs its one-example code per
        example, with `v` pointing at that example's values."""
        V, T, size = f"{self.fn}_values", self.c.name, {nid: math.prod(self.shapes[nid]) for nid in self.tokens}
        groups: list[tuple[int | None, list[str]]] = []  # (matmul done for the block at once, or None: per example)
        for nid in self.order:
            if self.stage[nid] == "const" or self.cell.node(nid).op in LEAVES:
                continue
            lines = self.node_code(nid)
            if nid in self.hoisted:
                groups.append((None, [comment(f"{self.describe(nid)}: computed before the loop, copied in")]))
            elif nid in self.blocked:
                groups.append((nid, lines))
            elif groups and groups[-1][0] is None:
                groups[-1][1].extend(lines)
            else:
                groups.append((None, list(lines)))

        def per_example(lines: list[str]) -> list[str]:
            toks = [f"const int32_t *restrict {p} = {p}_rows + (long)r * T * {size[nid]};"
                    for nid, p in self.tokens.items() if any(re.search(rf"\b{p}\b", x) for x in lines)]
            return ["for (; r < n; ++r) {", f"{IND}{V} *restrict v = rows + r;"] + [IND + x for x in toks + lines] + ["}"]

        body = []
        for nid, lines in groups:
            if all(x.startswith("/*") for x in lines):  # views only: nothing to run
                body += lines
            elif nid is None:
                body += block(["int r = 0;"] + per_example(lines))
            else:
                x, wt = self.blocked[nid]
                body += [lines[0]] + call_lines(f"{self.gemm_fn(nid)}(", [
                    "n", "1", "0", "0", _rows_ptr(x), _rows_ptr(Arg(f"v->{self.names[nid]}", ())), wt.base], ");")
        if not any("k->" in line for line in body):
            body.insert(0, "(void)k;")
        toks = "".join(f", const int32_t *restrict {p}_rows" for p in self.tokens.values())
        if self.tokens:
            toks = ", int T" + toks
            unused = [f"(void){p}_rows;" for p in self.tokens.values() if not any(f"{p}_rows" in x for x in body)]
            if len(unused) == len(self.tokens):
                unused.insert(0, "(void)T;")
            body = unused + body
        kernels, values = [], self.value_count()
        for nid, (x, wt) in self.blocked.items():
            (k, m), hoisted = wt.shape, self.hoisted.get(nid)
            # rows of x and o: an input's steps and the rows of `pre`, else the examples' values
            xs, os = (size_of(self.shapes[self.inputs[hoisted[0]]]), m) if hoisted else (values, values)
            kernels += gemm_kernel(self.gemm_fn(nid), self.c, k, m, xs, os, self.tiling, comment(
                f"{self.describe(nid)}, for n rows at once: o_r = W x_r, with W^T in panels in w")) + [""]
        head = kernels + [f"/* Cell `{comment_text(self.cell.name)}`, one step of n examples (at most {self.rows}): reads the inputs and state "
                f"of rows[0..n-1], fills the rest.",
                " * A token input points at the first example's ids; the next example's are T steps further on.",
                " * Returns 0, or 1 when a token id is beyond its table. */",
                f"static int {self.fn}_step(const {self.fn}_consts *restrict k, {V} *restrict rows, int n{toks})",
                "{"]
        return "\n".join(head + [IND + x if x else "" for x in body] + [IND + "return 0;", "}"])

    def value_count(self) -> int:
        """The numbers in one <cell>_values (what structs() lays out)."""
        firsts = [n for n in self.inputs.values() if n not in self.tokens] + list(self.states.values()) + self.times
        return sum(max(1, size_of(self.shapes[n])) for n in firsts + self.stored)

    def gemm_fn(self, nid) -> str:
        return f"{self.fn}_{self.names[nid]}_rows"

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
        params += [f"{T} *{outs[n]}" for n in self.outputs]
        params += [f"{self.fn}_values *{'work' if self.rows == 1 else 'rows'}", f"{self.fn}_values *trace"]
        if self.rows > 1:
            params.append(f"{T} *pre")
        order = "one example after another" if self.rows == 1 else f"blocks of {self.rows} examples at a time"
        doc = [f"/* Cell `{comment_text(cell.name)}` over a batch of B sequences of T steps, {order}.",
               f" * inputs: {self._shapes(ins, self.inputs, 'B][T')}",
               f" * state:  {self._shapes(sts, self.states, 'B')}: the start state in, the final state out",
               " * lengths: [B] real steps per sequence, or NULL for all T (a padded step keeps the state and",
               " *          outputs zeros); reverse: run from the last step to the first",
               f" * outputs: {self._shapes(outs, self.outputs, 'B][T')}",
               f" * work: one {self.fn}_values; trace: NULL, or [B][T] {self.fn}_values (every value at every step)"
               if self.rows == 1 else
               f" * rows: {self.rows} {self.fn}_values (the examples of a block); trace: NULL, or [B][T] {self.fn}_values;\n"
               f" * pre: {self.rows * STEPS * self.pre_width} numbers (the input projections of a block's next {STEPS} "
               f"steps, [rows][{STEPS}][..])",
               " * Returns 0, or 1 when a token id is beyond its table. */"]
        per_step = []
        for n, nid in self.inputs.items():
            if nid not in self.tokens:
                per_step.append(f"memcpy(work->{self.names[nid]}, {ins[n]} + bt * {size[nid]}, "
                                f"{size[nid]} * sizeof({T}));")
        for n, nid in self.states.items():
            per_step.append(f"memcpy(work->{self.names[nid]}, {sts[n]} + b * {size[nid]}, {size[nid]} * sizeof({T}));")
        for nid in self.times:
            value = "start + t" if cell.node(nid).op == "step_index" else "lengths != NULL ? lengths[b] : total"
            per_step.append(f"work->{self.names[nid]}[0] = ({T})({value});  /* {cell.node(nid).attr('name')} */")
        toks = "".join(f", {ins[n]} + bt * {size[nid]}" for n, nid in self.inputs.items() if nid in self.tokens)
        if self.rows > 1:
            toks = "".join(f", {ins[n]} + ((long)b0 * T + t) * {size[nid]}" for n, nid in self.inputs.items()
                           if nid in self.tokens)
            call = f"if ({self.fn}_step(k, rows, n{', T' if self.tokens else ''}{toks})) return 1;"
        before = list(per_step)
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
        if self.rows > 1:
            projections, copies = [], []
            for nid, (name, offset, start) in self.hoisted.items():
                m, (x, wt) = size[nid], self.blocked[nid]
                at = f"pre + {self.rows * STEPS * start}" if start else "pre"
                width = size[self.inputs[name]]
                projections += call_lines(f"{self.gemm_fn(nid)}(", [
                    "ts", "n", f"(long)T * {width}", str(STEPS * m),
                    f"{ins[name]} + ((long)b0 * T + t0) * {width}" + (f" + {offset}" if offset else ""), at, wt.base], ");")
                copies.append(f"memcpy(work->{self.names[nid]}, {at} + ((long)r * {STEPS} + t - t0) * {m}, {m} * sizeof({T}));")
            loop = self._blocks(before + copies, call, per_step[len(before) + 1:], projections)
        else:
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
        if not self.times:
            lines = doc + [self.scan_signature] + ["{"] + [IND + x for x in loop] + [IND + "return 0;", "}"]
            return "\n".join(lines)
        # reading t or seq_len: the loop takes where it starts and the sequence's length; _scan starts at 0
        at = params.index("int reverse") + 1
        full = params[:at] + ["int start", "int total"] + params[at:]
        doc_from = [doc[0], " * The scan of a chunk of a longer sequence: start is the step index t of its first step,",
                    " * total the sequence length seq_len when lengths is NULL. Otherwise as below. */"]
        head_from = f"{'static ' if static else ''}int {self.fn}_scan_from("
        names_of = [p.rsplit("*", 1)[-1].rsplit(" ", 1)[-1] for p in params]
        call = names_of[:at] + ["0", "T"] + names_of[at:]
        lines = (doc_from + [_wrap_params(head_from, full)] + ["{", f"{IND}(void)start;", f"{IND}(void)total;"]
                 + [IND + x for x in loop]
                 + [IND + "return 0;", "}", ""] + doc + [self.scan_signature, "{"]
                 + [IND + x for x in call_lines(f"return {self.fn}_scan_from(", call, ");")] + ["}"])
        return "\n".join(lines)

    def _blocks(self, before: list[str], call: str, after: list[str], projections: list[str]) -> list[str]:
        """The scan's loop for rows > 1: over blocks of examples, then runs of STEPS steps (each example's
        `projections` of steps t0 .. t0 + ts - 1 first), then steps; per step, each example's inputs and
        state go into its values, one step runs for the block, and each example's results come out.
        `before` and `after` are the one-example statements (`work`: that example's values)."""
        V, n = f"{self.fn}_values", self.rows
        example = ["const int b = b0 + r;", "const long bt = (long)b * T + t;  /* example b at step t */",
                   f"{V} *const work = rows + r;"]
        out_example = example + ["const int live = lengths == NULL || t < lengths[b];"]
        if not self.states and not self.outputs:
            out_example.append("(void)live;")
        in_example = [x for x in example if "bt" not in x or any(re.search(r"\bbt\b", y) for y in before)]
        ins = ["for (int r = 0; r < n; ++r) {"] + [IND + x for x in in_example + before] + ["}"] if before else []
        outs = ["for (int r = 0; r < n; ++r) {"] + [IND + x for x in out_example + after] + ["}"]
        return [f"for (int b0 = 0; b0 < B; b0 += {n}) {{",
                f"{IND}const int n = B - b0 < {n} ? B - b0 : {n};  /* examples b0 .. b0 + n - 1 */",
                f"{IND}for (int s0 = 0; s0 < T; s0 += {STEPS}) {{",
                f"{IND * 2}const int ts = T - s0 < {STEPS} ? T - s0 : {STEPS};  /* steps s0 .. s0 + ts - 1 */",
                f"{IND * 2}const int t0 = reverse ? T - s0 - ts : s0;  /* the first of their times */",
                *[IND * 2 + x for x in (projections or ["(void)pre;", "(void)t0;"])],
                f"{IND * 2}for (int s = s0; s < s0 + ts; ++s) {{",
                f"{IND * 3}const int t = reverse ? T - 1 - s : s;",
                *[IND * 3 + x for x in ins + [call] + outs],
                f"{IND * 2}}}", f"{IND}}}", "}"]

    def _shapes(self, params: dict, nodes: dict, lead: str) -> str:
        return ", ".join(f"{params[n]} [{lead}]" + "".join(f"[{d}]" for d in self.shapes[nid])
                         for n, nid in nodes.items()) or "none"

    # -- the structs -------------------------------------------------------------------------
    def structs(self) -> tuple[str, list[Field], list[Field]]:
        T, cell = self.c.name, self.cell
        consts, offset = [], 0
        # the panels first: each a whole number of cache lines, so every one starts on a line (gemm.ALIGN)
        for nid in [n for n in self.order if "p" in self.kept.get(n, ())]:
            k, m = shape = self.shapes[nid][::-1]
            consts.append(Field(self.p_names[nid], nid, shape, offset, True, self.tiling.width(self.c),
                                panel_length(k, m, self.c, self.tiling)))
            offset += consts[-1].length
        for nid in self.order:
            for form in ("plain", "t"):
                if form in self.kept.get(nid, ()):
                    shape = self.shapes[nid] if form == "plain" else self.shapes[nid][::-1]
                    name = self.names[nid] if form == "plain" else self.t_names[nid]
                    consts.append(Field(name, nid, shape, offset, form == "t"))
                    offset += consts[-1].length
        values, offset = [], 0
        firsts = [nid for nid in self.inputs.values() if nid not in self.tokens] + list(self.states.values()) \
            + self.times
        for nid in firsts + self.stored:
            values.append(Field(self.names[nid], nid, self.shapes[nid], offset))
            offset += values[-1].length

        def member(f: Field) -> str:
            node = cell.node(f.nid)
            what = f"{self.names[f.nid]} transposed" + (f", in panels of {f.panel} columns" if f.panel else "") \
                if f.transposed else (
                "the state before the step" if node.op == "state" else
                f"`{node.attr('name')}`, set by the scan" if node.op in STEP_SOURCES else "")
            note = "  ".join(x for x in (fmt_shape(f.shape), what, node.origin) if x)
            return f"{IND}{T} {f.name}[{f.length}];  {comment(note)}"

        k_doc = f"/* Cell `{comment_text(cell.name)}`: the param-only values the step reads, laid out once per set of weights. */"
        k_body = [member(f) for f in consts] or [f"{IND}char none;  /* the step reads no param-only value */"]
        v_doc = (f"/* Cell `{comment_text(cell.name)}`: every value of one step of one example: the inputs, the state before the "
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
        rule = comment(f"---- cell `{self.cell.name}` " + "-" * max(4, 100 - 20 - len(self.cell.name)))
        return CellCode(self.fn, rule + "\n\n" + structs, step + "\n\n" + scan, self.helpers, consts, values,
                        dict(self.views), self.shapes, list(self.cell.inputs), list(self.cell.states),
                        list(self.outputs), self.scan_signature, self.rows, self.rows * STEPS * self.pre_width,
                        bool(self.times), self.tiling if self.blocked else None)


def size_of(shape) -> int:
    return math.prod(shape)


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


def _rows_ptr(a: Arg) -> str:
    """Where a member (v->name, from an offset on) of the first example of a block is: `rows->name + offset`."""
    return f"rows->{a.base[3:]}" + (f" + {a.offset}" if a.offset else "")


def cell_prefix(name: str) -> str:
    return identifier(name)


def call_lines(head: str, args: list[str], tail: str, width: int = 106) -> list[str]:
    """`head` args `tail`, wrapped under the opening parenthesis."""
    lines, line = [], head
    for i, a in enumerate(args):
        piece = a + (", " if i < len(args) - 1 else tail)
        if len(line) + len(piece) > width and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = " " * len(head)
        line += piece
    return lines + [line]
