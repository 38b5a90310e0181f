"""Tree models: the tree itself with the cell at every node, and the folded tree cell.

The tree view draws one tree, root at the top, as the lecture's picture of a
recursive network: every node is a box applying the cell (its rule's gates
as coloured chips), the leaves read their words from below, and each box
hands its states up to its parent along an orange edge. Boxes of one rule
share one colour and list the weights they apply: the same weights at every
node. A head at the root sits above it; a head at every node is one more
line in every box. A large tree is cut at a depth that keeps at most
MAX_NODES boxes; each subtree below the cut is one "…" node saying how many
nodes it holds (a chain 10,000 deep draws as its top and one "…").

The folded view draws the cell's two rules one above the other (shown.py, as
the folded step cell) and the recursion where it starts: each rule's states
end in a short dashed edge marked "to the parent: children.<state>", and the
node rule's `children.<state>` inputs say they come from the children. (Drawn
as edges from the outputs back to the inputs, the recursion swept four loops
across the whole figure.)
"""
from __future__ import annotations

import graphviz
import numpy as np

from ..errors import UsageError
from ..ops import CHILDREN
from ..trees.generate import random_trees
from ..trees.parse import read_tree
from ..trees.tree import NO_TOKEN, Tree
from . import style
from .chain import gate_chips
from .shown import shown_nodes

MAX_NODES = 31  # boxes drawn before deeper subtrees are elided
EDGE_LABELS_UP_TO = 15  # state names on the edges of trees this small
RULE_FILL = {"leaf": ("#e7f5ff", "#1c7ed6"), "node": ("#fff4e6", "#e8590c")}
STATE_EDGE = dict(color="#e67700", fontcolor="#b35c00", penwidth="1.6", fontsize="10", arrowsize="0.7")
RECURSION = dict(style="dashed", color=style.DELAY, fontcolor=style.DELAY, penwidth="1.4", fontsize="11",
                 constraint="false")
HEAD = dict(style.KIND_STYLE["cell"], fillcolor="#f3f0ff", color="#5f3dc4", penwidth="1.2")
SAMPLE = "(S (NP (D the) (N cat)) (VP (V sat) (PP (P on) (NP (D the) (N mat)))))"


def dot_for(program, view: str, tree=None, unroll=None) -> str:
    """A tree model's diagram: the folded cell (view "cell"), or the tree (any other view)."""
    if unroll is not None:
        raise UsageError("a tree model has no time steps to unroll: draw a tree with --tree \"(S (NP He) (VP wins))\" "
                         "(or --view tree for a sample one)")
    if view == "cell" and tree is None:
        return cell_dot(program)
    return tree_dot(program, tree)


def default_tree(program) -> Tree:
    """What the tree view draws when given none: a small parse tree that fits the cell."""
    fold_ = program.plan.fold
    arity = fold_.cell.arity
    if arity in (None, 2) and "word" not in fold_.cell.reads.get("node", ()):
        return read_tree(SAMPLE, "sample")
    vocab = len(program.vocab.tokens) if program.vocab else 1
    tree = random_trees(1, (4, 6), arity, vocab, 0, words_everywhere="word" in fold_.cell.reads.get("node", ()))[0]
    return tree


# ---- the tree ---------------------------------------------------------------------------

