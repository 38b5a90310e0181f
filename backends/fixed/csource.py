"""Integer C for one fixed-point cell: emitters keyed by the op table's names.

The generated function scans a batch of sequences one example at a time. Every value is an int8_t, int16_t
or int32_t array of its node's format (rnncompile/quant/assign.py); each emitter computes the exact result in
int64_t and brings it into the node's format with q_shift (rounding half away from zero) and q_sat
(saturation), as backends/fixed/kernels.py does in NumPy, so the two agree integer for integer. There is no
float in the file. Values made from params alone (weight slices, fused matrices) are computed once by the
interpreter and passed in as `consts`.

    void rnnq_<cell>_scan(int32_t batch, int32_t steps, int32_t reverse, const int32_t *lengths,
                          int32_t start, int32_t total, const void *const *consts,
                          const void *const *inputs, void *const *states, void *const *outputs);

inputs: [steps][batch][size] each, time-major; states: [batch][size], the start state in, the final out;
outputs: [steps][batch][size], zero at padded steps (lengths: real steps per example, or NULL for all).
A scan that is one chunk of a longer one says where it starts (`start`, the step index `t` of its first
step) and how long the whole sequence is (`total`, the `seq_len` of every sequence without lengths).
"""
from __future__ import annotations

import math
import re

from rnncompile.errors import UsageError
from rnncompile.quant.formats import QFormat
from rnncompile.quant.tables import IN_FRAC, TABLES

HEADERS = "#include <stddef.h>\n#include <stdint.h>\n"

SHIFT = """
/* v * 2^-by rounded half away from zero (by > 0), or v * 2^-by exactly (by <= 0); never a shift of a
   negative number, so every step is defined C99 */
static int64_t q_shift(int64_t v, int by)
{
    int64_t half;
    if (by <= 0) {
        return v * ((int64_t)1 << -by);
    }
    half = (int64_t)1 << (by - 1);
    return v >= 0 ? (v + half) >> by : -((-v + half) >> by);
}
"""

SAT = """
static int64_t q_sat(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}
"""

LOOKUP = """
/* a table of f at 2^(16 - rbits) points per unit from lo, read at x (16 fraction bits), interpolated */
static int64_t q_lookup(const int16_t *table, int64_t size, int64_t lo, int64_t hi, int rbits, int64_t x)
{
    int64_t i, r, next;
    x = q_sat(x, lo, hi) - lo;
    i = x >> rbits;
    r = x & (((int64_t)1 << rbits) - 1);
    next = table[i + 1 < size ? i + 1 : size - 1];
    return table[i] + q_shift((next - table[i]) * r, rbits);
}
"""


def prelude(code: str) -> str:
    """The headers and the helpers `code` calls (an unused static function would be a warning)."""
    lookup = "q_lookup(" in code
    parts = [HEADERS]
    parts += [SHIFT] if lookup or "q_shift(" in code else []
    parts += [SAT] if lookup or "q_sat(" in code else []
    parts += [LOOKUP] if lookup else []
    return "".join(parts)


def tables(names) -> str:
    """The activation tables as static arrays."""
    out = []
    for name in sorted(names):
        t = TABLES[name]
        out.append(f"/* {name} at {1 << t.step_bits} points per unit on [{t.lo}, {t.hi}], {t.out} */")
        out.append(f"static const int16_t TABLE_{name.upper()}[{t.size}] = {c_values(t.entries)};\n")
    return "\n".join(out)


def note(text) -> str:
    """Spec text for a C comment: names, paths and formats only; anything else (`*/`, a newline, a trigraph's
    `?`) becomes `_`, so no spec can end the comment early."""
    return re.sub(r"[^0-9A-Za-z_.,:\[\] @=-]", "_", str(text))


def c_values(values) -> str:
    """An array initialiser, 16 values a line."""
    flat = [str(int(v)) for v in values.reshape(-1)]
    return "{\n    " + ",\n    ".join(", ".join(flat[i:i + 16]) for i in range(0, len(flat), 16)) + "\n}"


def c_name(text: str) -> str:
    name = re.sub(r"[^0-9A-Za-z_]", "_", text)
    return name if name and not name[0].isdigit() else f"c_{name}"


