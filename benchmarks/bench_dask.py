"""Scale-out on Dask: many sequences of the shipped LSTM on a LocalCluster of worker processes against one
process, and a 24-point sweep on the cluster against the same points one after another.

    python benchmarks/bench_dask.py [--sequences 1000000] [--workers 2] [--chunk 4096] [--backends c,numpy]
                                    [--repeats 1] [--no-sweep] [--train-sweep-only] [--train-epochs 10]

The default, 1,000,000 sequences, takes about a minute on two idle cores (six at a load of 10). One
process: `rnncompile.run` over the same chunks one after another (a single call of 1,000,000 LSTM
sequences would hold 2 billion numbers, past the run budget), with the BLAS's threads as they are and with
one thread. Dask: `rnncompile.distributed.run_sharded` on a LocalCluster of --workers processes of one
thread each (Dask's workers set OPENBLAS_NUM_THREADS=1); its time includes shipping the program, scattering
the inputs and gathering the outputs in order, not starting the cluster (timed on its own). Both start from
the same seeded inputs in memory, and the outputs are checked to be the same bits before any figure is
printed. Throughput ratios above 1 mean the cluster is faster.

The sweep: examples/sweep/cells.yaml over H=16,32,64,128 × cell=elman,lstm,gru × backend=numpy,c (24 points,
batch 256, one seed), as `rnncompile sweep` runs it, against `sweep.run_point` for each point in this process.

The training sweep: specs/char_predictor.yaml trained on examples/train/corpus.txt over H=16,32 x lr=0.01,0.03
x optimizer=sgd,adam (8 points, --train-epochs epochs, bptt 25, 16 streams, a 10% held-out split), as
`rnncompile sweep --train` runs it, against `sweep_train.train_point` for each point in this process; the rows'
losses must be the same floats.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

from _timing import Blas, print_header, versions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", type=int, default=1_000_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=4096)
    p.add_argument("--backends", default="c,numpy")
    p.add_argument("--repeats", type=int, default=1, help="timed runs of each peer (the best is reported)")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--train-sweep-only", action="store_true", help="only the 8-point training sweep")
    p.add_argument("--train-epochs", type=int, default=10)
    return p.parse_args(argv)


def best_of(repeats, fn):
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def local_chunks(program, inputs, params, bounds, backend):
    """One process: the chunks one after another, joined as the cluster joins them."""
    import rnncompile
    from rnncompile.distributed import merge

    parts = []
    for a, z in bounds:
        r = rnncompile.run(program, inputs={k: v[a:z] for k, v in inputs.items()}, params=params, backend=backend)
        parts.append((r.outputs, r.final_state, r.tokens, r.lengths, r.steps))
    return merge(program, parts)


def same_bits(a, b) -> bool:
    import numpy as np

    return all(np.array_equal(a.outputs[k], b.outputs[k]) for k in b.outputs) and \
        all(np.array_equal(a.final_state[k], b.final_state[k]) for k in b.final_state)


def bench_batch(client, args, blas, rows):
    import rnncompile
    from rnncompile.distributed import chunk_bounds, min_rows, run_sharded
    from rnncompile.data import random_inputs
    from rnncompile import api

    program = rnncompile.compile(ROOT / "specs" / "lstm.yaml")
    steps = program.checked.steps(None)
    t0 = time.perf_counter()
    inputs = random_inputs(api.input_infos(program), args.sequences, steps, 0, "float32")
    print(f"inputs: {args.sequences:,} sequences x {steps} steps x 8 made in {time.perf_counter() - t0:.1f} s")
    params = rnncompile.make_params(program, 0)
    for backend in args.backends.split(","):
        bounds = chunk_bounds(args.sequences, args.chunk, min_rows(program, backend))
        local_chunks(program, {k: v[:256] for k, v in inputs.items()}, params, [(0, 256)], backend)  # warm
        t_local, want = best_of(args.repeats, lambda: local_chunks(program, inputs, params, bounds, backend))
        blas.set_threads(1)
        t_local1, _ = best_of(args.repeats, lambda: local_chunks(program, inputs, params, bounds, backend))
        blas.set_threads(blas_default)
        run_sharded(client, program, {k: v[:4096] for k, v in inputs.items()}, params, backend=backend)  # warm
        t_dask, got = best_of(args.repeats, lambda: run_sharded(client, program, inputs, params, backend=backend,
                                                                chunk=args.chunk))
        if not same_bits(got.result, want):
            sys.exit(f"{backend}: the cluster's outputs differ from the local run's")
        rows.append((backend, len(bounds), t_local, t_local1, t_dask))
        n = args.sequences
        print(f"{backend}: {len(bounds)} chunks; one process {t_local:.2f} s ({n / t_local:,.0f} seq/s), "
              f"one process 1 BLAS thread {t_local1:.2f} s ({n / t_local1:,.0f} seq/s), "
              f"dask {args.workers} workers {t_dask:.2f} s ({n / t_dask:,.0f} seq/s); "
              f"throughput ratio dask / one process: {t_local / t_dask:.2f} "
              f"(vs one thread: {t_local1 / t_dask:.2f}); outputs identical: yes", flush=True)


def bench_sweep(client, args):
    from rnncompile import registry
    from rnncompile.check import check_file
    from rnncompile.distributed import run_sweep
    from rnncompile.sweep import parse_grid, points, run_point, spec_digest, spec_facts

    spec = ROOT / "examples" / "sweep" / "cells.yaml"
    text = spec.read_text()
    facts = spec_facts(check_file(spec), registry.available())
    grid = parse_grid(["H=16,32,64,128", "cell=elman,lstm,gru", "backend=numpy,c"], facts)
    todo = points(grid, {"backend": "numpy", "dtype": "float32", "batch": 256, "steps": None})
    sha = spec_digest(text)
    seeds = {p.index: [0] for p in todo}
    for p in todo:  # untimed: the C backend builds each point's library once (its cache then serves both peers)
        run_point(text, str(spec), sha, p, [0], facts.dims)
    t0 = time.perf_counter()
    serial = [run_point(text, str(spec), sha, p, [0], facts.dims) for p in todo]
    t_serial = time.perf_counter() - t0
    got = []
    t0 = time.perf_counter()
    failures = run_sweep(client, text, str(spec), sha, todo, seeds, facts.dims, got.extend)
    t_dask = time.perf_counter() - t0
    if failures or len(got) != len(todo):
        sys.exit(f"sweep: {len(failures)} points failed")
    stats = {r["key"]: r["y.std"] for rows in serial for r in rows}
    if any(stats[r["key"]] != r["y.std"] for r in got):
        sys.exit("sweep: the cluster's rows differ from the serial ones")
    compile_s = sum(r["compile_s"] + r["build_s"] for r in got)
    print(f"sweep: {len(todo)} points (H=16,32,64,128 x cell=elman,lstm,gru x backend=numpy,c; batch 256): "
          f"one process {t_serial:.2f} s, dask {args.workers} workers {t_dask:.2f} s, ratio {t_serial / t_dask:.2f}; "
          f"compile+build summed over the points {compile_s:.2f} s; rows identical: yes")


def bench_train_sweep(client, args):
    from rnncompile import registry
    from rnncompile.check import check_file
    from rnncompile.distributed import run_sweep
    from rnncompile.program import compile as compile_program
    from rnncompile.sweep import TRAIN_KEYS, parse_grid, points, spec_digest, spec_facts
    from rnncompile.sweep_train import read_train_data, train_point

    spec, corpus = ROOT / "specs" / "char_predictor.yaml", ROOT / "examples" / "train" / "corpus.txt"
    text = spec.read_text()
    checked = check_file(spec)
    facts = spec_facts(checked, registry.available())
    grid = parse_grid(["H=16,32", "lr=0.01,0.03", "optimizer=sgd,adam"], facts, training=True)
    data = read_train_data(corpus, compile_program(checked), 0.1)
    fixed = {"backend": "numpy", "dtype": "float32", "batch": 16, "steps": None,
             **{k: d for k, (_, d) in TRAIN_KEYS.items()}, "epochs": args.train_epochs, "bptt": 25,
             "data_sha": data.sha, "val_split": 0.1}
    todo = points(grid, fixed)
    sha = spec_digest(text)
    warm = points({"H": [8]}, {**fixed, "epochs": 1})  # untimed: each worker's first imports and gradient build
    run_sweep(client, text, str(spec), sha, warm, {0: [0]}, facts.dims, lambda rows: None, train_data=data)
    client.run(train_point, text, str(spec), sha, warm[0], [0], facts.dims, data)
    train_point(text, str(spec), sha, warm[0], [0], facts.dims, data)
    t0 = time.perf_counter()
    serial = [r for p in todo for r in train_point(text, str(spec), sha, p, [0], facts.dims, data)]
    t_serial = time.perf_counter() - t0
    got = []
    t0 = time.perf_counter()
    failures = run_sweep(client, text, str(spec), sha, todo, {p.index: [0] for p in todo}, facts.dims, got.extend,
                         train_data=data)
    t_dask = time.perf_counter() - t0
    if failures or len(got) != len(todo):
        sys.exit(f"training sweep: {len(failures)} points failed: {failures[:1]}")
    want = {r["key"]: (r["loss_per_epoch"], r["val_loss"]) for r in serial}
    if any(want[r["key"]] != (r["loss_per_epoch"], r["val_loss"]) for r in got):
        sys.exit("training sweep: the cluster's losses differ from the serial ones")
    tokens = sum(r["tokens"] for r in got)
    best = min(got, key=lambda r: r["val_loss"])
    print(f"training sweep: {len(todo)} points (char_predictor on corpus.txt, H=16,32 x lr=0.01,0.03 x "
          f"optimizer=sgd,adam; {args.train_epochs} epochs, bptt 25, 16 streams, 10% held out): one process "
          f"{t_serial:.2f} s ({tokens / t_serial:,.0f} tokens/s), dask {args.workers} workers {t_dask:.2f} s "
          f"({tokens / t_dask:,.0f} tokens/s), ratio {t_serial / t_dask:.2f}; losses identical: yes; best held-out "
          f"loss {best['val_loss']:.3f} (H={best['H']}, lr={best['lr']}, {best['optimizer']})", flush=True)


blas_default = None


def main(argv=None):
    global blas_default
    args = parse_args(argv)
    from distributed import Client, LocalCluster

    blas = Blas()
    blas_default = dict(blas.threads()).get("openblas", os.cpu_count()) if blas.threads() else os.cpu_count()
    print_header([versions(), *blas.header(), f"workers: {args.workers} processes x 1 thread; chunk {args.chunk}"],
                 threads=blas_default)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "port 8787 is in use": a web page we do not use
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          worker_dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
                Client(cluster) as client:
            print(f"LocalCluster of {args.workers} started in {time.perf_counter() - t0:.2f} s")
            rows = []
            if args.train_sweep_only:
                return bench_train_sweep(client, args)
            bench_batch(client, args, blas, rows)
            if not args.no_sweep:
                bench_sweep(client, args)
                bench_train_sweep(client, args)


if __name__ == "__main__":
    main()
