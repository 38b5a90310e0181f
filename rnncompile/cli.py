"""The command line: a thin layer over the Python API."""
from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import warnings

import click

# Only what --help needs is imported here; each command imports the rest itself, so `rnncompile --help`
# never loads NumPy, networkx or pydantic (tests/test_startup.py checks it, benchmarks/bench_startup.py times it).
from .errors import DataError, RnnCompileError, UsageError
from .progress import wanted as wanted_progress


def _parse_dims(values) -> dict[str, int]:
    from .dims import parse_dim_options

    return parse_dim_options(values)


def _warn(checked) -> None:
    for w in checked.warnings:
        click.echo(w.format(), err=True)


def _check_outputs(*outputs: tuple[str, str | None, tuple[str, ...] | None]) -> None:
    """Refuse outputs that cannot be written before any work (exit 2); make missing folders and say so.
    outputs: (option, path or None, allowed suffixes or None)."""
    from .files import prepare_output

    for option, path, formats in outputs:
        if path:
            made = prepare_output(path, formats, option)
            if made:
                click.echo(f"created directory {made[-1]}", err=True)


dim_option = click.option("--dim", "dims", multiple=True, metavar="NAME=SIZE", help="override a dim, e.g. H=64")
SEED = click.IntRange(min=0)  # NumPy's generators take any whole number from 0 up
progress_option = click.option("--progress/--no-progress", default=None,
                               help="a progress bar on stderr [default: when stderr is a terminal]")


def _engine_options(fn):
    for option in reversed([
        click.option("--scheduler", metavar="tcp://HOST:PORT",
                     help="the Dask scheduler to use [default: $DASK_SCHEDULER_ADDRESS, else a local cluster]"),
        click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="worker processes of the local cluster [default: one per core]"),
    ]):
        fn = option(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnncompile")
def cli():
    """Check, draw and run recurrent neural networks written as YAML specs."""


format_option = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                             help="json: one object on stdout, for editors and scripts")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@format_option
def validate(spec, dims, fmt):
    """Check a spec: prints every error, located, or `ok`."""
    from .check import check_file

    if fmt == "json":
        return _validate_json(spec, dims)
    checked = check_file(spec, _parse_dims(dims))
    _warn(checked)
    n = len(checked.warnings)
    click.echo(f"{spec}: ok" + (f" ({n} warning{'s' if n != 1 else ''})" if n else ""))


def _validate_json(spec, dims) -> None:
    """Every diagnostic as an object; the exit code is the same as for text."""
    from .check import check_file
    from .errors import Diagnostic, SpecError

    code, diagnostics = 0, []
    try:
        diagnostics = check_file(spec, _parse_dims(dims)).warnings
    except SpecError as e:
        code, diagnostics = e.exit_code, e.diagnostics + e.warnings
    except RnnCompileError as e:  # no such file, a bad --dim: one diagnostic without a place
        code, diagnostics = e.exit_code, [Diagnostic(str(e), loc=None)]
    items = [d.to_dict() for d in diagnostics]
    for item in items:
        item["file"] = item["file"] or str(spec)
    errors = sum(d.severity == "error" for d in diagnostics)
    click.echo(json.dumps({"file": str(spec), "ok": code == 0, "errors": errors,
                           "warnings": len(diagnostics) - errors, "diagnostics": items}, indent=2))
    if code:
        sys.exit(code)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--batch", "-b", default=1, show_default=True, type=click.IntRange(min=1), help="sequences at once")
@click.option("--steps", "-t", type=click.IntRange(min=1),
              help="time steps of random inputs (default: the time dim); for a one-to-many model, the most tokens "
                   "to generate (default: the decoder's steps)")
@click.option("--seed", default=0, show_default=True, type=SEED, help="seed for random weights, inputs and sampling")
@click.option("--input", "input_file", type=click.Path(dir_okay=False),
              help="inputs (.npy, .npz or .json); may also hold `lengths` [B] or `mask` [B, T], and context inputs")
@click.option("--text", help="tokenize this text with the spec's vocabulary as the token input")
@click.option("--weights", type=click.Path(dir_okay=False), help="param values from an .npz keyed by param name")
@click.option("--save-weights", type=click.Path(dir_okay=False), help="write the params used to an .npz")
@click.option("--init-state", type=click.Path(dir_okay=False),
              help="start from a saved state (the state.* arrays of an earlier --output .npz): streaming")
@click.option("--output", "-o", type=click.Path(), help="write outputs and final state (.npz/.json); with --engine "
              "dask also out.zarr or a folder out/ of .npy files, written by the workers chunk by chunk")
@click.option("--trace", is_flag=True, help="record every node at every step and print a step table")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--backend", default="numpy", show_default=True, help="execution backend")
@click.option("--quant", metavar="QUANT.yaml|qM.N",
              help="--backend fixed or fixed_c: the fixed-point formats (a file `rnncompile quantize` writes, or one "
                   "format such as q15 or q3.12 for every class)")
@click.option("--tree", "tree_texts", multiple=True, metavar="TREE",
              help='tree models: a tree, e.g. "(S (NP He) (VP wins))" or JSON; repeat for a batch')
@click.option("--trees", "trees_file", type=click.Path(dir_okay=False),
              help="tree models: a file of trees, one per line (bracketed or JSON), or a .json {\"trees\": [...]}")
@click.option("--per-node", is_flag=True, help="tree models: run node by node instead of level-batched (checking)")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="dask: shard the batch over Dask workers (a local cluster, or --scheduler); the same numbers")
@click.option("--chunk", type=click.IntRange(min=1), default=None,
              help="--engine dask: about this many sequences per task, or more where fewer would change the "
                   "numbers (the run says so) [default: 4096]")
