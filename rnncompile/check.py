"""Checking a spec: plain data -> validated pydantic model -> one graph per cell.

Every problem of the file is collected before anything is raised, so the
user sees all of them at once, each located in the file.
"""
from __future__ import annotations

import copy
import types
import typing
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from .dims import DimError, eval_dim
from .errors import DiagnosticSink, SpecError, UsageError, did_you_mean
from .graph import CellGraph
from .lower import CellLowering
from .source import SourceMap, dotted, load_file, load_text
from .spec import Spec

DEFAULT_STEPS = 10


@dataclass
class Checked:
    """A spec that passed every check, with its cells lowered to graphs."""

    spec: Spec
    dims: dict[str, int]
    cells: dict[str, CellGraph]
    smap: SourceMap
    warnings: list = field(default_factory=list)
    time_dim: str | int | None = None

    @property
    def file(self) -> str:
        return self.smap.file

    @property
    def main_cell(self) -> CellGraph:
        return self.cells[self.spec.model.scan]

    def steps(self, override: int | None = None) -> int:
        if override is not None:
            return override
        if isinstance(self.time_dim, int):
            return self.time_dim
        return self.dims.get(self.time_dim, DEFAULT_STEPS)


def check_file(path, dim_overrides: dict[str, int] | None = None) -> Checked:
    data, smap = load_file(path)
    return check_data(data, smap, dim_overrides)


def check_text(text: str, file: str = "<spec>.yaml", dim_overrides: dict[str, int] | None = None) -> Checked:
    data, smap = load_text(text, file)
    return check_data(data, smap, dim_overrides)


def check_data(data: dict, smap: SourceMap, dim_overrides: dict[str, int] | None = None) -> Checked:
    sink = DiagnosticSink()
    data = _check_names(data, smap, sink)
    spec = _validate(data, smap, sink)
    if spec is None:
        raise SpecError(sink.items)

    dims = _check_dims(spec, smap, sink, dim_overrides or {})
    if spec.vocab is not None:
        _check_vocab(spec, smap, sink, dims)
    raw_dims = data.get("dims") if isinstance(data.get("dims"), dict) else {}
    invalid = frozenset(str(k) for k in raw_dims) - set(dims)
    cells = {}
    for name, cell in spec.cells.items():
        cells[name] = CellLowering(name, cell, dims, smap, sink, invalid).lower()
    time_dim = _check_model(spec, cells, dims, smap, sink)
    sink.raise_if_errors()
    return Checked(spec, dims, cells, smap, sink.warnings, time_dim)


NAMED_SECTIONS = ("inputs", "state", "params", "gates", "let", "update", "outputs")


def _check_names(data: dict, smap: SourceMap, sink: DiagnosticSink) -> dict:
    """Keys that name things must be names. A common slip is a comma inside a
    YAML flow mapping: `{h: sigmoid(a, b)}` splits at the comma."""
    cells = data.get("cells")
    if not isinstance(cells, dict):
        return data
    data = copy.deepcopy(data)
    for cname, cell in data["cells"].items():
        if not isinstance(cell, dict):
            continue
        for section in NAMED_SECTIONS:
            entries = cell.get(section)
            if not isinstance(entries, dict):
                continue
            for key in list(entries):
                if isinstance(key, str) and key.isidentifier():
                    continue
                path = ("cells", cname, section, key)
                hint = ("a comma inside `{...}` ends the entry: quote the expression "
                        "(h: \"f(a, b)\") or write the mapping one entry per line"
                        if entries[key] is None else "names use letters, digits and _")
                sink.error(f"`{key}` is not a name", dotted(path), smap.key_loc(path), hint)
                del entries[key]
    return data


def _validate(data: dict, smap: SourceMap, sink: DiagnosticSink) -> Spec | None:
    """Validate; on errors, report them, drop the offending keys and try once
    more, so that the semantic checks can still report what else is wrong."""
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        _report_validation(e, data, smap, sink)
        pruned = copy.deepcopy(data)
        for err in e.errors():
            _drop(pruned, _data_path(err["loc"], data))
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
        if not name.isidentifier():
            sink.error(f"dim name `{name}` is not a name", f"dims.{name}", smap.key_loc(("dims", name)),
                       "use letters, digits and _")
        elif value < 1:
            sink.error(f"dim `{name}` must be a positive integer, got {value}", f"dims.{name}",
                       smap.value_loc(("dims", name)))
        else:
            dims[name] = value
    for name, value in overrides.items():
        if value < 1:
            raise UsageError(f"--dim {name}={value}: sizes must be positive integers")
        dims[name] = value
    return dims


