"""Scale-out on Dask (rnncompile/distributed.py, sweep.py, sweep_table.py) on a LocalCluster of two worker
processes: sharded runs give a local run's bits, sweeps give the statistics of local runs, a killed worker
loses no result, a failed task is retried and then reported by its chunk, bad grids get located errors,
and an interrupted sweep resumes."""
from __future__ import annotations

import csv
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import rnncompile
from conftest import ROOT, SPECS

distributed = pytest.importorskip("distributed")
# A second cluster's scheduler finds the first one's web port taken and picks another: no news here.
pytestmark = pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning")

from rnncompile.distributed import ALIGN, BLAS_SMALL, chunk_bounds, min_rows, run_sharded  # noqa: E402
from rnncompile.sweep import compile_point, output_stats  # noqa: E402

CELLS = ROOT / "examples" / "sweep" / "cells.yaml"


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as c:
        yield c


def _same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _assert_same_run(got, want) -> None:
    _same(got.outputs, want.outputs)
    _same(got.final_state, want.final_state)
    for name in ("tokens", "lengths"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert got.steps == want.steps


def test_chunks_start_aligned_and_end_with_the_batch():
    assert chunk_bounds(10, 4, align=1) == [(0, 3), (3, 6), (6, 10)]
    assert chunk_bounds(4097, 4096) == [(0, 1920), (1920, 4097)]  # not 4096 + a one-sequence tail
    assert chunk_bounds(5, 100) == [(0, 5)]
    bounds = chunk_bounds(1_000_003, 4096)
    assert bounds[0][0] == 0 and bounds[-1][1] == 1_000_003
    assert all(a % ALIGN == 0 for a, _ in bounds) and all(z == a2 for (_, z), (a2, _) in zip(bounds, bounds[1:]))
    sizes = [z - a for a, z in bounds]
    assert max(sizes) <= 4096 + ALIGN and min(sizes) >= 4096 - 2 * ALIGN
    assert chunk_bounds(10_000, 100, least=3000) == [(0, 3264), (3264, 6528), (6528, 10_000)]


def test_min_rows_keeps_every_weight_product_past_the_blas_small_matrix_bound():
    lstm = rnncompile.compile(SPECS / "lstm.yaml")  # the smallest matrix: W_x of the hoisted input, [64, 8]
    assert min_rows(lstm, "numpy") == 2112 and 1954 * 64 * 8 > BLAS_SMALL and 2112 % ALIGN == 0
    sentiment = rnncompile.compile(SPECS / "sentiment.yaml")  # its head's W_y is [2, 32]
    assert min_rows(sentiment, "numpy") == 15744 and 15626 * 2 * 32 > BLAS_SMALL
    assert min_rows(sentiment, "c") == ALIGN  # no BLAS: only its row blocks


# Every kind of sequence model: one scan, a stack, both directions, tokens through an embedding, a head at
# the last step, memory, a greedy decoder that stops at its end token (chunks stop at different steps),
# context inputs.
SHARDED = [("lstm.yaml", "numpy"), ("lstm.yaml", "c"), ("lstm.yaml", "python"), ("gru.yaml", "numpy"),
           ("deep_lstm.yaml", "numpy"), ("bigru.yaml", "c"), ("char_predictor.yaml", "numpy"),
           ("sentiment.yaml", "numpy"), ("ntm.yaml", "numpy"), ("ntm.yaml", "c"), ("seq2seq.yaml", "numpy"),
           ("captioner.yaml", "numpy")]


@pytest.mark.parametrize("spec, backend", SHARDED, ids=[f"{s[:-5]}-{b}" for s, b in SHARDED])
def test_sharded_run_gives_the_bits_of_a_local_run(client, spec, backend):
    program = rnncompile.compile(SPECS / spec)
    least = min_rows(program, backend)
    batch = 2 * (least + ALIGN) + 333  # two chunks, the last of an odd size
    want = rnncompile.run(program, batch=batch, steps=4, seed=5, backend=backend)
    got = run_sharded(client, program, batch=batch, steps=4, seed=5, backend=backend, chunk=128)
    assert got.chunks == 2 and got.workers == 2
    _assert_same_run(got.result, want)


def test_sharded_run_with_lengths_initial_state_and_float64(client):
    program = rnncompile.compile(SPECS / "lstm.yaml", dims={"H": 40})
    rng = np.random.default_rng(0)
    b, t = 2500, 23
    x = rng.standard_normal((b, t, 8))
    lengths = rng.integers(1, t + 1, b)
    state = {"h": rng.standard_normal((b, 40)), "c": rng.standard_normal((b, 40))}
    kwargs = dict(inputs={"x": x}, init_state=state, lengths=lengths, seed=2, dtype="float64")
    params = rnncompile.make_params(program, 2, None, "float64")
    want = rnncompile.run(program, params=params, **kwargs)
    got = run_sharded(client, program, params=params, chunk=200, **kwargs)
    assert got.chunks == 2  # of at least min_rows = 960
    _assert_same_run(got.result, want)


def test_cli_run_on_dask_writes_the_local_runs_file(cli, client, tmp_path, monkeypatch):
    address = client.scheduler.address
    x = np.random.default_rng(1).standard_normal((1200, 12, 8)).astype(np.float32)
    np.savez(tmp_path / "big.npz", x=x, lengths=np.arange(1200) % 12 + 1)
    code, out, err = cli("run", SPECS / "lstm.yaml", "--input", tmp_path / "big.npz", "-o", tmp_path / "local.npz",
                         "--backend", "c")
    assert code == 0, err
    code, out, err = cli("run", SPECS / "lstm.yaml", "--input", tmp_path / "big.npz", "-o", tmp_path / "dask.npz",
                         "--backend", "c", "--engine", "dask", "--chunk", "100", "--scheduler", address)
    assert code == 0, err
    assert "dask: 3 chunks on 2 workers" in out
    with np.load(tmp_path / "local.npz") as a, np.load(tmp_path / "dask.npz") as b:
        _same(dict(a), dict(b))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)  # the seeded random inputs `run` makes, via the env
    code, out, err = cli("run", SPECS / "gru.yaml", "-b", "6000", "--seed", "3", "--engine", "dask", "--chunk", "64",
                         "-o", tmp_path / "gru_dask.npz")
    assert code == 0, err
    assert "chunks of at least 2688 sequences on the numpy backend (not --chunk 64)" in out
    assert "dask: 2 chunks on 2 workers" in out and "starting a local" not in out
    code, out, err = cli("run", SPECS / "gru.yaml", "-b", "6000", "--seed", "3", "-o", tmp_path / "gru.npz")
    with np.load(tmp_path / "gru.npz") as a, np.load(tmp_path / "gru_dask.npz") as b:
        _same(dict(a), dict(b))


