"""Pictures of a run: read and write weightings over time as heatmaps, and the
memory before and after (matplotlib, imported only when a picture is drawn).

The weightings are found from the graph, not from names: a vector `w` of
length N is a *write* weighting where it is the first argument of
`outer(w, .)`, and a *read* weighting where it multiplies a matrix with N
rows, `w @ M`. That covers the NTM's heads, the example's fact memory and
the attention of a memory network's hops alike.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import heads
from .data import atomic_write
from .errors import UsageError, did_you_mean
from .graph import CellGraph, stages
from .heads import display_name

FORMATS = (".png", ".svg", ".pdf")


def weightings(cell: CellGraph) -> list[tuple[str, int]]:
    """(title, node) of every read and write weighting, in graph order (see rnncompile.heads)."""
    return [(f"{display_name(cell, w)}  ({' + '.join(sorted(kinds))} weighting)", w)
            for w, kinds in heads.weightings(cell).items()]


def memories(cell: CellGraph) -> list[str]:
    """The matrix-valued states."""
    return [name for name, info in cell.states.items() if len(info.shape) == 2]


def find(cell: CellGraph, name: str) -> int:
    """A value by the spec's name: an output, a let or gate, a state (its next value), or `x.prev`."""
    if name.endswith(".prev") and name[:-5] in cell.states:
        return cell.by_name("state")[name[:-5]]
    if name in cell.outputs():
        return cell.args(cell.outputs()[name])[0]
    if name in cell.states:
        return cell.updates()[name]
    for nid in cell.order():
        node = cell.node(nid)
        if node.label == name or (node.op == "input" and node.attr("name") == name):
            return nid
    known = set(cell.outputs()) | set(cell.states) | {cell.node(n).label for n in cell.g.nodes if cell.node(n).label}
    hint = did_you_mean(name, known)
    raise UsageError(f"no value named `{name}` in cell `{cell.name}`" + (f"; {hint}" if hint else ""))


def _per_step(trace: dict, cell: CellGraph, nid: int, b: int, steps: int) -> np.ndarray:
    """One sequence's values of a node, [T, ...] (a param-only node is the same at every step)."""
    v = np.asarray(trace[nid])
    if stages(cell)[nid] == "const":
        return np.broadcast_to(v, (steps,) + v.shape)
    return v[b]


def _step_labels(program, result, b: int, steps: int) -> list[str] | None:
    """Short runs of a model with a vocabulary: each step's input tokens, to label the time axis."""
    if program.vocab is None or not steps or steps > 48:
        return None
    use = program.plan.uses()[0]
    cell, trace = program.cell(use), result.trace.get(use.prefix, {})
    ids = [trace[nid][b] for name, nid in cell.by_name("input").items()
           if cell.inputs[name].dtype == "token" and cell.inputs[name].shape == () and nid in trace]
    if not ids:
        return None
    tokens = program.vocab.tokens
    return [" ".join(tokens[int(x[t])] for x in ids) for t in range(steps)]


def _collect(program, result, show, memory):
    """(heatmap rows, memory panels, steps) from every cell use the run traced."""
    uses = [u for u in program.plan.uses() if result.trace.get(u.prefix)]
    rows, mems, steps = [], [], 0
    for use in uses:
        cell, trace = program.cell(use), result.trace[use.prefix]
        tag = use.prefix if len(uses) > 1 else ""
        picked = [(n, find(cell, n)) for n in show] if show else weightings(cell)
        rows += [(tag + title, trace, nid, cell) for title, nid in picked]
        for name in (memory if memory is not None else memories(cell)):
            if name not in cell.states or len(cell.states[name].shape) != 2:
                raise UsageError(f"`{name}` is not a matrix state of cell `{cell.name}`; matrix states: "
                                 + (", ".join(memories(cell)) or "none"))
            mems.append((tag + name, trace[cell.by_name("state")[name]], result.final_state[use.key(name)]))
        stage = stages(cell)
        steps = max([steps] + [np.shape(v)[1] for nid, v in trace.items() if stage[nid] != "const"])
    return rows, mems, steps


