"""Gate widths the cell's expressions determine, so a gate needs no `size:` where its use fixes it.

A gate multiplied (or added, subtracted, divided, compared) elementwise with a
value of known width has that width (`f * c`: f is as wide as the state c),
and so does a gate on either side of an elementwise op whose result has a
known width (`c_next: f * c + i * g` gives i and g the width of `f * c`; an
update gives its expression the width of its state). Widths are found in two
passes over each expression, both loops (no recursion, so a long chain needs
no deep stack): bottom-up, the width of every sub-expression that has one;
top-down, a known width pushed into the sub-expressions that had none. The
whole is repeated while it finds more, since one gate's width can fix
another's. A param matrix fixes the width of what it multiplies (`W_q @ a`
with W_q [H, E] gives a the width E), and a gate's `from:` expressions are
read like any other. A gate used with two different widths gets no width
here: its error lists both.
"""
from __future__ import annotations

from . import expr as E
from .dims import DimError, eval_dim
from .ops import OPS

SCALAR = "scalar"
ELEMENTWISE_BINARY = {"+", "-", "*", "/", "%", "//", "**", "<", "<=", ">", ">=", "==", "!="}
ELEMENTWISE_CALLS = {n for n, op in OPS.items() if op.kind in ("activation", "elementwise") and n != "masked_softmax"}


def infer_gate_sizes(lowering) -> tuple[dict[str, int], dict[str, dict[int, list[str]]]]:
    """gate -> its width, for every gate without `size:` whose width the expressions fix; and
    gate -> {width: [where]} for those used with more than one width."""
    cell, graph = lowering.cell, lowering.graph
    known: dict[str, int] = {}
    states = lowering.sized_states()
    for group in (states, graph.inputs, graph.params):
        for name, info in group.items():
            if len(info.shape) == 1 and getattr(info, "dtype", "float") != "token":
                known[name] = info.shape[0]
    for name, nid in lowering.env.items():
        if graph.node(nid).op == "const" and len(graph.node(nid).shape) == 1:
            known[name] = graph.node(nid).shape[0]
    matrices = {name: info.shape for name, info in graph.params.items() if len(info.shape) == 2}
    rows = {name: info.shape for name, info in graph.inputs.items() if len(info.shape) == 2}  # children.h [K, H]
    unknown = set()
    for name, g in cell.gates.items():
        if g.size is None:
            unknown.add(name)
        else:
            try:
                known[name] = eval_dim(g.size, lowering.dims)
            except DimError:
                pass  # reported when the gate is lowered
    trees = {}
    entries = [("let", n, t) for n, t in cell.let.items()] + [("update", n, t) for n, t in cell.update.items()] + \
              [("outputs", n, t) for n, t in cell.outputs.items()] + \
              [("gates", g, t) for g, spec in cell.gates.items() for t in spec.add] + \
              [("from", g, t) for g, spec in cell.gates.items() for t in spec.from_
               if isinstance(t, str) and not t.strip().isidentifier()]
    for section, name, text in entries:
        try:
            trees[(section, name, str(text))] = E.parse(str(text))
        except E.ExprSyntaxError:
            pass  # reported when lowered
    found: dict[str, dict[int, list[str]]] = {}
    for _ in range(len(unknown) + 1):
        before = {g: set(w) for g, w in found.items()}
        widths = _Widths(known, unknown, cell.let, trees, lowering.dims, found, matrices, rows)
        for (section, name, text), tree in trees.items():
            where = f"{section}.{name}"
            w = widths.up(tree, where)
            want = None
            if section in ("update", "let") and name in states and len(states[name].shape) == 1:
                want = states[name].shape[0]  # (a tree rule gives its states' values as lets)
            elif section == "gates":
                want = known.get(name)
                if w not in (None, SCALAR) and name in unknown:
                    found.setdefault(name, {}).setdefault(w, []).append(f"gates.{name}.add")
            if want is not None and w is None:
                widths.down(tree, want, where)
        for g, ws in found.items():
            if len(ws) == 1 and g in unknown:
                known[g] = next(iter(ws))
        if {g: set(w) for g, w in found.items()} == before:
            break
    sizes = {g: next(iter(ws)) for g, ws in found.items() if len(ws) == 1}
    conflicts = {g: ws for g, ws in found.items() if len(ws) > 1}
    return sizes, conflicts


