"""PyTorch state_dicts to a program's weights and back.

PyTorch stacks a recurrent layer's gates in `weight_ih_l{k}` [G*H, in] and
`weight_hh_l{k}` [G*H, H] (rows i f g o for nn.LSTM, r z n for nn.GRU) with
two biases; a spec writes each gate as its own param over `concat(from...)`
with one bias (their sum), except where torch keeps them apart (the GRU's n).
Where each torch row block goes is read from the program's graphs
(interop/torch_cells.py), so any spec computing the same equations converts,
whatever its params are called. Arrays are NumPy throughout: torch is only
needed to read or write .pt files (interop/torch_files.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, UsageError, did_you_mean
from ..ops import fmt_shape
from ..params import check_against
from .torch_cells import GATE_ORDER, Block, Layout, layout

RNN_KEY = re.compile(r"^(?P<module>(?:.+\.)?)(?P<what>weight|bias)_(?P<part>ih|hh|hr)_l(?P<layer>\d+)"
                     r"(?P<rev>_reverse)?$")
KIND_OF_GATES = {1: "RNN", 3: "GRU", 4: "LSTM"}


@dataclass
class Converted:
    arrays: dict[str, np.ndarray]
    moves: list[str] = field(default_factory=list)  # "torch key -> where it went", one line each
    notes: list[str] = field(default_factory=list)


def parse_map(items) -> dict[str, str]:
    """`--map TORCH=PARAM` items -> {torch name: spec param}."""
    out = {}
    for item in items:
        torch_name, sep, param = item.partition("=")
        if not sep or not torch_name.strip() or not param.strip():
            raise UsageError(f"--map {item}: write --map TORCH_NAME=SPEC_PARAM, e.g. --map fc.weight=head.W_y")
        out[torch_name.strip()] = param.strip()
    return out


def _error(cls, message: str, hint: str = ""):
    return cls(message + (f"\n  hint: {hint}" if hint else ""))


def looks_like_torch(keys) -> bool:
    return any(RNN_KEY.match(k) for k in keys)


# ---- torch -> spec ------------------------------------------------------------

def from_torch(program, state_dict: dict, mapping: dict | None = None, source: str = "state_dict") -> Converted:
    """The program's weights from a state_dict (NumPy arrays or tensors keyed by torch names)."""
    lay = layout(program)
    sd = {k: np.asarray(v) for k, v in state_dict.items()}
    conv = _FromTorch(program, lay, sd, source)
    for torch_name, param in (mapping or {}).items():
        conv.mapped(torch_name, param)
    conv.recurrent()
    conv.around()
    return conv.finish()


