"""Terminal views of a run: a short summary, and the step-by-step trace table."""
from __future__ import annotations

import numpy as np

from .graph import CellGraph
from .ops import OPS

MAX_SHOWN = 8  # numbers shown per vector before eliding


def fmt_values(v, width: int = MAX_SHOWN) -> str:
    v = np.asarray(v)
    if v.ndim == 0:
        return f"{float(v):.4f}"
    flat = v.reshape(-1)
    shown = " ".join(f"{x:+.3f}" for x in flat[:width])
    more = f" … ({flat.size - width} more)" if flat.size > width else ""
    return f"[{shown}{more}]" if v.ndim == 1 else f"{list(v.shape)} [{shown}{more}]"


def distribution(p, vocab, k: int = 4) -> str:
    p = np.asarray(p, dtype=np.float64)
    top = np.argsort(-p, kind="stable")[:k]
    return "  ".join(f"{vocab.tokens[i]!r}:{p[i]:.3f}" for i in top)


def looks_like_distribution(v) -> bool:
    v = np.asarray(v, dtype=np.float64)
    return v.ndim == 1 and v.size > 1 and np.all(v >= 0) and abs(v.sum() - 1) < 1e-3


def summary(name: str, result, steps: int, batch: int, backend: str, dtype: str, seed: int, vocab=None,
            per_step: bool = True) -> str:
    lines = [f"{name}: {steps} steps, batch {batch} ({backend}, {dtype}, seed {seed})"]
    if result.tokens is not None and vocab is not None:
        lines.append("produced (batch 0)")
        lines.append("  " + vocab.decode(result.tokens[0, :result.lengths[0]]))
    lines.append("outputs (batch 0, last step)" if per_step else "outputs (batch 0)")
    w = max([len(k) for k in list(result.outputs) + list(result.final_state)] + [8]) + 2
    for key, arr in result.outputs.items():
        last = (arr[0, -1] if arr.shape[1] else arr[0]) if per_step else arr[0]
        extra = ""
        if vocab is not None and looks_like_distribution(last) and last.size == len(vocab):
            extra = f"  top: {distribution(last, vocab)}"
        lines.append(f"  {key:<{w}} {str(list(arr.shape)):<16} {fmt_values(last)}{extra}")
    lines.append("final state (batch 0)")
    for key, arr in result.final_state.items():
        lines.append(f"  {key:<{w}} {str(list(arr.shape)):<16} {fmt_values(arr[0])}")
    return "\n".join(lines)


def traced_rows(cell: CellGraph) -> list[tuple[str, int]]:
    """(row name, node id) for the nodes a person wants to see at each step."""
    rows, seen = [], set()
    for nid in cell.order():
        node = cell.node(nid)
        kind = OPS[node.op].kind
        if node.op in ("param", "const") or kind == "sink":
            continue
        name = node.label if kind != "source" else node.attr("name")
        if not name:
            continue
        if node.op == "state":
            name = f"{name} (prev)"
        elif name in cell.states:
            name = f"{name} (next)"
        if name in seen:
            continue
        seen.add(name)
        rows.append((name, nid))
    shown = {nid for _, nid in rows}
    for name, nid in cell.outputs().items():
        src = cell.args(nid)[0]
        if src not in shown:
            rows.append((f"out {name}", src))
    return rows


def trace_table(program, result, vocab=None, max_steps: int = 50) -> str:
    """Every traced use's named values, step by step (batch 0)."""
    uses = [u for u in program.plan.uses() if u.prefix in result.trace]
    multi = len(uses) > 1
    sections = []  # (steps, [(row name, node, values [B, T, ...] or a constant)])
    for use in uses:
        cell, trace = program.cell(use), result.trace[use.prefix]
        rows = []
        for name, nid in traced_rows(cell):
            if nid in trace:
                rows.append((f"{use.prefix}{name}" if multi else name, cell.node(nid), trace[nid]))
        steps = max((v.shape[1] for _, n, v in rows if v.ndim >= 2 and n.op not in ("param", "const")), default=0)
        sections.append((steps, rows))
    lines = []
    main_steps = max((s for s, _ in sections), default=0)
    width = max((len(r[0]) for _, rows in sections for r in rows), default=4)
    for t in range(min(main_steps, max_steps)):
        lines.append(f"step {t}")
        for steps, rows in sections:
            if steps != main_steps:
                continue
            for name, node, arr in rows:
                lines.append(f"  {name:<{width}}  {_value_text(node, arr[0, t], vocab)}")
    if main_steps > max_steps:
        lines.append(f"… {main_steps - max_steps} more steps (save them all with --output run.npz)")
    for steps, rows in sections:
        if steps == main_steps:
            continue
        lines.append("after the last step")
        for name, node, arr in rows:
            for t in range(steps):
                lines.append(f"  {name:<{width}}  {_value_text(node, arr[0, t], vocab)}")
    return "\n".join(lines)


def _value_text(node, v, vocab) -> str:
    if node.dtype == "token" and vocab is not None:
        return repr(vocab.tokens[int(v)])
    text = fmt_values(v)
    if vocab is not None and node.op == "softmax" and looks_like_distribution(v) and np.size(v) == len(vocab):
        text += f"   next: {distribution(v, vocab)}"
    return text