@_engine_options
@progress_option
def run(spec, dims, batch, steps, seed, input_file, text, weights, save_weights, init_state, output, trace, dtype,
        backend, quant, tree_texts, trees_file, per_node, engine, chunk, scheduler, workers, progress):
    """Simulate a spec: random inputs (or trees) and seeded weights by default."""
    import numpy as np

    from . import api
    from .data import OUTPUT_FORMATS, STDOUT, read_arrays, save_outputs
    from .params import save_npz
    from .program import compile as compile_program
    from .show import summary, trace_table
    from .vocab import Vocab

    if input_file and text:
        raise UsageError("give either --input or --text, not both")
    store = _chunked_output(output, engine)
    _check_outputs(("--output", None if output == STDOUT or store else output, OUTPUT_FORMATS),
                   ("--save-weights", save_weights, None))
    echo = functools.partial(click.echo, err=output == STDOUT)  # with -o -, stdout holds the JSON alone
    program = compile_program(spec, _parse_dims(dims), optimize=not trace)
    _warn(program.checked)
    _check_engine(program, engine, chunk, scheduler, workers, trace)
    if store:
        from .distributed import check_store_run

        check_store_run(program)
    if quant:
        from .quant.cli import configure_run

        configure_run(quant, backend, program, engine)
    if program.plan.kind == "tree":
        from .trees.cli import run_trees

        if input_file or text or init_state or steps:
            raise UsageError("a tree model reads trees: give --tree TEXT or --trees FILE "
                             "(not --input, --text, --init-state or --steps)")
        return run_trees(program, tree_texts, trees_file, batch, seed, weights, save_weights, output, trace, dtype,
                         backend, per_node, wanted_progress(progress), echo)
    if tree_texts or trees_file or per_node:
        raise UsageError(f"--tree, --trees and --per-node are for tree models (`model: {{fold: ...}}`); "
                         f"{spec} is a {program.plan.kind} model")
    vocab = Vocab(program.vocab) if program.vocab else None
    inputs = context = lengths = state = None
    if text is not None:
        name = _token_input(program, spec, vocab)
        ids = vocab.encode(text)
        if vocab.unknown_note():
            click.echo(vocab.unknown_note(), err=True)
        inputs = {name: np.broadcast_to(ids, (batch, len(ids))).copy()}
    elif input_file:
        inputs, context, lengths = _read_input_file(program, input_file)
    if init_state:
        raw = read_arrays(init_state)
        state = {k[len("state."):]: v for k, v in raw.items() if k.startswith("state.")}
        if not state:
            raise DataError(f"{init_state}: holds no state.* arrays (write one with run --output file.npz)")
    params = api.make_params(program, seed, weights, dtype)
    try:
        if engine == "dask":
            result = _run_on_dask(program, inputs, params, state, lengths, context, batch, steps, seed, dtype,
                                  backend, chunk, scheduler, workers, wanted_progress(progress), echo,
                                  output if store else None)
            if result is None:  # the workers wrote the outputs, chunk by chunk
                if save_weights:
                    save_npz(save_weights, params)
                    echo(f"weights written to {save_weights}")
                return
        else:
            result = api.run(program, inputs=inputs, params=params, init_state=state, lengths=lengths,
                             context=context, batch=batch, steps=steps, seed=seed, dtype=dtype, backend=backend,
                             trace=trace, progress=wanted_progress(progress))
    except DataError as e:
        raise DataError(f"{input_file}: {e}" if input_file else str(e)) from None
    first = next(iter(result.outputs.values())) if result.outputs else None
    per_step = program.plan.head is None or program.plan.head.at == "every_step"
    b = first.shape[0] if first is not None else batch
    if first is not None and per_step:
        t = first.shape[1]
    else:  # many-to-one: the steps it read
        t = result.steps if result.steps is not None else program.checked.steps(steps)
    if trace:
        echo(trace_table(program, result, vocab))
        echo()
    echo(summary(program.name, result, t, b, backend, dtype, seed, vocab, per_step))
    if save_weights:
        save_npz(save_weights, params)
        echo(f"weights written to {save_weights}")
    if output:
        arrays = {f"outputs.{k}": v for k, v in result.outputs.items()}
        arrays.update({f"state.{k}": v for k, v in result.final_state.items()})
        if result.tokens is not None:
            arrays["tokens"], arrays["lengths"] = result.tokens, result.lengths
        arrays.update({f"trace.{k}": v for k, v in result.values.items()})
        save_outputs(output, arrays)
        if output != STDOUT:
            echo(f"outputs written to {output}")


def _check_engine(program, engine, chunk, scheduler, workers, trace) -> None:
    """--chunk, --scheduler and --workers belong to --engine dask; a run it cannot shard is refused before a
    cluster starts."""
    if engine != "dask":
        given = [f for f, v in (("--chunk", chunk), ("--scheduler", scheduler), ("--workers", workers)) if v]
        if given:
            raise UsageError(f"{given[0]} is for --engine dask (add --engine dask, or leave {given[0]} out)")
        return
    from .distributed import check_shardable

    check_shardable(program, trace)


def _chunked_output(output, engine) -> bool:
    """-o out.zarr or -o outdir/: written by the Dask workers (checked here, before any work)."""
    from .run_store import check_store, is_store

    if not is_store(output):
        return False
    if engine != "dask":
        raise UsageError(f"--output {output}: chunked output (.zarr or a folder of .npy) is written by the Dask "
                         f"workers: add --engine dask, or write .npz")
    check_store(output)
    return True


def _run_on_dask(program, inputs, params, state, lengths, context, batch, steps, seed, dtype, backend, chunk,
                 scheduler, workers, progress, echo, store=None):
    from .distributed import DEFAULT_CHUNK, connect, run_sharded

    with connect(scheduler, workers, note=echo) as client:
        done = run_sharded(client, program, inputs, params, state, lengths, context, batch, steps, seed, dtype,
                           backend, chunk or DEFAULT_CHUNK, progress, note=echo, store=store)
    echo(f"dask: {done.chunks} chunk{'s' if done.chunks != 1 else ''} on {done.workers} "
         f"worker{'s' if done.workers != 1 else ''} in {done.seconds:.2f} s"
         + (f"; outputs written to {store} by the workers" if store else ""))
    return done.result


