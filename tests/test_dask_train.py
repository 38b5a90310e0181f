"""Training sweeps, fixed-point sweeps and chunked output on Dask (sweep_train.py, sweep_quant.py,
run_store.py) on a LocalCluster of two worker processes: every row is the local training run of its
point, bit for bit; fixed-point rows give the quantizer's own accuracy report; chunked outputs hold a
local run's arrays and are never half written."""
from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest

import rnncompile
from conftest import ROOT, SPECS

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning")

from rnncompile.autodiff.train import dataset_batches, text_windows, train  # noqa: E402

CORPUS = ROOT / "examples" / "train" / "corpus.txt"
CELLS = ROOT / "examples" / "sweep" / "cells.yaml"
PREDICTOR = SPECS / "char_predictor.yaml"


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as c:
        yield c


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- training sweeps --------------------------------------------------------------------------------

def test_training_sweep_rows_are_the_local_training_runs(cli, client, tmp_path):
    out, png = tmp_path / "train.csv", tmp_path / "train.png"
    code, _, err = cli("sweep", PREDICTOR, "--train", CORPUS, "--grid", "H=4,8", "--grid", "lr=0.02,0.1",
                       "--grid", "epochs=2", "--grid", "bptt=20", "--dim", "E=4", "-o", out, "--plot", png,
                       "--scheduler", client.scheduler.address)
    assert code == 0, err
    assert "ran 4 points × 1 seed; 4 rows" in err and "loss curves of 4 points" in err
    rows = _rows(out)
    assert [(r["H"], r["lr"]) for r in rows] == [(h, lr) for h in ("4", "8") for lr in ("0.02", "0.1")]
    text = CORPUS.read_text()
    for r in rows:  # the same training in this process, written out as `rnncompile train` does it
        program = rnncompile.compile(PREDICTOR, dims={"H": int(r["H"]), "E": 4})
        params = rnncompile.make_params(program, 0, None, "float32")
        windows = text_windows(program, text, 16, 20)
        history = train(program, params, lambda epoch: windows, 2, float(r["lr"]), "adam", 5.0, True, "xent")
        assert json.loads(r["loss_per_epoch"]) == history.epochs  # exact: repr round-trips
        assert float(r["train_loss"]) == history.epochs[-1] and int(r["tokens"]) == history.tokens
        assert r["val_loss"] == "" and float(r["tokens_per_s"]) > 0 and float(r["train_s"]) > 0
        assert r["optimizer"] == "adam" and r["clip"] == "5.0" and r["loss"] == "xent" and r["steps"] == "20"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_training_row_is_what_rnncompile_train_prints(cli, client, tmp_path):
    out = tmp_path / "train.csv"
    code, _, err = cli("sweep", PREDICTOR, "--train", CORPUS, "--grid", "optimizer=sgd,adam", "--grid", "epochs=2",
                       "--grid", "clip=1", "--dim", "H=6", "--dim", "E=4", "--seeds", "2", "--batch", "8", "-o", out,
                       "--scheduler", client.scheduler.address)
    assert code == 0, err
    row = next(r for r in _rows(out) if r["optimizer"] == "sgd" and r["seed"] == "1")
    code, stdout, err = cli("train", PREDICTOR, "--text", CORPUS, "--optimizer", "sgd", "--epochs", "2", "--clip", "1",
                            "--dim", "H=6", "--dim", "E=4", "--seed", "1", "--batch", "8", "--save-weights",
                            tmp_path / "w.npz")
    assert code == 0, err
    first, last = json.loads(row["loss_per_epoch"])
    assert f"loss {first:.4f} -> {last:.4f}" in stdout and f"{int(row['tokens']):,} tokens in" in stdout


def test_dataset_training_with_a_held_out_split(cli, client, tmp_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 6, 8)).astype(np.float32)
    target = np.tanh(x[..., :4].repeat(4, axis=-1)).astype(np.float32)  # [40, 6, H=16]
    np.savez(tmp_path / "set.npz", x=x, target=target)
    out = tmp_path / "r.parquet"
    pq = pytest.importorskip("pyarrow.parquet")
    code, _, err = cli("sweep", CELLS, "--train", tmp_path / "set.npz", "--val-split", "0.25", "--grid",
                       "cell=elman,gru", "--grid", "epochs=2", "--batch", "10", "-o", out, "--plot",
                       tmp_path / "v.png", "--scheduler", client.scheduler.address)
    assert code == 0, err
    assert "val_loss against cell" in err
    rows = pq.read_table(out).to_pylist()
    assert [r["cell"] for r in rows] == ["elman", "gru"]
    for r in rows:
        program = rnncompile.compile_text(CELLS.read_text().replace("scan: lstm", f"scan: {r['cell']}"), str(CELLS))
        params = rnncompile.make_params(program, 0, None, "float32")
        data, order = {"x": x[:30], "target": target[:30]}, np.random.default_rng(0)  # the first 75% train
        history = train(program, params, lambda e: dataset_batches(data, program, 10, order), 2, 0.01, "adam", 5.0,
                        False, "mse")
        assert r["loss_per_epoch"] == history.epochs and r["loss"] == "mse"
        y = rnncompile.run(program, inputs={"x": x[30:]}, params=params).outputs["y"]
        want = np.mean((y.astype(np.float64) - target[30:]) ** 2)  # the mean squared error per step, by hand
        assert r["val_loss"] == pytest.approx(want, rel=1e-5)
        assert r["val_split"] == 0.25 and r["steps"] == 6


