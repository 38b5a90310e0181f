"""Trees as data: reading them (bracketed text, JSON, parent pointers, files) and batching them.

A :class:`Tree` is parent pointers (-1 at the root) plus what each node
holds: a word (a leaf's token; every node's, in a dependency tree) and a
label. A :class:`Forest` is a batch of trees as flat arrays over all their
nodes, which is what the schedule and the fold driver work on.

Bracketed trees follow the Penn Treebank: ``(LABEL child ...)`` where a
child is a bracket or a bare word; ``(LABEL word)`` is a leaf holding both
(a preterminal, or a phrase of the Stanford Sentiment Treebank,
``(3 (2 It) (4 (2 's) (4 great)))``); a bracket that starts with a bracket
has no label, so ``((the cat) sat)`` is not how an unlabeled tree is
written — write ``(() ...)``-free trees as ``(X (D the) (N cat))`` or as JSON
``[["the", "cat"], "sat"]``. The treebank's outer ``( (S ...) )`` is
unwrapped. Nothing here recurses: a chain 10,000 deep reads like any tree.

Errors say where: ``trees.txt:3:12: error: ...`` with the line and a caret.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError

NO_TOKEN = -1  # an integer token array's "this node holds none"
NO_LABEL = "_"  # in bracketed text, a node without a label: (_ (_ the cat) sat)
MAX_TREE_FILE_BYTES = 256 * 1024 * 1024


class TreeError(DataError):
    """A tree that cannot be read, or does not fit the cell: located in its text when it has one."""

    def __init__(self, message: str, where: str = "", text: str = "", col: int = 0, hint: str = "", width: int = 1):
        self.message, self.where, self.text, self.col, self.hint, self.width = message, where, text, col, hint, width
        super().__init__(self.format())

    def format(self) -> str:
        head = self.where
        if self.col:
            head = f"{head}:{self.col}" if re.search(r":\d+$", head) else f"{head or 'tree'}, column {self.col}"
        lines = [f"{head}: error: {self.message}" if head else f"error: {self.message}"]
        if self.col and self.text:
            lines.append(f"    {self.text.rstrip()}")
            lines.append("    " + " " * (self.col - 1) + "^" * max(1, self.width))
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


@dataclass
class Tree:
    """One tree. Nodes read from text are in preorder (a parent before its children, children
    left to right); children of a node are ordered by index."""

    parent: np.ndarray  # [n] int64, -1 at the root
    words: np.ndarray  # [n] object (str or None) or int64 (NO_TOKEN for none)
    labels: np.ndarray  # [n] as words
    text: str = ""  # the text it was read from, if any
    where: str = ""  # e.g. trees.txt:3, --tree, tree 2
    columns: np.ndarray | None = None  # [n] 1-based column of each node in `text` (0: unknown)

    @property
    def size(self) -> int:
        return len(self.parent)

    @classmethod
    def from_parents(cls, parents, words=None, labels=None, where: str = "") -> "Tree":
        """Parent pointers: 0-based with -1 at the root, or 1-based with 0 at the root (Tai et al.'s
        files). `words`/`labels` may be shorter than the tree (the rest hold none)."""
        p = np.asarray(parents)
        if p.ndim != 1 or p.size == 0 or not np.issubdtype(p.dtype, np.integer):
            raise TreeError("parent pointers must be a non-empty list of whole numbers", where)
        p = p.astype(np.int64)
        one_based = not (p == -1).any() and (p == 0).sum() == 1 and p.max() <= p.size
        if one_based:
            p = p - 1  # 1-based, 0 = root
            where = f"{where} (1-based pointers, 0 = root)" if where else "1-based pointers (0 = root)"
        roots = np.flatnonzero(p == -1)
        bad = np.flatnonzero((p < -1) | (p >= p.size) | (p == np.arange(p.size)))
        if bad.size:
            raise TreeError(f"node {bad[0]} has parent {p[bad[0]]}, which is not another node of the tree "
                            f"(0..{p.size - 1}, or -1 for the root)", where)
        if roots.size != 1:
            raise TreeError(f"a tree has one root (parent -1); these pointers have {roots.size}"
                            + (f": nodes {', '.join(map(str, roots[:6]))}" if roots.size else ""), where,
                            hint="1-based pointers mark the root with 0" if roots.size == 0 else "")
        from .schedule import heights

        if heights(p) is None:
            raise TreeError("the parent pointers form a cycle: some nodes never reach the root", where)
        return cls(p, _token_array(words, p.size, where, "words"), _token_array(labels, p.size, where, "labels"),
                   where=where)

    def children(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in range(self.size)]
        for i, p in enumerate(self.parent.tolist()):
            if p >= 0:
                kids[p].append(i)
        return kids

    @property
    def root(self) -> int:
        return int(np.flatnonzero(self.parent < 0)[0])

    def to_text(self, limit: int | None = None, tokens: list[str] | None = None) -> str:
        """Bracketed text (written without recursion; `_` for no label); `limit` cuts it with …;
        `tokens` spells integer token ids."""
        kids = self.children()
        spell = (lambda v: tokens[v] if isinstance(v, (int, np.integer)) and 0 <= v < len(tokens) else _show(v)) \
            if tokens else _show
        out, stack = [], [(self.root, False)]
        while stack:
            i, closing = stack.pop()
            if closing:
                out.append(")")
                continue
            word, label = spell(self.words[i]), spell(self.labels[i])
            if out and not out[-1].endswith("("):
                out.append(" ")
            if not kids[i]:
                out.append(f"({label} {word})" if label and word else (word or f"({label})"))
                continue
            out.append("(" + (label or NO_LABEL) + (f":{word}" if word else ""))
            stack.append((i, True))
            stack.extend((k, False) for k in reversed(kids[i]))
            if limit and sum(map(len, out)) > limit:
                break
        text = "".join(out)
        return text if not limit or len(text) <= limit else text[:limit - 1] + "…"


def _show(v) -> str:
    if v is None or (isinstance(v, (int, np.integer)) and v == NO_TOKEN):
        return ""
    return str(v)


def _token_array(values, n: int, where: str, what: str) -> np.ndarray:
    if values is None:
        return np.full(n, None, object)
    values = list(values)
    if len(values) > n:
        raise TreeError(f"{len(values)} {what} for a tree of {n} nodes", where)
    if all(v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool)) for v in values) \
            and any(v is not None for v in values):  # token ids (None or -1: none)
        out = np.full(n, NO_TOKEN, np.int64)
        out[:len(values)] = [NO_TOKEN if v is None else v for v in values]
        return out
    out = np.full(n, None, object)
    out[:len(values)] = [None if v is None else str(v) for v in values]
    return out


# ---- bracketed text -----------------------------------------------------------------

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def parse_tree(text: str, where: str = "") -> Tree:
    """A Penn Treebank style bracketed tree (or one bare word)."""
    parent, words, labels, cols = [], [], [], []
    stack: list[int] = []  # open brackets (node ids)
    pending: dict[int, tuple[str, int]] = {}  # node -> its first bare word, not yet a child (maybe a leaf's word)
    fresh: set[int] = set()  # nodes whose label slot is still open
    nkids: list[int] = []
    root_done = False

    def new(par: int, col: int, word=None) -> int:
        parent.append(par)
        words.append(word)
        labels.append(None)
        cols.append(col)
        nkids.append(0)
        if par >= 0:
            nkids[par] += 1
        return len(parent) - 1

    def flush(node: int) -> None:
        if node in pending:
            word, col = pending.pop(node)
            new(node, col, word)

    for m in _TOKEN.finditer(text):
        tok, col = m.group(), m.start() + 1
        if root_done:
            if tok == ")":
                raise TreeError("unbalanced brackets: this `)` closes nothing", where, text, col)
            raise TreeError("a second tree starts here; give one tree per line", where, text, col,
                            "in a file, write one tree per line")
        if tok == "(":
            if stack:
                fresh.discard(stack[-1])
                flush(stack[-1])
            stack.append(new(stack[-1] if stack else -1, col))
            fresh.add(stack[-1])
        elif tok == ")":
            if not stack:
                raise TreeError("unbalanced brackets: this `)` closes nothing", where, text, col)
            node = stack.pop()
            fresh.discard(node)
            if node in pending and nkids[node] == 0:  # (LABEL word): a leaf holding both
                words[node] = pending.pop(node)[0]
            flush(node)
            if nkids[node] == 0 and words[node] is None:
                what = f"node `{labels[node]}`" if labels[node] is not None else "`()`"
                raise TreeError(f"{what} has no children and no word" if labels[node] is not None
                                else "empty brackets: a node needs a label, a word or children",
                                where, text, cols[node], "a leaf is written (LABEL word)" if labels[node] else "")
            root_done = not stack
        elif not stack:
            if parent:
                raise TreeError("a second tree starts here; give one tree per line", where, text, col)
            new(-1, col, tok)
            root_done = True
        else:
            node = stack[-1]
            if node in fresh:
                labels[node] = None if tok == NO_LABEL else tok
                fresh.discard(node)
            else:
                flush(node)
                if nkids[node] == 0 and node not in pending:
                    pending[node] = (tok, col)
                else:
                    new(node, col, tok)
    if stack:
        opened = cols[stack[-1]]
        n_open, n_close = text.count("("), text.count(")")
        raise TreeError(f"unbalanced brackets: the `(` at column {opened} is never closed", where, text, opened,
                        f"{n_open} `(` but {n_close} `)`")
    if not parent:
        raise TreeError("empty tree: no words or brackets", where, text)
    tree = Tree(np.asarray(parent, np.int64), np.asarray(words + [None], object)[:-1],
                np.asarray(labels + [None], object)[:-1], text, where, np.asarray(cols, np.int64))
    return _unwrap(tree)


def _unwrap(tree: Tree) -> Tree:
    """The treebank's `( (S ...) )`: a root with no label, no word and one child is dropped."""
    p = tree.parent
    if p.size > 1 and tree.labels[0] is None and tree.words[0] is None and (p == 0).sum() == 1:
        parent = p[1:] - 1
        parent[0] = -1
        cols = tree.columns[1:] if tree.columns is not None else None
        return Tree(parent, tree.words[1:], tree.labels[1:], tree.text, tree.where, cols)
    return tree


