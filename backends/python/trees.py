"""The `tree_fold` flow op, rendered: the exported `run_trees(params, trees)` of a tree model, the fold
written out level by level.

Trees come in as nested Python values of token ids and are flattened without recursion (an explicit
stack) into parent pointers in preorder, tree after tree. Nodes are grouped by height (peeled bottom
up, one vectorised round per height, as rnncompile.trees.schedule does) and, within a height, by
number of children, so each group is one call of its rule on [n, k, ...] gathers of its children's
values. Leaves run the leaf rule (the node rule with no children when the cell has none); the head
reads every node's values at the root or at every node.
"""
from __future__ import annotations

from rnncompile import flow

from .cell import IND
from .names import comment, string

TREE_FORMAT = """\
Trees: a list of trees, each a nested value of token ids (`word` ids of the spec's vocabulary):
    3                       a leaf whose word is token 3
    [t1, t2, ...]           an inner node with these subtrees, in order (a tuple works too)
    {"word": 3, "label": 1, "children": [...]}   a node with a word and/or a label, e.g. a
                            dependency tree's inner node (every key optional; no children: a leaf)
e.g. [[4, [5, 6]], 7] is a binary tree of four leaves. Nodes are numbered in preorder, tree after
tree: `nodes` and outputs at every node are [N, ...] in that order. Flattening uses a stack, not
recursion, so a chain 10,000 deep is fine."""

TREE_HELPERS = {
    "flatten_trees": '''
def flatten_trees(trees):
    """Nested trees (see the module docstring) -> parent [N] (-1 at a root), word [N] and label [N]
    (token ids, -1 where a node has none), in preorder, tree after tree; and offsets [B + 1]."""
    parent, word, label, offsets = [], [], [], [0]
    for t, tree in enumerate(trees):
        stack = [(tree, -1)]
        while stack:
            item, up = stack.pop()
            node = len(parent)
            parent.append(up)
            word.append(-1)
            label.append(-1)
            kids = ()
            where = "tree %d, node %d (preorder)" % (t, node - offsets[-1])
            if isinstance(item, dict):
                extra = sorted(set(item) - {"word", "label", "children"})
                if extra:
                    raise ValueError("%s: unknown key `%s`; a node has word, label and children"
                                     % (where, extra[0]))
                word[node] = -1 if item.get("word") is None else int(item["word"])
                label[node] = -1 if item.get("label") is None else int(item["label"])
                kids = item.get("children") or ()
            elif isinstance(item, (list, tuple)):
                kids = item
                if not kids:
                    raise ValueError("%s is an empty list: a node needs children" % where)
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                word[node] = int(item)
            else:
                raise ValueError("%s is %s %r; a node is a token id, a list of subtrees or a dict with "
                                 "word/label/children" % (where, type(item).__name__, item))
            stack.extend((kid, node) for kid in reversed(kids))
        offsets.append(len(parent))
    return np.array(parent, np.int64), np.array(word, np.int64), np.array(label, np.int64), np.array(offsets)
''',
    "tree_levels": '''
def tree_levels(parent, nchildren):
    """The nodes of each height (0: leaves), lowest first: peeled bottom up, one vectorised round per
    height, touching only that height's nodes and their parents."""
    pending = nchildren.copy()  # children not yet computed
    owner = np.empty(len(parent), np.int64)
    frontier = np.flatnonzero(pending == 0)
    levels = []
    while frontier.size:
        levels.append(frontier)
        up = parent[frontier]
        keep = up >= 0  # roots hand nothing on
        frontier, up = frontier[keep], up[keep]
        np.subtract.at(pending, up, 1)
        owner[up] = frontier  # siblings race to one slot: exactly one wins, so each parent is taken once
        frontier = up[(owner[up] == frontier) & (pending[up] == 0)]
    return levels
''',
    "where_node": '''
def where_node(offsets, node):
    """'tree b, node i (preorder)' for a flat node id."""
    t = int(np.searchsorted(offsets, node, side="right")) - 1
    return "tree %d, node %d (preorder)" % (t, node - offsets[t])
''',
}


