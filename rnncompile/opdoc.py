"""The op reference (docs/ops.md), generated from the one op table and the expression parser.

Everything in it is read from the code that runs: each op's name, arguments, attributes and defaults,
kind, infix symbol and meaning from `ops.OPS`; its shape rule from its shape function's docstring, with an
example computed by calling that shape function; a worked example computed by calling its reference NumPy
meaning; the precedence table by parsing `a X b Y c` for every pair of operators the lowering knows
(`lower.BINARY`); the activations a gate's `act:` takes by the rule the lowering applies. A new op in the
table shows up here by itself; tests/test_opdoc.py fails until docs/ops.md is regenerated.
"""
from __future__ import annotations

import functools
import inspect
import itertools
from dataclasses import dataclass

from . import expr as E
from .lower import BINARY, FUNCTIONS, LINEAR
from .ops import INT_ARGS, OPS, REQUIRED, STEP_SOURCES, OpDef, ShapeError, fmt_shape

REGENERATE = "rnncompile ops --format markdown -o docs/ops.md"
POSTFIX = {"transpose": "x.T", "index": "x[i]", "slice": "x[a:b]"}  # forms the parser gives these ops
PREFIX = {"neg": "-x"}
LEAVES = {  # how a spec writes a leaf of the cell graph
    "input": "a name under the cell's `inputs:`",
    "state": "a name under `state:` (its value from the step before)",
    "param": "a name under `params:` (and a gate's own `W_g`, `b_g`)",
    "const": "a number, e.g. `0.5` or `1e-3`",
    "output": "a key under `outputs:` (not written inside expressions)",
}
KINDS = {  # kind -> what the kind means, in the table's order of first appearance
    "source": "the leaves of a cell graph",
    "sink": "the named results of a step",
    "elementwise": "one number out per (broadcast) position",
    "activation": "elementwise nonlinearities (and softmax); usable as a gate's `act:`",
    "linear": "products that mix positions",
    "shape": "moves or picks numbers without arithmetic",
    "reduce": "fold one axis, or all, into one number",
    "memory": "addressing an explicit memory (Graves et al. 2014)",
}
EXAMPLES = {  # op -> (argument values, attributes): worked examples that say more than the generic one
    "matmul": ([[[1, 2, 0], [0, 1, -1]], [1, 0.5, 2]], {}),
    "concat": ([[1, 2], [3, 4, 5]], {}),
    "outer": ([[1, 2], [3, 0.5, -1]], {}),
    "transpose": ([[[1, 2, 3], [4, 5, 6]]], {}),
    "slice": ([[1, 2, 3, 4, 5]], {"start": 1, "stop": 3}),
    "index": ([[[1, 2], [3, 4], [5, 6]]], {"i": 1}),
    "chunk": ([[1, 2, 3, 4, 5, 6]], {"n": 3, "i": 1}),
    "flatten": ([[[1, 2], [3, 4]]], {}),
    "one_hot": ([2], {"n": 4}),
    "embed": ([1, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]], {}),
    "sum": ([[[1, 2, 3], [4, 5, 6]]], {"axis": 0}),
    "mean": ([[[1, 2, 3], [4, 5, 6]]], {"axis": 0}),
    "max": ([[[1, 2, 3], [4, 5, 6]]], {"axis": 0}),
    "softmax": ([[1, 2, 3]], {}),
    "log": ([[1, 2.718281828459045, 10]], {}),
    "sqrt": ([[1, 4, 2]], {}),
    "pow": ([[2, 3, 4], [2, 0.5, -1]], {}),
    "cosine": ([[[1, 0, 0], [0, 2, 0], [1, 1, 0]], [1, 1, 0]], {}),
    "shift": ([[0.1, 0.6, 0.2, 0.1, 0.0], [0, 0, 1]], {}),
    "sharpen": ([[0.1, 0.3, 0.6], 2], {}),
    "where": ([[1, 0, 1], [1, 2, 3], [-1, -2, -3]], {}),
    "masked_softmax": ([[1, 2, 3], [1, 0, 1]], {}),
    "mod": ([[7, -7, 7.5], [3, 3, -2]], {}),
    "floordiv": ([[7, -7, 7.5], [3, 3, -2]], {}),
}
_VALUES = ([0.5, -1.0, 2.0, 1.5, -0.5, 3.0, 0.25, -2.0, 1.0], [2.0, -1.0, -1.5, 1.0, 3.0, -0.5, 0.75, 1.25, -1.0],
           [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])  # the generic example's arguments, in order
