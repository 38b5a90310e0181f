"""Checking a spec: plain data -> validated pydantic model -> one graph per cell.

Every problem of the file is collected before anything is raised, so the
user sees all of them at once, each located in the file.
"""
from __future__ import annotations

import copy
import re
import unicodedata
from pathlib import Path
import types
import typing
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from .dims import MAX_SIZE, too_large
from .errors import DiagnosticSink, SpecError, UsageError, did_you_mean
from .files import FileReadError
from .graph import CellGraph
from . import functions
from .lower import FUNCTIONS as FUNCTION_NAMES
from .model import PlanBuilder
from .plan import Plan
from .naming import ascii_spelling, escape_char, identifier, is_name
from .source import SourceMap, dotted, load_file, load_text
from .spec import Spec
from .vocab import read_vocab_file

@dataclass
class Checked:
    """A spec that passed every check: its model plan, with every cell lowered to a graph."""

    spec: Spec
    dims: dict[str, int]
    plan: Plan
    smap: SourceMap
    warnings: list = field(default_factory=list)

    @property
    def file(self) -> str:
        return self.smap.file

    @property
    def main_cell(self) -> CellGraph:
        """The cell a person thinks of as "the" cell: the first recurrent one the model runs."""
        uses = self.plan.uses()
        return next((u.cell for u in uses if u.cell.states), uses[0].cell)

    def steps(self, override: int | None = None) -> int:
        return self.plan.steps(self.dims, override)


def check_file(path, dim_overrides: dict[str, int] | None = None) -> Checked:
    data, smap = load_file(path)
    return check_data(data, smap, dim_overrides)


def check_text(text: str, file: str = "<spec>.yaml", dim_overrides: dict[str, int] | None = None) -> Checked:
    data, smap = load_text(text, file)
    return check_data(data, smap, dim_overrides)


def check_data(data: dict, smap: SourceMap, dim_overrides: dict[str, int] | None = None) -> Checked:
    sink = DiagnosticSink()
    data = _check_names(data, smap, sink)
    dropped: set = set()
    spec = _validate(data, smap, sink, dropped)
    if spec is None:
        raise SpecError(sink.items)

    dims = _check_dims(spec, smap, sink, dim_overrides or {})
    if spec.vocab is not None:
        _check_vocab(spec, smap, sink, dims)
    raw_dims = data.get("dims") if isinstance(data.get("dims"), dict) else {}
    invalid = frozenset(str(k) for k in raw_dims) - set(dims)
    if spec.vocab is not None and spec.vocab.dim not in dims:  # the vocabulary's error is reported
        invalid |= {spec.vocab.dim}
    builder = PlanBuilder(spec, dims, {}, smap, sink, invalid, frozenset(dropped))
    with functions.scope(functions.check_functions(spec.functions, ("functions",), smap, sink, FUNCTION_NAMES, dims)):
        plan = builder.build()
        used = {name for name, _ in builder.lowered}
        for name in spec.cells:
            if name not in used:  # still checked, with the global dims
                builder.cell(name, dims)
                if plan is not None and not sink.errors:
                    sink.warn(f"cell `{name}` is not used by the model", f"cells.{name}", smap.key_loc(("cells", name)))
    if plan is not None:
        check_step_reads(plan, smap, sink)
    if plan is not None and spec.train is not None and not sink.errors and \
            not any(p[:1] == ("train",) for p in dropped):  # (a model with errors has nothing to check against)
        from .train_spec import check_train

        check_train(spec, plan, smap, sink)
    sink.raise_if_errors()
    return Checked(spec, dims, plan, smap, sink.warnings)


def check_step_reads(plan, smap: SourceMap, sink: DiagnosticSink) -> None:
    """A decoder that feeds back its own output runs its cell one step at a time, where no step index is
    given: its cell may not read `t` or `seq_len` (teacher forcing scans the target, so there it may)."""
    dec = plan.decoder
    if dec is None or dec.feed == "target":
        return
    from .ops import STEP_SOURCES

    cell = dec.use.cell
    read = sorted({cell.node(n).attr("name") for n in cell.g.nodes if cell.node(n).op in STEP_SOURCES})
    if read:
        path = ("model", "decoder", "scan")
        sink.error(f"decoder cell `{cell.name}` reads `{'`, `'.join(read)}`, but a decoder that feeds back its output "
                   f"runs one step at a time, where the step index is not given", dotted(path),
                   smap.value_loc(path, 0, len(cell.name)),
                   "use `feed: target` (teacher forcing scans the target), or count the steps in a state of "
                   "the cell (update: {n: n + 1})")


