"""The `memory:` shorthand, written out.

An NTM-style memory (Graves, Wayne & Danihelka 2014) is a state with a matrix
shape plus addressing ops. `memory:` stands for exactly the entries a person
would write by hand: :func:`expand` returns the cell with them appended after
the cell's own entries, in the order below, so a spec that writes them out in
that order compiles to the same graph, node for node (specs/ntm.yaml and
specs/ntm_shorthand.yaml are the pair; tests/test_memory.py compares them).

Names (memory `M`, controller output `c` of size C; a head's tag is `r0`,
`r1`, ... for read heads and `w0`, ... for write heads):

    state   M [N, W]      the memory, from `init` (a small constant by default)
            r0 [W]        each read head's last read vector (feed it to the controller)
            w_r0, w_w0 [N] each head's last weighting (content+location only), starting from
                          the param w_<tag>_init (one-hot on slot 0 unless a weights file says otherwise)
    params  w_<tag>_init [N]                    where each head starts (init: one_hot)
            W_k_<tag> [W, C], b_k_<tag> [W]     key       k = tanh(W_k @ c + b_k)
            u_beta_<tag> [C], b_beta_<tag> []   strength  beta = softplus(u_beta @ c + b_beta)
            u_g_<tag>, b_g_<tag>                gate      g = sigmoid(u_g @ c + b_g)
            W_s_<tag> [S, C], b_s_<tag> [S]     shifts    s = softmax(W_s @ c + b_s), S = 2 shifts + 1
            u_gamma_<tag>, b_gamma_<tag>        sharpen   gamma = 1 + softplus(u_gamma @ c + b_gamma)
            W_e_<tag>, b_e_<tag>                erase     e = sigmoid(W_e @ c + b_e)       (write heads)
            W_a_<tag>, b_a_<tag>                add       a = tanh(W_a @ c + b_a)          (write heads)
    let     wc_<tag> = softmax(beta * cosine(M', k))        content weighting
            wg_<tag> = g * wc + (1 - g) * w_<tag>            interpolation with the last weighting
            ws_<tag> = shift(wg, s)                          rotation
            w_<tag>_next = sharpen(ws, gamma)                the head's weighting at this step
            M_next = M * (1 - outer(w_w0_next, e_w0)) + outer(w_w0_next, a_w0)
    update  M: M_next, r0: w_r0_next @ M_next, w_r0: w_r0_next, w_w0: w_w0_next

Order: each section gets the cell's own entries first, then these. States: M,
the read vectors, the read heads' weightings, the write heads'. Params: the
w_<tag>_init (read heads first), then every write head's, then every read
head's, each in the order of the table. Lets: each write head's (k, beta, g,
s, gamma, wc, wg, ws, w_next, e, a), M_next, then each read head's. Updates:
in the order of the states.

Write heads address the previous memory M' = M; read heads address and read
the memory after this step's writes, M' = M_next. With several write heads,
erasures multiply and adds sum (the paper's rule, independent of head order).
With `addressing: content` a head's weighting is the let
`w_<tag> = softmax(beta * cosine(M', k))` and there are no g, s, gamma or
weighting states.
"""
from __future__ import annotations

from dataclasses import dataclass

from .dims import DimError, eval_dim
from .errors import did_you_mean
from .source import SourceMap, Span
from .spec import CellSpec, MemorySpec, ParamSpec, StateSpec

UNKNOWN = "_unknown_size"  # stands for a size already reported as bad; the lowering skips what uses it


@dataclass(frozen=True)
class Problem:
    path: tuple  # key path inside the cell, e.g. ("memory", "slots")
    message: str
    pos: int | None = None  # offset into the value, when it is a dim expression
    width: int = 1
    hint: str = ""
    undefined: str | None = None  # a dim name that is not defined


def head_tags(mem: MemorySpec) -> tuple[list[str], list[str]]:
    """(read head tags, write head tags): r0, r1, ... and w0, w1, ..."""
    return [f"r{i}" for i in range(mem.read_heads)], [f"w{j}" for j in range(mem.write_heads)]