_SHAPES = ((3,), (2, 3), (), (3, 3))  # the generic example tries these argument shapes, in order


# ---- what the reference says of one op ------------------------------------------------------

@dataclass(frozen=True)
class Example:
    args: tuple  # the argument values (numbers or nested lists) or, for a source, ()
    attrs: dict
    shapes: tuple  # the arguments' shapes
    shape: tuple  # what the shape function gives
    value: object = None  # what the reference meaning gives (None for a source)


@dataclass(frozen=True)
class OpEntry:
    name: str
    kind: str
    written: tuple  # how a spec writes it
    drawn: str  # the symbol diagrams and printers use, or ""
    args: tuple  # tensor argument names ("..." for more of the same)
    attrs: tuple  # (name, default text)
    shape_rule: str
    example: Example | None
    doc: str
    numerics: str  # the reference meaning's own docstring, or where it comes from


def arg_names(op: OpDef) -> tuple:
    """The tensor arguments' names: the reference meaning's positional parameters, else x / a, b / a, b, c."""
    lo, hi = op.arity
    n = lo if hi is None else hi
    names = []
    if op.meaning is not None:
        params = [p for p in inspect.signature(op.meaning).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in op.attrs
                  and p.default is p.empty]
        if len(params) >= n:
            names = [p.name for p in params[:n]]
    if not names and n:
        names = {1: ["x"], 2: ["a", "b"], 3: ["a", "b", "c"]}.get(n, [f"x{k + 1}" for k in range(n)])
    return tuple(names) + (("...",) if hi is None else ())


def _default_text(value) -> str:
    if value is REQUIRED:
        return "required"
    if value is None:
        return "optional"
    return repr(value)


def call_form(op: OpDef) -> str:
    """`name(args, attr=default, ...)` as a spec calls it (attributes may also come positionally)."""
    parts = list(arg_names(op))
    for name, default in op.attrs.items():
        parts.append(name if default is REQUIRED else f"[{name}]" if default is None else f"{name}={default!r}")
    return f"{op.name}({', '.join(parts)})"


def written_forms(op: OpDef) -> tuple:
    infix = {name: sym for sym, name in BINARY.items()}
    forms = []
    if op.name in infix:
        forms.append(f"a {infix[op.name]} b")
    if op.name in PREFIX:
        forms.append(PREFIX[op.name])
    if op.name in POSTFIX:
        forms.append(POSTFIX[op.name])
    if op.name in STEP_SOURCES:
        forms.append(STEP_SOURCES[op.name])
    if op.name in LEAVES:
        forms.append(LEAVES[op.name])
    if op.name in FUNCTIONS:
        forms.append(call_form(op))
    return tuple(forms)


def shape_rule(op: OpDef) -> str:
    """The shape function's docstring, as a clause ("the result has the argument's shape.")."""
    text = " ".join((inspect.getdoc(op.shape) or "").split())
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _array(value):
    import numpy as np

    return np.asarray(value, dtype=np.int64 if isinstance(value, int) else np.float64)


