"""The expression language of specs: a small grammar and a hand-written parser.

Grammar (highest binding last)::

    expr    := sum (CMP sum)?           CMP := "<" | "<=" | ">" | ">=" | "==" | "!="
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/" | "//" | "%" | "@") unary)*
    unary   := "-" unary | power
    power   := postfix ("**" unary)?
    postfix := atom ("(" args ")" | "[" index "]" | "." NAME)*
    atom    := NUMBER | NAME | "(" expr ")" | "[" expr ("," expr)* ","? "]"
    args    := (arg ("," arg)*)?        arg := expr | NAME "=" expr
    index   := expr | expr? ":" expr?

A bracket in atom position is a literal vector (`[1, 0, -1]`), a bracket of
brackets a matrix (`[[1, 0], [0, 1]]`); right after a value it indexes
(`x[0]`). The entries must be known before running (numbers, dims, and
arithmetic on them); the lowering checks that and that rows agree. In YAML an
expression that starts with `[` must be quoted (`h: "[1, 0] * x"`), or YAML
reads it as a list; so must any expression inside a flow mapping `{...}`
that holds a comma.

Every AST node keeps the character offset where it starts, so errors can put
a caret under the exact sub-expression. Nothing is ever passed to ``eval``.

Limits, so that no input can exhaust Python's stack: an expression is at most
MAX_EXPR_CHARS long and nests at most MAX_DEPTH levels, a level being a
parenthesis, a call's or index's brackets, a unary sign or the right side of
`**`. Comparisons do not chain (`a < b < c` is an error with a hint): unlike
Python, `<` gives a number (0 or 1), so a chain would compare that number. Chains of one precedence (`a + b + ...`, `x.T.T`, `x[0:8][0:8]`) are
parsed by loops and do not nest: every later stage walks them with a loop too
(see `left_chain`), so a 3,000-term sum is fine.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MAX_EXPR_CHARS = 10_000
MAX_DEPTH = 64  # the parser recurses ~7 frames per level: 64 levels stay far below the stack limit


class ExprSyntaxError(Exception):
    def __init__(self, message: str, pos: int, width: int = 1, hint: str = "", opened_at: int | None = None):
        super().__init__(message)
        self.message, self.pos, self.width, self.hint = message, pos, width, hint
        self.opened_at = opened_at  # where an unclosed bracket was opened


@dataclass(frozen=True)
class Num:
    value: float
    pos: int
    text: str


@dataclass(frozen=True)
class Name:
    id: str
    pos: int


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple
    kwargs: tuple  # ((name, expr), ...)
    pos: int


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / // % @ ** < <= > >= == !=
    left: object
    right: object
    pos: int  # position of the operator itself


@dataclass(frozen=True)
class Neg:
    operand: object
    pos: int


@dataclass(frozen=True)
class Index:
    value: object
    index: object  # an expr, or a Slice
    pos: int


@dataclass(frozen=True)
class Slice:
    start: object | None
    stop: object | None
    pos: int


@dataclass(frozen=True)
class Vector:
    """A literal vector `[a, b, ...]`; entries that are Vectors themselves make a matrix (or more)."""

    items: tuple
    pos: int  # position of the opening bracket


@dataclass(frozen=True)
class Attr:
    value: object
    name: str
    pos: int  # position of the attribute name


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|//|==|!=|<=|>=|[-+*/%@(),.\[\]:=<>])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            ch = text[pos]
            hint = {"^": "use ** for powers", "!": "write `!=` for not-equal, or `1 - c` for not c",
                    "&": "for `a and b` on 0/1 values write a * b", "|": "for `a or b` on 0/1 values write "
                    "maximum(a, b)", "'": "names need no quotes", '"': "names need no quotes"}.get(ch, "")
            raise ExprSyntaxError(f"unexpected character `{ch}`", pos, 1, hint)
        kind = m.lastgroup
        if kind != "ws":
            tokens.append((kind, m.group(), pos))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


CMP_OPS = ("<", "<=", ">", ">=", "==", "!=")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.mixed: list[MixedProduct] = []

    def peek(self):
        return self.tokens[self.i]

    def take(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def accept(self, value: str):
        if self.peek()[1] == value and self.peek()[0] == "op":
            return self.take()
        return None

    def expect(self, value: str, opened_at: int | None = None):
        tok = self.peek()
        if tok[1] != value or tok[0] != "op":
            found = "the end of the expression" if tok[0] == "end" else f"`{tok[1]}`"
            hint = f"is the `{self.text[opened_at]}` at `{self.text[max(0, opened_at - 12):opened_at + 1]}` closed?" \
                if opened_at is not None else ""
            raise ExprSyntaxError(f"expected `{value}` but found {found}", tok[2], max(1, len(tok[1])), hint,
                                  opened_at)
        return self.take()

    def parse(self):
        if not self.text.strip():
            raise ExprSyntaxError("empty expression", 0)
        node = self.expr()
        tok = self.peek()
        if tok[0] != "end":
            raise ExprSyntaxError(f"unexpected `{tok[1]}`", tok[2], len(tok[1]),
                                  "is an operator missing between two terms?" if tok[0] in ("name", "num") else "")
        return node

    def _nest(self, pos: int):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprSyntaxError(f"expression nested deeper than {MAX_DEPTH} levels", pos, 1,
                                  "name the inner parts under `let:` and use the names")

    def expr(self):
        """A sum, or two sums compared (one comparison: they do not chain)."""
        node = self.sum()
        if self.peek()[1] in CMP_OPS and self.peek()[0] == "op":
            op = self.take()
            node = BinOp(op[1], node, self.sum(), op[2])
            nxt = self.peek()
            if nxt[1] in CMP_OPS and nxt[0] == "op":
                raise ExprSyntaxError(f"comparisons do not chain: `{op[1]}` then `{nxt[1]}`", nxt[2], len(nxt[1]),
                                      "a comparison gives 0 or 1; for both to hold, multiply them: "
                                      "(a < b) * (b < c)")
        return node

    def sum(self):
        node = self.product()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()
            node = BinOp(op[1], node, self.product(), op[2])
        return node

    def product(self):
        start = self.peek()[2]
        node = self.unary()
        seen, mix = set(), None
        while self.peek()[1] in ("*", "/", "//", "%", "@") and self.peek()[0] == "op":
            op = self.take()
            node = BinOp(op[1], node, self.unary(), op[2])
            kind = "@" if op[1] == "@" else "*"
            if seen and kind not in seen and mix is None:  # `A @ x * B @ h`: one level to the parser, two to a reader
                mix = op
            seen.add(kind)
        if mix is not None:
            self.mixed.append(MixedProduct(mix[2], len(mix[1]), start, self.peek()[2], node))
        return node

    def unary(self):
        tok = self.accept("-")
        if tok:
            self._nest(tok[2])
            node = Neg(self.unary(), tok[2])
            self.depth -= 1
            return node
        tok = self.accept("+")
        if tok:
            self._nest(tok[2])
            node = self.unary()
            self.depth -= 1
            return node
        return self.power()

    def power(self):
        node = self.postfix()
        op = self.accept("**")
        if op:
            self._nest(op[2])
            node = BinOp("**", node, self.unary(), op[2])
            self.depth -= 1
        return node

    def postfix(self):
        node = self.atom()
        while True:
            tok = self.peek()
            if tok[0] != "op":
                return node
            if tok[1] == "(":
                if not isinstance(node, Name):
                    raise ExprSyntaxError("only named functions can be called", tok[2])
                self.take()
                node = self.call(node, tok[2])
            elif tok[1] == "[":
                self.take()
                self._nest(tok[2])
                node = Index(node, self.index(), tok[2])
                self.depth -= 1
                self.expect("]", tok[2])
            elif tok[1] == ".":
                self.take()
                name = self.take()
                if name[0] != "name":
                    raise ExprSyntaxError("expected a name after `.`", name[2])
                node = Attr(node, name[1], name[2])
            else:
                return node

    def call(self, func: Name, opened_at: int):
        args, kwargs = [], []
        self._nest(opened_at)
        if not self.accept(")"):
            while True:
                tok = self.peek()
                nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else ("end", "", 0)
                if tok[0] == "name" and nxt[1] == "=" and nxt[0] == "op":
                    self.take()
                    self.take()
                    kwargs.append((tok[1], self.expr()))
                else:
                    if kwargs:
                        raise ExprSyntaxError("positional argument after a keyword argument", tok[2])
                    args.append(self.expr())
                if self.accept(")"):
                    break
                self.expect(",", opened_at)
        self.depth -= 1
        return Call(func.id, tuple(args), tuple(kwargs), func.pos)

    def vector(self, opened_at: int):
        """`[a, b, ...]` after its `[`: a literal vector (a trailing comma is allowed, an empty one is not)."""
        self._nest(opened_at)
        if self.peek()[1] == "]" and self.peek()[0] == "op":
            raise ExprSyntaxError("an empty literal `[]` has no size", opened_at, 2,
                                  "write its entries, e.g. [1, 0, -1]")
        items = [self.expr()]
        while self.accept(","):
            if self.peek()[1] == "]" and self.peek()[0] == "op":
                break
            items.append(self.expr())
        self.depth -= 1
        self.expect("]", opened_at)
        return Vector(tuple(items), opened_at)

    def index(self):
        pos = self.peek()[2]
        start = None if self.peek()[1] == ":" else self.sum()
        if self.accept(":"):
            stop = None if self.peek()[1] == "]" else self.sum()
            return Slice(start, stop, pos)
        return start

    def atom(self):
        tok = self.take()
        kind, text, pos = tok
        if kind == "num":
            return Num(float(text), pos, text)
        if kind == "name":
            return Name(text, pos)
        if text == "(":
            self._nest(pos)
            node = self.expr()
            self.depth -= 1
            self.expect(")", pos)
            return node
        if text == "[":
            return self.vector(pos)
        found = "the end of the expression" if kind == "end" else f"`{text}`"
        raise ExprSyntaxError(f"expected a value but found {found}", pos, max(1, len(text)))


def parse(text: str):
    """Parse one expression; raises ExprSyntaxError with a character offset."""
    return parse_noting(text)[0]


@dataclass(frozen=True)
class MixedProduct:
    """`@` and `*` or `/` in one unbracketed chain: they share a level and group left to right, so
    `A @ x * B @ h` is `((A @ x) * B) @ h`, which a reader rarely means."""

    pos: int  # the operator where the mix begins
    width: int
    start: int  # the chain's extent in the text
    end: int
    node: object  # the chain as parsed

    def hint(self, text: str) -> str:
        return f"`{text[self.start:self.end].strip()}` reads as `{to_text(self.node)}`; add brackets to say which you mean"


def parse_noting(text: str):
    """Parse one expression; also return the unbracketed chains that mix `@` with `*` or `/` (MixedProduct)."""
    if len(text) > MAX_EXPR_CHARS:
        raise ExprSyntaxError(f"expression longer than {MAX_EXPR_CHARS} characters", 0)
    parser = _Parser(text)
    return parser.parse(), parser.mixed


def walk(node) -> list:
    """Every node of an expression tree, the root first (iteratively: a deep expression cannot overflow)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append(n)
        if isinstance(n, Call):
            stack.extend(n.args)
            stack.extend(v for _, v in n.kwargs)
        elif isinstance(n, BinOp):
            stack.extend((n.left, n.right))
        elif isinstance(n, Neg):
            stack.append(n.operand)
        elif isinstance(n, Index):
            stack.extend((n.value, n.index))
        elif isinstance(n, Slice):
            stack.extend(x for x in (n.start, n.stop) if x is not None)
        elif isinstance(n, Attr):
            stack.append(n.value)
        elif isinstance(n, Vector):
            stack.extend(n.items)
    return out


