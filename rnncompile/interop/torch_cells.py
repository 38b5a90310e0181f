"""Which PyTorch module a model's cells compute, read from their graphs, not from their names.

`layout(program)` walks the lowered graph of every cell use and recognises the
equations of nn.RNN (tanh or relu), nn.LSTM or nn.GRU term by term; a cell
that computes anything else is refused with the term that differs. The result
says, for every torch gate of every layer and direction, which spec param (and
which of its columns) holds its input weights, its recurrent weights and its
biases, plus the nn.Embedding and nn.Linear around the recurrent stack.

    nn.RNN   h' = act(W_ih x + b_ih + W_hh h + b_hh)
    nn.LSTM  i, f, o = sigmoid(...), g = tanh(...), c' = f c + i g, h' = o tanh(c')   rows i f g o
             (proj_size: h' = W_hr (o tanh(c')), h of the projection's size)
    nn.GRU   r, z = sigmoid(...), n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
             h' = (1 - z) n + z h                                                     rows r z n
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DataError
from ..graph import CellGraph

GATE_ORDER = {"RNN": ("",), "LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}
EQUATIONS = {
    "RNN": "h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu)",
    "LSTM": "i, f, o = sigmoid(W x + W h + b), g = tanh(W x + W h + b), c' = f * c + i * g, h' = o * tanh(c')",
    "GRU": "r, z = sigmoid(W x + W h + b), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h",
}


class Unmatched(DataError):
    """The spec computes something the torch module does not."""


@dataclass(frozen=True)
class Block:
    """Columns [lo, hi) of a 2-D spec param (the whole param when they span it)."""

    key: str
    lo: int
    hi: int


@dataclass
class Gate:
    """One torch gate's rows of one layer and direction. `summed`: torch's bias_ih + bias_hh is what the
    spec's biases hold (their sum); otherwise bias_ih goes to `b_ih` and bias_hh to `b_hh` (the GRU's n)."""

    name: str
    w_ih: Block
    w_hh: Block
    b_ih: list[str] = field(default_factory=list)
    b_hh: list[str] = field(default_factory=list)
    summed: bool = True


@dataclass
class Direction:
    suffix: str  # "_l0", "_l1_reverse", ...
    gates: list[Gate]
    proj: str | None = None  # nn.LSTM with proj_size: the spec param of weight_hr (h' = W_hr (o tanh(c')))


@dataclass
class Linear:
    weight: str
    bias: str | None
    shape: tuple  # the weight's (out, in)
    where: str  # "head" or the cell's output


@dataclass
class Layout:
    kind: str  # RNN | LSTM | GRU
    nonlinearity: str  # tanh | relu (nn.RNN)
    hidden: int
    input_size: int
    directions: list[Direction]
    num_layers: int
    bidirectional: bool
    embedding: tuple | None = None  # (param key, shape)
    linears: list[Linear] = field(default_factory=list)
    cell_name: str = ""
    proj_size: int = 0  # nn.LSTM(proj_size=...): h has this size, c the hidden size

    @property
    def bias(self) -> bool:
        return any(g.b_ih or g.b_hh for d in self.directions for g in d.gates)

    def params(self) -> set[str]:
        """Every spec param this layout places."""
        out = set()
        for d in self.directions:
            for g in d.gates:
                out |= {g.w_ih.key, g.w_hh.key, *g.b_ih, *g.b_hh}
            if d.proj:
                out.add(d.proj)
        if self.embedding:
            out.add(self.embedding[0])
        for lin in self.linears:
            out |= {lin.weight} | ({lin.bias} if lin.bias else set())
        return out

    def constructor(self) -> str:
        extra = "" if self.kind != "RNN" or self.nonlinearity == "tanh" else ", nonlinearity='relu'"
        extra += f", num_layers={self.num_layers}" if self.num_layers > 1 else ""
        extra += ", bidirectional=True" if self.bidirectional else ""
        extra += "" if self.bias else ", bias=False"
        extra += f", proj_size={self.proj_size}" if self.proj_size else ""
        return f"nn.{self.kind}({self.input_size}, {self.hidden}{extra})"


def layout(program) -> Layout:
    """The torch layout of a sequence model: one recurrent stack (layers and directions of one cell kind),
    an optional embedding in its first layer, nn.Linear maps in its top cell's outputs or in its head."""
    plan = program.plan
    if plan.kind != "sequence" or plan.stack is None:
        raise Unmatched(f"`{program.name}` is a {plan.kind} model; torch weights convert for a sequence model "
                        f"(one recurrent stack, optionally with an embedding and a head)")
    layers = plan.stack.layers
    bidirectional = len(layers[0].uses) == 2
    directions, kinds = [], {}
    embedding, linears = None, []
    for k, layer in enumerate(layers):
        top = k == len(layers) - 1
        if (len(layer.uses) == 2) != bidirectional:
            raise Unmatched(f"layer {k} has {len(layer.uses)} direction(s) and layer 0 has "
                            f"{len(layers[0].uses)}; a torch module is bidirectional in every layer or in none")
        if len(layer.uses) == 1 and layer.uses[0].reverse:
            raise Unmatched(f"layer {k} runs in reverse only; a torch module runs forward (or both ways, "
                            f"bidirectional=True)")
        if bidirectional and layer.merge not in ("concat", "separate"):
            raise Unmatched(f"layer {k} merges its directions with `{layer.merge}`; torch concatenates them "
                            f"(forward, reverse): use merge: concat")
        for d, use in enumerate(layer.uses):
            m = match_cell(use.cell, first=k == 0, top=top, bidirectional=bidirectional)
            kinds.setdefault((m.kind, m.nonlinearity), m)
            if len(kinds) > 1:
                (a, b) = list(kinds)[:2]
                raise Unmatched(f"layer {k} computes an nn.{b[0]} and layer 0 an nn.{a[0]}; one torch module "
                                f"has one cell kind")
            first_match = kinds[next(iter(kinds))]
            if m.hidden != first_match.hidden:
                raise Unmatched(f"layer {k} has hidden size {m.hidden}, layer 0 {first_match.hidden}; a torch "
                                f"module has one hidden_size")
            if m.proj_size != first_match.proj_size:
                raise Unmatched(f"layer {k} projects h to {m.proj_size or 'no projection'}, layer 0 to "
                                f"{first_match.proj_size or 'no projection'}; a torch module has one proj_size")
            suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
            directions.append(Direction(suffix, [_keyed(g, use) for g in m.gates],
                                        use.key(m.proj) if m.proj else None))
            if m.embedding:
                embedding = (use.key(m.embedding), use.cell.params[m.embedding].shape)
            if k == 0 and d == 0:
                input_size = m.input_size
            linears += [Linear(use.key(lin.weight), use.key(lin.bias) if lin.bias else None, lin.shape,
                               f"the outputs of cell `{use.cell.name}`") for lin in m.linears]
    if plan.head is not None:
        linears += head_linears(plan.head.use)
    first = next(iter(kinds.values()))
    return Layout(first.kind, first.nonlinearity, first.hidden, input_size, directions, len(layers),
                  bidirectional, embedding, linears, first.cell, first.proj_size)