class Emitter:
    """Renders one planned cell (backends/fixed/__init__.FixedPlan)."""

    def __init__(self, plan):
        self.plan, self.cell = plan, plan.cell
        self.fmt = plan.fmt
        self.consts = self._consts()
        self.tables: set[str] = set()
        self.lines: list[str] = []

    # -- what the step reads from outside ----------------------------------------------------------
    def _consts(self) -> list[int]:
        """Const-stage values the step reads (in node order)."""
        p = self.plan
        read = {a for stage in ("seq", "loop") for _, _, args in p.steps[stage] for a in args}
        read |= set(p.updates.values()) | set(p.outputs.values())
        return [n for n in self.cell.order() if p.stage[n] == "const" and n in read
                and self.cell.node(n).op != "output"]

    def ref(self, nid: int) -> str:
        node = self.cell.node(nid)
        if self.plan.stage[nid] == "const":
            return f"k{nid}"
        if node.op == "input":
            return f"x{nid}"
        if node.op == "state":
            return f"s{nid}"
        return f"v{nid}"

    def ctype(self, nid: int) -> str:
        return "int32_t" if nid not in self.fmt else self.fmt[nid].ctype

    def size(self, nid: int) -> int:
        return int(math.prod(self.cell.node(nid).shape))

    def at(self, nid: int, i: str, n: int) -> str:
        """Element i of argument nid against the result being emitted (n elements): NumPy's broadcasting,
        shapes aligned on the right, an axis of 1 stretched."""
        size = self.size(nid)
        if size == n:
            return f"{self.ref(nid)}[{i}]"
        if size == 1:
            return f"{self.ref(nid)}[0]"
        out, arg = self.cell.node(self.current).shape, self.cell.node(nid).shape
        terms = []
        for d in range(1, len(arg) + 1):
            if arg[-d] == 1:
                continue
            out_stride, arg_stride = math.prod(out[len(out) - d + 1:]), math.prod(arg[len(arg) - d + 1:])
            terms.append(f"({i} / {out_stride} % {out[-d]}) * {arg_stride}")
        return f"{self.ref(nid)}[{' + '.join(terms)}]"

    # -- rendering -------------------------------------------------------------------------------
    def render(self, fn: str) -> str:
        """A module of its own: the prelude, the tables the cell reads, its scan function."""
        function = self.function(fn)
        head = f"/* cell {note(self.cell.name)}: fixed point, generated by rnncompile: integer arithmetic only */"
        return "\n".join([head, prelude(function), tables(self.tables), function])

    def function(self, fn: str, static: bool = False) -> str:
        """The scan function (the tables it reads are added to self.tables)."""
        p, cell = self.plan, self.cell
        body = []
        for nid, _, args in p.steps["seq"] + p.steps["loop"]:
            node = cell.node(nid)
            if node.op == "output":
                continue
            self.current = nid
            emit = EMITTERS.get(node.op)
            if emit is None:
                raise UsageError(f"cell `{cell.name}`: the fixed-point C has no `{node.op}` yet "
                                 f"({node.origin}); the fixed interpreter runs it")
            decl = f"{self.ctype(nid)} v{nid}[{max(1, self.size(nid))}];"
            body.append(f"            {decl}  /* {note(node.label or node.op)} {self.fmt.get(nid, 'token')}"
                        f"{'  ' + note(node.origin) if node.origin else ''} */")
            body += ["            " + line for line in emit(self, nid, args, node)]
        out = []
        out.append(f"{'static ' if static else ''}void {fn}(int32_t batch, int32_t steps, int32_t reverse,\n"
                   f"    const int32_t *lengths, int32_t start, int32_t total, const void *const *consts,\n"
                   f"    const void *const *inputs, void *const *states, void *const *outputs)\n{{")
        out.append("    int32_t b, k;")
        ops = {op for op in p.times.values()}
        out += [f"    (void){name};" for name, op in (("start", "step_index"), ("total", "seq_length"))
                if op not in ops]
        out += [f"    (void){name};" for name, used in (("consts", self.consts), ("inputs", p.inputs),
                                                        ("states", p.states), ("outputs", p.outputs)) if not used]
        for i, nid in enumerate(self.consts):
            out.append(f"    const {self.ctype(nid)} *k{nid} = (const {self.ctype(nid)} *)consts[{i}];")
        out.append("    for (b = 0; b < batch; b++) {")
        for i, (name, sid) in enumerate(p.states.items()):
            out.append(f"        {self.ctype(sid)} *s{sid} = ({self.ctype(sid)} *)states[{i}] + (size_t)b * "
                       f"{max(1, self.size(sid))};  /* state {note(name)} {self.fmt[sid]} */")
        out.append("        for (k = 0; k < steps; k++) {")
        out.append("            int32_t t = reverse ? steps - 1 - k : k;")
        out.append("            size_t row = (size_t)t * (size_t)batch + (size_t)b;")
        out.append("            if (lengths != 0 && t >= lengths[b]) {\n                continue;\n            }")
        for nid, op in p.times.items():
            value = "start + t" if op == "step_index" else "lengths != 0 ? lengths[b] : total"
            out.append(f"            int32_t v{nid}[1];  /* {'t' if op == 'step_index' else 'seq_len'} */")
            out.append(f"            v{nid}[0] = {value};")
        for i, (name, nid) in enumerate(p.inputs.items()):
            ct = self.ctype(nid)
            out.append(f"            const {ct} *x{nid} = (const {ct} *)inputs[{i}] + row * {max(1, self.size(nid))};"
                       f"  /* input {note(name)} */")
            if not cell.users(nid):  # an input the step does not read (a start state's, say)
                out.append(f"            (void)x{nid};")
        out += body
        out.append("            (void)row;")
        for i, (name, nid) in enumerate(p.outputs.items()):
            src = cell.args(nid)[0]
            ct, n = self.ctype(src), max(1, self.size(src))
            out.append(f"            {{  /* output {note(name)} */\n                int32_t i;\n"
                       f"                {ct} *o = ({ct} *)outputs[{i}] + row * {n};\n"
                       f"                for (i = 0; i < {n}; i++) {{\n                    o[i] = {self.ref(src)}[i];\n"
                       f"                }}\n            }}")
        for name, nid in p.updates.items():  # every value of the step is made before any state moves on
            sid = p.states[name]
            n = max(1, self.size(sid))
            out.append(f"            {{  /* next {note(name)} */\n                int32_t i;\n"
                       f"                for (i = 0; i < {n}; i++) {{\n"
                       f"                    s{sid}[i] = {self.ref(nid)}[i];\n"
                       f"                }}\n            }}")
        out.append("        }\n    }\n}\n")
        return "\n".join(out)