def _generic_args(op: OpDef):
    """The first argument shapes (from _SHAPES, tokens as scalars) and attributes the shape rule accepts."""
    lo, hi = op.arity
    n = lo if hi is None else hi
    attrs = {k: 1 for k, v in op.attrs.items() if v is REQUIRED}  # the defaults need no mention
    if "shape" in op.attrs:
        attrs["shape"] = (3,)
    choices = [((),) if k in INT_ARGS.get(op.name, ()) else _SHAPES for k in range(n)]
    for shapes in itertools.product(*choices):
        try:
            op.shape(list(shapes), {**op.attrs, **attrs})
        except (ShapeError, ValueError, TypeError, KeyError, IndexError):
            continue
        return shapes, {k: v for k, v in attrs.items() if k != "name"}
    return None, attrs


def example(op: OpDef) -> Example | None:
    """A worked example: the shape function on example shapes and, where the op has one, its reference
    meaning on example values (from EXAMPLES, else made up to fit the first shapes the rule accepts)."""
    import numpy as np

    if op.name in EXAMPLES:
        values, attrs = EXAMPLES[op.name]
        arrays = [_array(v) for v in values]
        shapes = tuple(a.shape for a in arrays)
    else:
        shapes, attrs = _generic_args(op)
        if shapes is None:
            return None
        arrays = []
        for k, s in enumerate(shapes):
            if k in INT_ARGS.get(op.name, ()):
                arrays.append(np.asarray(1))
            else:
                size = int(np.prod(s))
                arrays.append(np.resize(np.asarray(_VALUES[k % len(_VALUES)]), size).reshape(s))
    all_attrs = {**{k: v for k, v in op.attrs.items() if v is not REQUIRED and k != "name"}, **attrs}
    out_shape = tuple(op.shape(list(shapes), {**all_attrs, "name": ""}))
    if op.meaning is None or op.kind == "source":
        return Example((), attrs, shapes, out_shape)
    with np.errstate(all="ignore"):  # a NaN or inf in an example is what the op gives, shown as such
        value = np.asarray(op.meaning(*arrays, **all_attrs))
    return Example(tuple(a.tolist() for a in arrays), attrs, shapes, out_shape, value)


def numerics(op: OpDef) -> str:
    if op.meaning is None:
        return ""
    name = getattr(op.meaning, "__name__", "")
    if name.startswith("numpy."):
        return f"NumPy's `{name}`"
    return " ".join((inspect.getdoc(op.meaning) or "").split())


def entry(op: OpDef) -> OpEntry:
    attrs = tuple((k, _default_text(v)) for k, v in op.attrs.items())
    return OpEntry(op.name, op.kind, written_forms(op), op.symbol, arg_names(op), attrs, shape_rule(op),
                   example(op), op.doc, numerics(op))


# ---- precedence, read off the parser ------------------------------------------------------------

def _grouping(x: str, y: str) -> str:
    """How `a x b y c` parses: "left" ((a x b) y c), "right" (a x (b y c)) or "error"."""
    try:
        node = E.parse(f"a {x} b {y} c")
    except E.ExprSyntaxError:
        return "error"
    if isinstance(node, E.BinOp) and node.op == y and isinstance(node.left, E.BinOp) and node.left.op == x:
        return "left"
    return "right"


@dataclass(frozen=True)
class Level:
    operators: tuple  # spec operators, as the parser reads them ("-x" for unary minus, "f(x) x[i] x.T" first)
    ops: tuple  # the op each operator lowers to
    grouping: str