def draw(program, result, output, show: list[str] | None = None, memory: list[str] | None = None,
         sequence: int = 0) -> Path:
    """Heatmaps of the weightings (or the `show` values) over time, and each memory before and after."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise UsageError("plot needs matplotlib: pip install 'rnncompile[plot]'") from None
    out = Path(output)
    if out.suffix not in FORMATS:
        raise UsageError(f"{out}: write the picture as {', '.join(FORMATS)}")
    rows, mems, steps = _collect(program, result, show, memory)
    if not rows and not mems:
        raise UsageError("found no read or write weightings and no memory to draw; name values with --show")
    batch = next(iter({**result.outputs, **result.final_state}.values())).shape[0]
    if not 0 <= sequence < batch:
        raise UsageError(f"--sequence {sequence}: the run holds sequences 0..{batch - 1}")

    labels = _step_labels(program, result, sequence, steps)
    heights = [1.4 + 0.1 * min(60, cell.node(nid).size) for _, _, nid, cell in rows]
    if mems:
        heights.append(2.0 + 0.1 * min(60, mems[0][2].shape[1]))
    fig = Figure(figsize=(11, sum(heights) + 0.6), layout="constrained")
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    for i, (title, trace, nid, cell) in enumerate(rows):
        img = _per_step(trace, cell, nid, sequence, steps).reshape(steps, -1).T  # rows: slots, columns: steps
        in_unit = img.min() >= 0 and img.max() <= 1
        ax = fig.add_subplot(grid[i])
        im = ax.imshow(img, aspect="auto", interpolation="nearest", cmap="magma",
                       vmin=0 if in_unit else None, vmax=1 if in_unit else None)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_ylabel("slot" if len(cell.node(nid).shape) == 1 else "entry")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if labels and i == len(rows) - 1:
            ax.set_xticks(range(steps), labels, rotation=60, ha="right", fontsize=8)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        fig.colorbar(im, ax=ax, pad=0.01)
    if mems:
        sub = grid[len(rows)].subgridspec(1, 2 * len(mems))
        for j, (name, before, after) in enumerate(mems):
            pair = (np.asarray(before)[sequence, 0], np.asarray(after)[sequence])
            lim = max(float(np.abs(pair[0]).max()), float(np.abs(pair[1]).max()), 1e-12)
            for k, (when, m) in enumerate(zip(("before step 0", f"after step {steps - 1}"), pair)):
                ax = fig.add_subplot(sub[2 * j + k])
                im = ax.imshow(m, aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim)
                ax.set_title(f"memory {name}, {when}", loc="left", fontsize=10)
                ax.set_ylabel("slot")
                ax.set_xlabel("column")
            fig.colorbar(im, ax=ax, pad=0.01)
    fig.suptitle(f"{program.name}: sequence {sequence}, {steps} steps", fontsize=11)
    with atomic_write(out, "wb") as f:
        fig.savefig(f, format=out.suffix[1:], dpi=110)
    return out


def attention_weights(cell: CellGraph) -> list[int]:
    """The nodes of a decoder cell that are attention weights: the softmax (masked or not) whose result
    weighs the rows of a memory input, `a @ enc` (found from the graph, as the weightings are)."""
    memory_inputs = {i for i in cell.by_name("input").values() if len(cell.node(i).shape) == 2}
    found = []
    for nid in cell.order():
        if cell.node(nid).op not in ("softmax", "masked_softmax"):
            continue
        if any(cell.node(u).op == "matmul" and cell.args(u)[0] == nid and cell.args(u)[1] in memory_inputs
               for u in cell.users(nid)):
            found.append(nid)
    return found


def draw_attention(program, result, inputs: dict | None, lengths, output, sequence: int = 0) -> Path:
    """A traced encoder-decoder run's attention for one sequence: source tokens × produced tokens."""
    plan = program.plan
    dec = plan.decoder
    cell = program.cell(dec.use)
    nodes = attention_weights(cell)
    if not nodes:
        raise UsageError(f"found no attention weights in cell `{cell.name}`: a softmax (or masked_softmax) "
                         f"whose result weighs a memory input, as in `a @ enc`")
    batch = result.tokens.shape[0]
    if not 0 <= sequence < batch:
        raise UsageError(f"--sequence {sequence}: the run holds sequences 0..{batch - 1}")
    src_name = plan.stack.inputs[0]
    src = np.asarray(inputs[src_name])[sequence] if inputs is not None else None
    if isinstance(lengths, dict):
        n_src = lengths.get(src_name)
    else:
        n_src = lengths
    n = int(np.asarray(n_src)[sequence]) if n_src is not None else (len(src) if src is not None else 0)
    tokens = program.vocab.tokens
    source = [tokens[int(i)] for i in src[:n]] if src is not None else [str(i) for i in range(n)]
    produced = [tokens[int(i)] for i in result.tokens[sequence, :int(result.lengths[sequence])]]
    weights = np.asarray(result.trace[dec.use.prefix][nodes[0]])[sequence, :len(produced)]
    title = f"{program.name}: attention of `{cell.node(nodes[0]).label or 'a'}` (sequence {sequence})"
    return attention_heatmap(weights, source, produced, output, title)