# ---- emitters: (emitter, node id, argument ids, node) -> lines of C -----------------------------------

def _loop(n: int, body: list[str]) -> list[str]:
    head = ["{", "    int32_t i;", f"    for (i = 0; i < {n}; i++) {{"]
    return head + ["        " + b for b in body] + ["    }", "}"]


def _widen(expr: str, by: int) -> str:
    """An integer expression as int64_t, times 2**by (by >= 0)."""
    return f"(int64_t){expr}" if by == 0 else f"(int64_t){expr} * {1 << by}"


def bounds(f: QFormat) -> str:
    """The format's range as two C integer constants (-2**31 written so that it is an int expression)."""
    lo = f"({f.lo + 1} - 1)" if f.lo == -(1 << 31) else str(f.lo)
    return f"{lo}, {f.hi}"


def _store(e: Emitter, nid: int, value: str, frac: int) -> str:
    f: QFormat = e.fmt[nid]
    return f"v{nid}[i] = ({f.ctype})q_sat(q_shift({value}, {frac - f.n}), {bounds(f)});"


def _add(sign: str):
    def emit(e: Emitter, nid, args, node):
        n = e.size(nid)
        fa, fb = e.fmt[args[0]], e.fmt[args[1]]
        f = max(fa.n, fb.n)
        value = f"{_widen(e.at(args[0], 'i', n), f - fa.n)} {sign} {_widen(e.at(args[1], 'i', n), f - fb.n)}"
        return _loop(n, [_store(e, nid, value, f)])
    return emit


def _mul(e: Emitter, nid, args, node):
    n = e.size(nid)
    fa, fb = e.fmt[args[0]], e.fmt[args[1]]
    return _loop(n, [_store(e, nid, f"(int64_t){e.at(args[0], 'i', n)} * {e.at(args[1], 'i', n)}", fa.n + fb.n)])