def _read_input_file(program, path):
    """Sequence inputs, context inputs and lengths of one input file: `lengths` [B] or `mask` [B, T] for every
    sequence input, `lengths.<input>` or `mask.<input>` for one (e.g. a teacher-forced target)."""
    from . import api
    from .data import read_arrays

    infos = api.input_infos(program)
    raw = read_arrays(path, next(iter(infos)) if len(infos) == 1 else None)

    def take(suffix=""):
        if f"mask{suffix}" in raw:
            raw.pop(f"lengths{suffix}", None)
            return api.lengths_from_mask(raw.pop(f"mask{suffix}"))
        return raw.pop(f"lengths{suffix}", None)

    lengths = take()
    own = {n: v for n in infos if (v := take(f".{n}")) is not None}
    if own:
        lengths = {**({n: lengths for n in infos} if lengths is not None else {}), **own}
    context = {n: raw.pop(n) for n in program.plan.context if n in raw} or None
    return raw, context, lengths


def _token_input(program, spec, vocab) -> str:
    if vocab is None:
        raise UsageError(f"--text needs a vocabulary, and {spec} declares none (add `vocab:`)")
    from . import api

    infos = api.input_infos(program)
    tokens = [n for n, i in infos.items() if i.dtype == "token"]
    if len(tokens) != 1 or len(infos) != 1:
        raise UsageError("--text needs a model with exactly one sequence input, declared as a token")
    return tokens[0]


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--grid", "-g", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="a swept key and its values, repeatable: a dim (H=32,64,128), cell (the cell `scan:` runs: "
                   "cell=lstm,gru), backend, dtype, batch or steps; quant (fixed-point formats, q7,q15,q3.12, with "
                   "--backend fixed); with --train lr, optimizer, epochs, clip, bptt [default: `rnncompile "
                   "train`'s]; every combination is one point")
@dim_option
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1, max=10_000),
              help="run every point with seeds 0..N-1 (the weights and inputs of `run --seed S`)")
@click.option("--backend", default="numpy", show_default=True, help="backend of the points that do not sweep it")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--batch", "-b", default=16, show_default=True, type=click.IntRange(min=1), help="sequences per run")
@click.option("--steps", "-t", type=click.IntRange(min=1), help="time steps of the random inputs [default: time dim]")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="the results table, .csv or .parquet (pyarrow); an existing one is resumed")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False),
              help="draw a metric against a swept value (.png, .svg or .pdf)")
@click.option("--metric", help="--plot: the column to draw, e.g. y.absmax or run_s [default: a training sweep's "
              "val_loss (else train_loss), a quant sweep's first max_err, else the first output's std]")
@click.option("--plot-x", "plot_x", metavar="KEY",
              help="--plot: the swept key on the x axis [default: quant, else the first numeric]")
@click.option("--train", "train_data", metavar="DATA",
              help="train every point (and seed) on this data: a text (a predictor learns the next token) or a "
                   ".npz/.json of inputs and target, as `rnncompile train` reads them")
@click.option("--val-split", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
              help="--train: hold out this share of the data (its end) and report its loss")
@_engine_options
@progress_option
def sweep(spec, grid, dims, seeds, backend, dtype, batch, steps, output, plot_file, metric, plot_x, train_data,
          val_split, scheduler, workers, progress):
    """Run every point of a grid of dims, cells, backends and dtypes as a Dask task; one results row per
    point and seed (settings, mean/std/abs-max of each output, final-state norms, compile and run times).
    An interrupted sweep resumes: points already in the results file are skipped.

    With --train every point trains instead: rows give the final training (and held-out) loss, the loss
    of every epoch and tokens per second. With quant=FORMATS: the error of fixed point against float."""
    from .sweep_cli import SweepOptions, sweep as run_sweep
    from .sweep_table import FORMATS, check_format

    _check_outputs(("--output", output, FORMATS), ("--plot", plot_file, (".png", ".svg", ".pdf")))
    check_format(output)
    opts = SweepOptions(spec, grid, _parse_dims(dims), seeds, backend, dtype, batch, steps, output, plot_file, metric,
                        plot_x, scheduler, workers, wanted_progress(progress), train_data, val_split)
    run_sweep(opts, lambda line: click.echo(line, err=True), lambda w: click.echo(w.format(), err=True))


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="the diagram: .svg, .png, .pdf or .dot")
@click.option("--unroll", "-u", help="draw the chain unrolled over N steps (`12`, or `3..T` to elide the middle); "
                                     "with --view model, the steps of every chain in the model")
@click.option("--tree", "tree_text", metavar="TREE", help='tree models: the tree to draw, e.g. "(S (NP He) (VP wins))"')
@click.option("--view", type=click.Choice(["cell", "unrolled", "model", "tree"]), default=None,
              help="cell (folded), unrolled (the chain of one cell; of a composed model without --cell, the "
                   "model over time), or model (layers × time, directions, "
                   "head, encoder → C → decoder; --unroll sets the steps, default 4), or tree (a tree model's "
                   "tree, the cell at every node); default: cell, or unrolled with --unroll (a composed model: "
                   "the model unrolled), tree with --tree")
@click.option("--cell", "cell_name", metavar="NAME",
              help="which cell of the model to draw, folded or unrolled: its name (decoder_lstm) or its place "
                   "(decoder, decoder.head, layers.1); default: the first recurrent one")
@click.option("--dpi", type=int, metavar="N", help="resolution of a .png, 10 to 1200; default 96")
@click.option("--text", help="run the model on this text and draw the run unrolled: each step's token below it, "
                             "its most likely next token above (the lecture's \"hello\" picture)")
@click.option("--weights", type=click.Path(dir_okay=False), help="with --text: param values from an .npz")
@click.option("--seed", default=0, show_default=True, type=SEED,
              help="with --text: seed for the weights not in --weights")