def _keyed(g: Gate, use) -> Gate:
    return Gate(g.name, Block(use.key(g.w_ih.key), g.w_ih.lo, g.w_ih.hi),
                Block(use.key(g.w_hh.key), g.w_hh.lo, g.w_hh.hi),
                [use.key(b) for b in g.b_ih], [use.key(b) for b in g.b_hh], g.summed)


# ---- affine maps in a graph --------------------------------------------------------

@dataclass
class Affine:
    """A node read as a sum: weight terms W[:, lo:hi] @ leaf, bias params, and other (non-affine) terms."""

    terms: list[tuple]  # (param, lo, hi, leaf node)
    biases: list[str]
    others: list[int]


def affine(cell: CellGraph, nid: int) -> Affine:
    out = Affine([], [], [])
    stack = [nid]
    while stack:
        n = stack.pop()
        node = cell.node(n)
        args = cell.args(n)
        if node.op == "add":
            stack.extend(reversed(args))
        elif node.op == "matmul" and cell.node(args[0]).op == "param" and len(cell.node(args[0]).shape) == 2:
            w = cell.node(args[0]).attr("name")
            v = args[1]
            parts = cell.args(v) if cell.node(v).op == "concat" else [v]
            lo = 0
            for part in parts:
                width = cell.node(part).shape[0] if cell.node(part).shape else 1
                out.terms.append((w, lo, lo + width, part))
                lo += width
        elif node.op == "param" and len(node.shape) == 1:
            out.biases.append(node.attr("name"))
        else:
            out.others.append(n)
    return out