@pytest.mark.slow
def test_worker_killed_mid_run_loses_no_chunk():
    """The chunks a dead worker held (their inputs were scattered to it) are sent again; the run still gives
    the local run's bits."""
    program = rnncompile.compile(SPECS / "lstm.yaml", dims={"H": 64})
    x = np.random.default_rng(3).standard_normal((16_000, 10, 8)).astype(np.float32)
    kwargs = dict(inputs={"x": x}, seed=3)
    notes = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster) as c:
        victim = next(iter(c.run(os.getpid).values()))

        def kill_after_first_chunk():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(k.startswith("rnncompile-chunk") for k in c.who_has()):
                time.sleep(0.01)
            os.kill(victim, signal.SIGKILL)  # a worker process this test's cluster started

        watcher = threading.Thread(target=kill_after_first_chunk)
        watcher.start()
        got = run_sharded(c, program, chunk=1024, note=notes.append, **kwargs)
        watcher.join()
    assert got.chunks >= 10
    assert got.resubmitted, "the run ended before the worker was killed: give it more work"
    assert any("its worker was lost; sending it again" in n for n in notes)
    _assert_same_run(got.result, rnncompile.run(program, **kwargs))


@pytest.mark.parametrize("args, message", [
    (["--chunk", "100"], "error: --chunk is for --engine dask (add --engine dask, or leave --chunk out)"),
    (["--engine", "dask", "--trace"], "error: --trace records every node of a run for reading; it runs with "
                                      "--engine local"),
])
def test_run_engine_refusals(cli, args, message):
    code, out, err = cli("run", SPECS / "lstm.yaml", *args)
    assert code == 2 and message in err and "starting" not in err


