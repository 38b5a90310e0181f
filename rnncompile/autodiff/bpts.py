"""Backpropagation through structure: the gradient of a tree model, level-batched, without recursion.

The forward pass is the fold (trees.run.FoldRunner, level by level). The loss
is the head's (with the loss in its graph, losses.py) at each root, or at
every node, against one target per tree or per node. The backward pass visits
the schedule's groups the other way, highest first: each group's rows run the
rule's backward step (cellgrad.grad) on a batch of rows, given the adjoint of
their values, and add the adjoints of their children's values into the
children's rows (each child has one parent, so the rows never collide). A
chain 10,000 deep is 10,000 groups of one row: a loop, not a recursion.
"""
from __future__ import annotations

import numpy as np

from .. import registry
from ..drivers import Executable
from ..errors import DataError, UsageError
from .bptt import Gradients, _BackwardRunner, _local
from .cellgrad import IN, OUT, grad
from .losses import LOSS, TARGET, loss_cell, step_weights, train_settings

CHILD = "children."


class TreeGradProgram:
    """A tree model's loss and its gradient for one backend and dtype; call it with trees and targets."""

    def __init__(self, program, loss: str | None = None, output: str | None = None, reduction: str | None = None,
                 backend: str = "numpy", dtype: str = "float64"):
        """`loss`, `output`, `reduction`: None takes the spec's `train:` section's (else xent with a vocabulary,
        else mse; the head's only output; sum over each tree's nodes, mean over the trees)."""
        loss, output, reduction, _ = train_settings(program, loss, output, reduction)
        plan = program.plan
        if plan.kind != "tree":
            raise UsageError(f"{program.checked.file} is not a tree model; use GradProgram")
        if plan.head is None:
            raise UsageError(f"{program.checked.file}: a tree model needs a head (`model: head:`) for a loss")
        self.program, self.kind, self.reduction, self.dtype = program, loss, reduction, np.dtype(dtype)
        self.fold, self.head = plan.fold, plan.head
        self.exe = Executable.cached(program, backend, dtype)
        be = registry.get(backend)
        cells: dict = {}
        self.rules = {"node": _BackwardRunner(grad(program.cell(self.fold.node)), be, dtype, cells, "node")}
        if self.fold.leaf is not None:
            self.rules["leaf"] = _BackwardRunner(grad(program.cell(self.fold.leaf)), be, dtype, cells, "leaf")
        head = program.cell(self.head.use)
        shapes = {n: head.node(nid).shape for n, nid in head.outputs().items()}
        if output is None and len(shapes) != 1:
            raise UsageError(f"the head has outputs {', '.join(shapes)}; say which one the loss reads "
                             f"(--output-name NAME, or `output:` under the spec's `train:`)")
        self.output = output or next(iter(shapes))
        self.classes = shapes[self.output][0] if shapes[self.output] else 0
        self.loss = _BackwardRunner(grad(loss_cell(head, self.output, shapes[self.output], loss), outputs=[LOSS],
                                         keep_outputs=True), be, dtype, cells, None)

    @property
    def per_node(self) -> bool:
        return self.head.at == "every_node"

    def __call__(self, trees, target, params: dict) -> Gradients:
        """`trees`: bracketed strings, Tree values or a Forest; `target`: one per tree [B] (head at the root) or
        one per node [N] in the forest's node order (head at every node)."""
        from ..trees.forest import Forest
        from ..trees.parse import as_trees
        from ..trees.run import FoldRunner, check_forest
        from ..trees.schedule import make_schedule

        forest = trees if isinstance(trees, Forest) else Forest.of(as_trees(trees))
        sched = make_schedule(forest.parent)
        tokens = check_forest(forest, self.fold, self.program.vocab, sched.nchildren)
        params = {k: np.asarray(v, self.dtype) for k, v in params.items()}
        result = FoldRunner(self.exe, params).run(forest, tokens, "level", False, sched)
        stored = result.stored  # [N, ...] in row order
        target = np.asarray(target)
        want = forest.size if self.per_node else len(forest.roots)
        if target.shape[:1] != (want,):
            raise DataError(f"the target has shape {list(target.shape)}; the head at "
                            f"{'every node' if self.per_node else 'the root'} needs one per "
                            f"{'node' if self.per_node else 'tree'}: [{want}{', ...' if self.kind != 'xent' else ''}]")
        if self.kind == "xent" and ((target < 0) | (target >= self.classes)).any():
            raise DataError(f"target ids must be 0..{self.classes - 1} (output `{self.output}` has {self.classes} "
                            f"classes)")
        grads = {k: np.zeros(np.shape(v), self.dtype) for k, v in params.items()}
        adj = {name: np.zeros(v.shape, self.dtype) for name, v in stored.items()}

        # the loss, at the roots' rows or at every row (targets put in row order)
        rows = np.arange(forest.size) if self.per_node else sched.row[forest.roots]
        tgt = target[sched.order] if self.per_node else target
        head_use = self.head.use
        x = {n: stored[n][rows][:, None] for n in head_use.cell.inputs}
        trees_count = len(forest.roots)
        scale = 1.0 / trees_count if self.reduction == "sum" else 1.0 / len(rows)
        step_weights(1, None, None, self.reduction)  # checks the reduction's name
        seeds = {TARGET: tgt[:, None], OUT + LOSS: np.full((len(rows), 1), scale, self.dtype)}
        res = self.loss.bind(_local(head_use, params)).scan({**x, **seeds})
        loss = float((res.outputs[LOSS] * seeds[OUT + LOSS]).sum())
        _add(grads, head_use, self.loss.param_grads(_local(head_use, params), res.outputs))
        for n in head_use.cell.inputs:
            adj[n][rows] += res.outputs[IN + n][:, 0]

        # the groups, highest first: each adds its children's adjoints
        for g in reversed(sched.groups):
            name = "leaf" if g.arity == 0 and "leaf" in self.rules else "node"
            use = self.fold.leaf if name == "leaf" else self.fold.node
            runner = self.rules[name]
            cell = self.program.cell(use)
            inputs = {}
            for n in cell.inputs:
                if n.startswith(CHILD):
                    v = stored[n[len(CHILD):]]
                    inputs[n] = np.take(v, g.child_rows.ravel(), axis=0).reshape(g.child_rows.shape + v.shape[1:])
                else:
                    inputs[n] = tokens[n][g.nodes] if n in tokens else np.zeros(len(g.nodes), np.int64)
            d = {OUT + n: adj[n][g.rows] for n in cell.outputs()}
            # a batch of rows (a children axis is as long as this group's nodes have children)
            outs, _ = runner.bind(_local(use, params)).rows({**inputs, **d})
            _add(grads, use, runner.param_grads(_local(use, params), {k: v[:, None] for k, v in outs.items()}))
            for n in cell.inputs:
                if n.startswith(CHILD) and IN + n in outs:
                    v = outs[IN + n]
                    adj[n[len(CHILD):]][g.child_rows.ravel()] += v.reshape((-1,) + v.shape[2:])
        count = float(len(rows))
        return Gradients(loss, grads, count, final_state={n: v[sched.row[forest.roots]] for n, v in stored.items()})


def _add(grads: dict, use, got: dict) -> None:
    for name, v in got.items():
        key = use.key(name)
        grads[key] = grads[key] + v
