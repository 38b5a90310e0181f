"""The cell writer: one cell graph as five plain NumPy functions.

    <cell>_prepare(params, prefix, dtype) -> k   param-only values, once per set of weights
    <cell>_initial(k, batch)                      the state before step 0
    <cell>_hoist(k, *inputs)                      input-only values for all rows at once (before the loop)
    <cell>_step(k, *hoisted_t, *state)            one step: (outputs), (next state)
    <cell>_scan(k, inputs, state, lengths, reverse)  the loop over time: outputs [B, T, ...], final state

A cell that reads the step index `t` or the sequence length `seq_len` takes them as _hoist's last
arguments (one row per step and sequence, as its inputs), and its _scan takes two more, with defaults:
`step0=0` (the `t` of its first step, for a scan that is a chunk of a longer one) and `total=None`
(the sequence's length when no lengths are given; step0 + T by default).

Each node is one line computing one local (see names.py), commented with the
spec path it came from. The split follows `rnncompile.graph.stages`, as the
NumPy backend's plan does. With ``trace=True`` the same functions also hand
back every local, for `run --trace`; that variant is for the backend only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rnncompile.graph import CellGraph, stages
from rnncompile.ops import OPS, STEP_SOURCES, fmt_shape

from .emitters import Site, emit
from .names import Namer, comment, literal, string, value_names

IND = "    "


@dataclass
class CellCode:
    fn: str  # the functions' common prefix
    source: str
    names: dict[int, str]  # node id -> local (or literal)
    stage: dict[int, str]
    hoisted: list[int]  # seq nodes the loop reads, in the order _hoist returns and _step takes them
    seq_outputs: list[str]  # outputs computed before the loop (after `hoisted` in _hoist's result)
    loop_outputs: list[str]  # outputs _step returns, in this order
    const_outputs: list[str]  # outputs that depend on params only (held in k)
    needs: set = field(default_factory=set)  # prelude helpers
    parts: list = field(default_factory=list)  # the functions written: prepare, initial, hoist, step, scan
    times: list[int] = field(default_factory=list)  # t and seq_len nodes, _hoist's last arguments, in this order


class CellWriter:
    def __init__(self, cell: CellGraph, fn: str, trace: bool = False):
        self.cell, self.fn, self.trace = cell, fn, trace
        self.rows = False  # a tree rule: it runs on rows of tree nodes (see write)
        self.stage = stages(cell)
        self.order = cell.order()
        namer = Namer({f"{fn}_{part}" for part in PARTS})
        self.names = value_names(cell, namer, literal)
        self.params = cell.by_name("param")
        # a param a state starts from that the step itself never reads
        inits = [i.init for i in cell.states.values() if isinstance(i.init, str) and not i.from_context]
        self.init_locals = {n: self.names[self.params[n]] if n in self.params else namer.fresh(n)
                            for n in dict.fromkeys(inits)}
        self.needs: set = set()
        self.inputs = cell.by_name("input")
        self.times = [n for n in self.order if cell.node(n).op in STEP_SOURCES]  # t, seq_len: hoist's last args
        self.states = cell.by_name("state")
        self.updates = cell.updates()
        self.outputs = cell.outputs()
        of_stage = {s: [n for n in self.order if self.stage[n] == s] for s in ("const", "seq", "loop")}
        self.of_stage = of_stage
        later = {a for n in self.order if self.stage[n] != "const" for a in cell.args(n)}
        ends = set(self.updates.values()) | set(self.outputs.values())
        self.kept = [n for n in of_stage["const"] if self._named(n) and (n in later or n in ends or trace)]
        loop_reads = {a for n in of_stage["loop"] for a in cell.args(n)} | set(self.updates.values())
        self.hoisted = [n for n in of_stage["seq"] if n in loop_reads]
        self.by_stage_out = {s: [name for name, nid in self.outputs.items() if self.stage[nid] == s]
                             for s in ("const", "seq", "loop")}

    def _named(self, nid) -> bool:
        return literal(self.cell.node(nid).attr("value")) is None if self.cell.node(nid).op == "const" else True

    def _line(self, nid, expr) -> str:
        origin = self.cell.node(nid).origin
        return f"{IND}{self.names[nid]} = {expr}" + (f"  # {comment(origin)}" if origin else "")

    def _node(self, nid) -> str:
        node, cell = self.cell.node(nid), self.cell
        args = cell.args(nid)
        site = Site([self.names[a] for a in args], tuple(self.stage[a] != "const" for a in args),
                    [cell.node(a).shape for a in args], {**OPS[node.op].attrs, **node.attr_dict}, node.shape)
        expr = emit(node.op, site)
        self.needs |= site.needs
        return self._line(nid, expr)

    def _unpack(self, nids) -> list[str]:
        return [self._line(n, f'k[{string(self.names[n])}]') for n in self.kept if n in nids]

    def _reads(self, nids) -> set:
        return {a for n in nids for a in self.cell.args(n)}

    # -- the five functions ------------------------------------------------------------
    def prepare(self) -> str:
        params = [f"{n} {fmt_shape(self.cell.params[n].shape)}" for n in self.cell.params] or ["none"]
        lines = [f'def {self.fn}_prepare(params, prefix="", dtype="float32"):',
                 f'{IND}"""Cell `{self.cell.name}`, once per set of weights: the values that read params only.',
                 *wrap("params (keys: prefix + name): ", params, IND),
                 f'{IND}"""',
                 f"{IND}dtype = np.dtype(dtype)"]
        for name, local in self.init_locals.items():
            if name not in self.params:
                lines.append(f'{IND}{local} = np.asarray(params[prefix + {string(name)}], dtype)'
                             f"  # {comment(self.cell.params[name].origin)}")
        for nid in self.of_stage["const"]:
            node = self.cell.node(nid)
            if node.op == "param":
                lines.append(self._line(nid, f'np.asarray(params[prefix + {string(node.attr("name"))}], dtype)'))
            elif node.op == "const":
                if self._named(nid):
                    lines.append(self._line(nid, f"np.asarray({list(node.attr('value'))!r}, dtype)"))
            else:
                lines.append(self._node(nid))
        kept = [f'{string(self.names[n])}: {self.names[n]}' for n in self.kept]
        kept += [f'{string(local)}: {local}' for n, local in self.init_locals.items() if self.params.get(n) not in self.kept]
        lines.append(f'{IND}return {{"dtype": dtype{"".join(", " + k for k in kept)}}}')
        return "\n".join(lines)

    def initial(self) -> str:
        ctx = [i.init for i in self.cell.states.values() if i.from_context]
        lines = [f"def {self.fn}_initial(k, batch{', context' if ctx else ''}):",
                 f'{IND}"""The state before step 0' + (f" (context: {', '.join(ctx)} [B, ...], one per sequence)"
                                                       if ctx else "") + '."""']
        for name, info in self.cell.states.items():
            shape = "(batch, " + "".join(f"{d}, " for d in info.shape)[:-2] + ")" if info.shape else "(batch,)"
            if info.from_context:
                expr = f'np.array(context[{string(info.init)}], k["dtype"])'
            elif isinstance(info.init, str):
                expr = f'np.broadcast_to(k[{string(self.init_locals[info.init])}], {shape}).copy()'
            elif float(info.init) == 0:
                expr = f'np.zeros({shape}, k["dtype"])'
            else:
                expr = f'np.full({shape}, {float(info.init)!r}, k["dtype"])'
            lines.append(f"{IND}{self.names[self.states[name]]} = {expr}" + (f"  # {comment(info.origin)}" if info.origin else ""))
        body = ", ".join(f'{string(n)}: {self.names[self.states[n]]}' for n in self.cell.states)
        lines.append(f"{IND}return {{{body}}}")
        return "\n".join(lines)

    def hoist(self) -> str:
        ins = [self.names[self.inputs[n]] for n in self.cell.inputs] + [self.names[n] for n in self.times]
        seq = [n for n in self.of_stage["seq"] if self.cell.node(n).op != "input" and n not in self.times]
        back = [self.names[n] for n in self.hoisted] + [self.names[self.outputs[o]] for o in self.by_stage_out["seq"]]
        lines = [f"def {self.fn}_hoist({', '.join(['k'] + ins)}):",
                 f'{IND}"""Cell `{self.cell.name}`, before the loop: the values that read inputs but not the state,',
                 f"{IND}for all rows at once ({', '.join(ins) or 'no inputs'}: one row per "
                 f"{'tree node' if self.rows else 'step and sequence'}).",
                 f"{IND}Returns {', '.join(back) or 'nothing'}.",
                 f'{IND}"""']
        lines += self._unpack(self._reads(seq))
        lines += [self._node(n) for n in seq]
        if self.trace:
            back.append("{" + ", ".join(f'{string(self.names[n])}: {self.names[n]}' for n in self.of_stage["seq"]) + "}")
        lines.append(f"{IND}return {_tuple(back)}")
        return "\n".join(lines)

    def step(self) -> str:
        states = [self.names[self.states[n]] for n in self.cell.states]
        loop = [n for n in self.of_stage["loop"] if self.cell.node(n).op != "state"]
        outs = [self.names[self.outputs[o]] for o in self.by_stage_out["loop"]]
        nexts = [self._next(n) for n in self.cell.states]
        lines = [f"def {self.fn}_step({', '.join(['k'] + [self.names[n] for n in self.hoisted] + states)}):",
                 f'{IND}"""Cell `{self.cell.name}`, one step: this step\'s hoisted values and the state in;',
                 f"{IND}returns the outputs ({', '.join(self.by_stage_out['loop']) or 'none'}) and the next state "
                 f"({', '.join(self.cell.states) or 'none'}).",
                 f'{IND}"""']
        lines += self._unpack(self._reads(loop) | {self.updates[n] for n in self.cell.states})
        lines += [self._node(n) for n in loop]
        back = f"{_tuple(outs)}, {_tuple(nexts)}"
        if self.trace:
            back += ", {" + ", ".join(f'{string(self.names[n])}: {self.names[n]}' for n in self.of_stage["loop"]) + "}"
        lines.append(f"{IND}return {back}")
        return "\n".join(lines)

    def _next(self, state: str) -> str:
        """The next value of `state` as _step returns it: with a batch axis even when it reads params only."""
        upd = self.updates[state]
        if self.stage[upd] != "const":
            return self.names[upd]
        return f"np.broadcast_to({self.names[upd]}, {self.names[self.states[state]]}.shape).copy()"

    def scan(self) -> str:
        return ScanWriter(self).render()

    def write(self, rows: bool = False) -> CellCode:
        """All the functions; a cell without state has no _initial or _step, and a tree rule (`rows`: it runs
        on rows of tree nodes, never over time) only _prepare and _hoist."""
        self.rows = rows
        stateful = bool(self.cell.states) and not rows
        parts = {"prepare": self.prepare, "initial": self.initial if stateful else None, "hoist": self.hoist,
                 "step": self.step if stateful else None, "scan": None if rows else self.scan}
        parts = {name: write for name, write in parts.items() if write is not None}
        header = f"# ---- cell `{comment(self.cell.name)}` " + "-" * max(4, 80 - len(self.cell.name))
        source = header + "\n\n" + "\n\n\n".join(write() for write in parts.values()) + "\n"
        return CellCode(self.fn, source, self.names, self.stage, self.hoisted, self.by_stage_out["seq"],
                        self.by_stage_out["loop"], self.by_stage_out["const"], self.needs, list(parts),
                        list(self.times))