def _where(cell: CellGraph, nid: int) -> str:
    origin = cell.node(nid).origin
    return f" ({origin})" if origin else ""


def _name(cell: CellGraph, nid: int) -> str:
    node = cell.node(nid)
    if node.op in ("param", "state", "input"):
        return f"`{node.attr('name')}`"
    return f"`{node.label}`" if node.label else f"a {node.op}"


# ---- one cell ------------------------------------------------------------------

@dataclass
class CellMatch:
    kind: str
    nonlinearity: str
    hidden: int
    input_size: int
    gates: list[Gate]
    embedding: str | None
    linears: list[Linear]
    cell: str
    proj: str | None = None  # the param W_hr of h' = W_hr (o tanh(c')) (nn.LSTM with proj_size)
    proj_size: int = 0


class _Reader:
    """Reads one cell's graph against a torch cell's equations; `fail` names the cell and the term."""

    def __init__(self, cell: CellGraph, kind: str):
        self.cell, self.kind = cell, kind
        self.x = None  # the layer input every gate reads (an input node, or embed(token, E))
        self.proj = None  # nn.LSTM with proj_size: the param W_hr of h' = W_hr @ (o * tanh(c'))
        self.cell_state = None  # nn.LSTM: the state node c

    def fail(self, message: str, nid: int | None = None, hint: str = ""):
        where = _where(self.cell, nid) if nid is not None else ""
        text = f"cell `{self.cell.name}` does not compute nn.{self.kind}: {message}{where}"
        text += f"\n  nn.{self.kind} computes {EQUATIONS[self.kind]}"
        raise Unmatched(text + (f"\n  hint: {hint}" if hint else ""))

    def op(self, nid: int) -> str:
        return self.cell.node(nid).op

    def gate(self, nid: int, act: str, name: str, h: int, what: str) -> Gate:
        """act(W [h, x] + b): one weight term over h, one over the layer input, any biases."""
        if self.op(nid) != act:
            self.fail(f"{what} is {_name(self.cell, nid)} = {self.op(nid)}(...), not {act}(W @ [h, x] + b)", nid)
        return self.terms(self.cell.args(nid)[0], name, h, what, nid)

    def terms(self, nid: int, name: str, h: int, what: str, at: int, need_x=True, need_h=True, skip=()) -> Gate:
        a = affine(self.cell, nid)
        others = [o for o in a.others if o not in skip]
        if others:
            o = others[0]
            self.fail(f"{what} adds {_name(self.cell, o)} ({self.op(o)}), which is not W @ h, W @ x or a bias", at,
                      "peephole or extra terms have no place in the torch module" if self.op(o) != "state" else "")
        w_h = w_x = None
        for w, lo, hi, leaf in a.terms:
            if leaf == h:
                if w_h is not None or not need_h:
                    self.fail(f"{what} reads h in {'two terms' if w_h else 'this term'}", at)
                w_h = Block(w, lo, hi)
            elif self.is_input(leaf):
                if w_x is not None or not need_x:
                    self.fail(f"{what} reads the layer input in {'two terms' if w_x else 'this term'}", at)
                w_x = Block(w, lo, hi)
            else:
                self.fail(f"{what} multiplies {_name(self.cell, leaf)} ({self.op(leaf)}) by `{w}`; torch's gates "
                          f"multiply only h and the layer input", at,
                          "a gate reading c is a peephole connection, which nn.LSTM does not have"
                          if self.op(leaf) == "state" else "")
        if need_h and w_h is None:
            self.fail(f"{what} has no W @ h term", at)
        if need_x and w_x is None:
            self.fail(f"{what} has no W @ x term (the layer input)", at)
        return Gate(name, w_x, w_h, list(a.biases))

    def is_input(self, nid: int) -> bool:
        node = self.cell.node(nid)
        ok = (node.op == "input" and node.dtype == "float" and len(node.shape) == 1) or \
             (node.op == "embed" and self.op(self.cell.args(nid)[0]) == "input"
              and self.op(self.cell.args(nid)[1]) == "param")
        if ok and self.x is None:
            self.x = nid
        return ok and nid == self.x