EXPRESSION_SECTIONS = ("let", "update", "outputs")  # values that are expressions (a list there is a YAML slip)
NAMED_SECTIONS = ("inputs", "state", "params", "consts", "gates", "let", "update", "outputs")
TREE_SECTIONS = (("leaf",), ("leaf", "let"), ("node",), ("node", "let"))  # a tree cell's rules name states too
# every other mapping whose keys are names (`*`: any cell, any layer), and the values that are names
NAMED_KEYS = (("dims",), ("cells",), ("model", "input"), ("model", "context"), ("model", "layers", "*", "dims"),
              ("model", "encoder", "layers", "*", "dims"), ("model", "decoder", "dims"), ("model", "decoder", "params"),
              ("model", "decoder", "init")) + tuple(
    where + (part,) for where in (("model", "head"), ("model", "decoder", "head")) for part in ("params", "let", "outputs"))
NAMED_VALUES = (("name",), ("vocab", "dim"), ("cells", "*", "memory", "name"))


def _check_names(data: dict, smap: SourceMap, sink: DiagnosticSink) -> dict:
    """Everything a spec names must be a name (`naming.is_name`: ASCII, the same in C, in Python and as a
    file name), so no name can reach generated code as anything but an identifier. A key that is not even a
    Python identifier is dropped from a cell: a common slip is a comma inside a YAML flow mapping,
    `{h: sigmoid(a, b)}` splits at the comma."""
    if not isinstance(data, dict):
        return data
    data = copy.deepcopy(data)
    for pattern in NAMED_VALUES:
        for path, value in _places(data, pattern):
            if isinstance(value, str) and not is_name(value):
                what = "the spec's name" if path == ("name",) else f"`{path[-2]}.{path[-1]}`"
                hint = _name_hint(value)
                if path == ("name",):
                    hint = "it names the generated code and its files; " + hint
                sink.error(f"{what} `{_shown(value)}` is not a name", _shown(dotted(path)), smap.value_loc(path), hint)
    cell_sections = [("cells", "*") + s for s in [(s,) for s in NAMED_SECTIONS] + list(TREE_SECTIONS)]
    for pattern in list(NAMED_KEYS) + cell_sections:
        for where, entries in _places(data, pattern):
            if not isinstance(entries, dict):
                continue
            for key in list(entries):
                if is_name(key):
                    continue
                path = where + (key,)
                hint = _name_hint(key, entries)
                if entries[key] is None and pattern in cell_sections:
                    hint = ("a comma inside `{...}` ends the entry: quote the expression "
                            "(h: \"f(a, b)\") or write the mapping one entry per line")
                sink.error(f"`{_shown(key)}` is not a name", _shown(dotted(path)), smap.key_loc(path), hint)
                if pattern in cell_sections and not key.isidentifier():
                    del entries[key]
    return data


def _places(data, pattern: tuple, path: tuple = ()):
    """(path, value) for each place in `data` that `pattern` names (`*`: every key or index)."""
    if not pattern:
        yield path, data
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(data, dict):
        keys = list(data) if head == "*" else [head] if head in data else []
    elif isinstance(data, list) and head == "*":
        keys = range(len(data))
    else:
        return
    for key in keys:
        yield from _places(data[key], rest, path + (key,))


def _name_hint(text: str, beside=()) -> str:
    """How to make `text` a name: its NFKC spelling when it has one (fullwidth `ｙ` is `y` to Python), else the
    rule and a name close to it."""
    rule = "names are ASCII letters, digits and _, not starting with a digit"
    folded = ascii_spelling(text)
    if folded is not None and folded in beside:
        return f"`{_shown(text)}` reads as `{folded}` (NFKC), which is named here too: rename one ({rule})"
    if folded is not None:
        return f"write `{folded}` ({rule})"
    close = re.sub(r"_+", "_", identifier(unicodedata.normalize("NFKD", text))).strip("_")
    return rule + (f", e.g. `{close}`" if is_name(close) else "")


def _shown(text: str) -> str:
    """`text` as an error message may print it: a character the terminal would act on shown as its escape."""
    return "".join(ch if ch.isprintable() else escape_char(ch) for ch in text)