def tree_dot(program, tree: Tree | None = None, *, max_nodes: int = MAX_NODES, legend: bool = True) -> str:
    if isinstance(tree, str):
        tree = read_tree(tree, "--tree")
    tree = tree if tree is not None else default_tree(program)
    plan = program.plan
    fold_ = plan.fold
    cell = fold_.cell
    tokens = program.vocab.tokens if program.vocab else None
    kids = tree.children()
    depth = _depths(tree, kids)
    cut = _cut_depth(depth, max_nodes)
    rules = {r: program.checked.plan.fold.cell.rules[r] for r in cell.rules}
    folded = {r: shown_nodes(g) for r, g in rules.items()}
    head_shown = shown_nodes(plan.head.use.cell) if plan.head is not None else None
    acts = [op for f in list(folded.values()) + ([head_shown] if head_shown else []) for op in f.activations]
    colours = style.activation_colours(list(dict.fromkeys(acts)))
    weights = {r: g.params_read_by_outputs() for r, g in rules.items()}
    g = graphviz.Digraph(f"{program.name}_tree", graph_attr=dict(style.GRAPH_ATTRS, rankdir="BT", ordering="out",
                                                                   nodesep="0.2", ranksep="0.4"),
                         node_attr=style.NODE_ATTRS, edge_attr=style.EDGE_ATTRS)
    head = plan.head
    every = head is not None and head.at == "every_node"
    head_outs = list(head.use.cell.outputs()) if head is not None else []
    shown = np.flatnonzero(depth <= cut)
    small = len(shown) <= EDGE_LABELS_UP_TO
    states = ", ".join(cell.states)
    hidden_total, words, leaves = 0, [], []
    for i in _in_order(tree, kids, shown):
        leaf = not kids[i]
        rule = "leaf" if leaf and "leaf" in rules else "node"
        box = _box(i, tree, rule, cell.name, gate_chips(folded[rule], colours), weights[rule],
                   head_outs if every else [], tokens)
        if leaf:
            leaves.append((f"t{i}", box))
        else:
            g.node(f"t{i}", **box)
        word = _spell(tree.words[i], tokens)
        if word and ("word" in cell.reads.get(rule, ())):
            words.append((f"w{i}", dict(style.KIND_STYLE["input"], label=style.label(f"<b>{style.esc(word)}</b>"),
                                        tooltip=f"word of node {i}", fontsize="11")))
            g.edge(f"w{i}", f"t{i}", arrowsize="0.6")
        if depth[i] == cut and kids[i]:
            n = _subtree_size(kids, i) - 1
            hidden_total += n
            g.node(f"x{i}", label=f"<{style.ELLIPSIS}<br/><font point-size=\"9\" color=\"{style.MUTED}\">"
                                   f"{n:,} nodes</font>>", tooltip=f"the {n:,} nodes below node {i} are not drawn",
                   shape="plaintext", fontsize="16", fontcolor=style.MUTED)
            g.edge(f"x{i}", f"t{i}", label=style.edge_label([style.esc(states)] if small else [], beside=True),
                   tooltip=f"{states} of {len(kids[i])} children",
                   **STATE_EDGE)
        for k in kids[i] if depth[i] < cut else ():
            g.edge(f"t{k}", f"t{i}", label=style.edge_label([style.esc(states)] if small else [], beside=True),
                   tooltip=f"{states} of node {k} to node {i}",
                   **STATE_EDGE)
    with g.subgraph(name="words") as row:  # the sentence along the bottom, in order
        row.attr(rank="min")
        for nid, attrs in words:
            row.node(nid, **attrs)
    with g.subgraph(name="leaves") as row:  # and the leaves in a row above it
        row.attr(rank="same")
        for nid, attrs in leaves:
            row.node(nid, **attrs)
    if head is not None and not every:
        root = tree.root
        g.node("head", label=style.cell_label("head", gate_chips(head_shown, colours)),
               tooltip="head at the root: " + ", ".join(head_outs), **HEAD)
        g.edge(f"t{root}", "head", label=style.edge_label([style.esc(", ".join(cell.values))] if small else [], beside=True),
               **STATE_EDGE)
        g.node("out", **dict(style.KIND_STYLE["output"], label=style.label(f"<b>{style.esc(', '.join(head_outs))}"
                                                                            f"</b>")))
        g.edge("head", "out")
    if legend:
        g.attr(label=_caption(program, tree, weights, head, hidden_total, len(shown), colours, tokens))
    return g.source


