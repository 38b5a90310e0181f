"""The training loop (rnncompile.autodiff.train, optim, datasets, checkpoint) and `rnncompile train`'s options.

Every optimizer and schedule against torch.optim (float64, to 1e-12); a resumed run equal bit for bit to the
uninterrupted one; early stopping keeping the best epoch's weights; each data kind's first loss against a
loss computed in NumPy from a plain run; located errors for bad data; the weights loading into run/complete.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import rnncompile
from rnncompile.autodiff import checkpoint as ckpt
from rnncompile.autodiff.optim import OPTIMIZERS, SCHEDULES, Optimizer, Schedule, clip_by_norm, clip_by_value
from rnncompile.autodiff.train import train

from conftest import ROOT, SPECS

CORPUS = ROOT / "examples" / "train" / "corpus.txt"
TREEBANK = ROOT / "examples" / "trees" / "treebank.txt"
TREE_SPEC = ROOT / "examples" / "trees" / "spec.yaml"
TEACHER_FORCED = ROOT / "examples" / "seq2seq" / "teacher_forcing.yaml"

OPTIMIZER_CASES = {  # name -> (our kind, our keywords, torch class name, torch keywords)
    "sgd": ("sgd", {}, "SGD", {"momentum": 0.9}),
    "sgd-plain": ("sgd", {"momentum": 0.0}, "SGD", {}),
    "sgd-nesterov-wd": ("sgd", {"nesterov": True, "weight_decay": 0.05}, "SGD",
                        {"momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    "adam": ("adam", {}, "Adam", {"betas": (0.9, 0.999), "eps": 1e-8}),
    "adam-wd": ("adam", {"weight_decay": 0.1}, "Adam", {"weight_decay": 0.1}),
    "adamw": ("adamw", {}, "AdamW", {}),  # torch's default weight decay 0.01 is ours too
    "adamw-wd": ("adamw", {"weight_decay": 0.3}, "AdamW", {"weight_decay": 0.3}),
}
SCHEDULE_CASES = {  # name -> our Schedule keywords (lr 0.05, 9 steps)
    "constant": {"kind": "constant"},
    "step": {"kind": "step", "step_size": 3, "gamma": 0.5},
    "cosine": {"kind": "cosine", "min_lr": 0.001},
    "warmup-constant": {"kind": "constant", "warmup": 3},
    "warmup-step": {"kind": "step", "step_size": 2, "gamma": 0.7, "warmup": 2},
    "warmup-cosine": {"kind": "cosine", "min_lr": 0.002, "warmup": 4},
}
STEPS, LR = 9, 0.05


def _torch_scheduler(torch, opt, s: dict):
    sched = torch.optim.lr_scheduler
    warmup = s.get("warmup", 0)
    if s["kind"] == "step":
        main = sched.StepLR(opt, step_size=s["step_size"], gamma=s["gamma"])
    elif s["kind"] == "cosine":
        main = sched.CosineAnnealingLR(opt, T_max=STEPS - warmup, eta_min=s["min_lr"])
    else:
        main = None
    if not warmup:
        return main
    ramp = sched.LinearLR(opt, start_factor=1 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    return ramp if main is None else sched.SequentialLR(opt, [ramp, main], milestones=[warmup])


@pytest.mark.torch
@pytest.mark.parametrize("schedule", list(SCHEDULE_CASES))
@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_optimizers_and_schedules_match_torch(case, schedule, request):
    pytest.importorskip("torch", reason="compares against torch.optim")
    torch = request.getfixturevalue("torch_float64")
    kind, ours_kw, torch_name, torch_kw = OPTIMIZER_CASES[case]
    rng = np.random.default_rng(0)
    start = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in start.items()} for _ in range(STEPS)]
    ours = {k: v.copy() for k, v in start.items()}
    opt = Optimizer(kind, Schedule(lr=LR, total=STEPS, **SCHEDULE_CASES[schedule]), **ours_kw)
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    topt = getattr(torch.optim, torch_name)(list(theirs.values()), lr=LR, **torch_kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's deprecation notes
        tsched = _torch_scheduler(torch, topt, SCHEDULE_CASES[schedule])
        for g in grads:
            assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
            opt.step(ours, g)
            for k, t in theirs.items():
                t.grad = torch.tensor(g[k])
            topt.step()
            if tsched is not None:
                tsched.step()
    for k in start:
        np.testing.assert_allclose(ours[k], theirs[k].detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.torch
def test_clipping_by_value_then_norm_matches_torch(request):
    pytest.importorskip("torch", reason="compares against torch's clipping")
    torch = request.getfixturevalue("torch_float64")
    rng = np.random.default_rng(1)
    grads = {"a": rng.standard_normal((3, 4)) * 10, "b": rng.standard_normal(5)}
    tensors = [torch.zeros(v.shape, requires_grad=True) for v in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    clip_by_value(grads, 4.0)
    norm = clip_by_norm(grads, 1.5)
    torch.nn.utils.clip_grad_value_(tensors, 4.0)
    tnorm = torch.nn.utils.clip_grad_norm_(tensors, 1.5)
    assert norm == pytest.approx(float(tnorm), rel=1e-12)
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_schedules_by_hand():
    cos = Schedule("cosine", 0.1, total=5, min_lr=0.0)
    assert [cos(t) for t in range(5)] == pytest.approx([0.1 * (1 + math.cos(math.pi * t / 5)) / 2 for t in range(5)])
    warm = Schedule("step", 0.1, total=10, step_size=2, gamma=0.5, warmup=3)
    assert [warm(t) for t in range(7)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.05, 0.05])


def test_bad_optimizer_settings_are_refused():
    with pytest.raises(rnncompile.UsageError, match="--nesterov is a form of SGD's momentum"):
        Optimizer("adam", 0.1, nesterov=True)
    with pytest.raises(rnncompile.UsageError, match="unknown optimizer `rmsprop`; use one of: sgd, adam, adamw"):
        Optimizer("rmsprop", 0.1)
    with pytest.raises(rnncompile.UsageError, match="--min-lr 0.5 is above --lr 0.1"):
        Schedule("cosine", 0.1, total=3, min_lr=0.5)


def test_the_clis_choices_are_the_modules():
    import click

    from rnncompile.cli import cli

    opts = {o.name: o for o in cli.commands["train"].params}
    assert tuple(opts["optimizer"].type.choices) == OPTIMIZERS
    assert tuple(opts["schedule"].type.choices) == SCHEDULES
    assert not isinstance(opts["loss"].type, click.Choice)  # whatever losses.LOSSES lists, checked there


def test_an_unknown_loss_lists_the_losses(cli, tmp_path):
    from rnncompile.autodiff.losses import LOSSES

    code, _, err = cli("train", SPECS / "char_predictor.yaml", "--data", CORPUS, "--loss", "hinge",
                       "--save-weights", tmp_path / "w.npz")
    assert code == 2 and f"unknown loss `hinge`; use one of: {', '.join(LOSSES)}" in err


# -- resuming, checkpoints, early stopping -------------------------------------------------------------------
def _dataset(tmp_path, count=12, seed=0):
    rng = np.random.default_rng(seed)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.standard_normal((count, 5, 3)), target=rng.uniform(-0.5, 0.5, (count, 5, 4)),
             lengths=rng.integers(2, 6, count))
    return path


LSTM_SMALL = ("--dim", "I=3", "--dim", "H=4")


@pytest.mark.parametrize("options", [
    ("--optimizer", "adamw", "--schedule", "cosine", "--warmup", "2", "--clip-value", "0.5"),
    ("--optimizer", "sgd", "--nesterov", "--weight-decay", "0.01", "--schedule", "step", "--step-size", "3"),
])
def test_four_epochs_equal_two_and_a_resume_bit_for_bit(cli, tmp_path, options):
    data = _dataset(tmp_path)
    common = ("train", SPECS / "lstm.yaml", *LSTM_SMALL, "--data", data, "--batch", 5, "--val-split", 0.25,
              "--lr", 0.05, "--no-progress", *options)
    code, whole, err = cli(*common, "--epochs", 4, "--checkpoint", tmp_path / "ck", "--save-weights",
                           tmp_path / "w4.npz")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [f"epoch-000{i}.npz" for i in (1, 2, 3, 4)]
    code, resumed, err = cli(*common, "--epochs", 4, "--resume", tmp_path / "ck" / "epoch-0002.npz",
                             "--save-weights", tmp_path / "w22.npz")
    assert code == 0, err
    assert "resuming from" in resumed and "after epoch 2" in resumed
    a, b = np.load(tmp_path / "w4.npz"), np.load(tmp_path / "w22.npz")
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    epochs = [line for line in whole.splitlines() if line.startswith("epoch ")]
    assert [line for line in resumed.splitlines() if line.startswith("epoch ")] == epochs[2:]
    # the 4-epoch run's checkpoint holds what the resumed run ends with, optimizer state included
    last = ckpt.load(tmp_path / "ck")
    assert last["path"].name == "epoch-0004.npz" and last["meta"]["epoch"] == 4
    assert all(np.array_equal(last["params"][k], b[k]) for k in b)
    assert int(last["optimizer"]["t"]) == 4 * 2  # 9 training sequences in batches of 5


def test_a_two_epoch_run_resumed_for_two_more_is_the_four_epoch_run(tmp_path):
    """The text kind (no shuffling, truncated BPTT), through the API: epochs=2 then resume with epochs=4."""
    text = CORPUS.read_text()
    common = dict(text=text, bptt=20, batch=8, dims={"H": 8, "E": 4}, val_split=0.1, lr=0.02)
    whole = rnncompile.train(SPECS / "char_predictor.yaml", epochs=4, **common)
    rnncompile.train(SPECS / "char_predictor.yaml", epochs=2, checkpoint=tmp_path / "ck", **common)
    again = rnncompile.train(SPECS / "char_predictor.yaml", epochs=4, resume=tmp_path / "ck", **common)
    assert all(np.array_equal(whole.params[k], again.params[k]) for k in whole.params)
    assert again.history.epochs == whole.history.epochs and again.history.validation == whole.history.validation


def test_early_stopping_keeps_the_best_epochs_weights(tmp_path):
    """The held-out sequences want the opposite of the training ones: the validation loss is best after the
    first epoch and rises after it, so patience 2 stops after epoch 3 with epoch 1's weights."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 4, 3))
    target = np.where(np.arange(10)[:, None, None] < 8, 0.6, -0.6) * np.ones((10, 4, 4))
    lines = []
    params, history = rnncompile.train(SPECS / "lstm.yaml", {"x": x, "target": target}, epochs=20, batch=4,
                                       val_split=0.2, lr=0.05, patience=2, dims={"I": 3, "H": 4},
                                       checkpoint=tmp_path / "ck", echo=lines.append)
    assert history.stopped_early and history.best_epoch == 1 and len(history.epochs) == 3
    assert history.validation[1] > history.validation[0] and history.validation[2] > history.validation[0]
    first = ckpt.load(tmp_path / "ck" / "epoch-0001.npz")["params"]
    assert all(np.array_equal(params[k], first[k]) for k in params)
    assert lines[-1].startswith("early stop: no better validation loss in 2 epochs; keeping epoch 1's weights")