def _validate(data: dict, smap: SourceMap, sink: DiagnosticSink, dropped: set) -> Spec | None:
    """Validate; on errors, report them, drop the offending keys and try once
    more, so that the semantic checks can still report what else is wrong.
    The dropped paths go into `dropped`: checks that would miss them stay quiet."""
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        _report_validation(e, data, smap, sink)
        pruned = copy.deepcopy(data)
        for err in e.errors():
            path = _data_path(err["loc"], data)
            _drop(pruned, path)
            dropped.add(path)
        pruned.setdefault("rnncompile", 1)  # reported above; check the rest as version 1
        pruned.setdefault("name", "spec")
    try:
        return Spec.model_validate(pruned)
    except ValidationError:
        return None


def _drop(data, path) -> None:
    for p in path[:-1]:
        try:
            data = data[p]
        except (KeyError, IndexError, TypeError):
            return
    if path and isinstance(data, dict):
        data.pop(path[-1], None)


def _check_dims(spec: Spec, smap: SourceMap, sink: DiagnosticSink, overrides: dict) -> dict[str, int]:
    dims = {}
    for name, value in spec.dims.items():
        if not is_name(name):
            continue  # reported by _check_names
        if value < 1:
            sink.error(f"dim `{name}` must be a positive integer, got {value}", f"dims.{name}",
                       smap.value_loc(("dims", name)))
        elif value > MAX_SIZE:
            sink.error(f"dim `{name}` is {too_large(value)}; sizes are at most {MAX_SIZE:,}", f"dims.{name}",
                       smap.value_loc(("dims", name)))
        else:
            dims[name] = value
    known = _overridable_dims(spec)
    for name, value in overrides.items():
        if name not in known:
            if spec.vocab is not None and name == spec.vocab.dim:
                raise UsageError(f"--dim {name}={value}: `{name}` is the vocabulary's size, set by `vocab:`")
            same = [k for k in known if k.lower() == name.lower()]  # dims are case-sensitive: h is not H
            raise UsageError(f"--dim {name}={value}: {smap.file} has no dim `{name}`; "
                             + (f"did you mean `{same[0]}`?" if same else did_you_mean(name, known, "dim")
                                or "it declares no dims"))
        if value < 1:
            raise UsageError(f"--dim {name}={value}: sizes must be positive integers")
        if value > MAX_SIZE:
            raise UsageError(f"--dim {name}={too_large(value)}: sizes are at most {MAX_SIZE:,}")
        dims[name] = value
    return dims


def _overridable_dims(spec: Spec) -> set[str]:
    """Dims `--dim` may set: the declared ones, the time axes of the inputs, and the layers' and decoder's own."""
    m = spec.model
    known = {n for n in spec.dims if spec.vocab is None or n != spec.vocab.dim}
    known |= {shape[0] for shape in m.input.values() if shape and isinstance(shape[0], str)}
    for layers in (m.layers, m.encoder.layers if m.encoder else None):
        known |= {n for layer in layers or () for n in layer.dims}
    if m.decoder is not None:
        known |= set(m.decoder.dims)
    return known


def _check_vocab(spec: Spec, smap: SourceMap, sink: DiagnosticSink, dims: dict) -> None:
    v = spec.vocab
    if (v.tokens is None) == (v.file is None):
        sink.error("a vocabulary needs either `tokens:` or `file:` (one of them)", "vocab", smap.key_loc(("vocab",)))
        return
    if v.file is not None:
        path = Path(smap.file).parent / v.file
        try:
            v.tokens = read_vocab_file(path)  # a regular file only, of a bounded size
        except (FileReadError, UnicodeDecodeError) as e:
            sink.error(f"cannot read the vocabulary file `{v.file}` ({getattr(e, 'reason', None) or e})",
                       "vocab.file", smap.value_loc(("vocab", "file")), "the path is relative to the spec file")
            return
        if len(v.tokens) > 10_000_000:
            sink.error("the vocabulary file has more than 10,000,000 tokens", "vocab.file",
                       smap.value_loc(("vocab", "file")))
            return
    where = "vocab.tokens" if v.file is None else "vocab.file"
    seen = set()
    for i, tok in enumerate(v.tokens):
        if tok in seen:
            path = ("vocab", "tokens", i) if v.file is None else ("vocab", "file")
            sink.error(f"token `{tok}` appears twice in the vocabulary", where, smap.value_loc(path))
        seen.add(tok)
    if not v.tokens:
        sink.error("the vocabulary is empty", where, smap.key_loc(("vocab",)))
    for key in ("unknown", "start", "end"):
        tok = getattr(v, key)
        if tok is not None and tok not in seen:
            sink.error(f"{key} token `{tok}` is not in the vocabulary", f"vocab.{key}", smap.value_loc(("vocab", key)),
                       "add it to the vocabulary")
    if v.dim in spec.dims and spec.dims[v.dim] != len(v.tokens):
        sink.error(f"dim `{v.dim}` is {spec.dims[v.dim]} but the vocabulary has {len(v.tokens)} tokens",
                   f"dims.{v.dim}", smap.value_loc(("dims", v.dim)), f"remove `{v.dim}` from dims: it is set for you")
    dims[v.dim] = len(v.tokens)


