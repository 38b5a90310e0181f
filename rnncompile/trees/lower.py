"""Lowering a tree cell (kind: tree) to two cell graphs: its leaf rule and its node rule.

A tree cell computes a node's states from what the node holds (`word`: a
leaf's token, or every node's in a dependency tree; `label`: its label) and,
for an inner node, from its children's states. Each rule is lowered like a
stateless step cell by CellLowering: its `let:` entries and its state
expressions become named values, and its outputs are the states followed by
the cell's `outputs:` (per node, over the new states). The rules know
nothing of recursion; the fold driver (run.py) runs a rule on a
batch of nodes at a time, leaves to root.

The children axis. In the node rule, each state `s` of the children is one
input, `children.s`, of shape [A, *shape(s)] for a fixed arity A, so
`children[0].h` (which reads `children.h[0]`) is the first child's `h`; or
of shape [K, *shape(s)] with `arity: any`. K varies from node to node, so it
is stored as the size 0 (ops.CHILDREN) and printed K. Shape rules treat it
as one more size: [K, H] @ [H, H] is [K, H], sum(x, axis=0) of a [K, H] is
[H], [K, H] * [H] broadcasts. The driver runs the rule once per group of
nodes with the same number of children, where K is a real size, so any op
means what it says (a mean or a softmax over the children included).
Children have no fixed positions then (children[0] is an error), and a
value with a K axis may be an intermediate (one forget gate per child) but
never a state or an output. With `arity: any` the leaf rule may be left
out: a leaf then runs the node rule with no children (K = 0, so sums over
the children are 0), as the child-sum Tree-LSTM's one set of equations does.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import expr as E
from ..errors import DiagnosticSink, did_you_mean
from ..graph import CellGraph, InputInfo, Node, StateInfo, make_attrs
from ..lower import CellLowering
from ..ops import CHILDREN, fmt_shape
from ..source import SourceMap, dotted
from ..spec import CellSpec, TreeRuleSpec

TREE_INPUTS = {"word": "a leaf's token (every node's, in a dependency tree)", "label": "a node's label"}
RULES = ("leaf", "node")
NOT_IN_TREES = {"update": "write the states' rules under `leaf:` and `node:`",
                "gates": "put `gates:` inside a rule (node: {gates: {i: {act: sigmoid, from: [hs]}}, h: ...})",
                "memory": "", "let": "put `let:` inside a rule (leaf: {let: {...}, h: ...})"}
STEP_ONLY = ("leaf", "node", "arity")


@dataclass
class TreeCell:
    """A tree cell, lowered: one graph per rule and what a node carries."""

    name: str
    node: CellGraph
    leaf: CellGraph | None  # None: leaves run the node rule with no children (arity any only)
    arity: int | None  # None: any number of children
    states: dict[str, StateInfo]
    values: dict[str, tuple]  # what each node holds for a head: its states, then the cell's outputs
    reads: dict[str, frozenset]  # rule -> the inputs (word, label) it reads

    @property
    def rules(self) -> dict[str, CellGraph]:
        return {"leaf": self.leaf, "node": self.node} if self.leaf is not None else {"node": self.node}


def check_step_cell(name: str, cell: CellSpec, smap: SourceMap, sink: DiagnosticSink) -> None:
    """A step cell given a tree cell's keys."""
    for key in STEP_ONLY:
        if getattr(cell, key) is not None:
            path = ("cells", name, key)
            sink.error(f"`{key}` belongs to tree cells", dotted(path), smap.key_loc(path), "add `kind: tree`")


def not_a_tree_cell(b, name: str, path) -> bool:
    """False (reported) when `scan:` or a decoder names a tree cell."""
    cell = b.spec.cells.get(name)
    if cell is not None and cell.kind == "tree":
        b.error(path, f"cell `{name}` is a tree cell: fold it over trees with `model: {{fold: {name}}}`",
                "", True, len(name))
        return False
    return True