def _box(i: int, tree: Tree, rule: str, name: str, chips, weights: list[str], head_outs: list[str], tokens) -> dict:
    fill, border = RULE_FILL[rule]
    label = _spell(tree.labels[i], tokens)
    row = "".join(f'<td bgcolor="{c}" width="14"><font point-size="10">{style.esc(t)}</font></td>' for t, c in chips)
    span = max(1, len(chips))
    lines = [f'<tr><td colspan="{span}"><b>{style.esc(label)}</b></td></tr>' if label else "",
             f'<tr><td colspan="{span}"><font point-size="10">{style.esc(name)} · {rule}</font></td></tr>',
             f"<tr>{row}</tr>" if chips else "",
             f'<tr><td colspan="{span}"><font point-size="9" color="{style.MUTED}">{style.esc(", ".join(weights))}'
             f'</font></td></tr>' if weights else "",
             f'<tr><td colspan="{span}" bgcolor="#f3f0ff"><font point-size="9">head: {style.esc(", ".join(head_outs))}'
             f'</font></td></tr>' if head_outs else ""]
    html = ('<<table border="0" cellborder="0" cellspacing="1" cellpadding="1">' + "".join(lines) + "</table>>")
    return dict(shape="box", style="rounded,filled", fillcolor=fill, color=border, penwidth="1.3", label=html,
                margin="0.06,0.03", tooltip=f"node {i}: cell {name}, {rule} rule")


def _caption(program, tree: Tree, weights, head, hidden: int, shown: int, colours, tokens) -> str:
    what = tree.to_text(90, tokens) if not hidden else f"a tree of {tree.size:,} nodes"
    title = f"{program.name}: cell `{program.plan.fold.cell.name}` at every node of {what}"
    notes = [f"{shown} of {tree.size:,} nodes drawn"] if hidden else []
    shared = "; ".join(f"{r} rule: {', '.join(w)}" for r, w in weights.items() if w)
    if head is not None:
        hw = head.use.cell.params_read_by_outputs()
        shared += f"; head ({head.at.replace('_', ' ')}): {', '.join(hw)}" if hw else ""
    cells = [f'<td bgcolor="{fill}" color="{border}">{rule} rule</td>' for rule, (fill, border) in RULE_FILL.items()
             if rule in weights]
    cells.append(f'<td bgcolor="{style.KIND_STYLE["input"]["fillcolor"]}" '
                 f'color="{style.KIND_STYLE["input"]["color"]}">word</td>')
    cells.append(f'<td border="0"><font color="{STATE_EDGE["color"]}">——→</font>  states to the parent</td>')
    for op, (fill, border) in colours.items():
        cells.append(f'<td bgcolor="{fill}" color="{border}">{style.esc(style.symbol(op))}</td>')
    row = "<tr>" + "".join(cells) + "</tr>"
    note = (f'<tr><td border="0" colspan="{len(cells)}" align="left"><font color="{style.MUTED}">the same weights at '
            f'every node — {style.esc(shared)}{style.esc("; " + "; ".join(notes)) if notes else ""}</font></td></tr>')
    return (f'<<table border="0" cellspacing="0"><tr><td align="left"><b>{style.esc(title)}</b></td></tr>'
            f'<tr><td><table border="0" cellborder="1" cellspacing="3" cellpadding="3">{row}{note}</table></td></tr>'
            f"</table>>")


def _spell(v, tokens) -> str:
    if v is None or (isinstance(v, (int, np.integer)) and v == NO_TOKEN):
        return ""
    if isinstance(v, (int, np.integer)) and tokens and 0 <= v < len(tokens):
        return tokens[v]
    return str(v)


def _in_order(tree: Tree, kids, shown) -> list[int]:
    """The shown nodes, parents first and children left to right (so the words come out in order)."""
    keep = set(shown.tolist())
    out, stack = [], [tree.root]
    while stack:
        i = stack.pop()
        if i in keep:
            out.append(i)
            stack.extend(reversed(kids[i]))
    return out


def _depths(tree: Tree, kids) -> np.ndarray:
    depth = np.zeros(tree.size, np.int64)
    stack = [tree.root]
    while stack:
        i = stack.pop()
        for k in kids[i]:
            depth[k] = depth[i] + 1
            stack.append(k)
    return depth


def _cut_depth(depth: np.ndarray, max_nodes: int) -> int:
    """The deepest level to draw so that at most max_nodes boxes are drawn (at least the root)."""
    counts = np.cumsum(np.bincount(depth))
    fits = np.flatnonzero(counts <= max_nodes)
    return int(fits[-1]) if fits.size else 0


def _subtree_size(kids, i: int) -> int:
    n, stack = 0, [i]
    while stack:
        j = stack.pop()
        n += 1
        stack.extend(kids[j])
    return n


# ---- the folded tree cell ------------------------------------------------------------------