def test_the_progress_bar_shows_loss_validation_and_tokens_per_second():
    class Bar:
        def __init__(self):
            self.ticks, self.shown = 0, []

        def update(self, n):
            self.ticks += n

        def set_postfix(self, shown=None, refresh=True, **kw):
            self.shown.append(dict(shown or {}, **kw))

    from rnncompile.autodiff import datasets

    program = rnncompile.compile(SPECS / "char_predictor.yaml", dims={"H": 8, "E": 4})
    data = datasets.text_set(program, CORPUS.read_text(), 8, 25, True, 0.1)
    bar = Bar()
    params = rnncompile.make_params(program)
    train(program, params, lambda epoch: data.epoch(None), 2, 0.01, "adam", progress=bar,
          validation=data.validation, carry=True)
    assert bar.ticks == 2 * data.count
    assert {"epoch", "loss", "tok_s"} <= set(bar.shown[0])
    assert "val" in bar.shown[-1] and any("val" in s and "tok_s" in s for s in bar.shown)  # epoch 2 shows epoch 1's


def test_the_loss_plot(cli, tmp_path):
    plot = tmp_path / "plots" / "loss.png"
    code, out, err = cli("train", SPECS / "lstm.yaml", *LSTM_SMALL, "--data", _dataset(tmp_path), "--epochs", 3,
                         "--val-split", 0.25, "--plot", plot, "--save-weights", tmp_path / "w.npz", "--no-progress")
    assert code == 0, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    assert f"loss plot written to {plot}" in out


