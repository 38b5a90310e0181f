"""Memories and their read and write heads, found in a cell graph (not from names).

A *memory* is a matrix-valued state M [N, W]; the nodes of the same shape that
lead from it (and from the heads' writes) to its next value are its *region*:
`M`, `outer(w, e)`, `1 - outer(w, e)`, `M * (…)`, `… + outer(w, a)`.

A vector w of length N is a *write weighting* where it is the first argument
of `outer(w, ·)`, and a *read weighting* where it multiplies a matrix with N
rows that is not a weight, `w @ M`. Each weighting is one head. A write head's
erase and add vectors are the second arguments of its `outer` nodes: the one
under a `1 - …` erases, any other adds. `rnncompile.plot` uses the weightings
for its heatmaps; the renderer groups the cell around the memory heads (a head
whose memory is a state): every node belongs to a memory, to one head (when
all it feeds is that head's addressing) or to the controller (the rest).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .graph import CellGraph, stages

CONTROLLER = "controller"


@dataclass(frozen=True)
class Head:
    kind: str  # read | write | read/write
    index: int  # 0, 1, … among the heads of its kind
    weighting: int  # the node of its weighting over the slots
    name: str  # the spec's name for the weighting (a state's name for its next value)
    memory: str | None  # the memory state it reads or writes (None: a matrix that is not a state)
    erase: tuple = ()  # write heads: erase vectors e of M * (1 - outer(w, e))
    add: tuple = ()  # write heads: add vectors a of + outer(w, a)
    reads: tuple = ()  # read heads: the nodes w @ M

    @property
    def title(self) -> str:
        return f"{self.kind} head {self.index}"


@dataclass
class Parts:
    """A cell seen as controller, memories and heads."""

    memories: dict[str, frozenset] = field(default_factory=dict)  # memory state -> its region (node ids)
    heads: list[Head] = field(default_factory=list)
    owner: dict[int, str] = field(default_factory=dict)  # node -> CONTROLLER | "memory M" | a head's title

    def group(self, nid: int) -> str:
        return self.owner.get(nid, CONTROLLER)


def display_name(cell: CellGraph, nid: int) -> str:
    """The spec's name for a node: a state's name for its next value, `x (prev)` for a state read."""
    node = cell.node(nid)
    if node.op == "state":
        return f"{node.attr('name')} (prev)"
    for name, upd in cell.updates().items():
        if upd == nid:
            return name
    return node.label or f"%{nid}"


def weightings(cell: CellGraph) -> dict[int, set]:
    """weighting node -> {"read", "write"}, in graph order."""
    stage = stages(cell)
    found: dict[int, set] = {}
    for nid in cell.order():
        node, args = cell.node(nid), cell.args(nid)
        if node.op == "outer" and len(cell.node(args[0]).shape) == 1:
            found.setdefault(args[0], set()).add("write")
        elif node.op == "matmul":
            w, m = args
            ws, ms = cell.node(w).shape, cell.node(m).shape
            if len(ws) == 1 and len(ms) == 2 and ws[0] == ms[0] and stage[m] != "const":  # w @ M, M not a weight
                found.setdefault(w, set()).add("read")
    order = {n: i for i, n in enumerate(cell.order())}
    return dict(sorted(found.items(), key=lambda kv: order[kv[0]]))


def memory_regions(cell: CellGraph) -> dict[str, frozenset]:
    """Each matrix state's region: the nodes of its shape from which its next value is built."""
    out = {}
    states = cell.by_name("state")
    for name, info in cell.states.items():
        if len(info.shape) != 2 or name not in states:
            continue
        region, todo = set(), [cell.update_of(states[name])]
        while todo:
            n = todo.pop()
            node = cell.node(n)
            if n in region or node.shape != info.shape or node.op in ("param", "const", "input"):
                continue
            region.add(n)
            todo.extend(cell.args(n))
        region.add(states[name])
        out[name] = frozenset(region)
    return out


def find(cell: CellGraph) -> Parts:
    """The memories, the heads and who owns every node; no heads when the cell has no memory."""
    parts = Parts(memory_regions(cell))
    if not parts.memories:
        return parts
    in_memory = {n: m for m, region in parts.memories.items() for n in region}
    counts: dict[str, int] = {}
    for w, kinds in weightings(cell).items():
        kind = "read/write" if len(kinds) == 2 else next(iter(kinds))
        erase, add, reads, memory = [], [], [], None
        for user in cell.users(w):
            node, args = cell.node(user), cell.args(user)
            if node.op == "outer" and args[0] == w:
                (erase if _erases(cell, user) else add).append(args[1])
                memory = memory or in_memory.get(user)
            elif node.op == "matmul" and args[0] == w and len(cell.node(args[1]).shape) == 2:
                reads.append(user)
                memory = memory or in_memory.get(args[1]) or _memory_below(cell, args[1], in_memory)
        if memory is None:
            continue  # attention over a matrix that is not a memory state
        index = counts.get(kind, 0)
        counts[kind] = index + 1
        name = cell.node(w).attr("name") if cell.node(w).op == "state" else display_name(cell, w)
        parts.heads.append(Head(kind, index, w, name, memory, tuple(erase), tuple(add), tuple(reads)))
    parts.owner = _owners(cell, parts, in_memory)
    return parts


def _erases(cell: CellGraph, outer: int) -> bool:
    """outer(w, e) under `1 - …` (or `… - outer`) erases."""
    return any(cell.node(u).op == "sub" and cell.args(u)[-1] == outer for u in cell.users(outer))


def _memory_below(cell: CellGraph, nid: int, in_memory: dict) -> str | None:
    """The memory a matrix is taken from by shape ops (a slice of M_next)."""
    while nid not in in_memory:
        args = [a for a in cell.args(nid) if len(cell.node(a).shape) == 2]
        if len(args) != 1:
            return None
        nid = args[0]
    return in_memory[nid]


def _owners(cell: CellGraph, parts: Parts, in_memory: dict) -> dict[int, str]:
    """Seed the memories and each head's weighting, erase, add and reads; then a node belongs to a head
    when everything it feeds (this step, or through a state the next) belongs to that head."""
    owner = {n: f"memory {m}" for n, m in in_memory.items()}
    states = cell.by_name("state")
    updates = {cell.update_of(sid): sid for sid in states.values()}
    for head in parts.heads:
        seeds = [head.weighting, *head.erase, *head.add, *head.reads]
        if head.weighting in updates.values():  # a head addressing with its last weighting moves it too
            seeds.append(cell.update_of(head.weighting))
        for n in seeds:
            owner.setdefault(n, head.title)
    order = [n for n in reversed(cell.order()) if n not in owner]
    sinks = {n for n in cell.g.nodes if cell.node(n).op in ("output", "input")}
    for n in sinks:
        owner[n] = CONTROLLER

    def feeds(n):
        out = [u for u in cell.users(n) if u not in sinks]
        if n in updates:
            out.append(updates[n])
        return out

    changed = True
    while changed:  # a state's owner is known only after its users', and an update's only after its state's
        changed = False
        for n in order:
            if n in owner:
                continue
            users = feeds(n)
            if any(u not in owner for u in users):
                continue
            groups = {owner[u] for u in users}
            owner[n] = groups.pop() if len(groups) == 1 else CONTROLLER
            changed = True
        if not changed:  # a loop through states with no owner yet: the controller's
            rest = [n for n in order if n not in owner]
            if rest:
                owner[rest[0]] = CONTROLLER
                changed = True
    return owner
