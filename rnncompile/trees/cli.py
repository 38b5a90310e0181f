"""`rnncompile run` for tree models: read the trees, fold, print (cli.py hands tree specs here)."""
from __future__ import annotations

import click

from .. import api
from ..data import STDOUT, save_outputs
from ..params import save_npz
from ..vocab import Vocab
from .parse import read_tree, read_trees
from .show import output_arrays, summary, trace_table


def run_trees(program, tree_texts, trees_file, batch, seed, weights, save_weights, output, trace, dtype, backend,
              per_node, progress=False, echo=click.echo) -> None:
    trees = None
    if tree_texts:
        trees = [read_tree(text, "--tree" if len(tree_texts) == 1 else f"--tree {i + 1}")
                 for i, text in enumerate(tree_texts)]
    if trees_file:
        trees = (trees or []) + read_trees(trees_file)
    params = api.make_params(program, seed, weights, dtype)
    result = api.run(program, trees=trees, params=params, batch=batch, seed=seed, dtype=dtype, backend=backend,
                     trace=trace, mode="node" if per_node else "level", progress=progress)
    vocab = Vocab(program.vocab) if program.vocab else None
    if result.note:
        click.echo(result.note, err=True)
    if trace:
        echo(trace_table(program, result, vocab))
        echo()
    echo(summary(program, result, vocab, backend, dtype, seed))
    if save_weights:
        save_npz(save_weights, params)
        echo(f"weights written to {save_weights}")
    if output:
        save_outputs(output, output_arrays(result))
        if output != STDOUT:
            echo(f"outputs written to {output}")