def _pair(cell: CellGraph, nid: int, op: str):
    """The two arguments of `nid` when it is `op`, else None."""
    return tuple(cell.args(nid)) if cell.node(nid).op == op else None


def _is_one(cell: CellGraph, nid: int) -> bool:
    node = cell.node(nid)
    return node.op == "const" and node.shape == () and float(node.attr("value")) == 1.0


def _lstm(r: _Reader, states: dict) -> list[Gate]:
    cell = r.cell
    (n1, s1), (n2, s2) = states.items()
    proj = None
    for (hn, h), (cn, c) in (((n1, s1), (n2, s2)), ((n2, s2), (n1, s1))):
        uh, uc = cell.update_of(h), cell.update_of(c)
        if r.op(uh) == "matmul" and r.op(cell.args(uh)[0]) == "param":  # proj_size: h' = W_hr @ (o * tanh(c'))
            proj, uh = cell.node(cell.args(uh)[0]).attr("name"), cell.args(uh)[1]
        prod = _pair(cell, uh, "mul")
        if prod and any(r.op(a) == "tanh" and cell.args(a)[0] == uc for a in prod):
            break
        proj = None
    else:
        r.fail("no state is updated as h' = o * tanh(c') (or W_hr @ (o * tanh(c')), proj_size) with c' the other "
               "state's update", cell.update_of(s1))
    o_node = next(a for a in prod if not (r.op(a) == "tanh" and cell.args(a)[0] == uc))
    parts = _pair(cell, uc, "add")
    if not parts:
        r.fail(f"the update of `{cn}` is {_name(cell, uc)} = {r.op(uc)}(...), not f * c + i * g", uc)
    keep = [p for p in parts if _pair(cell, p, "mul") and c in cell.args(p)]
    if len(keep) != 1:
        r.fail(f"the update of `{cn}` has not exactly one term f * {cn}", uc)
    new = parts[1] if keep[0] == parts[0] else parts[0]
    f_node = next(a for a in cell.args(keep[0]) if a != c)
    ig = _pair(cell, new, "mul")
    if not ig:
        r.fail(f"the update of `{cn}` adds {_name(cell, new)} = {r.op(new)}(...), not i * g", uc)
    i_node, g_node = (ig[1], ig[0]) if r.op(ig[0]) == "tanh" else ig
    if r.op(i_node) == "sub" and _is_one(cell, cell.args(i_node)[0]):
        r.fail("the input gate is 1 - f (a coupled forget gate); nn.LSTM has an input gate of its own", uc)
    r.proj, r.cell_state = proj, c
    return h, [r.gate(i_node, "sigmoid", "i", h, "the input gate i"),
               r.gate(f_node, "sigmoid", "f", h, "the forget gate f"),
               r.gate(g_node, "tanh", "g", h, "the candidate g"),
               r.gate(o_node, "sigmoid", "o", h, "the output gate o")]