# -- the data kinds ------------------------------------------------------------------------------------------
def test_a_tree_bank_trains_on_the_root_labels(cli, tmp_path):
    """One batch of all twelve trees: the first epoch's loss is the loss before any update, which a plain run
    and NumPy give: the mean over trees of -log p[root label]."""
    program = rnncompile.compile(TREE_SPEC)
    trees = rnncompile.read_trees(TREEBANK)
    p = rnncompile.run(program, trees=trees).outputs["p"]
    labels = np.asarray([int(t.labels[t.root]) for t in trees])
    expected = -np.log(p[np.arange(len(trees)), labels]).mean()
    code, out, err = cli("train", TREE_SPEC, "--data", TREEBANK, "--batch", 12, "--epochs", 25, "--lr", 0.05,
                         "--save-weights", tmp_path / "w.npz", "--no-progress")
    assert code == 0, err
    losses = [float(line.split()[3]) for line in out.splitlines() if line.startswith("epoch ")]
    assert "12 trees (86 nodes) in batches of 12, targets the root labels" in out and "per tree" in out
    assert losses[0] == pytest.approx(expected, abs=5e-5)  # printed to 4 decimals
    assert losses[-1] < 0.5 * losses[0]
    code, out, err = cli("run", TREE_SPEC, "--trees", TREEBANK, "--weights", tmp_path / "w.npz")
    assert code == 0, err