RUN_TREES = "run_trees(params, trees, dtype=\"float32\")"


def run_trees_head(cell_name: str, head_at: str | None) -> list[str]:
    """The signature and docstring of `run_trees`, whose body the tree_fold and output ops write."""
    at = "[B, ...] at the roots" if head_at in (None, "root") else "[N, ...] at every node"
    return ['def run_trees(params, trees, dtype="float32"):',
            f'{IND}"""Fold cell `{cell_name}` over a batch of trees (see the module docstring for their format),',
            f"{IND}leaves to root, one height at a time. Returns (outputs, final_state, nodes): the head's",
            f"{IND}outputs ({at}), each root's values [B, ...] and every node's [N, ...], as",
            f"{IND}rnncompile's TreeRunResult.",
            f'{IND}"""']


def render_tree_fold(r, op: flow.TreeFold) -> list[str]:
    """`op` as the body of `run_trees`; `r` is the FlowRenderer. The bundle it writes is the whole result:
    (outputs, final_state, values)."""
    return TreeFoldWriter(r, op).lines()


class TreeFoldWriter:
    """The lines of one tree_fold op; the tree cell (its arity, what each rule reads, the values a node
    holds) is the program's fold cell, the op's rules are its node and leaf uses."""

    def __init__(self, r, op: flow.TreeFold):
        self.r, self.op, self.program = r, op, r.program
        self.cell = r.program.plan.fold.cell

    def rule_call(self, use, rule: str, ind: str, group: str, kids: str | None) -> list[str]:
        """One rule on the nodes `group`: its inputs gathered, its values written to `values`."""
        cell = self.program.cell(use)
        code = self.r.code(use, rows=True)
        args = []
        for name in cell.inputs:
            if name.startswith("children."):
                args.append(f'values[{string(name[len("children."):])}][{kids}]')
            else:
                args.append(f"{name}[{group}]" if name in ("word", "label") else f"np.zeros(len({group}), np.int64)")
        got = ", ".join(string(o) for o in code.seq_outputs) + ("," if len(code.seq_outputs) == 1 else "")
        lines = [f"{ind}# {rule} rule: cell `{comment(cell.name)}`"]
        if code.seq_outputs:
            lines += [f"{ind}got = {code.fn}_hoist(k_{rule}, {', '.join(args)})",
                      f"{ind}for name, v in zip(({got}), got):",
                      f"{ind}{IND}values[name][{group}] = v"]
        for o in code.const_outputs:  # a value that reads params only
            lines.append(f'{ind}values[{string(o)}][{group}] = k_{rule}[{string(code.names[cell.outputs()[o]])}]')
        return lines

    def lines(self) -> list[str]:
        op, cell, r = self.op, self.cell, self.r
        r.helpers |= {"flatten_trees", "tree_levels", "where_node"}
        vocab = len(self.program.vocab.tokens) if self.program.vocab is not None else 0
        i2, i3 = IND, IND * 2
        lines = ["dtype = np.dtype(dtype)",
                 "parent, word, label, offsets = flatten_trees(trees)",
                 "if not len(parent):",
                 f'{i2}raise ValueError("no trees given")',
                 "n = len(parent)",
                 "nchildren = np.bincount(parent + 1, minlength=n + 1)[1:]",
                 "roots = np.flatnonzero(parent < 0)"]
        if cell.arity is not None:
            lines += [f"bad = np.flatnonzero((nchildren > 0) & (nchildren != {cell.arity}))",
                      "if bad.size:",
                      f'{i2}raise ValueError("%s has %d children, but cell `{cell.name}` takes exactly {cell.arity} "',
                      f'{i2}                 "(arity: {cell.arity}); binarize the trees" % (where_node(offsets, bad[0]), '
                      "nchildren[bad[0]]))"]
        rules = {"leaf": op.leaf, "node": op.node} if op.leaf is not None else {"node": op.node}
        for name in ("word", "label"):
            readers = [rule for rule, reads in cell.reads.items() if name in reads and rule in rules]
            if not readers:
                continue
            at = ("nchildren == 0" if readers == ["leaf"] else "nchildren > 0" if readers == ["node"] and "leaf" in rules
                  else "np.ones(n, bool)")
            lines += [f"bad = np.flatnonzero(({at}) & ({name} < 0))",
                      "if bad.size:",
                      f'{i2}raise ValueError("%s has no {name}, but cell `{cell.name}` reads it there; "',
                      f'{i2}                 "give it as {{\\"{name}\\": id, ...}}" % where_node(offsets, bad[0]))',
                      f"bad = np.flatnonzero({name} >= {vocab})",
                      "if bad.size:",
                      f'{i2}raise ValueError("%s: {name} id %d is not a token id (the vocabulary has {vocab})"',
                      f"{i2}                 % (where_node(offsets, bad[0]), {name}[bad[0]]))"]
        for rule, use in rules.items():
            lines.append(f'k_{rule} = {r.code(use, rows=True).fn}_prepare(params, {string(use.key(""))}, dtype)')
        lines.append("values = {")
        lines += [f'{i2}{string(v)}: np.zeros((n,{"".join(f" {d}," for d in shape)[:-1] if shape else ""}), dtype),'
                  for v, shape in cell.values.items()]
        lines += ["}",
                  "kids_of = np.argsort(parent, kind=\"stable\")[len(roots):]  # every node's children, in order",
                  "first_kid = np.cumsum(nchildren) - nchildren  # node i's start at kids_of[first_kid[i]]",
                  "for level in tree_levels(parent, nchildren):  # one height at a time, leaves first",
                  f"{i2}count = nchildren[level]",
                  f"{i2}for k in np.unique(count):  # one call per number of children",
                  f"{i3}group = level[count == k]",
                  f"{i3}kids = kids_of[first_kid[group][:, None] + np.arange(k)]  # [n, k]"]
        if "leaf" in rules:
            lines.append(f"{i3}if k == 0:")
            lines += self.rule_call(op.leaf, "leaf", IND * 3, "group", "kids")
            lines.append(f"{i3}else:")
            lines += self.rule_call(op.node, "node", IND * 3, "group", "kids")
        else:
            lines += self.rule_call(op.node, "node", i3, "group", "kids")
        lines += ["final_state = {name: v[roots] for name, v in values.items()}"]
        lines += self.head_lines()
        lines.append(f"{r.define(op.out)} = (outputs, final_state, values)")
        return lines

    def head_lines(self) -> list[str]:
        op = self.op
        if op.head is None:
            return ["outputs = final_state  # no head: the roots' values"]
        use = op.head
        cell, code = self.program.cell(use), self.r.code(use, rows=True)
        rows = "[roots]" if op.head_at == "root" else ""
        args = ", ".join(f'values[{string(n)}]{rows}' for n in cell.inputs)
        got = ", ".join(string(o) for o in code.seq_outputs) + ("," if len(code.seq_outputs) == 1 else "")
        lines = [f"# head: at {op.head_at.replace('_', ' ')}",
                 f'k_head = {code.fn}_prepare(params, {string(use.key(""))}, dtype)',
                 f"outputs = dict(zip(({got}), {code.fn}_hoist(k_head, {args})))" if code.seq_outputs
                 else "outputs = {}"]
        count = "len(roots)" if op.head_at == "root" else "n"
        for o in code.const_outputs:
            local = code.names[cell.outputs()[o]]
            lines.append(f'outputs[{string(o)}] = np.broadcast_to(k_head[{string(local)}], ({count},) + '
                         f'k_head[{string(local)}].shape)')
        return lines