def precedence() -> list[Level]:
    """The precedence levels, tightest first, found by parsing every pair of binary operators."""
    levels: list[list[str]] = []
    for x in BINARY:
        for level in levels:
            y = level[0]
            if _grouping(x, y) == _grouping(y, x):  # both left, both right, or neither parses: one level
                level.append(x)
                break
        else:
            levels.append([x])

    def order(a, b):
        x, y = a[0], b[0]
        return -1 if (_grouping(x, y), _grouping(y, x)) == ("left", "right") else 1
    levels.sort(key=functools.cmp_to_key(order))
    words = {"left": "left to right", "right": "right to left", "error": "does not chain (an error: use brackets)"}
    out = [Level(("f(x)", "x[i]", "x[a:b]", "x.T"), ("(calls)", "index", "slice", "transpose"), "left to right")]
    unary_done = False
    for level in levels:
        x = level[0]
        if not unary_done and not isinstance(E.parse(f"-a {x} b"), E.Neg):  # unary minus binds tighter
            out.append(Level(("-x",), ("neg",), "right to left"))
            unary_done = True
        out.append(Level(tuple(level), tuple(BINARY[o] for o in level), words[_grouping(x, x)]))
    if not unary_done:
        out.append(Level(("-x",), ("neg",), "right to left"))
    return out


def gate_activations() -> list[str]:
    """What a gate's `act:` takes: one-argument activation or elementwise ops, and `linear` (the lowering's
    rule in lower.CellLowering.gate)."""
    return [n for n, op in OPS.items() if op.kind in ("activation", "elementwise") and op.arity == (1, 1)] + [LINEAR]


# ---- rendering -----------------------------------------------------------------------------------------

def _num(x) -> str:
    x = float(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.4g}"
    return "0" if text == "-0" else text


def _value(v) -> str:
    import numpy as np

    a = np.asarray(v)
    if a.ndim == 0:
        return _num(a)
    return "[" + ", ".join(_value(x) for x in a) + "]"


def example_text(e: OpEntry) -> str:
    """`call = value` (or an infix form), then the shapes."""
    ex = e.example
    shapes = ", ".join(fmt_shape(s) for s in ex.shapes)
    shape_line = f"shapes {shapes} → {fmt_shape(ex.shape)}" if ex.shapes else f"shape {fmt_shape(ex.shape)}"
    if ex.value is None:
        attrs = ", ".join(f"{k}={v!r}" for k, v in ex.attrs.items())
        return f"declared with {attrs}: {shape_line}" if attrs else shape_line
    args = [_value(a) for a in ex.args]
    infix = {name: sym for sym, name in BINARY.items()}
    if e.name in infix and len(args) == 2 and not ex.attrs:
        call = f"{args[0]} {infix[e.name]} {args[1]}"
    else:
        call = f"{e.name}({', '.join(args + [f'{k}={v!r}' for k, v in ex.attrs.items()])})"
    return f"`{call} = {_value(ex.value)}` ({shape_line})"


def _kinds() -> list[str]:
    return list(dict.fromkeys(op.kind for op in OPS.values()))


def _code(w: str) -> str:
    """A written form as markdown: code, except the prose of LEAVES (which carries its own backticks)."""
    return w if w in LEAVES.values() else f"`{w}`"


def _sentence(text: str) -> str:
    return text + ("" if text.endswith(".") else ".")