def cell_dot(program, *, legend: bool = True) -> str:
    cell = program.plan.fold.cell
    rules = cell.rules
    folded = {r: shown_nodes(g) for r, g in rules.items()}
    colours = style.activation_colours(list(dict.fromkeys(op for f in folded.values() for op in f.activations)))
    g = graphviz.Digraph(f"{cell.name}_cell", graph_attr=dict(style.GRAPH_ATTRS, rankdir="LR", newrank="true"),
                         node_attr=style.NODE_ATTRS, edge_attr=style.EDGE_ATTRS)
    for rule, f in folded.items():
        fill, border = RULE_FILL[rule]
        with g.subgraph(name=f"cluster_{rule}") as c:
            c.attr(label=f"<<b>{rule} rule</b>>", style="rounded,filled", fillcolor=fill, color=border,
                   labelloc="t", labeljust="l", fontsize="13", margin="12")
            unread = {s.nid for s in f.of_kind("input") if not f.cell.users(s.nid)}  # e.g. no word at inner nodes
            for shown in f.nodes.values():
                if shown.nid in unread:
                    continue
                attrs = style.node_attrs(shown, colours)
                if CHILDREN in shown.shape and shown.kind in ("activation", "affine", "expr"):  # child-sum forget gates
                    attrs["label"] = (attrs["label"][:-1] + f'<br/><font point-size="9" color="#9c1c1c">'
                                      f'one per child {style.esc(shown.shape_text)}</font>>')
                c.node(f"{rule}_n{shown.nid}", **attrs)
            for src, dst in f.edges():
                c.edge(f"{rule}_n{src}", f"{rule}_n{dst}")
            for s in f.of_kind("output"):  # the recursion, drawn where it starts: a short dashed edge
                if s.name in cell.states:       # from each state to a note saying where it goes
                    up = f"{rule}_up_{s.name}"
                    c.node(up, label=f'<<font color="{style.DELAY}">to the parent:<br/>children.{style.esc(s.name)}'
                                     f'</font>>', shape="plaintext", fontsize="10", margin="0.02,0",
                           tooltip=f"{s.name} of a {rule} is one row of its parent's children.{s.name}")
                    c.edge(f"{rule}_n{s.nid}", up, **{k: v for k, v in RECURSION.items() if k != "constraint"})
            for s in f.of_kind("input"):
                if s.name.startswith("children.") and s.nid not in unread:
                    c.node(f"{rule}_n{s.nid}", label=style.label(f"<b>{style.esc(s.name)}</b>",
                                                                 f"from the children's {s.name[9:]}"))
    if legend:
        g.attr(label=_cell_caption(program, folded, colours))
    return g.source


def _cell_caption(program, folded, colours) -> str:
    cell = program.plan.fold.cell
    arity = "any number of children (K)" if cell.arity is None else f"{cell.arity} children"
    title = f"{program.name}: tree cell `{cell.name}` ({arity}), one node"
    shared = sorted(set(cell.node.params_read_by_outputs()) & set(cell.leaf.params_read_by_outputs())) if cell.leaf is not None else []
    extra = [f"params appear inside the formulas; {', '.join(shared)} shared by both rules" if shared else
             "params appear inside the formulas"]
    if cell.leaf is None:
        extra.append("leaves run the node rule with no children (K = 0)")
    kinds = [k for k in ("input", "op", "affine", "expr", "output") if any(f.of_kind(k) for f in folded.values())]
    row = style.legend(colours, kinds, "; ".join(extra), delay=False)
    mark = (f'<tr><td align="left"><font color="{style.DELAY}">- - →</font>  the recursion: a node\'s states '
            f'become one row of its parent\'s children inputs</td></tr>')
    return (f'<<table border="0" cellspacing="0"><tr><td align="left"><b>{style.esc(title)}</b></td></tr>'
            f"<tr><td>{row}</td></tr>{mark}</table>>")


def check_view(program, view: str, tree) -> None:
    """A tree (or the tree view) asked of a model that has none."""
    if getattr(program.checked.plan, "kind", None) != "tree" and (tree is not None or view == "tree"):
        raise UsageError("--tree and the tree view are for tree models (`model: {fold: ...}`)")
