"""Spec functions: named expressions with parameters, expanded where they are called.

    functions:
      layer_norm(x, g, b): g * (x - mean(x)) / sqrt(mean((x - mean(x)) ** 2) + 1e-5) + b

A function is written once (at the top level of the spec, or in a cell's own
`functions:`) and expanded at lowering: each call lowers its arguments in the
caller's scope, then the body with the parameters bound to them. A body reads
only its parameters, numbers, dims and literal vectors, and calls ops and
other functions; recursion is refused (expansion would never end), and so is
a definition that would expand to more than MAX_EXPANDED_NODES nodes. Each
call's nodes are recorded on the graph (`CellGraph.calls`, an Expansion per
call) so a diagram draws them as one box named after the function.

The long form `layer_norm: {args: [x, g, b], body: ...}` says the same; it is
the one to use inside a YAML flow mapping `{...}`, where a comma in the key
`layer_norm(x, g, b)` would split it.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from . import expr as E
from .errors import DiagnosticSink, did_you_mean
from .source import SourceMap, dotted

MAX_EXPANDED_NODES = 20_000  # what one call may expand to, nested calls included
MAX_CELL_EXPANSION = 50_000  # what all the calls in one cell may expand to
_SIGNATURE = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(([^()]*)\)\s*$", re.ASCII)
_NAME = re.compile(r"^[A-Za-z_]\w*$", re.ASCII)


@dataclass(frozen=True)
class FunctionDef:
    name: str
    params: tuple[str, ...]
    body: object  # its parsed expression
    text: str  # the body as written
    path: tuple  # spec path of the body's value (errors inside the body point there)

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.params)})"


@dataclass(frozen=True)
class Expansion:
    """One call of a spec function in a cell graph: the nodes its body made, the result among them, and the
    argument nodes it was called with."""

    name: str
    result: int
    nodes: frozenset
    args: tuple[int, ...]
    params: tuple[str, ...]


_SCOPE: ContextVar[dict] = ContextVar("rnncompile_spec_functions", default={})


@contextmanager
def scope(functions: dict):
    """Make the spec's top-level functions visible to every cell lowered inside."""
    token = _SCOPE.set(functions)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def visible() -> dict:
    """The top-level functions of the spec being checked."""
    return _SCOPE.get()


def check_functions(raw: dict, base: tuple, smap: SourceMap, sink: DiagnosticSink, builtins, dims: dict,
                    outer: dict | None = None) -> dict[str, FunctionDef | None]:
    """Parse and check one `functions:` mapping (at spec path `base`); every problem is reported located.
    `builtins`: the op names (a function may not take one); `outer`: the functions already visible.
    A function whose definition has an error maps to None (its calls fail without another message)."""
    outer = outer or {}
    out: dict[str, FunctionDef] = {}
    bad_keys: dict = {}  # names of definitions that failed, so calls of them are not also "unknown"
    for key, value in (raw or {}).items():
        fn = _definition(key, value, base, smap, sink, builtins, outer, out)
        if fn is not None:
            out[fn.name] = fn
        else:
            m = re.match(r"\s*([A-Za-z_]\w*)", str(key))
            if m and m.group(1) not in builtins:
                bad_keys[m.group(1)] = None
    known = {**{n: f for n, f in outer.items() if f is not None}, **out}
    bad = set()
    for fn in out.values():
        if not _check_body(fn, {**known, **bad_keys}, smap, sink, builtins, dims):
            bad.add(fn.name)
    for name in _recursive(out, known, smap, sink):
        bad.add(name)
    sizes: dict[str, int] = {}
    for fn in out.values():
        if fn.name not in bad and _size(fn, known, sizes, set()) > MAX_EXPANDED_NODES:
            sink.error(f"function `{fn.name}` expands to about {sizes[fn.name]:,} nodes per call; the limit is "
                       f"{MAX_EXPANDED_NODES:,}", dotted(fn.path), smap.value_loc(fn.path),
                       "calls that call each other twice double at each level; name the repeated part under "
                       "`let:` in the cell instead")
            bad.add(fn.name)
    return {**bad_keys, **{n: (None if n in bad else f) for n, f in out.items()}}  # None: reported, calls quiet