def blocks() -> list[tuple]:
    """The reference as blocks: ("title" | "h2" | "h3" | "p", text), ("list", [items]),
    ("table", header, rows); text in markdown (backticks for code)."""
    entries = [entry(op) for op in OPS.values()]
    out = [("title", "Op reference"),
           ("p", f"Generated from the op table (`rnncompile/ops.py`) and the expression parser (`rnncompile/expr.py`) "
                 f"by `{REGENERATE}`: edit the table, then regenerate (`tests/test_opdoc.py` fails while this file "
                 f"is out of date). Every example below was computed by the op's own shape rule and reference "
                 f"meaning."),
           ("p", "Shapes are of one example: backends add a leading batch axis. `K` is a tree cell's children axis. "
                 "Values are floats (a comparison gives 0 or 1). An attribute is a number known before running, "
                 "given after the tensor arguments or by name: `chunk(x, 2, 0)` is `chunk(x, n=2, i=0)`; "
                 "`[axis]` may be left out."),
           ("h2", "Precedence"),
           ("p", "Tightest first; brackets group as usual. `rnncompile validate` warns, located, when `@` mixes "
                 "with `*` or `/` unbracketed: `A @ x * B @ h` is `((A @ x) * B) @ h`. It also warns when an "
                 "operator broadcasts a vector against a matrix (`M * h` with `M` [H, H], `h` [H]: each row "
                 "times `h`, usually a slip for `M @ h`); the call form, `mul(M, h)`, says the broadcast is "
                 "meant."),
           ("table", ("level", "operators", "ops", "grouping"),
            [(str(k), " ".join(f"`{o}`" for o in level.operators), ", ".join(level.ops), level.grouping)
             for k, level in enumerate(precedence(), 1)]),
           ("h2", "Activations usable in gates"),
           ("p", "A gate `g: {act: A, from: [...]}` is `A(W_g @ concat(from) + b_g)`; `A` is one of:"),
           ("list", [f"`{name}`: " + (OPS[name].doc if name in OPS else
                                      "no activation: the affine map (plus any `add:` terms) itself")
                     for name in gate_activations()]),
           ("h2", "All ops"),
           ("table", ("op", "written", "kind", "meaning"),
            [(f"[`{e.name}`](#{e.name})", "; ".join(_code(w) for w in e.written[:2]), e.kind, e.doc) for e in entries])]
    for kind in _kinds():
        words = KINDS.get(kind, kind)
        out += [("h2", f"{kind} ops"), ("p", _sentence(words[:1].upper() + words[1:]))]
        for e in (x for x in entries if x.kind == kind):
            leaf = e.kind in ("source", "sink")  # declared by the spec: its attributes are the declaration's
            items = ["meaning: " + e.doc, "written: " + "; ".join(_code(w) for w in e.written)]
            if e.drawn:
                items.append(f"drawn as: `{e.drawn}`")
            if not leaf:
                items.append("arguments: " + (", ".join(f"`{a}`" for a in e.args) or "none"))
                items.append("attributes: " + (", ".join(f"`{k}` ({v})" for k, v in e.attrs) or "none"))
            items.append(f"shape: {e.shape_rule}")
            if e.example is not None and not leaf:
                items.append(f"example: {example_text(e)}")
            if e.numerics:
                items.append(f"reference meaning: {e.numerics}")
            out += [("h3", f"`{e.name}`"), ("list", items)]
    return out


def markdown() -> str:
    lines = []
    for block in blocks():
        kind = block[0]
        if kind == "title":
            lines += [f"# {block[1]}", "", "<!-- generated by `" + REGENERATE + "`; do not edit by hand -->"]
        elif kind in ("h2", "h3"):
            lines.append(("## " if kind == "h2" else "### ") + block[1])
        elif kind == "p":
            lines.append(block[1])
        elif kind == "list":
            lines += [f"- {item}" for item in block[1]]
        else:
            header, rows = block[1], block[2]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + " --- |" * len(header))
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def text() -> str:
    """The same reference as plain text for a terminal: no markup, tables in aligned columns."""
    def plain(s: str) -> str:
        return s.replace("`", "")

    lines = []
    for block in blocks():
        kind = block[0]
        if kind in ("title", "h2"):
            head = plain(block[1])
            lines += [head.upper() if kind == "title" else head, ("=" if kind == "title" else "-") * len(head)]
        elif kind == "h3":
            lines.append(plain(block[1]))
        elif kind == "p":
            lines.append(plain(block[1]))
        elif kind == "list":
            lines += [f"  {plain(item)}" for item in block[1]]
        else:
            rows = [block[1]] + [tuple(plain(c) for c in row) for row in block[2]]
            widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
            lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.append("")
    return "\n".join(lines)


def reference(fmt: str = "markdown") -> str:
    """The op reference as `fmt` ("markdown": docs/ops.md, or "text")."""
    if fmt not in ("markdown", "text"):
        raise ValueError(f"unknown format {fmt!r}: markdown or text")
    return markdown() if fmt == "markdown" else text()