def lower_tree_cell(name: str, cell: CellSpec, dims: dict, smap: SourceMap, sink: DiagnosticSink,
                    invalid_dims: frozenset = frozenset()) -> TreeCell | None:
    before, errors_before = len(sink.items), len(sink.errors)
    base = ("cells", name)

    def failed() -> bool:
        return len(sink.errors) > errors_before

    def error(path, message, hint="", offset=None, width=1):
        path = base + tuple(path)
        loc = smap.value_loc(path, offset, width) if offset is not None else smap.key_loc(path)
        sink.error(message, dotted(path), loc, hint)

    for key, hint in NOT_IN_TREES.items():
        if getattr(cell, key):
            error((key,), f"a tree cell has no `{key}:`", hint)
    arity = None if cell.arity in (None, "any") else cell.arity
    if arity is not None and arity < 1:
        error(("arity",), f"arity must be a positive number or `any`, got {arity}", offset=0)
        return None
    if cell.node is None:
        error((), "a tree cell needs a `node:` rule",
              "e.g. node: {h: tanh(W @ concat(children[0].h, children[1].h) + b)}")
    if cell.leaf is None and arity is not None:
        error((), f"a tree cell with `arity: {arity}` needs a `leaf:` rule",
              "e.g. leaf: {h: embed(word, E)}; only with arity: any may leaves run the node rule")
    for iname, inp in cell.inputs.items():
        if iname not in TREE_INPUTS:
            error(("inputs", iname), f"a tree cell's inputs are `word` and `label`, not `{iname}`",
                  "; ".join(f"{k}: {v}" for k, v in TREE_INPUTS.items()))
        elif inp.dtype != "token" or inp.shape:
            error(("inputs", iname), f"`{iname}` is a token", f"write `{iname}: token`")
    for sname, st in cell.state.items():
        if st.init != 0.0:
            error(("state", sname, "init"), "a tree node's state has no initial value: leaves compute theirs",
                  offset=0)
    clash = sorted(set(cell.outputs) & set(cell.state))
    for oname in clash:
        error(("outputs", oname), f"`{oname}` is a state, which every node hands on already",
              "give the output another name, or leave it out")

    states = {}
    sizes = CellLowering(name, CellSpec.model_construct(), dims, smap, sink, invalid_dims, base)
    for sname, st in cell.state.items():
        shape = sizes.shape_of(("state", sname, "shape"), st.shape)  # reports a bad dim itself
        if shape is not None:
            states[sname] = StateInfo(sname, shape, 0.0, dotted(base + ("state", sname)))
    if not cell.state:
        error(("state",) if "state" in cell.model_fields_set else (),
              "a tree cell needs at least one state: what a node hands its parent", "e.g. state: {h: H}")
    if len(states) < len(cell.state) or not states or clash:
        return None  # the rules would only repeat it

    flagged_outputs = set()
    for oname, text in cell.outputs.items():
        node = _first_children(text)
        if node is not None:
            error(("outputs", oname), "an output is computed at every node, leaves included, and leaves have no "
                                      "children", "an output reads the node's own states and inputs",
                  _children_pos(node), len("children"))
            flagged_outputs.add(dotted(base + ("outputs", oname)))
    graphs = {}
    for rule in RULES:
        spec = getattr(cell, rule)
        if spec is None:
            continue
        flagged = {dotted(base + p) for p in _prescan(rule, spec, arity, error)} | flagged_outputs
        start = len(sink.items)
        graphs[rule] = _RuleLowering(name, cell, rule, spec, states, arity, dims, smap, sink, invalid_dims).lower()
        sink.items[start:] = [d for d in sink.items[start:] if d.path not in flagged]  # said better already
    _dedupe(sink, before)
    if failed() or cell.node is None:
        return None
    _check_shared_gate_params(cell, graphs, error)
    if failed():
        return None
    if any(sname not in g.outputs() for g in graphs.values() for sname in states):
        return None  # a value failed on a name whose error is already reported (e.g. a dim the vocabulary sets)

    values = dict((n, s.shape) for n, s in states.items())
    for rule, g in graphs.items():
        outs = g.outputs()
        for sname, st in states.items():
            got = g.node(outs[sname]).shape
            if got != st.shape:
                hint = ("sum(x) adds up every entry; sum(x, axis=0) adds over the children"
                        if arity is None and rule == "node" and got == () else
                        "reduce the children axis, e.g. sum(x, axis=0)" if CHILDREN in got else "")
                error((rule, sname), f"the {rule} rule gives `{sname}` the shape {fmt_shape(got)}, but the state is "
                                     f"{fmt_shape(st.shape)}", hint, offset=0)
        for oname in cell.outputs:
            got = g.node(outs[oname]).shape
            if CHILDREN in got:
                error(("outputs", oname), f"output `{oname}` has the children axis ({fmt_shape(got)}); "
                                          f"a node's output has one value per node", "reduce it, e.g. sum(x, axis=0)",
                      offset=0)
            elif values.setdefault(oname, got) != got:
                error(("outputs", oname), f"output `{oname}` is {fmt_shape(values[oname])} at the leaves but "
                                          f"{fmt_shape(got)} at the other nodes", offset=0)
    if failed():
        return None
    _warn_unused(cell, graphs, smap, sink, base)
    reads = {rule: frozenset(n for n, nid in g.by_name("input").items() if n in TREE_INPUTS and g.users(nid))
             for rule, g in graphs.items()}
    for rule, g in graphs.items():
        g.name = f"{name}.{rule}"
    return TreeCell(name, graphs["node"], graphs.get("leaf"), arity, states, values, reads)