# ---- pydantic errors -> located diagnostics ------------------------------------

def _report_validation(err: ValidationError, data, smap: SourceMap, sink: DiagnosticSink) -> None:
    seen = set()
    for e in err.errors():
        path = _data_path(e["loc"], data)
        kind = e["type"]
        key = (path, kind if kind in ("extra_forbidden", "missing") else "value")
        if key in seen:
            continue
        seen.add(key)
        where = dotted(path)
        if kind == "extra_forbidden":
            allowed = _allowed_keys(path[:-1], data)
            sink.error(f"unknown key `{path[-1]}`", where, smap.key_loc(path),
                       did_you_mean(str(path[-1]), allowed, "key") if allowed else "")
        elif kind == "missing":
            missing = e["loc"][-1]
            sink.error(f"missing key `{missing}`", where, smap.key_loc(path) if path else smap.value_loc(()),
                       f"add `{missing}:` here")
        else:
            got = _value_at(data, path)
            msg = e["msg"].replace("Input should be", "expected")
            if path and path[0] == "dims" and len(path) == 2:
                msg = f"dim `{path[1]}` must be a positive integer"
            if path == ("rnncompile",):
                sink.error(f"unsupported spec format version `{got}`; this rnncompile reads version 1", where,
                           smap.value_loc(path), "write `rnncompile: 1`")
                continue
            hint = ""
            if isinstance(got, bool) and "string" in msg:
                hint = "YAML reads yes/no/on/off/true/false as booleans: quote the word, e.g. \"on\""
            if isinstance(got, list) and "string" in msg and len(path) >= 2 and path[-2] in EXPRESSION_SECTIONS:
                msg = "expected an expression, got a YAML list"
                hint = (f"YAML reads a value that starts with `[` as a list; to write a literal vector, quote the "
                        f"expression (`{path[-1]}: \"[1, 0, -1]\"`), or name the constant under the cell's `consts:`")
            hint = hint or _value_hint(path)
            if isinstance(got, int) and not isinstance(got, bool) and abs(got) > MAX_SIZE:
                got = too_large(got)  # not 400 digits in a message
            sink.error(f"{msg}, got `{got}`" if not isinstance(got, (dict, list)) else msg, where,
                       smap.value_loc(path), hint)


def _value_hint(path) -> str:
    """The way forward for a value the schema refuses, where the bare "expected X" names none."""
    if len(path) >= 2 and path[0] == "model" and path[-1] == "keep":
        return ("an encoder keeps its final state, the summary vector C that starts the decoder; for a decoder "
                "that reads every encoder step (attention), leave `keep` out and give the decoder "
                "`memory: {enc: h}` (see specs/attention_luong.yaml)")
    return ""


def _data_path(loc, data) -> tuple:
    """The part of a pydantic loc that names real keys of the data (drops union tags)."""
    path, cur = [], data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            path.append(part)
            cur = cur[part]
    return tuple(path)


def _value_at(data, path):
    for p in path:
        try:
            data = data[p]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _allowed_keys(path, data) -> list[str]:
    model: typing.Any = Spec
    for part in path:
        model = _child_type(model, part)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def _child_type(tp, part):
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for n, f in tp.model_fields.items():
            if part in (n, f.alias):
                return _unwrap(f.annotation)
        return None
    origin = typing.get_origin(tp)
    if origin in (dict, list):
        return _unwrap(typing.get_args(tp)[-1])
    return None


def _unwrap(tp):
    if typing.get_origin(tp) is typing.Annotated:  # e.g. a discriminated union
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                inner = _unwrap(arg)
                if (isinstance(inner, type) and issubclass(inner, BaseModel)) or typing.get_origin(inner) in (dict, list):
                    return inner
        return None
    return tp