def attention_heatmap(weights, source_tokens, target_tokens, path, title: str = "", mask=None) -> Path:
    """A decoder's attention as a source × target heatmap: weights [T, S] (row i: the weights target step i
    gave the source steps), the source tokens along x, the produced tokens along y (first step on top), a
    colorbar from 0 to 1. Masked positions are left blank (hatched, no colour): NaN entries, columns past
    len(source_tokens) (source padding), rows past len(target_tokens) (steps after the end), and where
    `mask` ([T, S] or [S], broadcast) is 0. Small grids print each weight in its cell. Written as .png,
    .svg or .pdf; returns the path."""
    try:
        from matplotlib import colormaps
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError:
        raise UsageError("plot needs matplotlib: pip install 'rnncompile[plot]'") from None
    out = Path(path)
    if out.suffix not in FORMATS:
        raise UsageError(f"{out}: write the picture as {', '.join(FORMATS)}")
    w = np.array(weights, dtype=np.float64)
    if w.ndim != 2:
        raise UsageError(f"attention weights must be [target steps, source steps], got shape {list(w.shape)}")
    steps, width = w.shape
    source, target = [str(t) for t in source_tokens], [str(t) for t in target_tokens]
    if not 0 < len(source) <= width or not 0 < len(target) <= steps:
        raise UsageError(f"{len(source)} source and {len(target)} target tokens for weights over {width} source "
                         f"and {steps} target steps: give at least one of each, and no more than the weights have")
    blank = np.isnan(w)
    if mask is not None:
        try:
            blank |= np.broadcast_to(np.asarray(mask) == 0, w.shape)
        except ValueError:
            raise UsageError(f"the mask's shape {list(np.shape(mask))} does not fit weights of shape "
                             f"{list(w.shape)}") from None
    w, blank = w[:len(target), :len(source)], blank[:len(target), :len(source)]
    shown = np.ma.masked_array(w, mask=blank)
    # wide and tall enough for the title and the colorbar even for one source token or one produced token
    width = max(1.6 + 0.55 * len(source), 0.9 + 0.075 * len(title or ""), 4.0)
    fig = Figure(figsize=(width, max(1.2 + 0.45 * len(target), 2.6)), layout="constrained")
    ax = fig.add_subplot()
    ax.add_patch(Rectangle((-0.5, -0.5), len(source), len(target), facecolor="white", edgecolor="#bbbbbb",
                           hatch="///", linewidth=0, zorder=0))  # shows through where a cell is blank
    cmap = colormaps["viridis"].with_extremes(bad=(0, 0, 0, 0))  # a blank cell shows the hatching
    im = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto", zorder=1)
    if w.size <= 200:
        for (i, j), v in np.ndenumerate(w):
            if not blank[i, j]:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > 0.6 else "white", zorder=2)
    ax.set_xticks(range(len(source)), source, rotation=60 if max(map(len, source)) > 3 else 0,
                  ha="right" if max(map(len, source)) > 3 else "center")
    ax.set_yticks(range(len(target)), target)
    ax.set_xlabel("source")
    ax.set_ylabel("produced")
    ax.set_title(title or "attention", loc="left", fontsize=10)
    fig.colorbar(im, ax=ax, pad=0.02, label="attention weight")
    with atomic_write(out, "wb") as f:
        fig.savefig(f, format=out.suffix[1:], dpi=110)
    return out