def render(spec, dims, output, unroll, view, tree_text, cell_name, dpi, text, weights, seed):
    """Draw the folded cell, the unrolled chain, or the whole model, with Graphviz."""
    from .program import compile as compile_program
    from .render import render as draw

    program = compile_program(spec, _parse_dims(dims))
    _warn(program.checked)
    view = view or ("unrolled" if unroll or text is not None else "tree" if tree_text else "cell")
    if weights and text is None:
        raise UsageError("--weights only changes a drawing made with --text (a run)")
    result = draw(program, output, view=view, unroll=unroll, tree=tree_text, dpi=dpi, cell=cell_name, text=text,
                  weights=weights, seed=seed)
    if result.note:
        click.echo(result.note, err=True)
    click.echo(f"wrote {result.path}" + (f" (layout: {result.engine})" if result.engine else ""))


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="the picture: .png, .svg or .pdf")
@click.option("--show", "-s", multiple=True, metavar="NAME",
              help="values to draw over time, e.g. -s w_r0,w_w0 (default: every read and write weighting)")
@click.option("--memory", "-m", multiple=True, metavar="STATE",
              help="matrix states to draw before and after the run (default: all)")
@click.option("--steps", "-t", type=click.IntRange(min=1), help="time steps of random inputs (default: the time dim)")
@click.option("--seed", default=0, show_default=True, type=SEED, help="seed for random weights and inputs")
@click.option("--input", "input_file", type=click.Path(dir_okay=False), help="inputs (.npy, .npz or .json), as for run")
@click.option("--weights", type=click.Path(dir_okay=False), help="param values from an .npz keyed by param name")
@click.option("--sequence", default=0, show_default=True, type=click.IntRange(min=0),
              help="which sequence of the batch to draw")
@click.option("--text", help="encoder-decoders: the source text (tokenized with the spec's vocabulary)")
def plot(spec, dims, output, show, memory, steps, seed, input_file, weights, sequence, text):
    """Run with a trace; draw read/write weightings over time and the memory before and after, or a decoder's
    attention as a source × target heatmap (matplotlib)."""
    import numpy as np

    from . import api
    from .plot import draw, draw_attention
    from .program import compile as compile_program

    program = compile_program(spec, _parse_dims(dims), optimize=False)
    _warn(program.checked)
    inputs = context = lengths = None
    if input_file and text:
        raise UsageError("give either --input or --text, not both")
    if text is not None:
        from .vocab import Vocab

        plan = program.plan
        if plan.decoder is None or plan.stack is None or program.vocab is None:
            raise UsageError("--text draws an encoder-decoder's attention over a source text; "
                             f"{spec} has no encoder and decoder with a vocabulary")
        vocab = Vocab(program.vocab)
        ids = vocab.encode(text)
        if vocab.unknown_note():
            click.echo(vocab.unknown_note(), err=True)
        src = plan.stack.inputs[0]
        steps_cap = plan.steps_of(program.dims)[src]
        if len(ids) > steps_cap:
            raise UsageError(f"--text has {len(ids)} tokens; the source holds at most {steps_cap} "
                             f"(set a larger {plan.time_dims.get(src)} with --dim)")
        inputs = {src: np.asarray(ids)[None]}
    elif input_file:
        inputs, context, lengths = _read_input_file(program, input_file)
    elif program.plan.decoder is not None and program.plan.decoder.memory:
        inputs = api.seeded_inputs(program, 1, steps, seed)  # the heatmap names the source tokens
    params = api.make_params(program, seed, weights)
    try:
        result = api.run(program, inputs=inputs, params=params, lengths=lengths, context=context, steps=steps,
                         seed=seed, trace=True)
    except DataError as e:
        raise DataError(f"{input_file}: {e}" if input_file else str(e)) from None
    names = [n for item in show for n in item.split(",") if n]
    mems = [n for item in memory for n in item.split(",") if n]
    if program.plan.decoder is not None and program.plan.decoder.memory and not names and not mems:
        path = draw_attention(program, result, inputs, lengths, output, sequence)
    else:
        path = draw(program, result, output, names or None, mems or None, sequence)
    click.echo(f"wrote {path}")


from .plot_gradients_cli import WithSubcommands, gradients as _plot_gradients  # noqa: E402  (click only)

cli.add_command(WithSubcommands(plot, _plot_gradients))  # `plot SPEC ...` as before; `plot gradients SPEC ...`


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--batch", "-b", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--steps", "-t", type=click.IntRange(min=1))
@click.option("--no-graph", is_flag=True, help="leave out the graph listing")
@click.option("--unoptimised", is_flag=True, help="show the graph as written, before the passes")
@click.option("--flow", "show_flow", is_flag=True,
              help="print the model's flow: the ops the drivers run and the code generators render")
@format_option
def inspect(spec, dims, batch, steps, no_graph, unoptimised, show_flow, fmt):
    """Params, shapes, FLOPs and memory per step and for the whole run, the passes, and the graph."""
    from .program import compile as compile_program
    from .summary import report

    program = compile_program(spec, _parse_dims(dims))
    if show_flow:
        from .flow import flow_data, format_flow

        _warn(program.checked)
        click.echo(json.dumps(flow_data(program.flow), indent=2) if fmt == "json" else format_flow(program.flow),
                   nl=fmt == "json")
        return
    if fmt == "json":
        from .summary import inspect_data

        data = inspect_data(program, batch, steps, optimised=not unoptimised)
        data["warnings"] = [w.to_dict() for w in program.checked.warnings]
        click.echo(json.dumps(data, indent=2))
        return
    _warn(program.checked)
    click.echo(report(program, batch, steps, show_graph=not no_graph, optimised=not unoptimised))


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--prompt", "-p", required=True, help="the text to continue")
@click.option("--steps", "-n", default=20, show_default=True, type=click.IntRange(min=1), help="tokens to add")
@click.option("--temperature", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="below 1: safer choices; above 1: more surprising ones")
@click.option("--top-k", type=click.IntRange(min=1), help="draw only from the k most likely tokens")
@click.option("--greedy", is_flag=True, help="always take the most likely token")
@click.option("--seed", default=0, show_default=True, type=SEED, help="seed for weights and sampling")
@click.option("--weights", type=click.Path(dir_okay=False), help="trained params (.npz keyed by param name)")
@click.option("--trace", is_flag=True, help="show the top tokens and their probabilities at each step")
@progress_option
def complete(spec, dims, prompt, steps, temperature, top_k, greedy, seed, weights, trace, progress):
    """Continue a prompt with a character or word predictor."""
    from . import api
    from .program import compile as compile_program
    from .show import distribution
    from .vocab import Vocab

    program = compile_program(spec, _parse_dims(dims))
    _warn(program.checked)
    result = api.complete(program, prompt, steps, temperature, top_k, seed, weights=weights, greedy=greedy,
                          progress=wanted_progress(progress))
    if result.note:
        click.echo(result.note, err=True)
    vocab = Vocab(program.vocab)
    if trace:
        for i, (tok, p) in enumerate(zip(result.tokens, result.distributions)):
            click.echo(f"step {i:>3}  chose {vocab.tokens[tok]!r:<12} from  {distribution(p, vocab, top_k or 5)}")
        click.echo()
    sep = "" if vocab.level == "char" else " "
    click.echo(prompt + sep + result.text)