def _outer(e: Emitter, nid, args, node):
    cols = e.cell.node(args[1]).shape[0]
    fa, fb = e.fmt[args[0]], e.fmt[args[1]]
    return _loop(e.size(nid), [_store(e, nid, f"(int64_t){e.ref(args[0])}[i / {cols}] * {e.ref(args[1])}[i % {cols}]",
                                      fa.n + fb.n)])


def _extreme(op: str):
    def emit(e: Emitter, nid, args, node):
        n = e.size(nid)
        fa, fb = e.fmt[args[0]], e.fmt[args[1]]
        f = max(fa.n, fb.n)
        return _loop(n, [f"int64_t a = {_widen(e.at(args[0], 'i', n), f - fa.n)};",
                         f"int64_t c = {_widen(e.at(args[1], 'i', n), f - fb.n)};",
                         _store(e, nid, f"(a {op} c ? a : c)", f)])
    return emit


def _aligned_pair(e: Emitter, nid, args) -> tuple[list[str], int]:
    """`int64_t a, c`: element i of the two arguments at their larger N."""
    n = e.size(nid)
    fa, fb = e.fmt[args[-2]], e.fmt[args[-1]]
    f = max(fa.n, fb.n)
    return [f"int64_t a = {_widen(e.at(args[-2], 'i', n), f - fa.n)};",
            f"int64_t c = {_widen(e.at(args[-1], 'i', n), f - fb.n)};"], f


def _mod(e: Emitter, nid, args, node):
    """Python's floor remainder (the sign of the divisor); a zero divisor gives 0, as in kernels._mod."""
    pair, f = _aligned_pair(e, nid, args)
    return _loop(e.size(nid), pair + ["int64_t r = c == 0 ? 0 : a % c;", "if (r != 0 && ((r < 0) != (c < 0))) {",
                                      "    r += c;", "}", _store(e, nid, "r", f)])


def _compare(op: str):
    def emit(e: Emitter, nid, args, node):
        pair, _ = _aligned_pair(e, nid, args)
        return _loop(e.size(nid), pair + [f"v{nid}[i] = (int8_t)(a {op} c);"])
    return emit


def _where(e: Emitter, nid, args, node):
    n, f = e.size(nid), e.fmt[nid]
    c, a, b = (e.at(x, "i", n) for x in args)
    fa, fb = e.fmt[args[1]], e.fmt[args[2]]
    return _loop(n, [f"v{nid}[i] = ({f.ctype})q_sat({c} != 0 ? q_shift({a}, {fa.n - f.n}) : "
                     f"q_shift({b}, {fb.n - f.n}), {bounds(f)});"])


def _neg(e: Emitter, nid, args, node):
    n = e.size(nid)
    return _loop(n, [_store(e, nid, f"-(int64_t){e.at(args[0], 'i', n)}", e.fmt[args[0]].n)])


def _relu(e: Emitter, nid, args, node):
    n = e.size(nid)
    a = e.at(args[0], 'i', n)
    return _loop(n, [_store(e, nid, f"({a} > 0 ? (int64_t){a} : 0)", e.fmt[args[0]].n)])