def test_tree_and_sampling_models_are_refused_before_a_cluster_starts(cli, tmp_path):
    code, out, err = cli("run", SPECS / "rvnn.yaml", "--tree", "(S (NP He) (VP wins))", "--engine", "dask")
    assert code == 2 and "a tree model (`fold:`) runs with --engine local" in err
    text = (SPECS / "seq2seq.yaml").read_text()
    assert "feed: previous_output" in text
    sampled = tmp_path / "sampled.yaml"
    sampled.write_text(text.replace("feed: previous_output", "feed: previous_output\n    sample: sample", 1))
    code, out, err = cli("run", sampled, "--engine", "dask")
    assert code == 2 and "samples its tokens from one random stream over the whole batch" in err, err


def _flaky_compiler(folder):
    """A C compiler that fails while the number in `failures` is above 0 (counting it down), then is the
    real one: a worker's passing or lasting fault."""
    budget = folder / "failures"
    script = folder / "flaky-cc"
    script.write_text(f"#!/bin/sh\nn=$(cat {budget})\nif [ $n -gt 0 ]; then echo $((n - 1)) > {budget}; "
                      f"echo 'flaky-cc: simulated failure' >&2; exit 1; fi\nexec cc \"$@\"\n")
    script.chmod(0o755)
    return script, budget


@pytest.mark.slow
def test_failed_chunk_is_retried_then_reported_by_its_chunk(cli, tmp_path):
    script, budget = _flaky_compiler(tmp_path)
    env = {"CC": str(script), "XDG_CACHE_HOME": str(tmp_path / "cache")}  # no cached build: the compiler runs
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None, silence_logs=logging.CRITICAL, env=env) as cluster:
        args = ["run", SPECS / "lstm.yaml", "-b", "800", "--backend", "c", "--engine", "dask", "--chunk", "400",
                "--scheduler", cluster.scheduler_address]
        budget.write_text("1")  # the first build fails, its retry works
        code, out, err = cli(*args, "-o", tmp_path / "dask.npz")
        assert code == 0, err
        assert budget.read_text().strip() == "0"
        want = rnncompile.run(rnncompile.compile(SPECS / "lstm.yaml"), batch=800, backend="c")
        with np.load(tmp_path / "dask.npz") as got:
            _same({k[len("outputs."):]: got[k] for k in got.files if k.startswith("outputs.")}, want.outputs)

        budget.write_text("1000")  # every build fails (H=17: a library not built yet)
        code, out, err = cli(*args, "--dim", "H=17")
    assert code == 1
    assert "error: chunk 1 of 2 (sequences 0..383) failed on 3 tries: the C compiler" in err \
        or "error: chunk 2 of 2 (sequences 384..799) failed on 3 tries: the C compiler" in err, err
    assert "flaky-cc: simulated failure" in err and "Traceback" not in err
    assert 1000 - int(budget.read_text()) >= 3  # tried three times


# ---- sweeps -------------------------------------------------------------------------------------------

def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _local_row(spec, dims, cell, seed, batch=16, backend="numpy"):
    settings = {**dims, "cell": cell}
    program = compile_point(spec.read_text(), str(spec), settings, tuple(dims))
    return output_stats(rnncompile.run(program, batch=batch, seed=seed, backend=backend))


