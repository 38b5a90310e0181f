"""Reading trees: bracketed text (Penn Treebank), JSON (nested lists, objects, parent pointers) and files.

Bracketed trees follow the Penn Treebank: ``(LABEL child ...)`` where a
child is a bracket or a bare word; ``(LABEL word)`` is a leaf holding both
(a preterminal, or a phrase of the Stanford Sentiment Treebank,
``(3 (2 It) (4 (2 's) (4 great)))``); a bracket that starts with a bracket
has no label, so ``((the cat) sat)`` is not how an unlabeled tree is
written — write ``(() ...)``-free trees as ``(X (D the) (N cat))`` or as JSON
``[["the", "cat"], "sat"]``. The treebank's outer ``( (S ...) )`` is
unwrapped. Nothing here recurses: a chain 10,000 deep reads like any tree.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import read_text
from .tree import MAX_TREE_FILE_BYTES, NO_LABEL, Tree, TreeError

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
    text = read_text(p, MAX_TREE_FILE_BYTES)  # a regular file of bounded size: never a FIFO or /dev/zero
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
    items = list(items)
    if items and all(isinstance(item, Tree) for item in items):
        return items
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