def _definition(key, value, base, smap, sink, builtins, outer, seen) -> FunctionDef | None:
    from .spec import FunctionSpec

    key_path = base + (key,)

    def error(message, hint="", path=key_path):
        sink.error(message, dotted(path), smap.key_loc(path) if path == key_path else smap.value_loc(path), hint)

    if isinstance(value, FunctionSpec):
        name, params, body, path = key, list(value.args), value.body, key_path + ("body",)
        if not _NAME.match(name):
            error(f"`{name}` is not a function name", "with args: and body:, the key is the name alone, e.g. "
                                                      "layer_norm: {args: [x, g, b], body: ...}")
            return None
    else:
        m = _SIGNATURE.match(key)
        if m is None:
            if key.count(")") > key.count("("):
                return None  # the rest of a key cut at a comma: reported at its first part
            if key.count("(") > key.count(")"):
                error(f"`{key}` is cut short: YAML splits a flow mapping `{{...}}` at every comma",
                      "write the function on its own line in block style (`  f(x, y): x * y`), or use the long "
                      "form f: {args: [x, y], body: x * y}")
            else:
                error(f"`{key}` is not a function signature", "write name(param, ...): expression, e.g. "
                                                              "scaled(x, s): s * x")
            return None
        name, inner, body, path = m.group(1), m.group(2), value, key_path
        params = [p.strip() for p in inner.split(",")] if inner.strip() else []
    for p in params:
        if not isinstance(p, str) or not _NAME.match(p):
            error(f"parameter `{p}` of `{name}` is not a name")
            return None
    dup = sorted({p for p in params if params.count(p) > 1})
    if dup:
        error(f"`{name}` names the parameter `{dup[0]}` twice", "every parameter needs its own name")
        return None
    if name in builtins:
        error(f"`{name}` is a built-in op; a function cannot take its name", f"rename it, e.g. my_{name}")
        return None
    if name in outer:
        error(f"`{name}` is already a function of the spec (top-level `functions:`)",
              "rename one of them; a cell's function cannot hide the spec's")
        return None
    if name in seen:
        error(f"function `{name}` is defined twice", "give each definition its own name")
        return None
    if isinstance(body, bool) or not isinstance(body, (str, int, float)):
        error("expected an expression as the function's body", path=path)
        return None
    text = str(body)
    try:
        tree, mixed = E.parse_noting(text)
    except E.ExprSyntaxError as e:
        sink.error(f"syntax error: {e.message}", dotted(path), smap.value_loc(path, e.pos, e.width), e.hint)
        return None
    for mx in mixed:
        sink.warn("`@` and `*` or `/` share one precedence level and group left to right", dotted(path),
                  smap.value_loc(path, mx.pos, mx.width), mx.hint(text))
    return FunctionDef(name, tuple(params), tree, text, path)


def _calls(node):
    return [n for n in E.walk(node) if isinstance(n, E.Call)]


def _check_body(fn: FunctionDef, known: dict, smap, sink, builtins, dims) -> bool:
    """The body reads only its parameters and dims, and calls ops and known functions."""
    ok = True
    for n in E.names_in(fn.body):
        if n.id not in fn.params and n.id not in dims:
            sink.error(f"`{n.id}` is not a parameter of `{fn.signature}`", dotted(fn.path),
                       smap.value_loc(fn.path, n.pos, len(n.id)),
                       f"a function reads only its parameters, numbers and dims: pass `{n.id}` in, "
                       f"{fn.name}({', '.join(fn.params + (n.id,))})")
            ok = False
    for c in _calls(fn.body):
        if c.func not in builtins and c.func not in known:
            close = did_you_mean(c.func, set(builtins) | set(known), "function")
            sink.error(f"unknown function `{c.func}`", dotted(fn.path), smap.value_loc(fn.path, c.pos, len(c.func)),
                       close if close.startswith("did you mean") else "")
            ok = False
    return ok


def _recursive(defined: dict, known: dict, smap, sink) -> set[str]:
    """Report every function that calls itself, directly or through others (each cycle once)."""
    bad: set[str] = set()
    for start in defined:
        stack = [(start, [start])]
        while stack:
            name, chain = stack.pop()
            for c in _calls(known[name].body):
                if known.get(c.func) is None:
                    continue
                if c.func == start:
                    if not bad & set(chain):
                        fn = known[name]
                        sink.error(f"function `{start}` calls itself: {' → '.join(chain + [start])}", dotted(fn.path),
                                   smap.value_loc(fn.path, c.pos, len(c.func)),
                                   "functions are expanded where they are called, so a recursive one never "
                                   "ends; write the repetition out, or carry it in a state from step to step")
                    bad.update(chain)
                elif c.func not in chain and c.func in defined:
                    stack.append((c.func, chain + [c.func]))
    return bad


def _size(fn: FunctionDef, known: dict, sizes: dict, active: set) -> int:
    """About how many nodes one call expands to (calls of other functions counted expanded)."""
    if fn.name in sizes:
        return sizes[fn.name]
    active = active | {fn.name}
    total = 0
    for n in E.walk(fn.body):
        total += 1
        if isinstance(n, E.Call) and known.get(n.func) is not None and n.func not in active:
            total += _size(known[n.func], known, sizes, active)
            if total > 10 * MAX_EXPANDED_NODES:
                break
    sizes[fn.name] = total
    return total
