"""Time the tree fold: level-batched (schedule included) vs our per-node mode vs a naive per-node PyTorch loop.

    python benchmarks/bench_tree.py [--trees 1000] [--hidden 64] [--repeats 5] [--warmup 1] [--threads N]
                                    [--torch-threads 1] [--no-torch]

The workload: seeded random binary trees of 20-40 leaves, the RvNN of
specs/rvnn.yaml (a leaf is its word vector, p = tanh(W [c1; c2] + b)) with
hidden size 64, float32, weights shared by every peer. Timed per peer, as a
user calls it:

- ours, level-batched: `rnncompile.run(prog, trees=trees, params=...)` on the
  parsed trees: batching them into one forest, checking them against the
  cell, the vectorised schedule (heights, groups, children lists), one rule
  call per group (per block of 2,048 rows of a large one) and the head.
  Compiling the spec is done once, before.
- ours, per node: the same call with mode="node" (one rule call per node).
- torch, per node: the naive loop over each tree's nodes, children first,
  one torch.cat / matmul / tanh per node (no_grad), plus the same head. It
  runs with one thread: its ops are too small to use more (219 ms with one
  thread or two here), and with two, its idle OpenMP workers spin on the
  second core after each call and slow the peer timed next (ours by 3 ms).

Every peer's root outputs are checked to agree (1e-5) before anything is
timed; rounds are interleaved so a change of machine load hits all peers
alike. Ratios above 1 mean the level-batched run is faster. Both heads are
timed: at every node (as shipped) and at the root only, where the PyTorch
loop does a third of the work per node and the level-batched run's fixed
costs (batching, checking, the schedule) weigh most; the last table splits
the level-batched run into those stages.
"""
from __future__ import annotations

import sys
from pathlib import Path

from _timing import Blas, interleaved_ms, print_header, timing_parser, versions

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = timing_parser(__doc__.splitlines()[0], repeats=5, warmup=1,
                      threads_help="NumPy's BLAS threads (default: what the BLAS uses now)")
    p.add_argument("--trees", type=int, default=1000, help="trees in the batch")
    p.add_argument("--leaves", type=int, nargs=2, default=(20, 40), metavar=("MIN", "MAX"))
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=1,
                   help="PyTorch's threads (default 1: its per-node ops run on one either way)")
    p.add_argument("--no-torch", action="store_true")
    return p.parse_args(argv)


def torch_peer(torch, params, trees, every_node: bool):
    """The naive per-node PyTorch loop: each tree's nodes children-first (reverse preorder), and the
    head's softmax at every node as it is computed (every_node) or once over the roots."""
    L, W, b = (torch.from_numpy(params[k]) for k in ("L", "W", "b"))
    W_s, b_s = torch.from_numpy(params["head.W_s"]), torch.from_numpy(params["head.b_s"])
    shapes = [(t.parent.tolist(), t.words.tolist()) for t in trees]

    def run():
        roots, ys = [], []
        with torch.no_grad():
            for parent, words in shapes:
                n = len(parent)
                h = [None] * n
                kids = [[] for _ in range(n)]
                for i in range(n - 1, 0, -1):  # preorder: every child comes after its parent
                    kids[parent[i]].append(i)
                for i in range(n - 1, -1, -1):
                    if not kids[i]:
                        h[i] = L[words[i]]
                    else:
                        right, left = kids[i]  # appended right to left
                        h[i] = torch.tanh(W @ torch.cat([h[left], h[right]]) + b)
                    if every_node:
                        ys.append(torch.softmax(W_s @ h[i] + b_s, dim=-1))
                roots.append(h[0])
            if every_node:
                return torch.stack(ys).numpy()  # node order: reverse preorder within each tree
            return torch.softmax(torch.stack(roots) @ W_s.T + b_s, dim=-1).numpy()
    return run


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))  # this checkout's rnncompile, whatever is installed
    import numpy as np

    from rnncompile.api import run
    from rnncompile.program import compile_text
    from rnncompile.trees.schedule import make_schedule
    from rnncompile.trees import Forest, random_trees

    blas = Blas()
    threads = args.threads if args.threads is not None else max((n for _, n in blas.threads()), default=1)
    blas.set_threads(threads)
    torch = None
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(args.torch_threads)
        except ImportError:
            torch = None

    spec = (ROOT / "specs" / "rvnn.yaml").read_text()
    prog = compile_text(spec, str(ROOT / "specs" / "rvnn.yaml"), dims={"H": args.hidden})
    vocab = len(prog.vocab.tokens)
    trees = random_trees(args.trees, tuple(args.leaves), 2, vocab, args.seed)
    rng = np.random.default_rng(args.seed)
    params = {k: rng.uniform(-0.3, 0.3, info.shape).astype(np.float32) for k, info in prog.params.items()}
    forest = Forest.of(trees)
    sched = make_schedule(forest.parent)

    print_header([f"{versions()}, "
                  f"torch {torch.__version__ + f' ({torch.get_num_threads()} threads)' if torch else 'not used'}",
                  f"workload: {args.trees} random binary trees of {args.leaves[0]}-{args.leaves[1]} leaves, "
                  f"{forest.size:,} nodes, heights up to {sched.levels - 1} ({len(sched.groups)} level groups); "
                  f"specs/rvnn.yaml, hidden {args.hidden}, float32",
                  f"timing: median of {args.repeats} interleaved rounds after {args.warmup} warm-up; "
                  "spec compiled before",
                  f"NumPy's BLAS threads: {threads}"], threads)
    sched_ms = interleaved_ms({"schedule": lambda: make_schedule(Forest.of(trees).parent)}, 1, args.repeats)
    results = {}
    for at in ("every_node", "root"):
        if at == "root":  # the same network with a sentence-level head: one softmax per tree
            prog = compile_text(spec.replace("at: every_node", "at: root"), str(ROOT / "specs" / "rvnn.yaml"),
                                dims={"H": args.hidden})
        print()
        print(f"head at {at.replace('_', ' ')}" + (" (specs/rvnn.yaml as shipped: a softmax at every node)"
                                                   if at == "every_node" else " (one softmax per tree)"))
        results[at] = time_peers(prog, trees, params, forest, torch, at, args, run, np)
    base = results["every_node"]["ours level-batched"][0]
    print()
    print(f"the schedule alone (batching the trees, heights, groups, children): {sched_ms['schedule'][0]:.2f} ms, "
          f"{100 * sched_ms['schedule'][0] / base:.0f}% of the level-batched run (head at every node)")
    print()
    print("where the level-batched run's time goes (head at the root; each stage timed on its own):")
    for name, (med, low) in stage_ms(prog, trees, params, args).items():
        print(f"  {name:<44} {med:>6.2f}ms {low:>8.2f}ms")
    print()
    for at, times in results.items():
        level = times["ours level-batched"][0]
        for peer, target in (("ours per node", 5), ("torch per node", 20)):
            if peer in times:
                ratio = times[peer][0] / level
                print(f"target (head at {at.replace('_', ' ')}): level-batched, schedule included, >= {target}x "
                      f"faster than {peer.replace('ours', 'our')}: {ratio:.1f}x -> "
                      f"{'met' if ratio >= target else 'NOT met'}")