class _Widths:
    def __init__(self, known, unknown, lets, trees, dims, found, matrices, rows):
        self.known, self.unknown, self.lets, self.dims, self.found = known, unknown, lets, dims, found
        self.rows = rows  # input -> [K, H]: `children[0].h` is H wide
        self.matrices = matrices  # param -> [rows, cols]: `W @ g` gives g W's column count
        self.let_trees = {n: t for (section, n, _), t in trees.items() if section == "let"}
        self.memo: dict[int, object] = {}
        self.let_widths: dict[str, object] = {}

    def name(self, n: str):
        if n in self.known and n not in self.unknown:
            return self.known[n]
        if n in self.unknown:
            return self.known.get(n)
        if n in self.let_trees:
            if n not in self.let_widths:
                self.let_widths[n] = None  # a let that reads itself: no width from here
                self.let_widths[n] = self.up(self.let_trees[n], f"let.{n}")
            return self.let_widths[n]
        if n in self.dims or n in ("t", "seq_len"):
            return SCALAR
        return None

    def up(self, root, where: str):
        """The width of every sub-expression of root that has one (memoised), root's returned."""
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if id(node) in self.memo:
                continue
            kids = _children(node)
            if not ready and kids:
                stack.append((node, True))
                stack.extend((k, False) for k in kids if id(k) not in self.memo)
                continue
            self.memo[id(node)] = self._width(node, where)
        return self.memo[id(root)]

    def _width(self, node, where):
        if isinstance(node, E.Num):
            return SCALAR
        if isinstance(node, E.Name):
            return self.name(node.id)
        if isinstance(node, E.Neg):
            return self.memo[id(node.operand)]
        row = _row_of(node)
        if row in self.rows:
            return self.rows[row][-1]
        if isinstance(node, E.Vector):
            return len(node.items) if not any(isinstance(i, E.Vector) for i in node.items) else None
        if isinstance(node, E.BinOp) and node.op == "@" and isinstance(node.left, E.Name) \
                and node.left.id in self.matrices:
            rows, cols = self.matrices[node.left.id]
            if self.memo.get(id(node.right)) is None:
                self.down(node.right, cols, where)
            return rows
        sides = _elementwise_args(node)
        if sides is None:
            return None
        widths = [self.memo[id(s)] for s in sides]
        k = next((w for w in widths if w not in (None, SCALAR)), None)
        if k is not None:
            for s, w in zip(sides, widths):
                if w is None:
                    self.down(s, k, where)
            return k
        return SCALAR if widths and all(w == SCALAR for w in widths) else None

    def down(self, root, want: int, where: str):
        """Push a known width into the sub-expressions of root that had none."""
        todo = [root]
        while todo:
            node = todo.pop()
            if isinstance(node, E.Name):
                if node.id in self.unknown:
                    self.found.setdefault(node.id, {}).setdefault(want, []).append(where)
                continue
            if isinstance(node, E.Neg):
                todo.append(node.operand)
                continue
            sides = _elementwise_args(node)
            for s in sides or ():
                if self.memo.get(id(s)) is None:
                    todo.append(s)


def _elementwise_args(node):
    """The operands of an elementwise op (which all have the result's width, or are scalars), else None."""
    if isinstance(node, E.BinOp) and node.op in ELEMENTWISE_BINARY:
        return [node.left, node.right]
    if isinstance(node, E.Call) and node.func in ELEMENTWISE_CALLS and not node.kwargs:
        lo, hi = OPS[node.func].arity
        return list(node.args[:hi]) if hi is not None else list(node.args)
    return None


def _row_of(node) -> str | None:
    """`children[0].h` (or `children.h[0]`): one row of the input `children.h`; else None."""
    if isinstance(node, E.Attr) and isinstance(node.value, E.Index) and isinstance(node.value.value, E.Name):
        return f"{node.value.value.id}.{node.name}"
    if isinstance(node, E.Index) and isinstance(node.value, E.Attr) and isinstance(node.value.value, E.Name):
        return f"{node.value.value.id}.{node.value.name}"
    return None


def _children(node) -> list:
    if isinstance(node, E.BinOp):
        return [node.left, node.right]
    if isinstance(node, E.Neg):
        return [node.operand]
    if isinstance(node, E.Call):
        return list(node.args) + [v for _, v in node.kwargs]
    if isinstance(node, (E.Index, E.Attr)):
        return [node.value]
    if isinstance(node, E.Vector):
        return list(node.items)
    return []