loss_option = click.option("--loss", metavar="KIND", default=None,
                           help="a loss of rnncompile.autodiff.losses: xent (cross-entropy of a distribution "
                                "against target tokens), mse (mean squared error), bce (binary cross-entropy) "
                                "[default: the spec's train: loss, else xent with a vocabulary, else mse]")


@cli.command(name="grad")
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--input", "input_file", type=click.Path(dir_okay=False),
              help="inputs, `target` and `lengths` or `mask` (.npz or .json) [default: seeded random]")
@click.option("--text", help="a predictor: inputs text[:-1], targets text[1:]")
@loss_option
@click.option("--output-name", help="the output the loss reads, when the model has several")
@click.option("--reduction", type=click.Choice(["sum", "mean"]), default=None,
              help="sum: over each sequence's steps, mean over the batch; mean: over every real step "
                   "[default: the spec's train: reduction, else sum]")
@click.option("--weights", type=click.Path(dir_okay=False), help="param values from an .npz keyed by param name")
@click.option("--seed", default=0, show_default=True, type=SEED, help="seed for random weights, inputs and targets")
@click.option("--batch", "-b", default=2, show_default=True, type=click.IntRange(min=1), help="random inputs: sequences")
@click.option("--steps", "-t", type=click.IntRange(min=1), help="random inputs: time steps [default: the time dim]")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float64", show_default=True)
@click.option("--backend", default="numpy", show_default=True, help="the backend that runs the backward cells")
@click.option("--wrt-state", is_flag=True,
              help="also write dstate.<state> [B, T, ...]: the gradient with respect to each state after every step")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="write `loss` and `grad.<param>` (keyed as in weight files) to an .npz or .json")
def grad_(spec, dims, input_file, text, loss, output_name, reduction, weights, seed, batch, steps, dtype, backend,
          wrt_state, output):
    """The loss and its gradient with respect to every param, by backpropagation through time."""
    from .autodiff.commands import grad_command
    from .data import OUTPUT_FORMATS

    _check_outputs(("--output", output, OUTPUT_FORMATS))
    grad_command(spec, _parse_dims(dims), input_file, text, loss, output_name, reduction, weights, seed, batch, steps,
                 dtype, backend, output, functools.partial(click.echo, err=True), wrt_state)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--data", "data_file", type=click.Path(dir_okay=False),
              help="the training data, by its kind: a .txt text (a predictor learns the next token), an .npz or "
                   ".json dataset (inputs, `target`, `lengths` or `mask`), a .tsv of source<TAB>target pairs (an "
                   "encoder-decoder, teacher-forced), or for a tree model a tree bank (one labelled tree a line)")
@click.option("--text", "text_file", type=click.Path(dir_okay=False), help="a text file (as --data FILE.txt)")
@click.option("--input", "input_file", type=click.Path(dir_okay=False), help="a dataset (as --data FILE.npz)")
@click.option("--val-split", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), metavar="F",
              help="hold out the last F of the sequences, trees or pairs (of the text's tokens) and report their "
                   "loss after every epoch")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1),
              help="the run's epochs (with --resume: the total, counting those done)")
@click.option("--lr", default=0.01, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="learning rate (the peak, with a schedule)")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), default="adam", show_default=True,
              help="sgd: with momentum; adam: Kingma & Ba; adamw: Adam with decoupled weight decay")
@click.option("--momentum", default=0.9, show_default=True, type=click.FloatRange(min=0), help="sgd's momentum")
@click.option("--nesterov", is_flag=True, help="sgd: Nesterov momentum")
@click.option("--weight-decay", type=click.FloatRange(min=0), metavar="WD",
              help="sgd, adam: an L2 term WD * p in the gradient; adamw: p *= 1 - lr * WD each step "
                   "[default: 0; adamw 0.01]")
@click.option("--clip", default=5.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="clip the gradient to this global norm")
@click.option("--clip-value", type=click.FloatRange(min=0, min_open=True),
              help="clamp each gradient element to [-V, V] (before the norm clipping)")
@click.option("--schedule", type=click.Choice(["constant", "step", "cosine"]), default="constant",
              show_default=True, help="the learning rate over the optimizer steps: constant; step: times --gamma "
                                      "every --step-size steps; cosine: down to --min-lr at the last step")
@click.option("--step-size", default=100, show_default=True, type=click.IntRange(min=1),
              help="--schedule step: optimizer steps between decays")
@click.option("--gamma", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="--schedule step: the factor of each decay")
@click.option("--min-lr", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="--schedule cosine: the last step's learning rate")
@click.option("--warmup", default=0, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="ramp the learning rate up linearly over the first N optimizer steps")
@click.option("--bptt", type=click.IntRange(min=1),
              help="a text: truncated BPTT over windows of K steps, the state carried from window to window "
                   "[default: windows of the time dim, each from the start state]")
@click.option("--batch", "-b", default=16, show_default=True, type=click.IntRange(min=1),
              help="a text: parallel streams; otherwise sequences, trees or pairs per step")