PARTS = ("prepare", "initial", "hoist", "step", "scan")


def wrap(head: str, items: list[str], indent: str, width: int = 100) -> list[str]:
    """`head` and the comma-separated items, as lines of at most `width` characters."""
    lines, line = [], indent + head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = indent + "    "
        line += piece + " "
    return lines + [line.rstrip()]


def _tuple(items: list[str]) -> str:
    if not items:
        return "()"
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


class ScanWriter:
    """<cell>_scan: hoist, then the loop over time with masking of padded steps."""

    def __init__(self, w: CellWriter):
        self.w = w
        self.namer = Namer(set(w.names.values()) | {f"{w.fn}_{p}" for p in PARTS})

    def render(self) -> str:
        w, cell, names = self.w, self.w.cell, self.w.names
        w.needs |= {"time_major", "by_step"} | ({"stack_steps"} if w.trace else set())
        ins = {n: names[w.inputs[n]] for n in cell.inputs}
        sts = {n: names[w.states[n]] for n in cell.states}
        shapes = ", ".join(f"{n} [B, T{''.join(', ' + str(d) for d in i.shape)}]" for n, i in cell.inputs.items())
        state_doc = ", ".join(f"{n} [B{''.join(', ' + str(d) for d in s.shape)}]" for n, s in cell.states.items())
        out_doc = ", ".join(f"{n} [B, T{''.join(', ' + str(d) for d in cell.node(i).shape)}]"
                            for n, i in w.outputs.items())
        sig = "k, inputs, state=None, lengths=None, reverse=False" + ("" if ins else ", batch=1, steps=1") \
            + (", step0=0, total=None" if w.times else "")
        lines = [f"def {w.fn}_scan({sig}):",
                 f'{IND}"""Cell `{cell.name}` over a batch of sequences: inputs {shapes or "none"};',
                 f"{IND}state {state_doc or 'none'} (default: {w.fn}_initial); lengths [B]: real steps per",
                 f"{IND}sequence (a padded step keeps the state and outputs zeros); reverse: run from the last step.",
                 f"{IND}Returns the outputs ({out_doc or 'none'}) and the final state"
                 + (", and every value by name." if w.trace else "."),
                 f'{IND}"""']
        for n, local in ins.items():
            cast = "" if cell.inputs[n].dtype == "token" else ', k["dtype"]'
            lines.append(f'{IND}{local} = np.asarray(inputs[{string(n)}]{cast})')
        lines.append(f"{IND}B, T = {next(iter(ins.values()))}.shape[:2]" if ins else f"{IND}B, T = batch, steps")
        if w.times:
            lines[5:5] = [f"{IND}step0: the step index t of the first step (a chunk of a longer scan); total: the sequence",
                          f"{IND}length seq_len when lengths is None (default step0 + T)."]
        for nid in w.times:  # one row per (step, sequence), time-major, as time_major(input) gives
            if cell.node(nid).op == "step_index":
                lines.append(f'{IND}{names[nid]} = np.repeat(np.arange(step0, step0 + T, dtype=k["dtype"]), B)'
                             f"  # t")
            else:
                lines.append(f'{IND}{names[nid]} = np.tile(np.asarray(np.full(B, step0 + T if total is None else '
                             f'total) if lengths is None else lengths), T).astype(k["dtype"])  # seq_len')
        ctx = [i.init for i in cell.states.values() if i.from_context]
        if ctx:
            lines += [f"{IND}if state is None:",
                      f'{IND * 2}raise ValueError("cell `{cell.name}` starts from context input {", ".join(ctx)}: '
                      f'give state={{...}} (see {w.fn}_initial)")']
        elif sts:
            lines.append(f"{IND}state = {w.fn}_initial(k, B) if state is None else state")
        if sts:
            lines += [f'{IND}{local} = np.asarray(state[{string(n)}], k["dtype"])' for n, local in sts.items()]
        hoisted = [names[n] for n in w.hoisted] + [names[w.outputs[o]] for o in w.by_stage_out["seq"]]
        if w.trace:
            self.before = self.namer.fresh("before")
            hoisted.append(self.before)
        if hoisted:
            call = f"{w.fn}_hoist({', '.join(['k'] + [f'time_major({v})' for v in ins.values()] + [names[n] for n in w.times])})"
            lines.append(f"{IND}{_tuple(hoisted) if len(hoisted) == 1 else ', '.join(hoisted)} = {call}")
            lines += [f"{IND}{v} = by_step({v}, T, B)" for v in hoisted[:len(w.hoisted) + len(w.by_stage_out['seq'])]]
        for o in w.by_stage_out["const"]:
            local = names[w.outputs[o]]
            lines.append(f'{IND}{local} = np.array(np.broadcast_to(k[{string(local)}], (T, B) + k[{string(local)}].shape))')
        if w.by_stage_out["seq"] or w.by_stage_out["const"]:
            lines.append(f"{IND}if lengths is not None:  # padded steps output zeros")
            lines.append(f"{IND * 2}live = np.arange(T)[:, None] < lengths")
            for o in w.by_stage_out["seq"] + w.by_stage_out["const"]:
                local = names[w.outputs[o]]
                lines.append(f"{IND * 2}{local} = np.where(live{_units(2, cell.node(w.outputs[o]).shape)}, {local}, 0)")
        lines += self.loop(sts)
        outs = ", ".join(f'{string(o)}: np.swapaxes({names[i]}, 0, 1)' for o, i in w.outputs.items())
        finals = ", ".join(f'{string(n)}: {local}' for n, local in sts.items())
        back = f"{{{outs}}}, {{{finals}}}"
        if w.trace:
            back += ", trace"
        lines.append(f"{IND}return {back}")
        return "\n".join(lines)

    def loop(self, sts: dict) -> list[str]:
        w, cell, names = self.w, self.w.cell, self.w.names
        outs = {o: names[w.outputs[o]] for o in w.by_stage_out["loop"]}
        lines = []
        for o, local in outs.items():
            shape = "".join(f", {d}" for d in cell.node(w.outputs[o]).shape)
            lines.append(f'{IND}{local} = np.zeros((T, B{shape}), k["dtype"])')
        if w.trace:
            lines.append(f"{IND}traced = []")
        if not sts and not outs:
            if w.trace:
                lines.append(f"{IND}trace = {{}}")
                lines += self.trace_tail()
            return lines
        out_t = {o: self.namer.fresh(f"{local}_t") for o, local in outs.items()}
        next_t = {n: self.namer.fresh(f"{local}_t") for n, local in sts.items()}
        args = ", ".join(["k"] + [f"{names[n]}[t]" for n in w.hoisted] + list(sts.values()))
        got = f"{_tuple(list(out_t.values()))}, {_tuple(list(next_t.values()))}" + (", seen" if w.trace else "")
        lines += [f"{IND}for t in range(T - 1, -1, -1) if reverse else range(T):",
                  f"{IND * 2}{got} = {w.fn}_step({args})"]
        if w.trace:
            lines.append(f"{IND * 2}traced.append(seen)")
        lines.append(f"{IND * 2}if lengths is None:")
        if sts:
            lines.append(f"{IND * 3}{', '.join(sts.values())} = {', '.join(next_t.values())}")
        lines += [f"{IND * 3}{local}[t] = {out_t[o]}" for o, local in outs.items()]
        lines += [f"{IND * 2}else:  # a padded step keeps the state and outputs zeros",
                  f"{IND * 3}live = t < lengths"]
        for n, local in sts.items():
            lines.append(f"{IND * 3}{local} = np.where(live{_units(1, cell.states[n].shape)}, {next_t[n]}, {local})")
        for o, local in outs.items():
            lines.append(f"{IND * 3}{local}[t] = np.where(live{_units(1, cell.node(w.outputs[o]).shape)}, "
                         f"{out_t[o]}, 0)")
        if w.trace:
            lines.append(f"{IND}trace = stack_steps(traced, reverse)")
            lines += self.trace_tail()
        return lines

    def trace_tail(self) -> list[str]:
        return [f"{IND}trace.update({{n: np.swapaxes(by_step(v, T, B), 0, 1) for n, v in {self.before}.items()}})"]


def _units(lead: int, shape: tuple) -> str:
    """Index text giving a [lead axes] mask unit axes for a value of `shape` ([:, None] etc.)."""
    return f"[{', '.join([':'] * lead + ['None'] * len(shape))}]" if shape else ""