@pytest.mark.parametrize("args, message", [
    (["--grid", "lr=0.1"], "error: --grid lr=0.1: `lr` is a training setting\n    --grid lr=0.1\n           ^^\n"
                           "    hint: give the training data too: --train DATA"),
    (["--train", CORPUS, "--grid", "optimizer=adam,adamx"], "error: --grid optimizer=adam,adamx: unknown optimizer "
                                                             "`adamx`; use one of: sgd, adam"),
    (["--train", CORPUS, "--grid", "lr=0.1,-2"], "error: --grid lr=0.1,-2: lr = -2: give a positive number"),
    (["--train", CORPUS, "--grid", "epochs=1.5"], "error: --grid epochs=1.5: `1.5` is not a whole number"),
    (["--train", CORPUS, "--grid", "quant=q7"], "a training sweep trains float weights"),
    (["--grid", "H=8", "--val-split", "0.1"], "error: --val-split holds out part of the training data: give --train"),
])
def test_bad_training_sweeps_get_a_located_error(cli, tmp_path, args, message):
    code, _, err = cli("sweep", PREDICTOR, *args, "-o", tmp_path / "r.csv")
    assert code == 2, err
    assert message in err and "Traceback" not in err and not (tmp_path / "r.csv").exists()


def test_training_data_the_spec_cannot_read(cli, tmp_path):
    code, _, err = cli("sweep", CELLS, "--train", CORPUS, "--grid", "H=8", "-o", tmp_path / "r.csv")
    assert code == 2 and "training on a text needs a spec with a vocabulary" in err
    code, _, err = cli("sweep", CELLS, "--train", tmp_path / "nope.txt", "--grid", "H=8", "-o", tmp_path / "r.csv")
    assert code == 1 and f"error: {tmp_path / 'nope.txt'}: no such file" in err


# ---- fixed-point formats as grid points -------------------------------------------------------------

def test_quant_sweep_rows_are_the_quantizers_accuracy_report(cli, client, tmp_path):
    from rnncompile import quant
    from rnncompile.quant.calibrate import accuracy

    out = tmp_path / "q.csv"
    code, _, err = cli("sweep", PREDICTOR, "--grid", "quant=q7,q3.12", "--grid", "backend=fixed,fixed_c",
                       "--dim", "H=8", "--batch", "3", "--steps", "5", "-o", out, "--plot", tmp_path / "q.png",
                       "--scheduler", client.scheduler.address)
    assert code == 0, err
    assert "p.max_err against quant" in err
    rows = _rows(out)
    assert [(r["quant"], r["backend"]) for r in rows] == [(q, b) for q in ("q7", "q3.12") for b in ("fixed", "fixed_c")]
    program = rnncompile.compile(PREDICTOR, dims={"H": 8})
    inputs = rnncompile.api.seeded_inputs(program, 3, 5, 0, "float64")
    params = rnncompile.make_params(program, 0, None, "float64")
    for r in rows:
        (want,) = accuracy(program, quant.load(r["quant"]), params, inputs)  # `rnncompile quantize`'s report
        assert float(r["p.max_err"]) == want.max_error and float(r["p.mean_err"]) == want.mean_error
        assert float(r["p.top1"]) == want.top1 and r["dtype"] == "float64"
    q7, q312 = (float(rows[i]["p.mean_err"]) for i in (0, 2))
    assert q312 < q7  # 12 fraction bits against 7


@pytest.mark.parametrize("args, message", [
    (["--grid", "quant=q7"], "error: --grid quant=q7: fixed-point formats run on the fixed-point backends (fixed, "
                             "fixed_c), not numpy; add --backend fixed"),
    (["--grid", "quant=q7,x3", "--backend", "fixed"], "error: --grid quant=q7,x3: `x3` is not a fixed-point format"),
    (["--grid", "quant=q7,q7", "--backend", "fixed"], "`q7` is given twice"),
])
def test_bad_quant_grid(cli, tmp_path, args, message):
    code, _, err = cli("sweep", PREDICTOR, *args, "-o", tmp_path / "r.csv")
    assert code == 2 and message in err, err