@click.option("--seed", default=0, show_default=True, type=SEED, help="seed for the first weights and the order")
@click.option("--weights", type=click.Path(dir_okay=False), help="start from these weights (.npz)")
@click.option("--loss", metavar="KIND", help="a loss of rnncompile.autodiff.losses (xent: cross-entropy against "
                                            "target tokens; mse: mean squared error; ...) [default: xent with a "
                                            "vocabulary, else mse]")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--backend", default="numpy", show_default=True, help="the backend that runs the cells")
@click.option("--patience", type=click.IntRange(min=1), metavar="N",
              help="stop after N epochs without a better validation loss, keeping the best epoch's weights "
                   "(needs --val-split)")
@click.option("--checkpoint", "checkpoint_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="after every epoch write DIR/epoch-NNNN.npz: weights, optimizer state, epoch, generator state")
@click.option("--resume", type=click.Path(exists=True), metavar="CKPT",
              help="continue a run from a checkpoint file (or a --checkpoint folder's last), exactly")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False),
              help="draw the training and validation loss against epoch (.png, .svg or .pdf)")
@click.option("--save-weights", required=True, type=click.Path(dir_okay=False), help="write the trained params (.npz)")
@progress_option
def train(spec, dims, data_file, text_file, input_file, val_split, epochs, lr, optimizer, momentum, nesterov,
          weight_decay, clip, clip_value, schedule, step_size, gamma, min_lr, warmup, bptt, batch, seed, weights, loss,
          dtype, backend, patience, checkpoint_dir, resume, plot_file, save_weights, progress):
    """Train a spec's params by backpropagation through time (or structure); prints the loss of every epoch."""
    from .autodiff.commands import train_command

    given = [(o, v) for o, v in (("--data", data_file), ("--text", text_file), ("--input", input_file)) if v]
    if len(given) != 1:
        raise UsageError("give the training data once: --data FILE (a .txt text, an .npz or .json dataset, a .tsv "
                         "of source<TAB>target pairs, or a tree bank)" + (f"; got {' and '.join(o for o, _ in given)}"
                                                                          if given else ""))
    _check_outputs(("--save-weights", save_weights, (".npz",)), ("--plot", plot_file, (".png", ".svg", ".pdf")))
    train_command(spec, _parse_dims(dims), given[0][1], epochs, save_weights, plot_file, wanted_progress(progress),
                  click.echo, val_split=val_split, lr=lr, optimizer=optimizer, momentum=momentum, nesterov=nesterov,
                  weight_decay=weight_decay, clip=clip, clip_value=clip_value, schedule=schedule,
                  step_size=step_size, gamma=gamma, min_lr=min_lr, warmup=warmup, bptt=bptt, batch=batch, seed=seed,
                  weights=weights, loss=loss, dtype=dtype, backend=backend, patience=patience,
                  checkpoint=checkpoint_dir, resume=resume,
                  data_kind={"--text": "text", "--input": "arrays"}.get(given[0][0]))


@cli.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="write to a file instead of stdout")
def schema(output):
    """Print the JSON Schema of spec files (for editor completion)."""
    from .files import atomic_write
    from .spec import json_schema

    text = json.dumps(json_schema(), indent=2)
    if output:
        _check_outputs(("--output", output, None))
        with atomic_write(output) as f:
            f.write(text + "\n")
    else:
        click.echo(text)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["markdown", "text"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="write to a file instead of stdout")
def ops(fmt, output):
    """Print the op reference: every op's syntax, arguments, shape rule and a worked example, the operator
    precedence and the gate activations (docs/ops.md is the markdown)."""
    from .files import atomic_write
    from .opdoc import reference

    text = reference(fmt)
    if output:
        _check_outputs(("--output", output, None))
        with atomic_write(output) as f:
            f.write(text)
    else:
        click.echo(text, nl=False)


@cli.command()
def backends():
    """List the installed execution backends."""
    from . import registry

    for name in registry.available():
        click.echo(name)


def _standalone_options(fn):
    for option in reversed([
        click.option("--weights", type=click.Path(dir_okay=False),
                     help="c: the weights to write into the file (.npz keyed by param name; default: seeded random)"),
        click.option("--seed", type=SEED, default=None, help="c: the seed of the random weights without --weights [0]"),
        click.option("--dtype", type=click.Choice(["float32", "float64"]), default=None,
                     help="c: the number type, float or double [float32]"),
    ]):
        fn = option(fn)
    return fn


def _write_standalone(spec, dims, backend, output, weights, seed, dtype, flag="--backend"):
    """`output`: a file name, or a function of the spec's name giving one."""
    from pathlib import Path

    from . import api, registry
    from .files import atomic_write
    from .program import compile as compile_program

    program = compile_program(spec, _parse_dims(dims))
    _warn(program.checked)
    if not registry.can(backend, "export"):
        raise UsageError(f"backend `{backend}` cannot export standalone code; use {flag} "
                         f"{' or '.join(registry.able('export')) or '(none installed)'}")
    extra = {}
    if registry.can(backend, "embeds_weights"):
        dtype, seed = dtype or "float32", seed or 0
        extra = {"params": api.make_params(program, seed, weights, dtype), "dtype": dtype,
                 "weights_from": Path(weights).name if weights else
                 f"seeded random, as `rnncompile run --seed {seed}` makes them"}
    elif weights or seed is not None or dtype:
        raise UsageError(f"--weights, --seed and --dtype choose the weights written into the file, and backend "
                         f"`{backend}` writes none (its code takes the params at run time)")
    if callable(output):
        output = output(program.name)
    result = registry.get(backend).export(program, Path(spec).name, Path(output).stem, **extra)
    with atomic_write(output) as f:
        f.write(result.source)
    if result.note:
        click.echo(result.note, err=True)
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--backend", default="python", show_default=True, help="a backend that writes standalone code")
@click.option("--format", "fmt", type=click.Choice(["code", "onnx"]), default="code", show_default=True,
              help="code: standalone code of --backend; onnx: an ONNX model with the weights in it (.onnx)")
