"""Reading a spec file: YAML or JSON text -> plain data plus a location index.

YAML is composed with the safe loader (no object construction) and aliases
are refused outright, so an alias bomb cannot expand. Mappings and lists nest
at most MAX_NESTING deep (YAML and JSON alike), so no document can exhaust the
stack of the recursive reader or of any later walk. Every key and value
keeps its line and column so later stages can point at the offending text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import Diagnostic, Location, SpecError

MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_NESTING = 64  # a shipped spec nests 8 deep; literal values add their rank

Path_ = tuple  # a key path: ("cells", "lstm", "update", "c")


@dataclass(frozen=True)
class Span:
    line: int  # 0-based, as yaml marks are
    col: int
    style: str | None = None  # yaml scalar style: None (plain), "'", '"', "|", ">"


@dataclass
class SourceMap:
    """Where each key and value of a spec sits in its file."""

    file: str
    lines: list[str]
    keys: dict[Path_, Span] = field(default_factory=dict)
    values: dict[Path_, Span] = field(default_factory=dict)

    def _loc(self, span: Span | None, offset: int = 0, width: int = 1) -> Location:
        if span is None:
            return Location(self.file, 0, 0)
        line_text = self.lines[span.line] if span.line < len(self.lines) else ""
        return Location(self.file, span.line + 1, span.col + 1 + offset, line_text, width)

    def nearest(self, path: Path_, table: dict) -> Span | None:
        path = tuple(path)
        while path:
            if path in table:
                return table[path]
            path = path[:-1]
        return None

    def key_loc(self, path: Path_) -> Location:
        span = self.keys.get(tuple(path)) or self.nearest(path, self.values)
        width = len(str(path[-1])) if path and tuple(path) in self.keys else 1
        return self._loc(span, width=width)

    def value_loc(self, path: Path_, offset: int = 0, width: int = 1) -> Location:
        """Location of a value, or of a character `offset` into a one-line scalar."""
        span = self.values.get(tuple(path))
        if span is None:
            return self.key_loc(path)
        if span.style in ("'", '"'):
            offset += 1
        elif span.style in ("|", ">"):
            offset = 0  # block scalars: point at the value's start
        return self._loc(span, offset, width)


def dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loader that refuses anchors/aliases (alias bombs) outright."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                None, None, "aliases (*name) are not allowed in specs; write the value out", event.start_mark
            )
        if self.depth >= MAX_NESTING and self.check_event(yaml.CollectionStartEvent):
            raise yaml.MarkedYAMLError(None, None, _TOO_DEEP, self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_TOO_DEEP = f"the spec nests deeper than {MAX_NESTING} levels"
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_too_deep(text: str) -> int | None:
    """Where a JSON text first nests deeper than MAX_NESTING (a character offset), checked before
    json.loads, whose recursion would fail first."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return m.start()
        elif ch in "]}":
            depth -= 1
    return None


def _syntax_error(file: str, text: str, line: int, col: int, message: str, hint: str = "") -> SpecError:
    lines = text.splitlines()
    src = lines[line] if 0 <= line < len(lines) else ""
    return SpecError([Diagnostic(message, "", Location(file, line + 1, col + 1, src), hint)])