def test_a_tree_bank_trains_on_every_nodes_label():
    program = rnncompile.compile(SPECS / "rvnn.yaml")
    trees = ["(3 (2 good) (1 (0 not) (4 fun)))", "(0 (1 awful) (2 film))"]
    result = rnncompile.run(program, trees=trees, dtype="float64")
    labels = np.asarray([3, 2, 1, 0, 4, 0, 1, 2])  # every node, in preorder, tree after tree
    y = result.outputs["y"]
    expected = -np.log(y[np.arange(len(labels)), labels]).mean()  # the mean per node
    _, history = rnncompile.train(program, trees, epochs=1, batch=2, dtype="float64")
    assert history.epochs[0] == pytest.approx(expected, rel=1e-9)
    assert history.unit == "node" and history.tokens == 8


def test_tsv_pairs_train_an_encoder_decoder_by_teacher_forcing(tmp_path):
    from rnncompile.autodiff.datasets import pair_arrays

    program = rnncompile.compile(TEACHER_FORCED)
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("# source<TAB>target\none two three\tthree two one\n\nfour\tfour five\n")
    arrays, note = pair_arrays(program, [("one two three", "three two one", "a"), ("four", "four five", "b")])
    ids = {t: i for i, t in enumerate(program.vocab.tokens)}
    end = ids["</s>"]
    np.testing.assert_array_equal(arrays["src"], [[ids["one"], ids["two"], ids["three"], 0],
                                                   [ids["four"], 0, 0, 0]])  # one time axis: padded alike
    np.testing.assert_array_equal(arrays["tgt"], [[ids["three"], ids["two"], ids["one"], end],
                                                   [ids["four"], ids["five"], end, 0]])
    np.testing.assert_array_equal(arrays["lengths"]["src"], [3, 1])
    np.testing.assert_array_equal(arrays["lengths"]["tgt"], [4, 3])
    # the first loss (before any update) against a plain teacher-forced run and NumPy
    run = rnncompile.run(program, inputs={"src": arrays["src"], "tgt": arrays["tgt"]}, lengths=arrays["lengths"],
                         dtype="float64")
    p, tgt = run.outputs["p"], arrays["tgt"]
    real = np.arange(4)[None] < arrays["lengths"]["tgt"][:, None]
    with np.errstate(divide="ignore"):  # padded steps: whatever the run put there
        each = -np.log(np.take_along_axis(p, tgt[..., None], axis=-1)[..., 0])
    expected = each[real].sum() / real.sum()
    _, history = rnncompile.train(program, tsv, epochs=3, batch=2, dtype="float64", lr=0.05)
    assert history.epochs[0] == pytest.approx(expected, rel=1e-9)
    assert history.epochs[-1] < history.epochs[0]