@click.option("--lengths/--no-lengths", default=True,
              help="onnx: a sequence_lens [B] input, padded steps masked as `run --lengths` does [on]")
@click.option("--native/--no-native", default=True,
              help="onnx: ONNX's own LSTM/GRU node for a cell that computes exactly it, else a Scan [on]")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="the file to write, e.g. lstm_model.py or lstm.onnx")
@_standalone_options
def export(spec, dims, backend, fmt, lengths, native, output, weights, seed, dtype):
    """Write the model as standalone code (python: one module that needs only NumPy; c: one C99 file with
    the weights in it) or, with --format onnx, as an ONNX model (ONNX's LSTM/GRU or a Scan per cell, a Loop for a
    greedy decoder; not yet: tree folds, sampling decoders)."""
    if fmt == "onnx":
        if click.get_current_context().get_parameter_source("backend").name != "DEFAULT":
            raise UsageError("--backend chooses the code written; --format onnx writes an ONNX model, leave it out")
        _check_outputs(("--output", output, (".onnx",)))
        _write_onnx(spec, dims, output, weights, seed, dtype, lengths, native)
        return
    if not lengths or not native:
        raise UsageError("--no-lengths and --no-native are for --format onnx")
    _check_outputs(("--output", output, None))
    _write_standalone(spec, dims, backend, output, weights, seed, dtype)


def _write_onnx(spec, dims, output, weights, seed, dtype, lengths, native):
    """The ONNX model of `spec` (rnncompile/interop/onnx/onnx_export.py) with its weights, and how to feed it."""
    from pathlib import Path

    from . import api
    from .files import atomic_write
    from .interop.onnx.onnx_export import export_onnx
    from .program import compile as compile_program

    program = compile_program(spec, _parse_dims(dims))
    _warn(program.checked)
    dtype, seed = dtype or "float32", seed or 0
    params = api.make_params(program, seed, weights, dtype)
    source = f"{Path(weights).name}" if weights else f"seeded random, as `rnncompile run --seed {seed}` makes them"
    model = export_onnx(program, params, dtype, lengths, native, Path(spec).name, source)
    with atomic_write(output, "wb") as f:
        f.write(model.SerializeToString())
    for what, values in (("inputs", model.graph.input), ("outputs", model.graph.output)):
        shown = [f"{v.name} [{', '.join(d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim)}]"
                 for v in values]
        click.echo(f"  {what}: {', '.join(shown)}")
    ops = sorted({n.op_type for n in model.graph.node} & {"LSTM", "GRU", "Scan", "Loop"})
    click.echo(f"  cells as: {', '.join(ops) or 'no recurrent node'}")
    click.echo("note: the model starts from the spec's initial state (no initial-state inputs); tree folds and "
               "sampling decoders do not export to ONNX yet", err=True)
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--weights", type=click.Path(dir_okay=False), help="param values (.npz) [default: seeded]")
@click.option("--calibrate", type=click.Path(dir_okay=False),
              help="inputs to calibrate on (.npz/.npy/.json, as run --input reads) [default: seeded random]")
@click.option("--holdout", type=click.Path(dir_okay=False),
              help="inputs for the held-out accuracy report [default: the last quarter of --calibrate]")
@click.option("--bits", type=click.Choice(["8", "16"]), default="16", show_default=True,
              help="width of every class but the accumulators (32 bits)")
@click.option("--weight-bits", type=click.Choice(["8", "16"]), help="the weights' width [default: --bits]")
@click.option("--seed", default=0, show_default=True, type=SEED, help="seed of weights and inputs not given")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="the quant file to write (.yaml)")
@click.option("--c", "c_file", type=click.Path(dir_okay=False),
              help="also write the model's cells as standalone integer C99 in these formats, weights included (.c)")
def quantize(spec, dims, weights, calibrate, holdout, bits, weight_bits, seed, output, c_file):
    """Pick fixed-point formats from the ranges a float run sees, write them (quant.yaml for run --quant) and
    report the fixed-point run's error against float on the calibration and a held-out set."""
    from .quant.cli import quantize as run_quantize

    _check_outputs(("--output", output, (".yaml", ".yml")), ("--c", c_file, (".c",)))
    run_quantize(spec, _parse_dims(dims), weights, calibrate, holdout, output, int(bits), seed, click.echo,
                 int(weight_bits) if weight_bits else None, c_file)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--target", default="c", show_default=True, help="c or python (any backend that exports)")
@click.option("--output", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="the folder to write into (made when missing)")
@_standalone_options
def codegen(spec, dims, target, out_dir, weights, seed, dtype):
    """Generate standalone code into a folder: `export`, named after the spec (build/lstm.c, build/lstm_model.py)."""
    from pathlib import Path

    from .files import check_output
    from .naming import file_stem

    check_output(out_dir, option="--output", folder=True)  # made when missing, as documented

    def output(name):
        from . import registry

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        pattern = getattr(registry.get(target), "export_file", "{name}." + target)
        return str(Path(out_dir) / pattern.format(name=file_stem(name)))
    _write_standalone(spec, dims, target, output, weights, seed, dtype, flag="--target")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@dim_option
@click.option("--from-torch", "torch_file", type=click.Path(dir_okay=False), metavar="STATE.pt|STATE.npz",
              help="convert this PyTorch state_dict (torch.save, read with weights_only=True; or np.savez) into "
                   "the spec's weights (-o W.npz)")
@click.option("--to-torch", is_flag=True, help="write the spec's weights as a PyTorch state_dict (-o STATE.pt|.npz)")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="--to-torch: the spec's weights (.npz keyed by param name; default: seeded random)")
@click.option("--seed", default=0, show_default=True, type=SEED, help="--to-torch without --weights: their seed")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--map", "mapping", multiple=True, metavar="TORCH=PARAM",
              help="pair a torch key or module with a spec param, e.g. --map fc.weight=head.W_y (repeatable)")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="the file to write")