class _RuleLowering(CellLowering):
    """One rule as a stateless cell: lets and state expressions are named values, the states
    (then the cell's outputs) its outputs; spec paths point at the rule."""

    steps_in_time = False  # no `t` or `seq_len`: a rule runs on tree nodes

    def __init__(self, name, cell: CellSpec, rule: str, spec: TreeRuleSpec, states: dict, arity, dims, smap, sink,
                 invalid_dims):
        self.rule, self.rule_spec, self.tree_states, self.arity = rule, spec, states, arity
        values = spec.values
        lets = dict(spec.let)
        for sname, text in values.items():
            lets[sname] = text  # a state's expression is the named value `sname` (its new value)
        fields = dict(kind="step", description="", inputs=dict(cell.inputs), state={}, params=cell.params,
                      gates=dict(spec.gates),
                      consts=cell.consts, functions=cell.functions,
                      let=lets, update={}, outputs={**{s: s for s in states if s in values}, **cell.outputs})
        super().__init__(name, CellSpec.model_construct(**fields), dims, smap, sink, invalid_dims,
                         base=("cells", name))
        self.check_keys(values)

    def check_keys(self, values: dict) -> None:
        for key in values:  # (check._check_names has dropped keys that are not names)
            if key not in self.tree_states:
                self.error((self.rule, key), f"`{key}` is not a state of this cell, so the {self.rule} rule "
                                             f"cannot give it a value",
                           hint=did_you_mean(key, self.tree_states, "state") or "declare it under `state:`")
        for sname in self.tree_states:
            if sname not in values:
                self.error((self.rule,), f"the {self.rule} rule gives no value for state `{sname}`",
                           hint=f"add `{sname}: <expression>` under `{self.rule}:`")
        for lname in self.rule_spec.let:
            if lname in self.tree_states:
                self.error((self.rule, "let", lname), f"`{lname}` is a state: write its rule beside `let:`, "
                                                      f"as `{lname}: ...`")

    def lower(self) -> CellGraph:
        if self.rule == "node":  # children.<state>: one input per state, with the children axis first
            k = self.arity if self.arity is not None else CHILDREN
            for sname, st in self.tree_states.items():
                iname, shape = f"children.{sname}", (k,) + st.shape
                origin = dotted(self.base + ("state", sname))
                self.graph.inputs[iname] = InputInfo(iname, shape, "float", origin)
                self.env[iname] = self.graph.add(Node("input", shape, make_attrs({"name": iname, "shape": shape}),
                                                      "float", origin, iname))
                self.kind_of[iname] = "input"
        return super().lower()

    def sized_states(self) -> dict:
        return self.tree_states

    def gate_param_names(self, gate: str) -> list[str]:
        """A leaf gate's matrix is W_<gate> (it reads the node's inputs), a node gate's U_<gate> (it reads the
        children), as Tai et al. write them; b_<gate> (and gain_<gate>) are shared by a gate of both rules."""
        names = super().gate_param_names(gate)
        return (["U_" + gate] if self.rule == "node" else names[:1]) + names[1:]

    def map_path(self, path) -> tuple:
        path = tuple(path)
        if path and path[0] == "gates":
            return (self.rule,) + path
        if len(path) >= 2 and path[0] == "let":
            name = path[1]
            if name in self.rule_spec.let and name not in self.tree_states:
                return (self.rule, "let") + path[1:]
            return (self.rule,) + path[1:]
        if len(path) >= 2 and path[0] == "outputs" and path[1] in self.tree_states:
            return (self.rule,) + path[1:]
        return path

    def lower_text(self, text, path, env=None, label: str = ""):
        return super().lower_text(text, self.map_path(path), env, label)

    def error(self, path, message, offset=None, width=1, hint=""):
        if message.startswith("algebraic loop"):
            hint = "in a rule, a state's name means this node's new value; the children's are children.<state>"
        super().error(self.map_path(path), message, offset, width, hint)

    def warn_unused(self):
        pass  # a param may serve the other rule: lower_tree_cell warns for both at once