def test_sweep_rows_hold_the_statistics_of_local_runs(cli, client, tmp_path):
    out = tmp_path / "results.csv"
    code, _, err = cli("sweep", CELLS, "--grid", "H=8,24", "--grid", "cell=lstm,gru", "--seeds", "2",
                       "-o", out, "--scheduler", client.scheduler.address, "--plot", tmp_path / "std.png")
    assert code == 0, err
    assert "ran 4 points × 2 seeds; 8 rows" in err
    assert "cell `elman` is not used by the model" in err and "cell `gru` is not used" not in err  # gru is swept
    rows = _rows(out)
    assert [(r["H"], r["cell"], r["seed"]) for r in rows] == [
        (h, c, s) for h in ("8", "24") for c in ("lstm", "gru") for s in ("0", "1")]
    for r in rows:
        want = _local_row(CELLS, {"H": int(r["H"])}, r["cell"], int(r["seed"]))
        assert {k: float(r[k]) for k in want} == want  # the exact floats: repr round-trips
        assert float(r["compile_s"]) > 0 and float(r["run_s"]) > 0
        assert (r["state.c.norm"] == "") == (r["cell"] == "gru")  # a GRU has no cell state
        assert r["backend"] == "numpy" and r["batch"] == "16" and r["steps"] == "10"
    assert (tmp_path / "std.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_parquet_and_run_settings(cli, client, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "results.parquet"
    code, _, err = cli("sweep", SPECS / "lstm.yaml", "--grid", "backend=numpy,c", "--grid", "dtype=float32,float64",
                       "--batch", "5", "-o", out, "--scheduler", client.scheduler.address)
    assert code == 0, err
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 4 and {(r["backend"], r["dtype"]) for r in rows} == {
        (b, d) for b in ("numpy", "c") for d in ("float32", "float64")}
    for r in rows:
        program = rnncompile.compile(SPECS / "lstm.yaml")
        want = output_stats(rnncompile.run(program, batch=5, dtype=r["dtype"], backend=r["backend"]))
        assert {k: r[k] for k in want} == want


def test_a_failed_point_is_reported_by_its_settings_and_the_others_are_kept(cli, client, tmp_path):
    out = tmp_path / "results.csv"
    code, _, err = cli("sweep", SPECS / "lstm.yaml", "--grid", "batch=2,100000000", "-o", out,
                       "--scheduler", client.scheduler.address)
    assert code == 1
    assert "error: 1 of 2 grid points failed (their rows are not in" in err
    assert "  batch=100000000: the run (" in err and "the limit is 1.07e+09" in err and "Traceback" not in err
    assert [r["batch"] for r in _rows(out)] == ["2"]


def test_sweep_resumes_and_skips_finished_points(cli, client, tmp_path):
    out = tmp_path / "results.csv"
    common = ["--grid", "cell=lstm,gru", "-o", out, "--scheduler", client.scheduler.address]
    code, _, err = cli("sweep", CELLS, "--grid", "H=8,16", *common)
    assert code == 0, err
    first = {r["key"]: r for r in _rows(out)}
    assert len(first) == 4
    code, _, err = cli("sweep", CELLS, "--grid", "H=8,16,32", *common, "--seeds", "2")
    assert code == 0, err
    assert "resuming: 4 of 12 rows are already in" in err and "running the other 8 (6 of 6 points)" in err
    rows = _rows(out)
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12
    for r in rows:
        if r["key"] in first:
            assert r == first[r["key"]]  # kept as written, its timings too: not run again
    code, _, err = cli("sweep", CELLS, "--grid", "H=8,16,32", *common, "--seeds", "2")
    assert code == 0 and "nothing to run: all 12 rows are already in" in err
    assert _rows(out) == rows


@pytest.mark.slow
def test_interrupted_sweep_keeps_every_finished_row_and_resumes(client, tmp_path):
    """SIGTERM mid-sweep: the file holds whole rows only (written whole and renamed into place), and the
    next run runs only the rest."""
    out = tmp_path / "results.csv"
    cmd = [sys.executable, "-m", "rnncompile.cli", "sweep", str(CELLS), "--grid", "H=16,32,48,64",
           "--grid", "cell=lstm,gru", "--batch", "1000", "--steps", "30", "--scheduler", client.scheduler.address,
           "-o", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.exists() and len(_rows(out)) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    kept = _rows(out)
    assert 2 <= len(kept) < 8, "the sweep ended before it could be interrupted: give it more work"
    assert all(r["run_s"] and r["y.std"] for r in kept)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"resuming: {len(kept)} of 8 rows are already in" in done.stderr
    rows = _rows(out)
    assert len(rows) == 8 and len({r["key"] for r in rows}) == 8
    by_key = {r["key"]: r for r in rows}
    for r in kept:  # unchanged (a later point may add columns, e.g. an LSTM's `c`, left empty in earlier rows)
        assert {k: by_key[r["key"]][k] for k in r} == r


@pytest.mark.slow
def test_worker_killed_mid_sweep_loses_no_point(cli, tmp_path):
    out = tmp_path / "results.csv"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None, silence_logs=logging.CRITICAL) as cluster:
        with distributed.Client(cluster) as c:  # closed before the sweep's own client starts: two clients in one
            victim = next(iter(c.run(os.getpid).values()))  # process can trip over each other's event loops
        killed = []

        def kill_after_first_row():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (out.exists() and len(_rows(out)) >= 1):
                time.sleep(0.02)
            os.kill(victim, signal.SIGKILL)  # a worker process this test's cluster started
            killed.append(len(_rows(out)))

        watcher = threading.Thread(target=kill_after_first_row)
        watcher.start()
        code, _, err = cli("sweep", CELLS, "--grid", "H=16,32,48,64", "--grid", "cell=lstm,gru", "--batch", "3000",
                           "--steps", "60", "-o", out, "--scheduler", cluster.scheduler_address)  # work enough to
        # outlast the watcher even on a loaded machine
        watcher.join()
    assert code == 0, err
    assert killed and killed[0] < 8, "the sweep ended before the worker was killed: give it more work"
    rows = _rows(out)
    assert sorted((r["H"], r["cell"]) for r in rows) == sorted(
        (h, cell) for h in ("16", "32", "48", "64") for cell in ("lstm", "gru"))  # every point, once
    r = next(r for r in rows if r["H"] == "48" and r["cell"] == "gru")
    program = compile_point(CELLS.read_text(), str(CELLS), {"H": 48, "cell": "gru"}, ("H",))
    assert float(r["y.absmax"]) == output_stats(rnncompile.run(program, batch=3000, steps=60))["y.absmax"]


@pytest.mark.parametrize("grid, message", [
    ("H32", "error: --grid H32: expected KEY=VALUE,VALUE,...\n    --grid H32\n           ^^^\n"
            "    hint: e.g. --grid H=32,64,128 or --grid cell=lstm,gru"),
    ("Hx=8,16", "error: --grid Hx=8,16: unknown grid key `Hx`: not a dim of {spec} (I, H, T), `cell`, or a run "
                "setting (backend, dtype, batch, steps)\n    --grid Hx=8,16\n           ^^\n    hint: did you mean `H`?"),
    ("H=8,,16", "error: --grid H=8,,16: an empty value\n    --grid H=8,,16\n               ^\n"
                "    hint: separate values with single commas, e.g. --grid H=32,64,128"),
    ("H=8,sixteen", "error: --grid H=8,sixteen: `sixteen` is not a whole number\n    --grid H=8,sixteen\n"
                    "               ^^^^^^^\n    hint: H takes sizes, e.g. --grid H=32,64,128"),
    ("H=8,8", "error: --grid H=8,8: `8` is given twice"),
    ("H=0", "error: --grid H=0: H = 0: sizes are at least 1"),
    ("cell=lstm,gur", "error: --grid cell=lstm,gur: {spec} defines no cell `gur`\n    --grid cell=lstm,gur\n"
                      "                     ^^^\n    hint: did you mean `gru`?"),
    ("backend=numpi", "hint: did you mean `numpy`?"),
    ("dtype=float16", "error: --grid dtype=float16: unknown dtype `float16`"),
    ("seed=1,2", "hint: give --seeds N: every point runs seeds 0..N-1"),
])
def test_bad_grid_gets_a_located_error(cli, tmp_path, grid, message):
    code, out, err = cli("sweep", CELLS, "--grid", grid, "-o", tmp_path / "r.csv")
    assert code == 2
    assert message.format(spec=CELLS) in err, err
    assert "Traceback" not in err and not (tmp_path / "r.csv").exists()


def test_grid_key_twice_and_a_cell_for_a_model_without_scan(cli, tmp_path):
    code, _, err = cli("sweep", CELLS, "--grid", "H=8", "--grid", "H=16", "-o", tmp_path / "r.csv")
    assert code == 2 and "`H` is swept twice" in err and "hint: give all its values in one argument: --grid H=8,..." in err
    code, _, err = cli("sweep", SPECS / "seq2seq.yaml", "--grid", "cell=x", "-o", tmp_path / "r.csv")
    assert code == 2 and "`cell` picks the cell that `scan:` runs" in err


def test_sweep_help_names_training_and_fixed_point_sweeps(cli):
    code, out, _ = cli("sweep", "--help")
    text = " ".join(out.split())
    assert code == 0 and "With --train every point trains instead" in text and "--val-split" in text
    assert "quant (fixed-point formats, q7,q15,q3.12, with --backend fixed)" in text  # tests/test_dask_train.py


def test_help_loads_no_dask():
    code = ("import contextlib, io, sys\nfrom rnncompile.cli import main\n"
            "for argv in (['--help'], ['run', '--help'], ['sweep', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try:\n            main(argv)\n        except SystemExit:\n            pass\n"
            "print([m for m in ('dask', 'distributed', 'pyarrow') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