def test_pairs_train_attention_and_the_weights_run(cli, tmp_path):
    tsv = tmp_path / "copy.tsv"
    tsv.write_text("".join(f"{s}\t{s}\n" for s in ["one two", "three four five", "six", "seven eight nine one",
                                                   "two two", "five four"]))
    spec = SPECS / "attention_bahdanau.yaml"
    code, out, err = cli("train", spec, "--data", tsv, "--epochs", 2, "--batch", 3, "--val-split", 0.34,
                         "--save-weights", tmp_path / "w.npz", "--no-progress")
    assert code == 0, err
    assert "4 pairs in batches of 3; 2 held out" in out and "val " in out
    code, out, err = cli("run", spec, "--weights", tmp_path / "w.npz")
    assert code == 0, err


def test_weights_from_train_load_into_run_and_complete(cli, tmp_path):
    weights = tmp_path / "w.npz"
    code, out, err = cli("train", SPECS / "char_predictor.yaml", "--data", CORPUS, "--epochs", 1, "--bptt", 25,
                         "--save-weights", weights, "--no-progress")
    assert code == 0, err
    code, out, err = cli("complete", SPECS / "char_predictor.yaml", "--weights", weights, "--prompt", "the ",
                         "--greedy", "-n", 5)
    assert code == 0 and out.startswith("the "), err
    code, out, err = cli("run", SPECS / "char_predictor.yaml", "--weights", weights)
    assert code == 0, err
    program = rnncompile.compile(SPECS / "char_predictor.yaml")
    trained = rnncompile.run(program, weights=weights, seed=1).outputs["p"]
    seeded = rnncompile.run(program, seed=1).outputs["p"]
    assert np.isfinite(trained).all() and not np.allclose(trained, seeded)
    code, out, err = cli("export", SPECS / "char_predictor.yaml", "--backend", "c", "--weights", weights,
                         "-o", tmp_path / "model.c")
    assert code == 0 and (tmp_path / "model.c").stat().st_size > 0, err


def test_the_api_and_the_cli_train_the_same_weights(cli, tmp_path):
    data = _dataset(tmp_path)
    code, _, err = cli("train", SPECS / "lstm.yaml", *LSTM_SMALL, "--input", data, "--epochs", 2, "--batch", 4,
                       "--save-weights", tmp_path / "w.npz", "--no-progress")
    assert code == 0, err
    params, history = rnncompile.train(SPECS / "lstm.yaml", data, epochs=2, batch=4, dims={"I": 3, "H": 4})
    saved = np.load(tmp_path / "w.npz")
    assert set(saved) == set(params) and all(np.array_equal(saved[k], params[k]) for k in params)
    assert len(history.epochs) == 2 and history.validation == []