def _prescan(rule: str, spec: TreeRuleSpec, arity, error) -> set[tuple]:
    """Errors a reader needs in tree words (children in a leaf, children's positions); returns the
    spec paths reported, whose generic errors from lowering would only repeat them."""
    flagged = set()
    entries = [((rule, "let", n), t) for n, t in spec.let.items()] + [((rule, n), t) for n, t in spec.values.items()]
    for path, text in entries:
        if not isinstance(text, str):
            continue
        try:
            tree = E.parse(text)
        except E.ExprSyntaxError:
            continue  # reported where the expression is lowered
        for node in E.walk(tree):
            if rule == "leaf" and _is_children(node):
                error(path, "a leaf has no children", "read the children's states in the `node:` rule",
                      _children_pos(node), len("children"))
                flagged.add(path)
                break
            if rule == "node" and isinstance(node, E.Index) and _is_children(node.value):
                if arity is None:
                    error(path, "with `arity: any` children have no fixed positions",
                          "combine them over the children axis, e.g. sum(children.h, axis=0), or set `arity: 2`",
                          node.pos)
                    flagged.add(path)
                    break
                i = node.index
                if isinstance(i, E.Num) and float(i.value).is_integer() and not 0 <= i.value < arity:
                    error(path, f"child {int(i.value)} does not exist: with `arity: {arity}` the children are "
                                f"0..{arity - 1}", "", i.pos, len(i.text))
                    flagged.add(path)
                    break
    return flagged


def _first_children(text):
    """The first reference to `children` in an expression (None: none, or it does not parse)."""
    try:
        tree = E.parse(text) if isinstance(text, str) else None
    except E.ExprSyntaxError:
        return None
    return next((n for n in E.walk(tree) if _is_children(n)), None) if tree is not None else None


def _children_pos(node) -> int:
    return node.pos if isinstance(node, E.Name) else node.value.pos


def _is_children(node) -> bool:
    return (isinstance(node, E.Name) and node.id == "children") or \
        (isinstance(node, E.Attr) and isinstance(node.value, E.Name) and node.value.id == "children")


def _dedupe(sink: DiagnosticSink, start: int) -> None:
    """Both rules lower the same params and inputs: report each of their problems once."""
    seen, kept = set(sink.items[:start]), []
    for d in sink.items[start:]:
        if d not in seen:
            seen.add(d)
            kept.append(d)
    sink.items[start:] = kept


def _check_shared_gate_params(cell: CellSpec, graphs: dict, error) -> None:
    """A gate of both rules shares b_<gate> (and gain_<gate>): both must then be the same width; and a param
    a gate makes must not be one the cell declares."""
    if len(graphs) < 2:
        return
    leaf, node = graphs["leaf"].params, graphs["node"].params
    for pname in sorted(set(leaf) & set(node)):
        if pname in cell.params or leaf[pname].shape == node[pname].shape:
            continue
        gate = pname.split("_", 1)[1]
        error(("node", "gates", gate), f"gate `{gate}` of the node rule is {node[pname].shape[0]} wide"
                                       f", but the leaf rule's gate `{gate}` is {leaf[pname].shape[0]}: they share "
                                       f"`{pname}`", "give them one width, or different names")


def _warn_unused(cell: CellSpec, graphs: dict, smap: SourceMap, sink: DiagnosticSink, base) -> None:
    used = {p for g in graphs.values() for p in g.params_read_by_outputs()}
    for pname in cell.params:
        if pname not in used:
            path = base + ("params", pname)
            sink.warn(f"param `{pname}` is never used", dotted(path), smap.key_loc(path))
