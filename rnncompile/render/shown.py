"""What a diagram shows of a cell graph: the nodes a reader wants, and their wiring.

A checked cell graph spells out every matrix multiply, bias add and concat;
drawn as is, an LSTM is thirty boxes of plumbing. `shown_nodes` keeps the nodes a
lecture slide shows (inputs, states, gates and other activations, the
products and sums between them, outputs) and writes the rest into their
labels as a formula: the gate ``i`` is drawn once, as ``σ`` over
``W_i @ [h, x] + b_i``, with edges from ``h`` and ``x``.

Rules, applied to the zero-delay graph:

- params and literal constants are never nodes; they appear by name or value
  in the formula of the node that reads them (unless a state is updated to,
  or an output is, a param itself: then it is drawn as a small box);
- an *expression* node (a matrix multiply, concat, slice, ... or an
  elementwise op over params, inputs, states and other expression nodes)
  that has no name, one user and is not a state's next value is written
  into that user's formula when the user is an activation or another
  expression node;
- any other expression node is drawn as a box holding its formula: an
  "affine" one when it is an affine map of the drawn nodes through params
  (GRU's ``W_hn @ h + b_hn`` before ``r *``, Elman's output
  ``y = W_hy @ h + b_y``), an "expr" one otherwise (MemN2N's ``p1 @ c1``,
  an embedding lookup, a child's slice ``children.c[0]``);
- a call of a spec function (``functions:``, or a gate's ``norm: layer``) is
  one "function" box named after it, ``layer_norm(c_next, g_c, b_c)``: the
  nodes its body expanded to are not drawn, and an unnamed argument
  expression read only inside the call is written into the box's text.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import CellGraph
from ..ops import ACTIVATIONS, OPS, fmt_shape

EXPRESSION_KINDS = ("linear", "shape")
ELEMENTWISE_EXPR = ("add", "sub", "mul", "div", "neg")
PRECEDENCE = {"add": 1, "sub": 1, "mul": 2, "div": 2, "matmul": 2, "neg": 3, "pow": 4, "mod": 2, "floordiv": 2,
              **{op: 0 for op in ("lt", "le", "gt", "ge", "eq", "ne")}}  # comparisons: lowest, and do not chain


@dataclass(frozen=True)
class Shown:
    """One node of the diagram."""

    nid: int
    kind: str  # input | state | output | activation | op | affine | expr | param | function
    op: str
    name: str  # the spec's name for it ("" when it has none)
    formula: str  # the folded sub-expression it computes from its feeders ("" when none)
    origin: str
    shape: tuple
    feeders: tuple  # ids of shown nodes it reads (zero-delay), in argument order

    @property
    def shape_text(self) -> str:
        return fmt_shape(self.shape)


@dataclass
class ShownCell:
    """A cell as drawn: shown nodes in dependency order, and its recurrences."""

    cell: CellGraph
    nodes: dict[int, Shown] = field(default_factory=dict)
    loops: dict[str, tuple[int, int]] = field(default_factory=dict)  # state -> (update node, state node)
    params: list[str] = field(default_factory=list)

    def edges(self):
        for s in self.nodes.values():
            for f in s.feeders:
                yield f, s.nid

    def of_kind(self, *kinds: str) -> list[Shown]:
        return [s for s in self.nodes.values() if s.kind in kinds]

    @property
    def activations(self) -> list[str]:
        """The activation ops drawn, in order of first appearance."""
        return list(dict.fromkeys(s.op for s in self.nodes.values() if s.kind == "activation"))


def shown_nodes(cell: CellGraph) -> ShownCell:
    order = cell.order()
    updates = {u for u, _, d in cell.g.edges(data=True) if d["delay"] == 1}
    is_expr = _expression_nodes(cell, order)
    calls = _outer_calls(cell)
    inner = {n: c for c in calls.values() for n in c.nodes if n != c.result}
    member = {n: c for c in calls.values() for n in c.nodes}
    kinds: dict[int, str] = {}
    for nid in reversed(order):  # users first: a node folds into a user that is drawn or folded itself
        if nid in calls:
            kinds[nid] = "function"
        elif nid in inner:
            kinds[nid] = "hidden"
        else:
            kinds[nid] = _kind(cell, nid, updates, is_expr, kinds, member)
    out = ShownCell(cell)
    names = {nid: _ref_name(cell, nid, kinds) for nid in order}
    for nid in order:
        kind = kinds[nid]
        if kind in ("inline", "hidden"):
            continue
        node = cell.node(nid)
        if kind == "function":
            call = calls[nid]
            feeders = tuple(dict.fromkeys(_feeders_of_args(cell, call.args, kinds)))
            formula = f"{call.name}(" + ", ".join(_expr(cell, a, kinds, names) for a in call.args) + ")"
        else:
            feeders = tuple(dict.fromkeys(_feeders(cell, nid, kinds)))
            formula = _formula_of(cell, nid, kind, kinds, names)
        name = node.label or (node.attr("name") or "" if kind in ("input", "state", "output", "param") else "")
        if kind == "affine" and not _is_affine(cell, nid, kinds):
            kind = "expr"  # a box all the same, but not called an affine map (`p @ c`, `embed(w, E)`, `c[0]`)
        out.nodes[nid] = Shown(nid, kind, node.op, name, formula, node.origin, node.shape, feeders)
    for name, sid in sorted(cell.by_name("state").items(), key=lambda kv: kv[1]):
        out.loops[name] = (cell.update_of(sid), sid)
    out.params = sorted(cell.params)
    return out


def _outer_calls(cell: CellGraph) -> dict:
    """result node -> the function call it ends, for the calls not inside another (those are drawn)."""
    calls = [c for c in getattr(cell, "calls", ()) if c.result in cell.g and all(n in cell.g for n in c.nodes)]
    inside = {n for c in calls for n in c.nodes if n != c.result}
    out: dict = {}
    for c in sorted(calls, key=lambda c: len(c.nodes)):  # of calls ending in one node, the outermost is drawn
        if c.result not in inside:
            out[c.result] = c
    return out


def _feeders_of_args(cell: CellGraph, args, kinds) -> list[int]:
    out = []
    for a in args:
        if kinds[a] == "inline":
            out.extend(_feeders(cell, a, kinds))
        elif kinds[a] != "hidden":
            out.append(a)
    return out


def _expression_nodes(cell: CellGraph, order) -> set[int]:
    """Nodes computing a plain expression of params, inputs, states and each other."""
    expr: set[int] = set()
    for nid in order:
        node = cell.node(nid)
        kind = OPS[node.op].kind
        if kind == "reduce":  # folded when it sums an expression (`sum(embed(s, A), axis=1)`), drawn when
            if all(OPS[cell.node(a).op].kind == "source" or a in expr for a in cell.args(nid)):  # it sums a drawn op
                expr.add(nid)
        elif kind in EXPRESSION_KINDS or (node.op in ELEMENTWISE_EXPR and all(
                OPS[cell.node(a).op].kind == "source" or a in expr for a in cell.args(nid))):
            expr.add(nid)
    return expr


LINEAR = {"add", "sub", "neg", "concat", "transpose", "slice", "index"}
SCALING = {"matmul", "mul", "div"}  # linear when one side is made of params and constants only


def _is_affine(cell: CellGraph, nid: int, kinds) -> bool:
    """Whether the box at nid computes an affine map of the drawn nodes: params times them, plus params."""
    def constant(n: int) -> bool:
        op = cell.node(n).op
        return op in ("param", "const") or (kinds[n] in ("inline", "hidden") and OPS[op].kind != "source"
                                             and all(constant(a) for a in cell.args(n)))

    weighted, todo = False, [nid]
    while todo:
        n = todo.pop()
        op = cell.node(n).op
        if n != nid and (kinds[n] not in ("inline", "hidden") or op in ("param", "const")):
            continue  # a drawn node, or a param: a leaf of the formula
        args = cell.args(n)
        if op in SCALING and len(args) == 2 and (constant(args[0]) or constant(args[1])):
            weighted = weighted or op == "matmul"
            todo.extend(a for a in args if not constant(a))
        elif op in LINEAR:
            todo.extend(args)
        else:
            return False
    return weighted


def _kind(cell: CellGraph, nid: int, updates, is_expr, kinds, member=None) -> str:
    node = cell.node(nid)
    op = OPS[node.op]
    if node.op in ("param", "const"):
        users = cell.users(nid)
        drawn = nid in updates or any(cell.node(u).op == "output" for u in users)
        return "param" if drawn else "hidden"
    if op.kind == "source":
        return node.op if node.op == "state" else "input"  # input; t and seq_len (read like inputs) look like one
    if op.kind == "sink":
        return "output"
    if nid in is_expr:
        users = cell.users(nid)
        foldable = not node.label and nid not in updates and len(users) == 1
        if foldable and kinds[users[0]] in ("activation", "inline", "affine"):
            return "inline"
        in_calls = {id(member[u]) if u in member else None for u in users} if member else {None}
        if not node.label and nid not in updates and users and None not in in_calls and len(in_calls) == 1:
            return "inline"  # an argument expression read only inside one function call: part of its box
        return "affine"
    if node.op in ACTIVATIONS:
        return "activation"
    return "op"


def _feeders(cell: CellGraph, nid: int, kinds) -> list[int]:
    """The drawn nodes an inlined expression at nid reads, in argument order (a loop: chains may be long)."""
    out, stack = [], [iter(cell.args(nid))]
    while stack:
        a = next(stack[-1], None)
        if a is None:
            stack.pop()
        elif kinds[a] == "inline":
            stack.append(iter(cell.args(a)))
        elif kinds[a] != "hidden":
            out.append(a)
    return out


def _ref_name(cell: CellGraph, nid: int, kinds) -> str:
    """How a formula refers to a drawn node or a param."""
    node = cell.node(nid)
    if node.op == "const":
        v = node.attr("value")
        if node.label:  # a named constant (`consts:`)
            return node.label
        return f"{v:g}" if isinstance(v, float) else _literal_text(v)
    return node.label or node.attr("name") or "·"


def _literal_text(value) -> str:
    """A literal vector or matrix as the spec writes it: [1, 0, -1]."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_literal_text(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _formula_of(cell: CellGraph, nid: int, kind: str, kinds, names) -> str:
    """The folded text a drawn node shows beside its symbol."""
    if kind in ("input", "state", "output", "param"):
        return ""
    if kind == "affine":
        return _expr(cell, nid, kinds, names, top=True)
    args = cell.args(nid)
    if kind == "activation":
        (a,) = args[:1] or (None,)
        return _expr(cell, a, kinds, names) if a is not None and kinds[a] in ("inline", "hidden") else ""
    # a drawn op: write it out only when it folds params or constants in (e.g. GRU's `1 − z`)
    if any(kinds[a] in ("hidden", "inline") for a in args):
        return _expr(cell, nid, kinds, names, top=True)
    return ""