def expand(cell: CellSpec, dims: dict[str, int]) -> tuple[CellSpec, list[Problem]]:
    """The cell with its `memory:` written out (memory=None), and the problems found in the shorthand.

    After a problem the expansion still happens, so that the rest of the cell is checked and nothing is
    reported twice: a bad size becomes UNKNOWN (the lowering skips whatever uses a dim it was told is bad),
    too many shifts fewer, an undefined controller a param of UNKNOWN size."""
    mem = cell.memory
    if mem is None:
        return cell, []
    problems: list[Problem] = []
    n_slots, slots = _dim(mem, "slots", dims, problems)
    _, width = _dim(mem, "width", dims, problems)
    size = _controller_size(cell, mem, problems)
    if mem.controller_size is not None:
        _, size = _dim(mem, "controller_size", dims, problems)
    shifts = mem.shifts
    if n_slots is not None and mem.addressing == "content+location" and 2 * shifts + 1 > n_slots:
        shifts = (n_slots - 1) // 2
        problems.append(Problem(("memory", "shifts"), f"{2 * mem.shifts + 1} shifts (-{mem.shifts}..{mem.shifts}) "
                                                      f"do not fit a memory of {n_slots} slots",
                                hint=f"use at most shifts: {shifts}"))
    out = _Writer(cell, mem, slots, width, size if size is not None else UNKNOWN, shifts)
    out.write()
    if mem.controller not in [*cell.inputs, *cell.state, *cell.gates, *cell.let, *cell.params]:
        out.param(mem.controller, [UNKNOWN])  # stand-in for an undefined controller
    problems += out.clashes()
    return out.result(), problems


def _dim(mem: MemorySpec, key: str, dims: dict, problems: list) -> tuple[int | None, object]:
    """(its value, the size to write out)."""
    value = getattr(mem, key)
    try:
        n = eval_dim(value, dims)
    except DimError as e:
        problems.append(Problem(("memory", key), e.message, e.pos, e.width, e.hint, e.undefined))
        return None, UNKNOWN
    if n < 1:
        problems.append(Problem(("memory", key), f"size `{value}` is {n}; sizes must be positive", 0))
        return None, UNKNOWN
    return n, value


def _controller_size(cell: CellSpec, mem: MemorySpec, problems: list):
    """The controller's length as a dim expression: given, or read off its declaration."""
    name = mem.controller
    declared = [*cell.inputs, *cell.state, *cell.gates, *cell.let]
    if name not in declared:
        problems.append(Problem(("memory", "controller"), f"undefined name `{name}`", 0, len(name),
                                did_you_mean(name, declared, "") or "name an input, state, gate or let of the cell"))
        return None
    if mem.controller_size is not None:
        return mem.controller_size
    if name in cell.inputs or name in cell.state:
        shape = (cell.inputs.get(name) or cell.state.get(name)).shape
        if len(shape) == 1:
            return shape[0]
    if name in cell.gates and cell.gates[name].size is not None:
        return cell.gates[name].size
    widths = [s.shape[0] for s in cell.state.values() if len(s.shape) == 1]
    if len({str(w) for w in widths}) == 1:  # the rule gates use for their size
        return widths[0]
    problems.append(Problem(("memory", "controller"), f"cannot tell the length of the controller `{name}`",
                            hint="give it: controller_size: H"))
    return None