# ---- JSON -------------------------------------------------------------------------------

def tree_from_json(value, where: str = "") -> Tree:
    """A JSON tree: a string is a leaf's word; a list, a node's children; an object has
    `label`, `word` and `children` (any of them), or `parents` (with `words`, `labels`)."""
    if isinstance(value, dict) and "parents" in value:
        extra = set(value) - {"parents", "words", "labels"}
        if extra:
            raise TreeError(f"unknown key `{sorted(extra)[0]}` in a parent-pointer tree; keys: parents, words, labels",
                            where)
        return Tree.from_parents(value["parents"], value.get("words"), value.get("labels"), where)
    parent, words, labels = [], [], []
    stack = [(value, -1, "tree")]
    while stack:
        item, par, path = stack.pop()
        node = len(parent)
        parent.append(par)
        words.append(None)
        labels.append(None)
        kids = []
        if isinstance(item, str) or (isinstance(item, (int, float)) and not isinstance(item, bool)):
            words[node] = str(item)
        elif isinstance(item, list):
            kids = item
            if not kids:
                raise TreeError(f"{path} is an empty list: a node needs children", where)
        elif isinstance(item, dict):
            extra = set(item) - {"label", "word", "children"}
            if extra:
                raise TreeError(f"unknown key `{sorted(extra)[0]}` at {path}; a node has label, word and children",
                                where)
            labels[node] = None if item.get("label") is None else str(item["label"])
            words[node] = None if item.get("word") is None else str(item["word"])
            kids = item.get("children") or []
            if not isinstance(kids, list):
                raise TreeError(f"`children` at {path} must be a list", where)
            if not kids and words[node] is None:
                raise TreeError(f"the node at {path} has no children and no word", where)
        else:
            raise TreeError(f"{path} is {type(item).__name__} `{item}`; a tree node is a word, a list of "
                            f"children or an object with label/word/children", where)
        for i in range(len(kids) - 1, -1, -1):  # reversed on the stack: children come out in order
            stack.append((kids[i], node, f"{path}[{i}]" if isinstance(item, list) else f"{path}.children[{i}]"))
    return Tree(np.asarray(parent, np.int64), np.asarray(words + [None], object)[:-1],
                np.asarray(labels + [None], object)[:-1], where=where)