def stage_ms(prog, trees, params, args):
    """The level-batched run's stages, each timed on its own (interleaved): what a call pays before the
    first rule runs, and the fold itself."""
    from rnncompile.drivers import Executable
    from rnncompile.trees import Forest
    from rnncompile.trees.run import FoldRunner, check_forest
    from rnncompile.trees.schedule import make_schedule

    fold = prog.plan.fold
    forest = Forest.of(trees)
    sched = make_schedule(forest.parent)
    tokens = check_forest(forest, fold, prog.vocab, sched.nchildren)
    exe = Executable.cached(prog)

    def check():
        f = Forest.of(trees)
        check_forest(f, fold, prog.vocab)
    stages = {
        "batch the trees into a forest, check them": check,
        "the schedule (heights, groups, children)": lambda: make_schedule(forest.parent),
        "bind the weights, run the rules and the head": lambda: FoldRunner(exe, params).run(forest, tokens,
                                                                                           schedule=sched),
    }
    return interleaved_ms(stages, args.warmup, args.repeats)


def time_peers(prog, trees, params, forest, torch, at, args, run, np):
    def level():
        return run(prog, trees=trees, params=params).outputs["y"]

    def per_node():
        return run(prog, trees=trees, params=params, mode="node").outputs["y"]

    peers = {"ours level-batched": level, "ours per node": per_node}
    if torch is not None:
        peers["torch per node"] = torch_peer(torch, params, trees, at == "every_node")
    want = level()
    if at == "every_node":  # the torch loop lists each tree's nodes in reverse preorder
        order = np.concatenate([np.arange(forest.offsets[t + 1] - 1, forest.offsets[t] - 1, -1)
                                for t in range(forest.batch)])
    for name, fn in peers.items():
        got = fn()
        if name == "torch per node" and at == "every_node":
            got = got[np.argsort(order)]
        err = float(np.max(np.abs(got - want)))
        if err > 1e-5:
            raise SystemExit(f"{name} disagrees with the level-batched run by {err:.3g}; not timing")
    print("every peer agrees with the level-batched outputs (max abs difference <= 1e-5)")
    times = interleaved_ms(peers, args.warmup, args.repeats)
    base = times["ours level-batched"][0]
    print(f"  {'peer':<22} {'median':>10} {'min':>10} {'level-batched is':>18}")
    for name, (med, low) in times.items():
        ratio = "" if name == "ours level-batched" else f"{med / base:.1f}x faster"
        print(f"  {name:<22} {med:>8.1f}ms {low:>8.1f}ms {ratio:>18}")
    return times


if __name__ == "__main__":
    main()
