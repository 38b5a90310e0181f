"""Terminal views of a run: a short summary, and the step-by-step trace table."""
from __future__ import annotations

import numpy as np

from .graph import CellGraph
from .plan import CellUse
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
    lines = [f"{name}: {steps} step{'' if steps == 1 else 's'}, batch {batch} ({backend}, {dtype}, seed {seed})"]
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
    """Every traced use's named values, step by step (batch 0). A decoder's model reads as it runs: the
    encoder's steps, the decoder's start state (when a bridge computes it), then the decoder's steps."""
    plan = program.plan
    uses = [u for u in plan.uses() if u.prefix in result.trace]
    rows = {u.prefix: _rows(program, u, result.trace[u.prefix], len(uses) > 1) for u in uses}
    width = max((len(r[0]) for rs in rows.values() for r in rs), default=4)
    dec = plan.decoder
    if dec is None:
        return "\n".join(_phase("", [rows[u.prefix] for u in uses], width, vocab, max_steps))
    bridge = dec.init.prefix if isinstance(dec.init, CellUse) else None
    decoding = (dec.use.prefix, dec.head.use.prefix)
    encoder = [rows[u.prefix] for u in uses if u.prefix not in decoding and u.prefix != bridge]
    lines = _phase("encoder ", encoder, width, vocab, max_steps)
    if bridge in rows:
        lines.append("decoder start (from the encoder's C)" if encoder else "decoder start")
        lines += [f"  {name:<{width}}  {_value_text(node, arr[0, 0], vocab)}" for name, node, arr in rows[bridge]]
    elif dec.init == "encoder":
        lines.append(f"decoder start: {', '.join(dec.use.cell.states)} = the encoder's final state (C)")
    produced = int(result.lengths[0]) if result.lengths is not None else None  # batch 0's own tokens
    decoder = [rows[p] for p in decoding if p in rows]
    return "\n".join(lines + _phase("decoder ", decoder, width, vocab, max_steps, produced))


def _rows(program, use, trace: dict, prefixed: bool) -> list[tuple[str, object, np.ndarray]]:
    """(row name, node, values [B, T, ...] or a constant) of one use's traced nodes."""
    cell = program.cell(use)
    return [(f"{use.prefix}{name}" if prefixed else name, cell.node(nid), trace[nid])
            for name, nid in traced_rows(cell) if nid in trace]


def _phase(title: str, uses: list[list], width: int, vocab, max_steps: int, real: int | None = None) -> list[str]:
    """`{title}step t` for each step of the longest uses (up to batch 0's `real` steps); uses with fewer
    steps (a head at the last step) follow the steps."""
    sections = [(max((v.shape[1] for _, n, v in rows if v.ndim >= 2 and n.op not in ("param", "const")), default=0),
                 rows) for rows in uses]
    main_steps = max((s for s, _ in sections), default=0)
    last = main_steps if real is None else min(real, main_steps)
    lines = []
    for t in range(min(last, max_steps)):
        lines.append(f"{title}step {t}")
        for name, node, arr in (r for steps, rows in sections if steps == main_steps for r in rows):
            lines.append(f"  {name:<{width}}  {_value_text(node, arr[0, t], vocab)}")
    if last > max_steps:
        lines.append(f"… {last - max_steps} more steps (save them all with --output run.npz)")
    for steps, rows in sections:
        if steps == main_steps:
            continue
        lines.append("after the last step")
        for name, node, arr in rows:
            for t in range(steps):
                lines.append(f"  {name:<{width}}  {_value_text(node, arr[0, t], vocab)}")
    return lines


def _value_text(node, v, vocab) -> str:
    if node.dtype == "token" and vocab is not None:
        return repr(vocab.tokens[int(v)])
    text = fmt_values(v)
    if vocab is not None and node.op == "softmax" and looks_like_distribution(v) and np.size(v) == len(vocab):
        text += f"   next: {distribution(v, vocab)}"
    return text