def weights(spec, dims, torch_file, to_torch, weights, seed, dtype, mapping, output):
    """Convert weights between PyTorch (nn.RNN, nn.LSTM, nn.GRU with layers, directions and biases, plus
    nn.Embedding and nn.Linear) and the spec, both ways; prints which torch key went where."""
    from . import api, interop
    from .params import save_npz
    from .program import compile as compile_program

    if bool(torch_file) == to_torch:
        raise UsageError("give --from-torch STATE (to write the spec's weights) or --to-torch (to write a "
                         "state_dict), one of them")
    if torch_file and weights:
        raise UsageError("--weights gives the spec's weights for --to-torch; with --from-torch the state_dict is "
                         "the weights")
    formats = (".npz",) if torch_file else interop.torch_files.STATE_DICT_SUFFIXES
    _check_outputs(("--output", output, formats))
    program = compile_program(spec, _parse_dims(dims))
    _warn(program.checked)
    pairs = interop.parse_map(mapping)
    if torch_file:
        conv = interop.from_torch(program, interop.read_state_dict(torch_file), pairs, str(torch_file))
        save_npz(output, {k: v.astype(dtype) for k, v in conv.arrays.items()})
    else:
        conv = interop.to_torch(program, api.make_params(program, seed, weights, dtype), pairs)
        interop.write_state_dict(output, conv.arrays)
        if not weights:
            conv.notes.append(f"no --weights: these are the seeded random weights of `rnncompile run --seed {seed}`")
    for line in conv.moves:
        click.echo(f"  {line}")
    for note in conv.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("module", type=click.Choice(["rnn", "lstm", "gru"]))
@click.option("--input-size", "-i", default=8, show_default=True, type=click.IntRange(min=1, max=1_000_000))
@click.option("--hidden", "-H", "hidden", default=16, show_default=True, type=click.IntRange(min=1, max=1_000_000))
@click.option("--layers", default=1, show_default=True, type=click.IntRange(min=1, max=100), help="num_layers")
@click.option("--bidirectional", is_flag=True)
@click.option("--proj-size", default=0, type=click.IntRange(min=0), help="nn.LSTM's proj_size (0: none)")
@click.option("--no-bias", is_flag=True, help="bias=False")
@click.option("--nonlinearity", default="tanh", show_default=True, help="nn.RNN: tanh or relu")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="the spec to write (.yaml)")
def new(module, input_size, hidden, layers, bidirectional, proj_size, no_bias, nonlinearity, output):
    """Write a spec that computes a PyTorch nn.RNN / nn.LSTM / nn.GRU configuration, for `weights --from-torch`."""
    from pathlib import Path

    from .files import atomic_write
    from .interop.torch_specs import torch_spec
    from .naming import file_stem

    _check_outputs(("--output", output, (".yaml", ".yml")))
    text = torch_spec(module, input_size, hidden, layers, bidirectional, proj_size, not no_bias, nonlinearity,
                      name=file_stem(Path(output).stem))
    with atomic_write(output) as f:
        f.write(text)
    click.echo(f"wrote {output}")


@cli.command(name="import")
@click.argument("model", type=click.Path(dir_okay=False), metavar="MODEL.onnx")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="the spec to write (.yaml)")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="the weights to write (.npz keyed by param name) [default: the spec's name with .npz]")
@click.option("--name", help="the spec's name [default: the model file's stem]")
def import_(model, output, weights, name):
    """Write an ONNX model with RNN, GRU or LSTM nodes as a spec plus its weights; prints how the ONNX
    inputs and outputs map onto a run."""
    import tempfile
    from pathlib import Path

    from .check import check_file
    from .files import atomic_write
    from .interop.onnx import import_model  # onnx itself is imported only when a model is read
    from .params import save_npz

    weights = weights or str(Path(output).with_suffix(".npz"))
    _check_outputs(("--output", output, (".yaml", ".yml")), ("--weights", weights, (".npz",)))
    imported = import_model(model, name=name)
    with tempfile.TemporaryDirectory() as tmp:  # the spec must check as written before any file is made
        trial = Path(tmp) / Path(output).name
        trial.write_text(imported.text, encoding="utf-8")
        check_file(trial)
    with atomic_write(output) as f:
        f.write(imported.text)
    save_npz(weights, imported.weights)
    for note in imported.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {output} and {weights}")


class _Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so a half-written output's temporary file is removed."""


def _terminate(signum, frame):
    raise _Terminated(signum)


def _warning_printer():
    """Python warnings as one clean `warning:` line each, once; numpy's floating-point warnings (overflow,
    invalid value) once, and not at all after a data file was reported to hold NaN or inf."""
    seen = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RuntimeWarning):
            if seen & {"non-finite data", "numpy"}:
                return
            seen.add("numpy")
            text = f"the computation left the float range (numpy: {message}); results may hold inf or NaN"
        else:
            text = str(message)
            if text in seen:
                return
            data = sys.modules.get(f"{__package__}.data")  # no DataWarning can exist before data.py is loaded
            if data is not None and issubclass(category, data.DataWarning):
                seen.add("non-finite data")
        seen.add(text)
        click.echo(f"warning: {text}", err=True)
    return show


def main(argv=None) -> None:
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                handlers[name] = signal.signal(getattr(signal, name), _terminate)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer()
            _main(argv)
    except _Terminated as e:
        click.echo(f"terminated by {signal.Signals(e.args[0]).name}", err=True)
        sys.exit(128 + e.args[0])
    finally:
        for name, old in handlers.items():
            signal.signal(getattr(signal, name), old)


def _main(argv) -> None:
    try:
        cli.main(args=argv, prog_name="rnncompile", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except RnnCompileError as e:
        click.echo(e.format(), err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug in rnncompile, not in the user's input
        if os.environ.get("RNNCOMPILE_DEBUG"):
            raise
        click.echo(f"internal error: {type(e).__name__}: {e}\n"
                   "This is a bug in rnncompile; rerun with RNNCOMPILE_DEBUG=1 for the traceback and report it.",
                   err=True)
        sys.exit(3)
    sys.exit(0)


if __name__ == "__main__":
    main()