# ---- chunked output ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["out.zarr", "outdir/"])
def test_chunked_output_holds_the_local_runs_arrays(cli, client, tmp_path, name):
    if name.endswith(".zarr"):
        zarr = pytest.importorskip("zarr")
    address = client.scheduler.address
    common = ["-b", "8000", "--seed", "2", "--dim", "H=12"]
    code, _, err = cli("run", SPECS / "gru.yaml", *common, "-o", tmp_path / "local.npz")
    assert code == 0, err
    target = tmp_path / name.rstrip("/")
    code, out, err = cli("run", SPECS / "gru.yaml", *common, "--engine", "dask", "--chunk", "100", "-o",
                         str(target) + name[len(name.rstrip("/")):], "--scheduler", address)
    assert code == 0, err
    assert "dask: 2 chunks on 2 workers" in out and f"outputs written to {target}" in out
    with np.load(tmp_path / "local.npz") as local:
        want = dict(local)
    if name.endswith(".zarr"):
        group = zarr.open_group(target, mode="r")
        got = {k: group[k][:] for k in group.array_keys()}
        assert group["outputs.y"].chunks[0] == 3840  # the Dask chunks start on Zarr chunk edges
    else:
        got = {p.name[:-4]: np.load(p) for p in target.glob("*.npy")}
        assert json.loads((target / "rnncompile-run.json").read_text())["chunks"] == [[0, 3840], [3840, 8000]]
    assert sorted(got) == sorted(want) == ["outputs.y", "state.h"]
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    code, _, err = cli("run", SPECS / "gru.yaml", *common, "--seed", "3", "--engine", "dask", "-o", target,
                       "--scheduler", address)  # an earlier output of a run is replaced whole
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_a_failed_chunked_run_writes_nothing_and_keeps_the_earlier_output(cli, client, tmp_path):
    program = rnncompile.compile(PREDICTOR, dims={"H": 8})
    ids = np.random.default_rng(0).integers(0, len(program.vocab.tokens), (1200, 6))
    np.savez(tmp_path / "good.npz", ch=ids)
    ids[1100, 3] = 999  # a token id past the vocabulary, in the last chunk
    np.savez(tmp_path / "bad.npz", ch=ids)
    target = tmp_path / "out"
    args = ["run", PREDICTOR, "--dim", "H=8", "--engine", "dask", "--chunk", "192", "--backend", "python",
            "-o", f"{target}/", "--scheduler", client.scheduler.address]
    code, _, err = cli(*args, "--input", tmp_path / "bad.npz")
    assert code == 1 and "999" in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "good.npz"]  # nothing, not even a temporary
    code, _, err = cli(*args, "--input", tmp_path / "good.npz")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    code, _, err = cli(*args, "--input", tmp_path / "bad.npz")
    assert code == 1
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "good.npz", "out"]


def test_chunked_output_refusals(cli, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    (tmp_path / "file").write_text("x")
    cases = [
        (["-o", tmp_path / "out.zarr"], "chunked output (.zarr or a folder of .npy) is written by the Dask workers: "
                                        "add --engine dask"),
        (["-o", tmp_path / "mine", "--engine", "dask"], "the folder exists and is not the output of a run"),
        (["-o", f"{tmp_path / 'file'}/", "--engine", "dask"], "a file of that name exists"),
    ]
    for args, message in cases:
        code, _, err = cli("run", SPECS / "lstm.yaml", *args)
        assert code == 2 and message in err and "starting" not in err, err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    code, _, err = cli("run", SPECS / "seq2seq.yaml", "--engine", "dask", "-o", tmp_path / "s.zarr")
    assert code == 2 and "stops at its end token" in err and "starting" not in err, err


def test_a_failed_training_point_is_reported_by_its_settings(cli, client, tmp_path):
    np.savez(tmp_path / "set.npz", x=np.zeros((4, 3, 8), np.float32), target=np.zeros((4, 3, 16), np.float32))
    out = tmp_path / "r.csv"
    code, _, err = cli("sweep", CELLS, "--train", tmp_path / "set.npz", "--grid", "bptt=5", "--grid", "epochs=1",
                       "-o", out, "--plot", tmp_path / "p.png", "--scheduler", client.scheduler.address)
    assert code == 1 and "error: 1 of 1 grid points failed" in err
    assert "  bptt=5 epochs=1: bptt cuts a text into windows; a dataset's sequences are trained whole" in err
    assert "Traceback" not in err and not (tmp_path / "p.png").exists()


@pytest.mark.slow
def test_worker_killed_mid_chunked_run_loses_no_rows(tmp_path):
    """A dead worker's chunks are sent again and written again: the output is still the local run's."""
    import os
    import signal
    import threading
    import time

    from rnncompile.distributed import run_sharded

    zarr = pytest.importorskip("zarr")
    program = rnncompile.compile(SPECS / "lstm.yaml", dims={"H": 64})
    x = np.random.default_rng(3).standard_normal((16_000, 10, 8)).astype(np.float32)
    target = tmp_path / "out.zarr"
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
        got = run_sharded(c, program, inputs={"x": x}, seed=3, chunk=1024, store=str(target))
        watcher.join()
    assert got.result is None and got.store == str(target) and got.chunks >= 10
    assert got.resubmitted, "the run ended before the worker was killed: give it more work"
    want = rnncompile.run(program, inputs={"x": x}, seed=3)
    group = zarr.open_group(target, mode="r")
    np.testing.assert_array_equal(group["outputs.y"][:], want.outputs["y"])
    np.testing.assert_array_equal(group["state.c"][:], want.final_state["c"])