def _check_vocab(spec: Spec, smap: SourceMap, sink: DiagnosticSink, dims: dict) -> None:
    v = spec.vocab
    seen = set()
    for i, tok in enumerate(v.tokens):
        if tok in seen:
            sink.error(f"token `{tok}` appears twice in the vocabulary", f"vocab.tokens.{i}",
                       smap.value_loc(("vocab", "tokens", i)))
        seen.add(tok)
    for key in ("unknown", "end"):
        tok = getattr(v, key)
        if tok is not None and tok not in seen:
            sink.error(f"{key} token `{tok}` is not in the vocabulary", f"vocab.{key}", smap.value_loc(("vocab", key)),
                       "add it to `tokens:`")
    if v.dim in spec.dims and spec.dims[v.dim] != len(v.tokens):
        sink.error(f"dim `{v.dim}` is {spec.dims[v.dim]} but the vocabulary has {len(v.tokens)} tokens",
                   f"dims.{v.dim}", smap.value_loc(("dims", v.dim)), f"remove `{v.dim}` from dims: it is set for you")
    dims[v.dim] = len(v.tokens)


def _check_model(spec: Spec, cells: dict, dims: dict, smap: SourceMap, sink: DiagnosticSink):
    model = spec.model
    if model.scan not in cells:
        sink.error(f"no cell named `{model.scan}`", "model.scan", smap.value_loc(("model", "scan"), 0, len(model.scan)),
                   did_you_mean(model.scan, cells, "cell"))
        return None
    cell = cells[model.scan]
    time_dims = set()
    for name, shape in model.input.items():
        path = ("model", "input", name)
        if name not in spec.cells[model.scan].inputs:
            sink.error(f"cell `{model.scan}` has no input `{name}`", dotted(path), smap.key_loc(path),
                       did_you_mean(name, spec.cells[model.scan].inputs, "input"))
            continue
        if not shape:
            sink.error("a sequence input needs a time axis first, e.g. [T, I]", dotted(path), smap.value_loc(path))
            continue
        time = shape[0]
        if isinstance(time, str) and not time.isidentifier():
            sink.error(f"the time axis `{time}` must be a dim name or a number", dotted(path + (0,)),
                       smap.value_loc(path + (0,)))
            continue
        time_dims.add(time)
        if name not in cell.inputs:
            continue  # its declaration already failed
        step = []
        for i, d in enumerate(shape[1:], start=1):
            try:
                step.append(eval_dim(d, dims))
            except DimError as e:
                sink.error(e.message, dotted(path + (i,)), smap.value_loc(path + (i,), e.pos, e.width), e.hint)
                step = None
                break
        if step is not None and tuple(step) != cell.inputs[name].shape:
            sink.error(f"model input `{name}` has steps of shape {list(step)}, but cell `{model.scan}` takes "
                       f"{list(cell.inputs[name].shape)}", dotted(path), smap.value_loc(path))
    for name in spec.cells[model.scan].inputs:
        if name not in model.input:
            sink.error(f"cell input `{name}` is not fed by the model", "model.input", smap.key_loc(("model", "input")),
                       f"add `{name}: [T, ...]` under model.input")
    if len(time_dims) > 1:
        sink.error("all sequence inputs must share one time axis, got " + ", ".join(map(str, time_dims)),
                   "model.input", smap.key_loc(("model", "input")))
    return next(iter(time_dims)) if time_dims else None


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
            sink.error(f"{msg}, got `{got}`" if not isinstance(got, (dict, list)) else msg, where,
                       smap.value_loc(path))


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
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                inner = _unwrap(arg)
                if (isinstance(inner, type) and issubclass(inner, BaseModel)) or typing.get_origin(inner) in (dict, list):
                    return inner
        return None
    return tp