def _gru(r: _Reader, h: int) -> list[Gate]:
    cell = r.cell
    uh = cell.update_of(h)
    parts = _pair(cell, uh, "add")
    if not parts or not all(_pair(cell, p, "mul") for p in parts):
        r.fail(f"the update of h is {_name(cell, uh)} = {r.op(uh)}(...), not (1 - z) * n + z * h", uh)
    keep = [p for p in parts if h in cell.args(p)]
    if len(keep) != 1:
        r.fail("the update of h has no term z * h", uh)
    z_node = next(a for a in cell.args(keep[0]) if a != h)
    new = parts[1] if keep[0] == parts[0] else parts[0]
    a, b = cell.args(new)
    flip = next((x for x in (a, b) if r.op(x) == "sub" and _is_one(cell, cell.args(x)[0])), None)
    if r.op(z_node) == "sub" and _is_one(cell, cell.args(z_node)[0]) and z_node != flip:
        r.fail("the old state is weighted by 1 - z and the candidate by z; nn.GRU keeps z * h (z weights the "
               "old state)", uh, "swap the roles: h' = (1 - z) * n + z * h")
    if flip is None or cell.args(flip)[1] != z_node:
        r.fail("the candidate's weight is not 1 - z, with z the gate that keeps h", uh)
    n_node = b if flip == a else a
    z = r.gate(z_node, "sigmoid", "z", h, "the update gate z")
    if r.op(n_node) != "tanh":
        r.fail(f"the candidate is {_name(cell, n_node)} = {r.op(n_node)}(...), not tanh(...)", n_node)
    outer = affine(cell, cell.args(n_node)[0])
    resets = [o for o in outer.others if _pair(cell, o, "mul")]
    for w, lo, hi, leaf in outer.terms:
        reset = _pair(cell, leaf, "mul")
        if reset and h in reset:
            r.fail(f"the candidate multiplies `{w}` by r * h: the reset gate acts before the matrix multiply "
                   f"(Cho et al. 2014, ONNX linear_before_reset=0), and nn.GRU applies it after, "
                   f"r * (W_hn @ h + b_hn)", n_node,
                   "the two are different models; write n: tanh(W_in @ x + b_in + r * (W_hn @ h + b_hn)) "
                   "as specs/gru.yaml does")
    if len(resets) != 1 or len(outer.others) != 1:
        r.fail("the candidate has no single term r * (W_hn @ h + b_hn)", n_node)
    rr, inner = cell.args(resets[0])
    if r.op(rr) != "sigmoid":
        rr, inner = inner, rr
    n_out = r.terms(cell.args(n_node)[0], "n", h, "the candidate n outside r * (...)", n_node, need_h=False,
                    skip=resets)
    n_in = r.terms(inner, "n", h, "the candidate's r * (...) term", n_node, need_x=False)
    reset = r.gate(rr, "sigmoid", "r", h, "the reset gate r")
    n = Gate("n", n_out.w_ih, n_in.w_hh, n_out.b_ih, n_in.b_ih, summed=False)
    return [reset, z, n]


def match_cell(cell: CellGraph, first: bool, top: bool, bidirectional: bool) -> CellMatch:
    states = {n: cell.by_name("state")[n] for n in cell.states}
    if any(len(s.shape) != 1 for s in cell.states.values()) or len(states) not in (1, 2):
        shown = ", ".join(f"`{n}`" for n in cell.states) or "none"
        raise Unmatched(f"cell `{cell.name}` has states {shown}; nn.RNN and nn.GRU carry one vector (h), "
                        f"nn.LSTM two (h, c)")
    if len(cell.inputs) != 1:
        raise Unmatched(f"cell `{cell.name}` reads {len(cell.inputs)} inputs; a torch recurrent layer reads one")
    if len(states) == 2:
        r = _Reader(cell, "LSTM")
        (h, gates), nonlin = _lstm(r, states), "tanh"
    else:
        h = next(iter(states.values()))
        u = cell.update_of(h)
        op = cell.node(u).op
        if op not in ("tanh", "relu", "add"):
            raise Unmatched(f"cell `{cell.name}` does not compute nn.RNN or nn.GRU: its state is updated as "
                            f"{op}(...){_where(cell, u)}\n  nn.RNN computes {EQUATIONS['RNN']}\n  nn.GRU computes "
                            f"{EQUATIONS['GRU']}")
        kind = "GRU" if op == "add" else "RNN"
        r = _Reader(cell, kind)
        if kind == "RNN":
            gates, nonlin = [r.terms(cell.args(u)[0], "", h, "the update of h", u)], cell.node(u).op
        else:
            gates, nonlin = _gru(r, h), "tanh"
    proj = r.proj
    hidden = cell.node(r.cell_state).shape[0] if proj else cell.node(h).shape[0]  # gate rows: c's size
    _check_blocks(r, gates, hidden)
    if proj and cell.params[proj].shape != (cell.node(h).shape[0], hidden):
        r.fail(f"`{proj}` is {list(cell.params[proj].shape)}; the projection h' = {proj} @ (o * tanh(c')) needs "
               f"[{cell.node(h).shape[0]}, {hidden}]")
    x = cell.node(r.x)
    embedding = cell.node(cell.args(r.x)[1]).attr("name") if x.op == "embed" else None
    if embedding and not first:
        r.fail("an embedding below a layer other than the first", r.x)
    linears = _output_linears(r, cell.update_of(h), top, bidirectional)
    return CellMatch(r.kind, nonlin, hidden, x.shape[0], gates, embedding, linears, cell.name, proj,
                     cell.node(h).shape[0] if proj else 0)