class _Writer:
    """Appends the written-out entries to copies of the cell's sections, in the documented order."""

    def __init__(self, cell: CellSpec, mem: MemorySpec, slots, width, size, shifts: int):
        self.cell, self.mem = cell, mem
        self.slots, self.width, self.size, self.shifts = slots, width, size, shifts  # sizes as dim expressions
        self.state: dict = {}
        self.params: dict = {}
        self.let: dict = {}
        self.update: dict = {}
        self.location = mem.addressing == "content+location"

    def param(self, name: str, shape: list, init: str = "glorot"):
        self.params[name] = ParamSpec(shape=shape, init=init)

    def affine(self, what: str, tag: str, rows) -> str:
        """`W_<what>_<tag> @ c + b_<what>_<tag>` (rows None: a scalar from a row vector)."""
        c = self.mem.controller
        if rows is None:
            self.param(f"u_{what}_{tag}", [self.size])
            self.param(f"b_{what}_{tag}", [], "zeros")
            return f"u_{what}_{tag} @ {c} + b_{what}_{tag}"
        self.param(f"W_{what}_{tag}", [rows, self.size])
        self.param(f"b_{what}_{tag}", [rows], "zeros")
        return f"W_{what}_{tag} @ {c} + b_{what}_{tag}"

    def head(self, tag: str, memory: str) -> str:
        """The lets of one head's addressing; returns the name of its weighting at this step."""
        self.let[f"k_{tag}"] = f"tanh({self.affine('k', tag, self.width)})"
        self.let[f"beta_{tag}"] = f"softplus({self.affine('beta', tag, None)})"
        if not self.location:
            self.let[f"w_{tag}"] = f"softmax(beta_{tag} * cosine({memory}, k_{tag}))"
            return f"w_{tag}"
        self.let[f"g_{tag}"] = f"sigmoid({self.affine('g', tag, None)})"
        self.let[f"s_{tag}"] = f"softmax({self.affine('s', tag, 2 * self.shifts + 1)})"
        self.let[f"gamma_{tag}"] = f"1 + softplus({self.affine('gamma', tag, None)})"
        self.let[f"wc_{tag}"] = f"softmax(beta_{tag} * cosine({memory}, k_{tag}))"
        self.let[f"wg_{tag}"] = f"g_{tag} * wc_{tag} + (1 - g_{tag}) * w_{tag}"
        self.let[f"ws_{tag}"] = f"shift(wg_{tag}, s_{tag})"
        self.let[f"w_{tag}_next"] = f"sharpen(ws_{tag}, gamma_{tag})"
        return f"w_{tag}_next"

    def write(self) -> None:
        mem, m = self.mem, self.mem.name
        reads, writes = head_tags(mem)
        self.state[m] = StateSpec(shape=[self.slots, self.width], init=mem.init)
        for tag in reads:
            self.state[tag] = StateSpec(shape=[self.width], init=0.0)
        if self.location:  # heads start on slot 0: a uniform start could never break the slots' symmetry
            for tag in reads + writes:
                self.state[f"w_{tag}"] = StateSpec(shape=[self.slots], init=f"w_{tag}_init")
                self.param(f"w_{tag}_init", [self.slots], "one_hot")
        written = m
        if writes:
            erase, add = [], []
            for tag in writes:
                w = self.head(tag, m)
                self.let[f"e_{tag}"] = f"sigmoid({self.affine('e', tag, self.width)})"
                self.let[f"a_{tag}"] = f"tanh({self.affine('a', tag, self.width)})"
                erase.append(f" * (1 - outer({w}, e_{tag}))")
                add.append(f" + outer({w}, a_{tag})")
            written = f"{m}_next"
            self.let[written] = m + "".join(erase) + "".join(add)
        read_weights = {tag: self.head(tag, written) for tag in reads}
        self.update[m] = written
        for tag in reads:
            self.update[tag] = f"{read_weights[tag]} @ {written}"
        if self.location:
            for tag in reads + writes:
                self.update[f"w_{tag}"] = f"w_{tag}_next"

    def clashes(self) -> list[Problem]:
        cell, out = self.cell, []
        taken = {}
        for section in ("inputs", "state", "params", "gates", "let"):
            for name in getattr(cell, section):
                taken.setdefault(name, section)
        for gate, spec in cell.gates.items():
            taken.setdefault(f"W_{gate}", "params")
            if spec.bias:
                taken.setdefault(f"b_{gate}", "params")
        for section in ("state", "params", "let"):
            for name in getattr(self, section):
                if name in taken:
                    where = ("memory", "name") if name == self.mem.name else ("memory",)
                    out.append(Problem(where, f"the memory shorthand defines `{name}` ({section}), but the cell "
                                              f"already has `{name}` under `{taken[name]}:`",
                                       hint="rename yours (the shorthand's names are fixed; the memory's is "
                                            "`name:`), or write the memory out by hand"))
        for name in cell.update:
            if name in self.state:
                out.append(Problem(("update", name), f"`{name}` is updated by the memory shorthand",
                                   hint="remove this entry"))
        return out

    def result(self) -> CellSpec:
        cell = self.cell
        merged = {section: {**getattr(cell, section), **getattr(self, section)}
                  for section in ("state", "params", "let", "update")}
        return cell.model_copy(update={**merged, "memory": None})


def locate(smap: SourceMap, base: tuple, cell: CellSpec, expanded: CellSpec) -> None:
    """Make diagnostics about written-out entries point at the cell's `memory:` key."""
    span = smap.keys.get(tuple(base) + ("memory",))
    if span is None:
        return
    at = Span(span.line, span.col, "|")  # a block-style span: carets go to its start, not into the text
    for section in ("state", "params", "let", "update"):
        own = getattr(cell, section)
        for name in getattr(expanded, section):
            if name not in own:
                smap.values.setdefault(tuple(base) + (section, name), at)
