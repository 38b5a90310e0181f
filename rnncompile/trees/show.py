"""Terminal views of a tree run: a summary per tree, and the per-node trace (`run --trace`)."""
from __future__ import annotations

import numpy as np

from ..show import distribution, fmt_values, looks_like_distribution, traced_rows
from .forest import Forest
from .tree import NO_TOKEN

MAX_TREES = 10  # trees summarised before eliding
MAX_NODE_ROWS = 24  # per-node head rows shown for a tree at: every_node
MAX_TRACED = 60  # nodes traced before eliding


def node_name(forest: Forest, i: int, tokens: list[str] | None) -> str:
    """`NP 'He'`, `S`, `'cat'` or `#4` (no label, no word): how a node is called in tables."""
    def spell(v):
        if v is None or (isinstance(v, (int, np.integer)) and v == NO_TOKEN):
            return ""
        if isinstance(v, (int, np.integer)) and tokens and 0 <= v < len(tokens):
            return tokens[v]
        return str(v)
    label, word = spell(forest.labels[i]), spell(forest.words[i])
    text = " ".join(p for p in (label, repr(word) if word else "") if p)
    return text or f"#{i - int(forest.offsets[forest.tree[i]])}"


def summary(program, result, vocab, backend: str, dtype: str, seed: int, limit: int = MAX_TREES) -> str:
    forest, sched = result.forest, result.schedule
    tokens = vocab.tokens if vocab is not None else None
    leaves = int((sched.nchildren == 0).sum())
    how = (f"level-batched in {len(sched.groups)} group{'s' if len(sched.groups) != 1 else ''}"
           if result.mode == "level" else "node by node")
    b = forest.batch
    lines = [f"{program.name}: {b} tree{'s' if b != 1 else ''}, {forest.size} nodes ({leaves} leaves), height "
             f"{sched.levels - 1}; {how} ({backend}, {dtype}, seed {seed})"]
    states = list(program.plan.fold.cell.states)
    width = max([len(k) for k in list(result.outputs) + states] + [6]) + 2
    for t in range(min(b, limit)):
        tree = forest.trees[t] if t < len(forest.trees) else None
        text = tree.to_text(100, tokens) if tree is not None else ""
        lines.append(f"tree {t}  {text}")
        root = int(forest.roots[t])
        for name in states:
            v = result.nodes[name][root]
            lines.append(f"  {'root ' + name:<{width}} {str(list(v.shape)):<8} {fmt_values(v)}")
        nodes = np.arange(forest.offsets[t], forest.offsets[t + 1])
        for name, arr in result.outputs.items():
            if result.at == "root":
                lines.append(_output_line(name, arr[t], width, vocab, forest.labels[root]))
            else:
                lines.append(f"  {name} at every node")
                shown = nodes[:MAX_NODE_ROWS]
                w = max(len(node_name(forest, i, tokens)) for i in shown) + 2
                for i in shown:
                    lines.append("    " + _output_line(node_name(forest, i, tokens), arr[i], w, vocab,
                                                       forest.labels[i]).strip())
                if nodes.size > MAX_NODE_ROWS:
                    lines.append(f"    … {nodes.size - MAX_NODE_ROWS} more nodes")
    if b > limit:
        lines.append(f"… {b - limit} more trees (write every value with --output run.npz)")
    return "\n".join(lines)


def _output_line(name: str, v, width: int, vocab, gold) -> str:
    text = f"  {name:<{width}} {str(list(np.shape(v))):<8} {fmt_values(v)}"
    if looks_like_distribution(v):
        top = int(np.argmax(v))
        if vocab is not None and np.size(v) == len(vocab.tokens):
            text += f"  top: {distribution(v, vocab)}"
        else:
            text += f"  class {top} ({float(v[top]):.2f})"
            if gold is not None and str(gold).isdigit() and int(gold) < np.size(v):
                text += "  ✓ label" if int(gold) == top else f"  ✗ label {gold}"
    return text


def trace_table(program, result, vocab, limit: int = MAX_TRACED) -> str:
    """Every named value of every node, in the order the nodes were computed."""
    forest = result.forest
    tokens = vocab.tokens if vocab is not None else None
    rows_of = {}
    for use in program.plan.uses():
        cell = program.cell(use)
        rule = use.prefix.rstrip(".")
        rows_of[rule] = (cell, traced_rows(cell))
    lines, shown = [], 0
    head_calls = []
    for rule, nodes, env in result.trace:
        if rule == "head":
            head_calls.append((nodes, env))
            continue
        cell, rows = rows_of[rule]
        width = max((len(n) for n, _ in rows), default=4)
        for r, i in enumerate(nodes.tolist()):
            if shown == limit:
                lines.append(f"… {forest.size - limit} more nodes (write every value with --output run.npz)")
                return "\n".join(lines)
            shown += 1
            kids = result.schedule.children_of(i).tolist()
            tail = f"children {', '.join(map(str, kids))}" if kids else "no children"
            lines.append(f"node {i}  {node_name(forest, i, tokens)}  ({rule} rule, height "
                         f"{int(result.schedule.height[i])}, {tail}; tree {int(forest.tree[i])})")
            for name, nid in rows:
                if nid not in env:
                    continue
                v = env[nid]
                node = cell.node(nid)
                if node.op in ("param", "const") or (node.op == "input" and not cell.users(nid)):
                    continue
                lines.append(f"  {name:<{width}}  {_value(node, v[r], vocab)}")
    for nodes, env in head_calls:
        cell, rows = rows_of["head"]
        lines.append(f"head ({result.at.replace('_', ' ')})")
        width = max((len(n) for n, _ in rows), default=4)
        for r, i in enumerate(nodes.tolist()[:limit]):
            lines.append(f"  node {i}  {node_name(forest, i, tokens)}")
            for name, nid in rows:
                if nid in env and cell.node(nid).op not in ("param", "const", "input"):
                    lines.append(f"    {name:<{width}}  {fmt_values(env[nid][r])}")
    return "\n".join(lines)


def _value(node, v, vocab) -> str:
    if node.dtype == "token":
        return repr(vocab.tokens[int(v)]) if vocab is not None and 0 <= int(v) < len(vocab.tokens) else str(int(v))
    return fmt_values(v)


def output_arrays(result) -> dict[str, np.ndarray]:
    """What `run --output` writes for a tree run."""
    arrays = {f"outputs.{k}": v for k, v in result.outputs.items()}
    arrays.update({f"nodes.{k}": v for k, v in result.nodes.items()})
    arrays.update({f"state.{k}": v for k, v in result.final_state.items()})
    arrays["tree.parent"] = result.forest.parent
    arrays["tree.index"] = result.forest.tree
    arrays["tree.height"] = result.schedule.height
    return arrays