def _matmul(e: Emitter, nid, args, node):
    (a, b), cell = args, e.cell
    sa, sb = cell.node(a).shape, cell.node(b).shape
    lines, refs, fracs = [], [], []
    for i, (arg, to) in enumerate(zip(args, e.plan.narrow.get(nid) or (None, None))):
        if to is None:
            refs.append(e.ref(arg))
            fracs.append(e.fmt[arg].n)
            continue
        name, n = f"n{nid}_{i}", e.size(arg)  # a 32-bit operand, first brought into 16 bits
        lines += [f"{to.ctype} {name}[{n}];"] + _loop(n, [
            f"{name}[i] = ({to.ctype})q_sat(q_shift({e.ref(arg)}[i], {e.fmt[arg].n - to.n}), {bounds(to)});"])
        refs.append(name)
        fracs.append(to.n)
    ra, rb = refs
    f = e.fmt[nid]
    store = f"v{nid}[o] = ({f.ctype})q_sat(q_shift(acc, {sum(fracs) - f.n}), {bounds(f)});"
    if len(sa) == 2 and len(sb) == 1:  # [m, k] @ [k]
        m, k = sa
        term = f"(int64_t){ra}[o * {k} + j] * {rb}[j]"
    elif len(sa) == 1 and len(sb) == 2:  # [k] @ [k, m]
        k, m = sb
        term = f"(int64_t){ra}[j] * {rb}[j * {m} + o]"
    elif len(sa) == 1 and len(sb) == 1:
        k, m = sa[0], 1
        term = f"(int64_t){ra}[j] * {rb}[j]"
    elif len(sa) == 2 and len(sb) == 2:  # [r, k] @ [k, c]: entry o is row o / c, column o % c
        (r, k), c = sa, sb[1]
        m = r * c
        term = f"(int64_t){ra}[(o / {c}) * {k} + j] * {rb}[j * {c} + o % {c}]"
    else:
        raise UsageError(f"cell `{cell.name}`: the fixed-point C multiplies a matrix and a vector, or two vectors; "
                         f"{node.origin} is {list(sa)} @ {list(sb)}")
    return ["{"] + ["    " + x for x in lines] + [
        "    int32_t o, j;", f"    for (o = 0; o < {m}; o++) {{", "        int64_t acc = 0;",
        f"        for (j = 0; j < {k}; j++) {{", f"            acc += {term};", "        }",
        f"        {store}", "    }", "}"]


def _sum(e: Emitter, nid, args, node):
    """Over one axis (or all): the argument read as [outer, n, inner]."""
    shape, axis = e.cell.node(args[0]).shape, node.attr("axis")
    if axis is None:
        outer, n, inner = 1, e.size(args[0]), 1
    else:
        ax = axis % len(shape)
        outer, n, inner = math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1:])
    f, a = e.fmt[nid], e.ref(args[0])
    return ["{", "    int32_t o, j, i;", f"    for (o = 0; o < {outer}; o++) {{",
            f"        for (i = 0; i < {inner}; i++) {{",
            "            int64_t acc = 0;", f"            for (j = 0; j < {n}; j++) {{",
            f"                acc += {a}[(o * {n} + j) * {inner} + i];", "            }",
            f"            v{nid}[o * {inner} + i] = ({f.ctype})q_sat(q_shift(acc, {e.fmt[args[0]].n - f.n}), "
            f"{bounds(f)});", "        }", "    }", "}"]


def _lookup(name: str, x: str) -> str:
    t = TABLES[name]
    return (f"q_lookup(TABLE_{name.upper()}, {t.size}, {t.lo << IN_FRAC}, {t.hi << IN_FRAC}, "
            f"{t.remainder_bits}, {x})")


def _table(name: str):
    def emit(e: Emitter, nid, args, node):
        e.tables.add(name)
        n = e.size(nid)
        x = f"q_shift({e.at(args[0], 'i', n)}, {e.fmt[args[0]].n - IN_FRAC})"
        return _loop(n, [_store(e, nid, _lookup(name, x), TABLES[name].out.n)])
    return emit


def _softmax(e: Emitter, nid, args, node):
    shape = e.cell.node(nid).shape
    if len(shape) != 1:
        raise UsageError(f"cell `{e.cell.name}`: the fixed-point C takes softmax of a vector ({node.origin})")
    e.tables.add("exp")
    n, f, fa = shape[0], e.fmt[nid], e.fmt[args[0]]
    a = e.ref(args[0])
    return ["{", "    int32_t i;", f"    int64_t top = q_shift({a}[0], {fa.n - IN_FRAC}), total = 0;",
            f"    int64_t ex[{n}];",
            f"    for (i = 1; i < {n}; i++) {{", f"        int64_t x = q_shift({a}[i], {fa.n - IN_FRAC});",
            "        top = x > top ? x : top;", "    }",
            f"    for (i = 0; i < {n}; i++) {{",
            f"        ex[i] = {_lookup('exp', f'q_shift({a}[i], {fa.n - IN_FRAC}) - top')};",
            "        total += ex[i];", "    }",
            f"    for (i = 0; i < {n}; i++) {{",
            f"        v{nid}[i] = ({f.ctype})q_sat((ex[i] * {1 << f.n} + (total >> 1)) / total, {bounds(f)});",
            "    }", "}"]


