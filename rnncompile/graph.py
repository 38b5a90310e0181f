"""The dataflow graph of one cell: small frozen node records in a networkx graph.

A node's arguments are its incoming edges with ``delay == 0``, ordered by
the edge key (the argument index). A state's next value reaches the state
node through one edge with ``delay == 1``: that edge is the recurrence. The
zero-delay part is a DAG; :func:`verify` checks that and every shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx

from .ops import OPS, ShapeError, fmt_shape


@dataclass(frozen=True)
class Node:
    op: str
    shape: tuple
    attrs: tuple = ()  # sorted (name, value) pairs
    dtype: str = "float"  # float | token
    origin: str = ""  # spec path it came from, e.g. cells.lstm.update.c
    label: str = ""  # the spec's name for it, when it has one (c_next, f, h)

    def attr(self, name, default=None):
        for k, v in self.attrs:
            if k == name:
                return v
        return default

    @property
    def attr_dict(self) -> dict:
        return dict(self.attrs)

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))


def make_attrs(d: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))


@dataclass(frozen=True)
class ParamInfo:
    name: str
    shape: tuple
    init: str = "glorot"
    scale: float | None = None
    values: object = None
    origin: str = ""
    bias_init: float | None = None  # gate biases: a constant start value


@dataclass(frozen=True)
class StateInfo:
    name: str
    shape: tuple
    init: object = 0.0  # a number, or the name of a param (or, with from_context, of a model context input)
    origin: str = ""
    from_context: bool = False  # init names a model context input: one start value per sequence, given at run time


@dataclass(frozen=True)
class InputInfo:
    name: str
    shape: tuple
    dtype: str = "float"
    origin: str = ""


@dataclass
class CellGraph:
    """One step of a cell as a graph, plus what the step reads and carries."""

    name: str
    g: nx.MultiDiGraph = field(default_factory=nx.MultiDiGraph)
    params: dict[str, ParamInfo] = field(default_factory=dict)
    states: dict[str, StateInfo] = field(default_factory=dict)
    inputs: dict[str, InputInfo] = field(default_factory=dict)
    _next_id: int = 0
    calls: list = field(default_factory=list)  # functions.Expansion: the nodes each call of a spec function made

    # -- building ----------------------------------------------------------
    def add(self, node: Node, args=()) -> int:
        nid = self._next_id
        self._next_id += 1
        self.g.add_node(nid, node=node)
        for i, a in enumerate(args):
            self.g.add_edge(a, nid, key=i, delay=0)
        return nid

    def connect_update(self, value: int, state: int) -> None:
        """The recurrence: `value` at step t becomes `state` at step t+1."""
        self.g.add_edge(value, state, key=0, delay=1)

    def replace(self, nid: int, node: Node) -> None:
        self.g.nodes[nid]["node"] = node

    def redirect(self, old: int, new: int) -> None:
        """Make every user of `old` (and its recurrence) use `new` instead."""
        for _, dst, key, data in list(self.g.out_edges(old, keys=True, data=True)):
            self.g.remove_edge(old, dst, key)
            self.g.add_edge(new, dst, key=key, **data)

    def copy(self) -> "CellGraph":
        c = CellGraph(self.name, self.g.copy(), dict(self.params), dict(self.states), dict(self.inputs))
        c._next_id = self._next_id
        c.calls = list(self.calls)
        return c

    # -- reading -----------------------------------------------------------
    def node(self, nid: int) -> Node:
        return self.g.nodes[nid]["node"]

    def args(self, nid: int) -> list[int]:
        edges = [(k, src) for src, _, k, d in self.g.in_edges(nid, keys=True, data=True) if d["delay"] == 0]
        return [src for _, src in sorted(edges)]

    def users(self, nid: int) -> list[int]:
        return sorted({dst for _, dst, d in self.g.out_edges(nid, data=True) if d["delay"] == 0})

    def nodes_of(self, op: str) -> list[int]:
        return [n for n, d in self.g.nodes(data=True) if d["node"].op == op]

    def by_name(self, op: str) -> dict[str, int]:
        return {self.node(n).attr("name"): n for n in self.nodes_of(op)}

    def update_of(self, state_node: int) -> int:
        for src, _, d in self.g.in_edges(state_node, data=True):
            if d["delay"] == 1:
                return src
        raise KeyError(f"state node {state_node} has no update")

    def updates(self) -> dict[str, int]:
        """state name -> the node computing its next value."""
        return {name: self.update_of(n) for name, n in self.by_name("state").items()}

    def outputs(self) -> dict[str, int]:
        return self.by_name("output")

    def params_read_by_outputs(self) -> list[str]:
        """The params some output reads within one step (all a stateless graph, such as a tree rule, reads),
        in declaration order."""
        used, seen, stack = set(), set(), list(self.outputs().values())
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if self.node(n).op == "param":
                used.add(self.node(n).attr("name"))
            stack.extend(self.args(n))
        return [p for p in self.params if p in used]

    def step_dag(self) -> nx.MultiDiGraph:
        dag = nx.MultiDiGraph()
        dag.add_nodes_from(self.g.nodes)
        dag.add_edges_from((u, v, k) for u, v, k, d in self.g.edges(keys=True, data=True) if d["delay"] == 0)
        return dag

    def order(self) -> list[int]:
        """Nodes in an order where every argument comes first (ties by id)."""
        return list(nx.lexicographical_topological_sort(self.step_dag()))


STAGES = ("const", "seq", "loop")


def stages(cell: CellGraph) -> dict[int, str]:
    """When each node can be computed: once (const: params and literals only),
    for all steps at once before the loop (seq: inputs but no state), or inside
    the loop (loop: reads state)."""
    rank = {"const": 0, "seq": 1, "loop": 2}
    out = {}
    for nid in cell.order():
        op = cell.node(nid).op
        if op in ("param", "const"):
            out[nid] = "const"
        elif op in ("input", "step_index", "seq_length"):  # the step index and length: known before the loop
            out[nid] = "seq"
        elif op == "state":
            out[nid] = "loop"
        else:
            args = cell.args(nid)
            out[nid] = STAGES[max((rank[out[a]] for a in args), default=0)]
    return out


def verify(cell: CellGraph) -> None:
    """Check the invariants every pass must preserve; raises AssertionError-free ValueError."""
    dag = cell.step_dag()
    if not nx.is_directed_acyclic_graph(dag):
        cycle = nx.find_cycle(dag)
        raise ValueError(f"{cell.name}: zero-delay cycle {cycle}")
    for nid in cell.g.nodes:
        node = cell.node(nid)
        op = OPS.get(node.op)
        if op is None:
            raise ValueError(f"{cell.name}: node {nid} has unknown op {node.op}")
        args = cell.args(nid)
        lo, hi = op.arity
        if len(args) < lo or (hi is not None and len(args) > hi):
            raise ValueError(f"{cell.name}: node {nid} ({node.op}) has {len(args)} args")
        if op.kind != "source":
            attrs = {**{k: v for k, v in op.attrs.items()}, **node.attr_dict}
            try:
                shape = op.shape([cell.node(a).shape for a in args], attrs)
            except ShapeError as e:
                raise ValueError(f"{cell.name}: node {nid} ({node.op}): {e}") from None
            if tuple(shape) != tuple(node.shape):
                raise ValueError(f"{cell.name}: node {nid} ({node.op}) says {node.shape}, rule gives {shape}")
    for name, sid in cell.by_name("state").items():
        upd = cell.update_of(sid)
        if cell.node(upd).shape != cell.node(sid).shape:
            raise ValueError(f"{cell.name}: update of {name} has shape {cell.node(upd).shape}")


def _attr_text(node: Node) -> str:
    shown = [(k, v) for k, v in node.attrs if k not in ("shape", "name")]
    return "".join(f" {k}={v}" for k, v in shown)


def to_text(cell: CellGraph) -> str:
    """A plain-text listing of the graph (stable; tests and `inspect` diff it)."""
    lines = [f"cell {cell.name}"]
    ids = {nid: f"%{i}" for i, nid in enumerate(cell.order())}
    for nid in cell.order():
        node = cell.node(nid)
        shape = fmt_shape(node.shape)
        if OPS[node.op].kind == "source":
            if node.op == "const":
                value = node.attr("value")
                desc = f"const {value}" if not isinstance(value, tuple) or node.size <= 16 else "const [literal]"
            else:
                desc = f"{node.op} {node.attr('name')}"
        else:
            desc = f"{node.op}({', '.join(ids[a] for a in cell.args(nid))}){_attr_text(node)}"
            if node.op == "output":
                desc = f"output {node.attr('name')} = {ids[cell.args(nid)[0]]}"
        name = f" {node.label}" if node.label and OPS[node.op].kind not in ("source", "sink") else ""
        tail = f"  # {node.origin}" if node.origin else ""
        lines.append(f"  {ids[nid]:>4}{name} = {desc} : {shape}{' token' if node.dtype == 'token' else ''}{tail}")
    for name, sid in sorted(cell.by_name("state").items()):
        lines.append(f"  next {name} = {ids[cell.update_of(sid)]}")
    return "\n".join(lines)