def names_in(node) -> list[Name]:
    """Every Name read by an expression (function names excluded)."""
    return [n for n in walk(node) if isinstance(n, Name)]


def to_text(node) -> str:
    """Canonical text of an expression (used in messages, diagrams and generated code)."""
    text = _text(node)
    return text[1:-1] if isinstance(node, BinOp) else text


def left_chain(node) -> tuple[object, list]:
    """A chain of binary operators and postfixes, taken apart without recursion:
    the innermost operand, then the chain's nodes from the innermost out
    (`a + b - c` gives a and [a + b, (a + b) - c]). Walking chains with a loop
    and recursing only into the other operands keeps every walk's depth within
    a few frames per nesting level, however long the chain."""
    chain = []
    while isinstance(node, (BinOp, Attr, Index)):
        chain.append(node)
        node = node.left if isinstance(node, BinOp) else node.value
    chain.reverse()
    return node, chain


def _text(node) -> str:
    base, chain = left_chain(node)
    parts = ["(" * sum(isinstance(n, BinOp) for n in chain), _operand_text(base)]
    for n in chain:
        if isinstance(n, BinOp):
            parts.append(f" {n.op} {_text(n.right)})")
        elif isinstance(n, Index):
            parts.append(f"[{_text(n.index)}]")
        else:
            parts.append(f".{n.name}")
    return "".join(parts)


def _operand_text(node) -> str:
    if isinstance(node, Num):
        return node.text
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Call):
        parts = [_text(a) for a in node.args] + [f"{k}={_text(v)}" for k, v in node.kwargs]
        return f"{node.func}({', '.join(parts)})"
    if isinstance(node, Neg):
        return f"-{_text(node.operand)}"
    if isinstance(node, Vector):
        return "[" + ", ".join(to_text(i) for i in node.items) + "]"
    if isinstance(node, Slice):
        a = _text(node.start) if node.start is not None else ""
        b = _text(node.stop) if node.stop is not None else ""
        return f"{a}:{b}"
    raise TypeError(node)