# -- bad data: located errors -------------------------------------------------------------------------------
def test_bad_data_is_refused_located(cli, tmp_path):
    w = ("--save-weights", tmp_path / "w.npz")
    nounk = tmp_path / "strict.yaml"
    nounk.write_text((SPECS / "char_predictor.yaml").read_text().replace('  unknown: "?"\n', ""))
    text = tmp_path / "t.txt"
    text.write_text("the cat sat.\non the mat.\nthe dog: sat\n")
    code, _, err = cli("train", nounk, "--data", text, *w)
    assert code == 1 and f"{text}:3: ':' (token 8 of the line) is not in the vocabulary" in err

    raw = tmp_path / "bad.txt"
    raw.write_bytes(b"the cat\nsat \xff\n")
    code, _, err = cli("train", SPECS / "char_predictor.yaml", "--data", raw, *w)
    assert code == 1 and f"{raw}:2: not UTF-8 text" in err

    tsv = tmp_path / "p.tsv"
    tsv.write_text("one two\tone two\nthree four five\n")
    code, _, err = cli("train", TEACHER_FORCED, "--data", tsv, *w)
    assert code == 1 and f"{tsv}:2: a pair is `source<TAB>target`, one per line; this line has 1 fields" in err

    npz = tmp_path / "d.npz"
    np.savez(npz, x=np.zeros((3, 4, 8)), target=np.zeros((2, 4, 16)))
    code, _, err = cli("train", SPECS / "lstm.yaml", "--data", npz, *w)
    assert code == 1 and f"{npz}: `target` holds 2 sequences but `x` holds 3" in err

    ids = tmp_path / "ids.npz"
    np.savez(ids, ch=np.ones((2, 4), np.int64), target=[[1, 2, 3, 4], [5, 6, 40, 7]])
    code, _, err = cli("train", SPECS / "char_predictor.yaml", "--data", ids, *w)
    assert code == 1 and f"{ids}: `target` holds class ids 0..31 (the head's output has 32); target[1, 2] is 40" in err

    bank = tmp_path / "bank.txt"
    bank.write_text("(4 (2 It) (4 great))\n(S (2 so) (2 so))\n")
    code, _, err = cli("train", TREE_SPEC, "--data", bank, *w)
    assert code == 1 and f"{bank}:2: the root is labelled `S`, not a class id 0..4" in err
    bank.write_text("(4 (2 It) (4 great))\n\n((2 so) (2 so))\n")
    code, _, err = cli("train", TREE_SPEC, "--data", bank, *w)
    assert code == 1 and f"{bank}:3: the root has no label" in err
    bank.write_text("(4 (2 It) (4 great))\n(3 (2 a) (3 b) (1 c))\n")
    code, _, err = cli("train", TREE_SPEC, "--data", bank, *w)
    assert code == 1 and f"{bank}:2:1: error: node `3` has 3 children, but cell `compose` takes exactly 2" in err

    code, _, err = cli("train", SPECS / "lstm.yaml", "--data", tmp_path / "d.csv", *w)
    assert code == 2 and "training data with `.csv`" in err
    assert not (tmp_path / "w.npz").exists()


def test_bad_options_are_refused(cli, tmp_path):
    w = ("--save-weights", tmp_path / "w.npz", "--no-progress")
    code, _, err = cli("train", SPECS / "char_predictor.yaml", "--data", CORPUS, "--patience", 2, *w)
    assert code == 2 and "--patience stops on the validation loss: give held-out data (--val-split F)" in err
    code, _, err = cli("train", SPECS / "char_predictor.yaml", "--data", CORPUS, "--text", CORPUS, *w)
    assert code == 2 and "give the training data once" in err and "got --data and --text" in err
    code, _, err = cli("train", SPECS / "lstm.yaml", "--data", _dataset(tmp_path), "--bptt", 5, *w)
    assert code == 2 and "--bptt cuts a text into windows" in err
    data = _dataset(tmp_path)
    code, _, err = cli("train", SPECS / "lstm.yaml", *LSTM_SMALL, "--data", data, "--epochs", 1, "--checkpoint",
                       tmp_path / "ck", *w)
    assert code == 0, err
    code, _, err = cli("train", SPECS / "lstm.yaml", *LSTM_SMALL, "--data", data, "--optimizer", "sgd", "--resume",
                       tmp_path / "ck", *w)
    assert code == 1 and "its run used --optimizer adam" in err
    code, _, err = cli("train", SPECS / "lstm.yaml", "--data", data, "--resume", tmp_path / "ck", *w)
    assert code == 1 and "its weights do not fit the spec" in err
    code, _, err = cli("train", SPECS / "lstm.yaml", *LSTM_SMALL, "--data", data, "--resume", tmp_path / "w.npz",
                       *w[:2])
    assert code == 1 and "not a training checkpoint" in err