class _FromTorch:
    def __init__(self, program, lay: Layout, sd: dict, source: str):
        self.program, self.lay, self.sd, self.source = program, lay, sd, source
        self.infos = program.params
        self.out: dict[str, np.ndarray] = {}
        self.used: set[str] = set()
        self.problems: list[str] = []
        self.moves: list[str] = []
        self.notes: list[str] = []
        floats = [v.dtype for v in sd.values() if np.issubdtype(v.dtype, np.floating)]
        self.dtype = floats[0] if floats else np.dtype("float32")
        self.placed_targets: set[str] = set()

    # -- the recurrent module -------------------------------------------------
    def recurrent(self) -> None:
        groups = {}
        for k in self.sd:
            m = RNN_KEY.match(k)
            if m:
                groups.setdefault(m["module"], []).append(k)
        if not groups:
            self.problems.append(f"  no recurrent weights: the spec expects those of {self.lay.constructor()} "
                                 f"(weight_ih_l0, weight_hh_l0, ...), and no key is named so")
            return
        if len(groups) > 1:
            shown = ", ".join(f"`{m or '(top level)'}`" for m in groups)
            raise _error(DataError, f"{self.source}: holds {len(groups)} recurrent modules ({shown}); the spec "
                                    f"has one recurrent stack",
                         "save the module you mean on its own (its state_dict())")
        prefix, keys = next(iter(groups.items()))
        self.check_config(prefix, keys)
        lay, h = self.lay, self.lay.hidden
        for d in lay.directions:
            names = {w: f"{prefix}{w}{d.suffix}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            w_ih, w_hh = self.sd[names["weight_ih"]], self.sd[names["weight_hh"]]
            b_ih, b_hh = self.sd.get(names["bias_ih"]), self.sd.get(names["bias_hh"])
            self.used.update(n for n in names.values() if n in self.sd)
            where = {n: [] for n in names.values()}
            for j, g in enumerate(d.gates):
                rows = slice(j * h, (j + 1) * h)
                where[names["weight_ih"]].append(self.put(g.w_ih, w_ih[rows], names["weight_ih"]))
                where[names["weight_hh"]].append(self.put(g.w_hh, w_hh[rows], names["weight_hh"]))
                if b_ih is None or b_hh is None:
                    for b in g.b_ih + g.b_hh:
                        self.out[b] = np.zeros(self.infos[b].shape, self.dtype)
                    continue
                gate = f"gate {g.name} of " if g.name else ""
                if g.summed:
                    dest = self.bias(g.b_ih, b_ih[rows] + b_hh[rows], f"{gate}the {d.suffix[1:]} biases")
                    where[names["bias_ih"]].append(dest)
                    where[names["bias_hh"]].append(dest + " (added)")
                else:
                    where[names["bias_ih"]].append(self.bias(g.b_ih, b_ih[rows], f"{gate}{names['bias_ih']}"))
                    where[names["bias_hh"]].append(self.bias(g.b_hh, b_hh[rows], f"{gate}{names['bias_hh']}"))
            if d.proj:
                name = f"{prefix}weight_hr{d.suffix}"
                self.used.add(name)
                where[name] = [self.put(Block(d.proj, 0, self.infos[d.proj].shape[1]), self.sd[name], name)]
            order = f" (rows {', '.join(GATE_ORDER[lay.kind])})" if lay.kind != "RNN" else ""
            if b_ih is not None and b_hh is not None and all(g.summed for g in d.gates):
                del where[names["bias_hh"]]  # one line for both: their sum is what the spec keeps
                where[f"{names['bias_ih']} + {names['bias_hh']}"] = where.pop(names["bias_ih"])
            for key, dests in where.items():
                if dests:
                    self.moves.append(f"{key} → {', '.join(dests)}{order}")
        if not any(RNN_KEY.match(k)["what"] == "bias" for k in keys) and lay.bias:
            self.notes.append("the state_dict has no biases (bias=False): the spec's gate biases are zero")
        if lay.kind == "RNN":
            self.notes.append(f"nn.RNN: the spec's cell uses {lay.nonlinearity}; a state_dict does not say which "
                              f"nonlinearity its module used (nonlinearity='{lay.nonlinearity}')")

    def check_config(self, prefix: str, keys: list[str]) -> None:
        """The module's kind, layers, directions and sizes against the spec's, all problems at once."""
        lay, sd = self.lay, self.sd
        matches = [RNN_KEY.match(k) for k in keys]
        w_ih0, w_hh0 = sd.get(prefix + "weight_ih_l0"), sd.get(prefix + "weight_hh_l0")
        if w_ih0 is None or w_hh0 is None or w_ih0.ndim != 2 or w_hh0.ndim != 2:
            raise DataError(f"{self.source}: `{prefix}weight_ih_l0` and `{prefix}weight_hh_l0` (2-D) are needed to "
                            f"read the recurrent module")
        w_hr0 = sd.get(prefix + "weight_hr_l0")
        proj = w_hh0.shape[1] if w_hr0 is not None else 0
        hidden = w_hr0.shape[1] if w_hr0 is not None and w_hr0.ndim == 2 else w_hh0.shape[1]
        gates = w_ih0.shape[0] // hidden if hidden and w_ih0.shape[0] % hidden == 0 else 0
        kind = KIND_OF_GATES.get(gates)
        layers = 1 + max(int(m["layer"]) for m in matches)
        bidirectional = any(m["rev"] for m in matches)
        bad = []
        if proj and not lay.proj_size:
            bad.append(f"`{prefix}weight_hr_l0`: an nn.LSTM with proj_size={proj} projects h after each step, which "
                       f"the spec's cell does not: write h' = W_hr @ (o * tanh(c')) with W_hr [{proj}, H] and h of "
                       f"size {proj}")
        elif lay.proj_size and not proj:
            bad.append(f"proj_size: the spec projects h to {lay.proj_size} (h' = W_hr @ (o * tanh(c'))), and the "
                       f"state_dict has no `{prefix}weight_hr_l0` (its module was built without proj_size)")
        elif proj and proj != lay.proj_size:
            bad.append(f"proj_size: {proj} in the state_dict (`{prefix}weight_hr_l0` is {list(w_hr0.shape)}), "
                       f"{lay.proj_size} in the spec")
        if kind != lay.kind:
            looks = f"an nn.{kind}" if kind else f"no torch module ({w_ih0.shape[0]} rows for hidden size {hidden})"
            bad.append(f"this looks like {looks} state_dict (`{prefix}weight_ih_l0` has {w_ih0.shape[0]} rows = "
                       f"{gates or '?'} × {hidden}) but the spec's cell `{lay.cell_name}` is an {lay.kind} "
                       f"(nn.{lay.kind} stacks {_gates(lay.kind)})")
        if layers != lay.num_layers:
            bad.append(f"layers: the state_dict has {layers} (…_l0 to …_l{layers - 1}), the spec {lay.num_layers}"
                       f" — give the model `layers:` with {layers} entries (see specs/deep_lstm.yaml)")
        if bidirectional and not lay.bidirectional:
            bad.append("bidirectional: the state_dict has reverse-direction weights (…_reverse) but the spec has no "
                       "reverse direction — make each layer `direction: bidirectional, merge: concat` "
                       "(see specs/bigru.yaml)")
        elif lay.bidirectional and not bidirectional:
            bad.append("bidirectional: the spec runs both directions but the state_dict has no …_reverse weights "
                       "(its module was built without bidirectional=True)")
        if kind == lay.kind and hidden != lay.hidden:
            bad.append(f"hidden size: {hidden} in the state_dict (`{prefix}weight_hh_l0` is {list(w_hh0.shape)}), "
                       f"{lay.hidden} in the spec{_dim_hint(self.program, lay.hidden, hidden)}")
        if kind == lay.kind and w_ih0.shape[1] != lay.input_size:
            bad.append(f"input size: {w_ih0.shape[1]} in the state_dict (`{prefix}weight_ih_l0` is "
                       f"{list(w_ih0.shape)}), {lay.input_size} in the spec"
                       f"{_dim_hint(self.program, lay.input_size, w_ih0.shape[1])}")
        if bad:
            raise DataError(f"{self.source}: the recurrent weights do not fit spec `{self.program.name}`, which "
                            f"expects {lay.constructor()}:\n" + "\n".join(f"  {b}" for b in bad))
        for d in lay.directions:
            for w in ("weight_ih", "weight_hh") + (("weight_hr",) if d.proj else ()):
                if f"{prefix}{w}{d.suffix}" not in sd:
                    raise DataError(f"{self.source}: `{prefix}{w}{d.suffix}` is missing (the spec expects "
                                    f"{lay.constructor()})")

    def put(self, block: Block, rows: np.ndarray, key: str) -> str:
        want = (self.infos[block.key].shape[0], block.hi - block.lo)
        if rows.shape != want:
            self.problems.append(f"  `{key}` gives {list(rows.shape)} for `{block.key}`[:, {block.lo}:{block.hi}], "
                                 f"which is {fmt_shape(want)}")
            return block.key
        target = self.out.setdefault(block.key, np.zeros(self.infos[block.key].shape, self.dtype))
        target[:, block.lo:block.hi] = rows
        whole = block.lo == 0 and block.hi == self.infos[block.key].shape[1]
        return block.key if whole else f"{block.key}[:, {block.lo}:{block.hi}]"

    def bias(self, params: list[str], value: np.ndarray, what: str) -> str:
        if not params:
            if np.any(value != 0):
                self.problems.append(f"  {what}: the spec has no bias there, and the torch values are not zero "
                                     f"(give the gate a bias, or train the module with bias=False)")
            return "(none: zero)"
        self.out[params[0]] = value.astype(self.dtype)
        for rest in params[1:]:
            self.out[rest] = np.zeros(self.infos[rest].shape, self.dtype)
        return params[0]

    # -- embedding and linear maps ------------------------------------------------------
    def modules(self) -> dict[str, dict[str, str]]:
        """Torch keys outside the recurrent module, by module: {"fc": {"weight": "fc.weight", "bias": ...}}."""
        out = {}
        for k in self.sd:
            if k in self.used or RNN_KEY.match(k):
                continue
            module, _, leaf = k.rpartition(".")
            if leaf in ("weight", "bias"):
                out.setdefault(module, {})[leaf] = k
        return out

    def targets(self) -> list[tuple]:
        """(kind, weight param, bias param or None, shape) of each embedding and linear map the spec has."""
        out = []
        if self.lay.embedding:
            out.append(("nn.Embedding", self.lay.embedding[0], None, self.lay.embedding[1]))
        out += [("nn.Linear", lin.weight, lin.bias, lin.shape) for lin in self.lay.linears]
        return out

    def mapped(self, torch_name: str, param: str) -> None:
        if param not in self.infos:
            raise _error(UsageError, f"--map {torch_name}={param}: the spec has no param `{param}`",
                         did_you_mean(param, self.infos, "param") or "params: " + ", ".join(self.infos))
        _not_recurrent(self.lay, torch_name, param)
        if torch_name in self.sd:
            module, _, leaf = torch_name.rpartition(".")
        elif f"{torch_name}.weight" in self.sd:
            module, leaf = torch_name, "weight"
        else:
            raise _error(UsageError, f"--map {torch_name}={param}: the state_dict has no `{torch_name}`",
                         did_you_mean(torch_name, self.sd, "key") or "its keys: " + ", ".join(self.sd))
        for kind, weight, bias, shape in self.targets():
            if param in (weight, bias) and leaf in ("weight", "bias"):
                self.place(kind, weight, bias, shape, module, self.modules().get(module, {}))
                return
        key = torch_name if torch_name in self.sd else f"{torch_name}.weight"
        if self.sd[key].shape != self.infos[param].shape:
            self.problems.append(f"  --map {torch_name}={param}: `{key}` is {list(self.sd[key].shape)}, `{param}` "
                                 f"{fmt_shape(self.infos[param].shape)}")
            return
        self.out[param] = self.sd[key]
        self.used.add(key)
        self.moves.append(f"{key} → {param}")

    def place(self, kind, weight, bias, shape, module, parts: dict) -> None:
        w = parts.get("weight")
        if w is None or self.sd[w].shape != tuple(shape):
            got = list(self.sd[w].shape) if w else "nothing"
            self.problems.append(f"  `{module}.weight` is {got}; `{weight}` ({kind}) is {fmt_shape(shape)}")
            return
        self.out[weight] = self.sd[w]
        self.used.add(w)
        self.placed_targets.add(weight)
        dests = [f"{w} → {weight}"]
        b = parts.get("bias")
        if bias is not None:
            value = self.sd[b] if b else np.zeros(self.infos[bias].shape, self.dtype)
            if value.shape != self.infos[bias].shape:
                self.problems.append(f"  `{b}` is {list(value.shape)}; `{bias}` is "
                                     f"{fmt_shape(self.infos[bias].shape)}")
                return
            self.out[bias] = value
            dests.append(f"{b} → {bias}" if b else f"(no {module}.bias) → {bias} = 0")
        elif b is not None:
            if np.any(self.sd[b] != 0):
                self.problems.append(f"  `{b}`: `{weight}` has no bias in the spec, and the torch values are not zero")
            dests.append(f"{b} → (none: zero)")
        if b:
            self.used.add(b)
        self.moves.extend(dests)

    def around(self) -> None:
        """Each embedding and linear map of the spec not named by --map: the one torch module of its shape
        (names break ties: `emb` for embeddings)."""
        for kind, weight, bias, shape in self.targets():
            if weight in self.placed_targets:
                continue
            free = {m: p for m, p in self.modules().items() if "weight" in p}
            fits = [m for m, p in free.items() if self.sd[p["weight"]].shape == tuple(shape)
                    and (kind == "nn.Linear" or "bias" not in p)]
            if len(fits) > 1:
                named = [m for m in fits if ("emb" in m.lower()) == (kind == "nn.Embedding")]
                fits = named if named else fits
            if len(fits) == 1:
                self.place(kind, weight, bias, shape, fits[0], free[fits[0]])
            elif len(fits) > 1:
                shown = ", ".join(f"`{m}.weight`" for m in fits)
                self.problems.append(f"  `{weight}` ({kind} {fmt_shape(shape)}): {shown} all fit — say which with "
                                     f"--map {fits[0]}.weight={weight}")

    # -- the result -------------------------------------------------------------------
    def finish(self) -> Converted:
        lines = list(self.problems)
        placed = self.lay.params()
        for key, info in self.infos.items():
            if key not in self.out:
                why = "" if key in placed else \
                    " — the torch modules have no counterpart; give one with --map KEY=PARAM"
                lines.append(f"  missing `{key}` {fmt_shape(info.shape)}{why}")
        for key in self.sd:
            if key not in self.used:
                lines.append(f"  unexpected `{key}` {list(self.sd[key].shape)}")
        if lines:
            expected = [self.lay.constructor()] + [f"{_module_text(k, s)} → {w}" for k, w, _, s in self.targets()]
            found = ", ".join(f"{k} {list(v.shape)}" for k, v in self.sd.items())
            raise DataError(f"{self.source}: the torch weights do not fit spec `{self.program.name}`:\n"
                            + "\n".join(lines) + "\n  expected: " + "; ".join(expected) + "\n  found: " + found)
        values = {k: self.out[k] for k in self.infos}
        return Converted(values, self.moves, self.notes)


def _module_text(kind: str, shape: tuple) -> str:
    """nn.Embedding(num, dim) for a table [num, dim]; nn.Linear(in, out) for a weight [out, in]."""
    a, b = shape if kind == "nn.Embedding" else (shape[1], shape[0])
    return f"{kind}({a}, {b})"


def _gates(kind: str) -> str:
    n = len(GATE_ORDER[kind])
    return f"{n} gate{'s' if n > 1 else ''}"


def _dim_hint(program, spec_size: int, torch_size: int) -> str:
    """ — try --dim H=32, when one dim of the spec has the spec's size."""
    names = [n for n, v in program.dims.items() if v == spec_size]
    return f" — try --dim {names[0]}={torch_size}" if len(names) == 1 else ""


# ---- spec -> torch -----------------------------------------------------------------

def to_torch(program, weights: dict, mapping: dict | None = None) -> Converted:
    """A state_dict (NumPy arrays keyed by torch names) for the program's weights. Keys are bare
    (weight_ih_l0, ...: nn.LSTM.load_state_dict takes them) for a recurrent stack alone; with an embedding
    or linear maps, modules `embedding`, `rnn` and `linear` (renamed with --map TORCH_NAME=PARAM)."""
    lay = layout(program)
    infos = program.params
    check_against(infos, weights, "weights")
    names = {}
    for torch_name, param in (mapping or {}).items():
        if param not in infos:
            raise _error(UsageError, f"--map {torch_name}={param}: the spec has no param `{param}`",
                         did_you_mean(param, infos, "param") or "params: " + ", ".join(infos))
        _not_recurrent(lay, torch_name, param)
        names[param] = torch_name
    sd, moves, notes = {}, [], []
    modules = bool(lay.embedding or lay.linears)
    rnn = "rnn." if modules else ""
    h = lay.hidden
    for d in lay.directions:
        w_ih = np.concatenate([_cols(weights, g.w_ih) for g in d.gates])
        w_hh = np.concatenate([_cols(weights, g.w_hh) for g in d.gates])
        sd[f"{rnn}weight_ih{d.suffix}"], sd[f"{rnn}weight_hh{d.suffix}"] = w_ih, w_hh
        if d.proj:
            sd[f"{rnn}weight_hr{d.suffix}"] = np.asarray(weights[d.proj])
        if lay.bias:
            zero = np.zeros(h, w_ih.dtype)
            sd[f"{rnn}bias_ih{d.suffix}"] = np.concatenate([_sum(weights, g.b_ih, zero) for g in d.gates])
            sd[f"{rnn}bias_hh{d.suffix}"] = np.concatenate(
                [zero if g.summed else _sum(weights, g.b_hh, zero) for g in d.gates])
        params = dict.fromkeys([k for g in d.gates for k in (g.w_ih.key, g.w_hh.key, *g.b_ih, *g.b_hh)]
                               + ([d.proj] if d.proj else []))
        written = [k for k in sd if k.endswith(d.suffix) and k.startswith(rnn)]
        moves.append(f"{', '.join(params)} → {', '.join(written)}"
                     + (f" (rows {', '.join(GATE_ORDER[lay.kind])})" if lay.kind != "RNN" else ""))
    biases = "; each bias goes to bias_ih, bias_hh is zero"
    if lay.kind == "GRU":
        biases = ("; r's and z's biases go to bias_ih (bias_hh is zero there), n's outer bias to bias_ih and the one "
                  "inside r * (...) to bias_hh")
    notes.append(f"{rnn.rstrip('.') or 'the module'}: {lay.constructor()}{biases if lay.bias else ''}")
    placed = lay.params()
    if lay.embedding:
        key, shape = lay.embedding
        module = _module(names.get(key), "embedding")
        sd[f"{module}.weight"] = np.asarray(weights[key])
        moves.append(f"{key} → {module}.weight")
        notes.append(f"{module}: nn.Embedding({shape[0]}, {shape[1]})")
    for i, lin in enumerate(lay.linears):
        default = "linear" if len(lay.linears) == 1 else f"linear{i}"
        module = _module(names.get(lin.weight) or (names.get(lin.bias) if lin.bias else None), default)
        sd[f"{module}.weight"] = np.asarray(weights[lin.weight])
        moves.append(f"{lin.weight} → {module}.weight")
        if lin.bias:
            sd[f"{module}.bias"] = np.asarray(weights[lin.bias])
            moves.append(f"{lin.bias} → {module}.bias")
        notes.append(f"{module}: nn.Linear({lin.shape[1]}, {lin.shape[0]}{'' if lin.bias else ', bias=False'})"
                     f" ({lin.where})")
    left = []
    for key in infos:
        if key in placed:
            continue
        if key in names:
            sd[names[key]] = np.asarray(weights[key])
            moves.append(f"{key} → {names[key]}")
        else:
            left.append(key)
    if left:
        raise _error(DataError, "these params have no place in the torch modules: "
                     + ", ".join(f"`{k}`" for k in left), "name a torch key for each with --map TORCH_KEY=PARAM")
    return Converted(sd, moves, notes)


def _not_recurrent(lay: Layout, torch_name: str, param: str) -> None:
    recurrent = {k for d in lay.directions for g in d.gates for k in (g.w_ih.key, g.w_hh.key, *g.b_ih, *g.b_hh)}
    recurrent |= {d.proj for d in lay.directions if d.proj}
    if param in recurrent:
        raise UsageError(f"--map {torch_name}={param}: `{param}` belongs to the recurrent module, whose weights "
                         f"are found by their torch names (weight_ih_l0, ...); --map pairs embeddings, linear maps "
                         f"and other params")


def _module(name: str | None, default: str) -> str:
    if not name:
        return default
    return name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name


def _cols(weights: dict, block: Block) -> np.ndarray:
    return np.asarray(weights[block.key])[:, block.lo:block.hi]


def _sum(weights: dict, keys: list[str], zero: np.ndarray) -> np.ndarray:
    return sum((np.asarray(weights[k]) for k in keys), zero.copy()) if keys else zero