def _check_blocks(r: _Reader, gates: list[Gate], hidden: int) -> None:
    """Every weight param is covered once, column for column; every bias once; all rows are the hidden size."""
    cell, cover = r.cell, {}
    for g in gates:
        for b in (g.w_ih, g.w_hh):
            cover.setdefault(b.key, []).append((b.lo, b.hi))
    for key, spans in cover.items():
        rows, cols = cell.params[key].shape
        if rows != hidden:
            r.fail(f"`{key}` has {rows} rows, and the hidden state {hidden}")
        ends = [0] + [hi for _, hi in sorted(spans)]
        if [lo for lo, _ in sorted(spans)] != ends[:-1] or ends[-1] != cols:
            r.fail(f"`{key}` is read by more than one term, or in part; torch keeps each gate's weights apart")
    biases = [b for g in gates for b in g.b_ih + g.b_hh]
    if len(set(biases)) != len(biases) or set(biases) & set(cover):
        r.fail("a bias param is shared between gates")


def _output_linears(r: _Reader, h_next: int, top: bool, bidirectional: bool) -> list[Linear]:
    """The cell's outputs: h' itself, or (top layer only) W @ h' + b, an nn.Linear on the torch output."""
    cell, out = r.cell, []
    for name, nid in cell.outputs().items():
        value = cell.args(nid)[0]
        if value == h_next:
            continue
        a = affine(cell, value)
        if top and not bidirectional and not a.others and len(a.terms) == 1 and len(a.biases) <= 1 \
                and a.terms[0][3] == h_next and a.terms[0][1] == 0 \
                and a.terms[0][2] == cell.params[a.terms[0][0]].shape[1]:
            w = a.terms[0][0]
            out.append(Linear(w, a.biases[0] if a.biases else None, cell.params[w].shape, ""))
            continue
        r.fail(f"output `{name}` is not h (nor, on the top layer of one direction, W @ h + b); the torch module "
               f"hands up h at every step", nid)
    return out


def head_linears(use) -> list[Linear]:
    """Each W @ v (+ b) of a head, W and b params of it: one nn.Linear."""
    cell, out = use.cell, []
    for nid in cell.order():
        args = cell.args(nid)
        if cell.node(nid).op != "matmul" or cell.node(args[0]).op != "param":
            continue
        w = cell.node(args[0]).attr("name")
        bias = None
        users = cell.users(nid)
        if len(users) == 1 and cell.node(users[0]).op == "add":
            other = [a for a in cell.args(users[0]) if a != nid]
            if other and cell.node(other[0]).op == "param" and len(cell.node(other[0]).shape) == 1:
                bias = cell.node(other[0]).attr("name")
        out.append(Linear(use.key(w), use.key(bias) if bias else None, cell.params[w].shape, "the head"))
    return out