def _expr(cell: CellGraph, nid: int, kinds, names, top: bool = False) -> str:
    """Text of the sub-expression computed at nid; drawn nodes appear by name. Written bottom-up with an
    explicit stack, since a flat chain (`h + h + …`, `h[0:8][0:8]…`) nests one node per term."""
    texts: dict[int, str] = {}
    stack = [(nid, False)]
    while stack:
        n, ready = stack.pop()
        if n in texts:
            continue
        if (n != nid or not top) and kinds[n] not in ("inline", "hidden") or cell.node(n).op in ("param", "const"):
            texts[n] = names[n]
        elif not ready:
            stack.append((n, True))
            stack.extend((a, False) for a in reversed(cell.args(n)) if a not in texts)
        else:
            texts[n] = _expr_text(cell, n, [texts[a] for a in cell.args(n)], kinds)
    return texts[nid]


def _expr_text(cell: CellGraph, nid: int, parts: list[str], kinds) -> str:
    """One node's text from its arguments' texts, bracketed as the precedence needs."""
    node = cell.node(nid)
    args = cell.args(nid)
    op = OPS[node.op]
    prec = PRECEDENCE.get(node.op)
    if node.op == "concat":
        return "[" + ", ".join(parts) + "]"
    if node.op == "neg":
        return "−" + _wrap(cell, args[0], parts[0], 3, kinds)
    if len(args) == 2 and op.symbol and prec is not None:
        # the parser groups left to right (`**` right to left): an operand on the grouping side at the same
        # level needs no brackets, the other one does (`a − (b + c)`, `(A @ x) × (B @ h)`), and `@` next to
        # `×` or `÷` keeps them anyway, since `A @ x × B` reads wrongly to people however it parses
        right_first = node.op == "pow"
        left = _wrap(cell, args[0], parts[0], prec + (right_first or prec == 0), kinds, node.op)
        right = _wrap(cell, args[1], parts[1], prec + (not right_first), kinds, node.op)
        return f"{left} {op.symbol} {right}"
    if node.op == "transpose":
        return _wrap(cell, args[0], parts[0], 5, kinds) + "ᵀ"
    if node.op == "index":
        return f"{parts[0]}[{node.attr('i')}]"
    if node.op == "slice":
        start, stop = node.attr("start"), node.attr("stop")
        return f"{parts[0]}[{'' if start is None else start}:{'' if stop is None else stop}]"
    # attributes as the spec writes them: in the op table's order (chunk(z, 4, 1): 4 parts, part 1), the
    # required ones by position, the others by name and only when they differ from their default
    extra = []
    for k, default in op.attrs.items():
        v = node.attr(k, default)
        if k in ("n", "i"):
            extra.append(f"{v}")
        elif k == "axis" and v != default:
            extra.append(f"{k}={v}")
    return f"{node.op}({', '.join(parts + extra)})"


MIXED = ({"matmul"}, {"mul", "div", "mod", "floordiv"})  # one level for the parser, two for a reader


def _wrap(cell: CellGraph, nid: int, text: str, prec: int, kinds, parent: str = "") -> str:
    """Parenthesise a folded argument that binds less tightly than `prec` (or mixes `@` with `×`)."""
    if kinds[nid] not in ("inline", "hidden"):
        return text
    op = cell.node(nid).op
    own = PRECEDENCE.get(op)
    mixed = any(op in a and parent in b or op in b and parent in a for a, b in [MIXED])
    return f"({text})" if own is not None and (own < prec or mixed) else text