def _walk(node, path: Path_, smap: SourceMap, count: list[int]):
    count[0] += 1
    if count[0] > MAX_NODES:
        raise _TooBig()
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise _BadTag(node)
    if isinstance(node, yaml.MappingNode):
        out = {}
        smap.values[path] = Span(node.start_mark.line, node.start_mark.column)
        for knode, vnode in node.value:
            key = _walk(knode, path + ("<key>",), smap, count)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise _BadKey(knode)
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise _DuplicateKey(knode, key)
            smap.keys[path + (key,)] = Span(knode.start_mark.line, knode.start_mark.column)
            out[key] = _walk(vnode, path + (key,), smap, count)
        smap.values.pop(path + ("<key>",), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        smap.values[path] = Span(node.start_mark.line, node.start_mark.column)
        return [_walk(v, path + (i,), smap, count) for i, v in enumerate(node.value)]
    smap.values[path] = Span(node.start_mark.line, node.start_mark.column, node.style)
    try:
        return _SCALARS.construct_object(node, deep=True)
    except ValueError:  # Python refuses to read an int of more than 4,300 digits
        raise _BadNumber(node) from None


_SCALARS = yaml.constructor.SafeConstructor()
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _BadTag(Exception):
    def __init__(self, node):
        self.node = node


class _TooBig(Exception):
    pass


class _BadNumber(Exception):
    def __init__(self, node):
        self.node = node


class _BadKey(Exception):
    def __init__(self, node):
        self.node = node


class _DuplicateKey(Exception):
    def __init__(self, node, key):
        self.node, self.key = node, key


def load_text(text: str, file: str = "<spec>") -> tuple[dict, SourceMap]:
    """Parse spec text (YAML or JSON) into plain data and its source map."""
    smap = SourceMap(file, text.splitlines())
    if file.endswith(".json"):
        deep = _json_too_deep(text)
        if deep is not None:
            line = text.count("\n", 0, deep)
            raise _syntax_error(file, text, line, deep - (text.rfind("\n", 0, deep) + 1), _TOO_DEEP,
                                "write the values out flatter") from None
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise _syntax_error(file, text, e.lineno - 1, e.colno - 1, f"invalid JSON: {e.msg}") from None
        except ValueError:
            pass  # a number of more than 4,300 digits: the YAML reader below locates it
    try:
        loader = _NoAliasLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = e.problem or e.context or "invalid YAML"
        hint = ""
        if "found character '\\t'" in str(msg):
            hint = "YAML indentation must use spaces, not tabs"
        elif e.context and e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
            hint = f"{e.context} that starts at line {e.context_mark.line + 1}, column {e.context_mark.column + 1}"
        return_line = mark.line if mark else 0
        return_col = mark.column if mark else 0
        lines = text.splitlines()
        line = lines[return_line] if 0 <= return_line < len(lines) else ""
        if re.search(r":\s*\[[^\]]*\]\s*[^\s#,}\]]", line) and not hint:  # `z: [1, 0] * x`: a list, then more
            hint = ("a value that starts with `[` is a YAML list; an expression with a literal vector must be "
                    "quoted, e.g. z: \"[1, 0] * x\"")
        if msg == _TOO_DEEP:
            lines = text.splitlines()
            flow = 0 <= return_line < len(lines) and lines[return_line][return_col:return_col + 1] in ("[", "{")
            raise _syntax_error(file, text, return_line, return_col, msg,
                                "a list nests one level per axis of its values" if flow else
                                "is the indentation right? (specs need far fewer levels)") from None
        raise _syntax_error(file, text, return_line, return_col, f"invalid YAML: {msg}", hint) from None
    except yaml.YAMLError as e:
        raise SpecError([Diagnostic(f"invalid YAML: {e}", "", Location(file, 0, 0))]) from None
    if root is None:
        raise SpecError([Diagnostic("the spec file is empty", "", Location(file, 0, 0),
                                    "start from one of the files in specs/")])
    try:
        data = _walk(root, (), smap, [0])
    except _TooBig:
        raise SpecError([Diagnostic(f"spec has more than {MAX_NODES} YAML nodes", "", Location(file, 0, 0))]) from None
    except _DuplicateKey as e:
        raise _syntax_error(file, text, e.node.start_mark.line, e.node.start_mark.column,
                            f"duplicate key `{e.key}`", "each key may appear once in a mapping") from None
    except _BadTag as e:
        raise _syntax_error(file, text, e.node.start_mark.line, e.node.start_mark.column,
                            f"unsupported YAML tag `{e.node.tag}`", "specs hold plain data only") from None
    except _BadNumber as e:
        raise _syntax_error(file, text, e.node.start_mark.line, e.node.start_mark.column,
                            f"a number of {len(e.node.value):,} digits is too long to read", "sizes are at most "
                            "2,147,483,647; write a float such as 1e300 for a huge value") from None
    except _BadKey as e:
        raise _syntax_error(file, text, e.node.start_mark.line, e.node.start_mark.column,
                            "mapping keys must be plain names") from None
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        raise _syntax_error(file, text, mark.line if mark else 0, mark.column if mark else 0,
                            f"unsupported YAML value: {e.problem}", "specs hold plain data only") from None
    if not isinstance(data, dict):
        raise _syntax_error(file, text, 0, 0, "a spec must be a mapping of keys (rnncompile, name, dims, cells, model)")
    return data, smap


def load_file(path: str | Path) -> tuple[dict, SourceMap]:
    p = Path(path)
    if not p.exists():
        from .errors import UsageError

        raise UsageError(f"{p}: no such file")
    from .files import FileReadError, read_text

    try:
        text = read_text(p, MAX_SPEC_BYTES)  # a regular file (or stdin), never a FIFO or /dev/zero
    except FileReadError as e:
        raise SpecError([Diagnostic(f"spec file {e.reason}", "", Location(str(p), 0, 0))]) from None
    return load_text(text, str(p))