def _masked_softmax(e: Emitter, nid, args, node):
    """As kernels._masked_softmax: the max over the kept entries, 0 at masked ones, all 0 when all are."""
    shape = e.cell.node(nid).shape
    if len(shape) != 1 or e.size(args[1]) not in (1, shape[0]):
        raise UsageError(f"cell `{e.cell.name}`: the fixed-point C takes masked_softmax of a vector with a mask "
                         f"of its size ({node.origin})")
    e.tables.add("exp")
    n, f, fa = shape[0], e.fmt[nid], e.fmt[args[0]]
    a, mask = e.ref(args[0]), e.at(args[1], "i", shape[0])
    x = f"q_shift({a}[i], {fa.n - IN_FRAC})"
    return ["{", "    int32_t i, any = 0;", "    int64_t top = 0, total = 0;", f"    int64_t ex[{n}];",
            f"    for (i = 0; i < {n}; i++) {{", f"        if ({mask} != 0 && (!any || {x} > top)) {{",
            f"            top = {x};", "            any = 1;", "        }", "    }",
            f"    for (i = 0; i < {n}; i++) {{",
            f"        ex[i] = {mask} != 0 ? {_lookup('exp', f'{x} - top')} : 0;",
            "        total += ex[i];", "    }",
            f"    for (i = 0; i < {n}; i++) {{",
            f"        v{nid}[i] = ({f.ctype})(total > 0 ? q_sat((ex[i] * {1 << f.n} + (total >> 1)) / total, "
            f"{bounds(f)}) : 0);", "    }", "}"]


def _concat(e: Emitter, nid, args, node):
    if len(e.cell.node(nid).shape) != 1:
        raise UsageError(f"cell `{e.cell.name}`: the fixed-point C joins vectors ({node.origin})")
    f, lines, at = e.fmt[nid], [], 0
    for a in args:
        n = e.size(a)
        fa = e.fmt[a]
        lines += _loop(n, [f"v{nid}[{at} + i] = ({f.ctype})q_sat(q_shift({e.ref(a)}[i], {fa.n - f.n}), {bounds(f)});"])
        at += n
    return lines


def _copy(first):
    def emit(e: Emitter, nid, args, node):
        shape = e.cell.node(args[0]).shape
        if len(shape) != 1:
            raise UsageError(f"cell `{e.cell.name}`: the fixed-point C slices vectors ({node.origin})")
        start = first(node, shape)
        return _loop(e.size(nid), [f"v{nid}[i] = {e.ref(args[0])}[{start} + i];"])
    return emit


def _embed(e: Emitter, nid, args, node):
    ids, table = args
    width, rows = e.cell.node(table).shape[1], max(1, e.size(ids))
    return ["{", "    int32_t p, i;", f"    for (p = 0; p < {rows}; p++) {{",
            f"        for (i = 0; i < {width}; i++) {{",
            f"            v{nid}[p * {width} + i] = {e.ref(table)}[(size_t){e.ref(ids)}[p] * {width} + i];",
            "        }", "    }", "}"]


def _one_hot(e: Emitter, nid, args, node):
    return _loop(e.size(nid), [f"v{nid}[i] = (int8_t)({e.ref(args[0])}[0] == i);"])


EMITTERS = {
    "add": _add("+"),
    "sub": _add("-"),
    "mul": _mul,
    "outer": _outer,
    "maximum": _extreme(">"),
    "minimum": _extreme("<"),
    "neg": _neg,
    "mod": _mod,
    "lt": _compare("<"),
    "le": _compare("<="),
    "gt": _compare(">"),
    "ge": _compare(">="),
    "eq": _compare("=="),
    "ne": _compare("!="),
    "where": _where,
    "relu": _relu,
    "matmul": _matmul,
    "sum": _sum,
    "sigmoid": _table("sigmoid"),
    "tanh": _table("tanh"),
    "softmax": _softmax,
    "masked_softmax": _masked_softmax,
    "concat": _concat,
    "slice": _copy(lambda node, shape: node.attr("start") or 0),
    "chunk": _copy(lambda node, shape: node.attr("i") * (shape[-1] // node.attr("n"))),
    "index": _copy(lambda node, shape: node.attr("i") % shape[0]),
    "embed": _embed,
    "one_hot": _one_hot,
}


def source(plan, fn: str) -> str:
    return Emitter(plan).render(fn)