def parse_json_tree(text: str, where: str = "") -> Tree:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise TreeError(f"invalid JSON: {e.msg}", where, text, e.colno) from None
    except RecursionError:
        raise TreeError("the JSON nests too deeply for Python's JSON reader; write deep trees as brackets "
                        "or parent pointers", where) from None
    return tree_from_json(value, where)


def read_tree(text: str, where: str = "") -> Tree:
    """One tree from text: JSON if it starts with [ or {, else bracketed."""
    if text.strip()[:1] in ("[", "{"):
        return parse_json_tree(text, where)
    return parse_tree(text, where)


def read_trees(path) -> list[Tree]:
    """A file of trees: one per line (bracketed or JSON; blank lines and # comments skipped), or a
    .json file holding {"trees": [...]}."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.stat().st_size > MAX_TREE_FILE_BYTES:
        raise DataError(f"{p}: more than {MAX_TREE_FILE_BYTES // 2**20} MiB of trees")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise TreeError(f"invalid JSON: {e.msg}", f"{p}:{e.lineno}", text.splitlines()[e.lineno - 1]
                            if text.splitlines() else "", e.colno) from None
        except RecursionError:
            raise DataError(f"{p}: the JSON nests too deeply; write deep trees as brackets or parent pointers") \
                from None
        if not isinstance(data, dict) or not isinstance(data.get("trees"), list):
            raise DataError(f'{p}: a .json file of trees is an object {{"trees": [tree, ...]}}')
        return [tree_from_json(t, f"{p}: trees[{i}]") for i, t in enumerate(data["trees"])]
    trees = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            trees.append(read_tree(line, f"{p}:{n}"))
    if not trees:
        raise DataError(f"{p}: holds no trees (one per line)")
    return trees


def as_trees(items) -> list[Tree]:
    """What the API accepts: a Tree, text, or a JSON-like value, or a list of them."""
    if isinstance(items, (str, Tree, dict)):
        items = [items]
    out = []
    for i, item in enumerate(items):
        where = f"tree {i}"
        if isinstance(item, Tree):
            out.append(item)
        elif isinstance(item, str):
            out.append(read_tree(item, where))
        elif isinstance(item, (list, dict)):
            out.append(tree_from_json(item, where))
        else:
            raise DataError(f"{where} is a {type(item).__name__}; give bracketed text, a JSON-like list or "
                            f"dict, or a Tree")
    if not out:
        raise DataError("no trees given")
    return out


# ---- a batch of trees ------------------------------------------------------------------

@dataclass
class Forest:
    """Trees side by side: tree b's node i is node offsets[b] + i of the flat arrays."""

    parent: np.ndarray  # [N] int64, -1 at roots
    tree: np.ndarray  # [N] int64: which tree each node belongs to
    offsets: np.ndarray  # [B + 1]
    roots: np.ndarray  # [B]
    words: np.ndarray  # [N] object or int64
    labels: np.ndarray  # [N]
    trees: list[Tree] = field(default_factory=list)

    @classmethod
    def of(cls, trees: list[Tree]) -> "Forest":
        sizes = np.fromiter((t.size for t in trees), np.int64, len(trees))
        offsets = np.zeros(len(trees) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        tree = np.repeat(np.arange(len(trees)), sizes)
        parent = np.concatenate([t.parent for t in trees])
        parent = np.where(parent >= 0, parent + offsets[tree], -1)
        roots = np.flatnonzero(parent < 0)
        return cls(parent, tree, offsets, roots, _join([t.words for t in trees]), _join([t.labels for t in trees]),
                   list(trees))

    @property
    def size(self) -> int:
        return len(self.parent)

    @property
    def batch(self) -> int:
        return len(self.roots)

    def describe(self, node: int) -> tuple[str, str, int, str]:
        """(where, text, column, what) for an error about one node."""
        b = int(self.tree[node])
        t = self.trees[b] if b < len(self.trees) else None
        local = node - int(self.offsets[b])
        label = _show(self.labels[node])
        what = f"node `{label}`" if label else (f"leaf `{_show(self.words[node])}`" if _show(self.words[node])
                                                 else f"node {local}")
        if t is None:
            return f"tree {b}", "", 0, what
        col = int(t.columns[local]) if t.columns is not None else 0
        where = t.where or f"tree {b}"
        return where, t.text, col, what if col else f"{what} (node {local})"


def _join(arrays: list[np.ndarray]) -> np.ndarray:
    if all(a.dtype == np.int64 for a in arrays):
        return np.concatenate(arrays)
    parts = [a if a.dtype == object else np.where(a == NO_TOKEN, None, a.astype(object)) for a in arrays]
    return np.concatenate(parts)


def encode(values: np.ndarray, vocab, what: str, forest: Forest) -> np.ndarray:
    """Token ids [N] for the words or labels of a forest (NO_TOKEN where a node holds none)."""
    n = len(vocab.tokens)
    if values.dtype == np.int64:
        bad = np.flatnonzero((values >= n) | (values < NO_TOKEN))
        if bad.size:
            where, text, col, node = forest.describe(int(bad[0]))
            raise TreeError(f"{what} id {values[bad[0]]} of {node} is not a token id (the vocabulary has {n})",
                            where, text, col)
        return values
    out = np.full(len(values), NO_TOKEN, np.int64)
    present = np.flatnonzero(values != None)  # noqa: E711  (elementwise on an object array)
    if not present.size:
        return out
    unique, inverse = np.unique(values[present].astype(str), return_inverse=True)
    ids = np.empty(len(unique), np.int64)
    for j, tok in enumerate(unique.tolist()):
        key = tok.lower() if vocab.lowercase else tok
        if key in vocab.index:
            ids[j] = vocab.index[key]
        elif vocab.unknown is not None:
            ids[j] = vocab.index[vocab.unknown]
        else:
            first = present[np.flatnonzero(inverse == j)[0]]
            where, text, col, _ = forest.describe(int(first))
            shown = " ".join(repr(t) for t in vocab.tokens[:20]) + (" …" if n > 20 else "")
            raise TreeError(f"{what} {tok!r} is not in the vocabulary: {shown}", where, text, col,
                            "add it to the vocabulary, or set `unknown:` in vocab", max(1, len(tok)))
    out[present] = ids[inverse]
    return out


# ---- random trees ------------------------------------------------------------------------

def random_trees(count: int, leaves=(3, 8), arity: int | None = 2, vocab_size: int = 10, seed: int = 0,
                 labels: bool = False, words_everywhere: bool = False) -> list[Tree]:
    """Seeded random trees, built bottom up by merging `arity` neighbours at random (2 or 3 with
    arity None) until one root is left; nodes renumbered in preorder. Words are token ids."""
    rng = np.random.default_rng(seed)
    lo, hi = leaves
    out = []
    for b in range(count):
        m = int(rng.integers(lo, hi + 1))
        if arity is not None and arity > 1:
            m += (-(m - 1)) % (arity - 1)  # a full arity-ary tree has 1 + (arity - 1) * inner leaves
        parent = [-1] * m
        row = list(range(m))
        while len(row) > 1:
            k = arity if arity is not None else int(rng.integers(2, 4))
            k = min(k, len(row)) if arity is None else k
            i = int(rng.integers(0, len(row) - k + 1))
            node = len(parent)
            parent.append(-1)
            for child in row[i:i + k]:
                parent[child] = node
            row[i:i + k] = [node]
        tree = _preorder(np.asarray(parent, np.int64))
        n = tree.size
        leaf = np.ones(n, bool)
        leaf[tree[tree >= 0]] = False
        words = rng.integers(0, vocab_size, n)
        if not words_everywhere:
            words = np.where(leaf, words, NO_TOKEN)
        labs = rng.integers(0, vocab_size, n) if labels else np.full(n, NO_TOKEN)
        out.append(Tree(tree, words.astype(np.int64), labs.astype(np.int64), where=f"random tree {b}"))
    return out


def _preorder(parent: np.ndarray) -> np.ndarray:
    """The same tree with nodes numbered in preorder (children in their old order)."""
    n = len(parent)
    kids: list[list[int]] = [[] for _ in range(n)]
    for i, p in enumerate(parent.tolist()):
        if p >= 0:
            kids[p].append(i)
    root = int(np.flatnonzero(parent < 0)[0])
    order, stack = [], [root]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(reversed(kids[i]))
    new = np.empty(n, np.int64)
    new[order] = np.arange(n)
    out = np.full(n, -1, np.int64)
    has = parent >= 0
    out[new[has]] = new[parent[has]]
    return out
