"""Training (rnncompile.autodiff.train) and the `grad` / `train` commands.

Optimizers and clipping against PyTorch's; truncated BPTT against the loss of the whole sequence; a character
predictor that learns a small text well below the uniform log V and then completes it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import rnncompile
from rnncompile.autodiff.bptt import GradProgram
from rnncompile.autodiff.train import Optimizer, clip_by_norm, text_windows, train
from rnncompile.params import make_params

from conftest import ROOT, SPECS

CORPUS = ROOT / "examples" / "train" / "corpus.txt"


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_optimizers_match_pytorch(kind, request):
    pytest.importorskip("torch", reason="compares against PyTorch's optimizers")
    torch = request.getfixturevalue("torch_float64")
    rng = np.random.default_rng(0)
    start = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in start.items()} for _ in range(4)]
    ours = {k: v.copy() for k, v in start.items()}
    opt = Optimizer(kind, 0.05)
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    topt = (torch.optim.SGD(list(theirs.values()), lr=0.05, momentum=0.9) if kind == "sgd" else
            torch.optim.Adam(list(theirs.values()), lr=0.05, betas=(0.9, 0.999), eps=1e-8))
    for g in grads:
        opt.step(ours, g)
        for k, t in theirs.items():
            t.grad = torch.tensor(g[k])
        topt.step()
    for k in start:
        np.testing.assert_allclose(ours[k], theirs[k].detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.torch
def test_clipping_matches_pytorch(request):
    pytest.importorskip("torch", reason="compares against PyTorch's clipping")
    torch = request.getfixturevalue("torch_float64")
    rng = np.random.default_rng(1)
    grads = {"a": rng.standard_normal((3, 4)) * 10, "b": rng.standard_normal(5)}
    tensors = [torch.zeros(v.shape, requires_grad=True) for v in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    norm = clip_by_norm(grads, 1.5)
    tnorm = torch.nn.utils.clip_grad_norm_(tensors, 1.5)
    assert norm == pytest.approx(float(tnorm), rel=1e-12)
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6)


def test_text_windows_are_next_token_streams():
    program = rnncompile.compile(SPECS / "char_predictor.yaml")
    text = "abcdefghijklmnopqrstuvwxyz"
    windows = text_windows(program, text, 2, 5)
    ids = np.asarray([program.vocab.tokens.index(c) for c in text])
    x = np.concatenate([w.inputs["ch"] for w in windows], axis=1)
    y = np.concatenate([w.target for w in windows], axis=1)
    np.testing.assert_array_equal(x, ids[:24].reshape(2, 12))
    np.testing.assert_array_equal(y, ids[1:25].reshape(2, 12))
    assert [w.stream_start for w in windows] == [True, False, False]


def test_truncated_bptt_carries_the_state_across_windows():
    """With the state carried, the windows' losses add up to the whole sequence's loss; the gradient stops at
    the window's start (the carried state's adjoint is reported, not propagated)."""
    program = rnncompile.compile(SPECS / "char_predictor.yaml", dims={"H": 8, "E": 4})
    gp = GradProgram(program, "xent")
    params = make_params(program, 0, None, "float64")
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 32, (2, 12)), rng.integers(0, 32, (2, 12))
    whole = gp({"ch": x}, y, params)
    first = gp({"ch": x[:, :7]}, y[:, :7], params)
    second = gp({"ch": x[:, 7:]}, y[:, 7:], params, init_state=first.final_state)
    assert first.loss + second.loss == pytest.approx(whole.loss, rel=1e-12)
    assert set(second.start_state) == {"h", "c"}
    fresh = gp({"ch": x[:, 7:]}, y[:, 7:], params)
    assert fresh.loss != pytest.approx(second.loss)


def test_a_character_predictor_learns_a_text():
    program = rnncompile.compile(SPECS / "char_predictor.yaml")
    params = make_params(program, 0, None, "float32")
    windows = text_windows(program, CORPUS.read_text(), 16, 25)
    losses = []
    train(program, params, lambda epoch: windows, 8, 0.01, "adam", 5.0, carry=True,
          on_epoch=lambda epoch, loss: losses.append(loss))
    assert losses[0] < math.log(32) + 0.1
    assert losses[-1] < 0.5 * math.log(32)
    assert all(b < a for a, b in zip(losses, losses[1:]))


# -- the commands ------------------------------------------------------------------------------------------
def test_grad_writes_the_loss_and_every_params_gradient(cli, tmp_path):
    out = tmp_path / "g.npz"
    code, stdout, err = cli("grad", SPECS / "char_predictor.yaml", "--text", "the cat sat.", "--dim", "H=8",
                            "-o", out)
    assert code == 0, err
    assert "char_predictor: xent loss" in err and "gradients written to" in err
    saved = dict(np.load(out))
    program = rnncompile.compile(SPECS / "char_predictor.yaml", dims={"H": 8})
    assert set(saved) == {"loss"} | {f"grad.{k}" for k in program.params}
    ids = np.asarray([program.vocab.tokens.index(c) for c in "the cat sat."])
    got = GradProgram(program, "xent")({"ch": ids[None, :-1]}, ids[None, 1:], make_params(program, 0, None, "float64"))
    assert float(saved["loss"]) == pytest.approx(got.loss, rel=1e-12)
    np.testing.assert_allclose(saved["grad.head.W_y"], got.grads["head.W_y"])


def test_grad_writes_each_states_gradient_at_every_step(cli, tmp_path):
    out = tmp_path / "g.npz"
    code, _, err = cli("grad", SPECS / "lstm.yaml", "--wrt-state", "-b", 3, "-t", 7, "-o", out)
    assert code == 0, err
    saved = dict(np.load(out))
    assert saved["dstate.h"].shape == saved["dstate.c"].shape == (3, 7, 16)
    assert "|d loss / d c| by step (batch mean):" in err


def test_grad_reads_an_input_file_with_targets_and_lengths(cli, tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.standard_normal((3, 6, 8)), target=rng.standard_normal((3, 6, 16)), lengths=[6, 2, 4])
    code, _, err = cli("grad", SPECS / "lstm.yaml", "--input", data, "-o", tmp_path / "g.npz")
    assert code == 0, err
    assert "mse loss" in err and "over 12 steps" in err


def test_bad_training_data_is_refused_located(cli, tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((2, 3, 8)))
    code, _, err = cli("grad", SPECS / "lstm.yaml", "--input", data, "-o", tmp_path / "g.npz")
    assert code == 1 and f"{data}: holds no `target`" in err
    code, _, err = cli("train", SPECS / "char_predictor.yaml", "--save-weights", tmp_path / "w.npz")
    assert code == 2 and "give the training data once: --data FILE" in err
    code, _, err = cli("grad", SPECS / "rvnn.yaml", "--text", "a b", "-o", tmp_path / "g.npz")
    assert code == 2 and "a tree model's gradient is taken on seeded random trees here" in err
    assert not (tmp_path / "g.npz").exists()


def test_grad_of_a_tree_model(cli, tmp_path):
    code, _, err = cli("grad", SPECS / "treelstm_childsum.yaml", "-b", 3, "-o", tmp_path / "g.npz")
    assert code == 0, err
    assert "xent loss" in err and "over 3 trees of 3 random trees" in err
    assert "grad.head.W_s" in dict(np.load(tmp_path / "g.npz"))


def test_train_then_complete(cli, tmp_path):
    weights = tmp_path / "w.npz"
    code, stdout, err = cli("train", SPECS / "char_predictor.yaml", "--text", CORPUS, "--epochs", 3, "--bptt", 25,
                            "--save-weights", weights, "--no-progress")
    assert code == 0, err
    lines = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 3 and "uniform: log 32 = 3.466" in stdout
    first, last = (float(line.split()[3]) for line in (lines[0], lines[-1]))
    assert last < first
    program = rnncompile.compile(SPECS / "char_predictor.yaml")
    assert set(np.load(weights)) == set(program.params)
    code, stdout, err = cli("complete", SPECS / "char_predictor.yaml", "--weights", weights, "--prompt", "the ",
                            "--greedy", "-n", 10)
    assert code == 0, err
    assert stdout.startswith("the ")


@pytest.mark.slow
def test_a_trained_predictor_completes_the_text(cli, tmp_path):
    weights = tmp_path / "w.npz"
    code, stdout, err = cli("train", SPECS / "char_predictor.yaml", "--text", CORPUS, "--epochs", 40, "--bptt", 25,
                            "--save-weights", weights, "--no-progress")
    assert code == 0, err
    last = float([line for line in stdout.splitlines() if line.startswith("epoch ")][-1].split()[3])
    assert last < 0.25 * math.log(32)
    code, stdout, err = cli("complete", SPECS / "char_predictor.yaml", "--weights", weights, "--prompt",
                            "the dog sat on", "--greedy", "-n", 9)
    assert stdout.strip() in ("the dog sat on the log.", "the dog sat on the mat.")  # words of the corpus


def _teacher_forced_seq2seq(tmp_path):
    text = (SPECS / "seq2seq.yaml").read_text().replace("input: {src: [S]}", "input: {src: [S], tgt: [T]}").replace(
        "feed: previous_output ", "feed: target\n    target: tgt\n   ")
    spec = tmp_path / "seq2seq_tf.yaml"
    spec.write_text(text)
    return spec


@pytest.mark.slow
def test_a_teacher_forced_encoder_decoder_learns_to_copy(cli, tmp_path):
    """Trained with teacher forcing on a copy task, the shipped spec (which decodes greedily) copies its source
    and stops at the end token: the weights are the same params."""
    rng = np.random.default_rng(0)
    src = rng.integers(3, 12, (64, 5))
    data = tmp_path / "copy.npz"
    np.savez(data, src=src, tgt=np.concatenate([src, np.ones((64, 1), np.int64)], axis=1))
    weights = tmp_path / "w.npz"
    code, stdout, err = cli("train", _teacher_forced_seq2seq(tmp_path), "--input", data, "--dim", "S=5", "--dim",
                            "T=6", "--epochs", 30, "--lr", 0.02, "--save-weights", weights, "--no-progress")
    assert code == 0, err
    last = float([line for line in stdout.splitlines() if line.startswith("epoch ")][-1].split()[3])
    assert last < 0.2
    program = rnncompile.compile(SPECS / "seq2seq.yaml", dims={"S": 5, "T": 6})
    result = rnncompile.run(program, inputs={"src": src[:8]}, weights=weights)
    assert (result.tokens[:, :5] == src[:8]).mean() > 0.9
    assert (result.tokens[:, 5] == 1).mean() > 0.9


def test_grad_of_an_encoder_decoder_reads_its_target_input(cli, tmp_path):
    spec = _teacher_forced_seq2seq(tmp_path)
    data = tmp_path / "d.npz"
    np.savez(data, src=[[3, 4, 5], [6, 7, 8]], tgt=[[3, 4, 1], [6, 1, 0]], **{"lengths.tgt": [3, 2]})
    code, _, err = cli("grad", spec, "--input", data, "-o", tmp_path / "g.npz")
    assert code == 0, err
    assert "xent loss" in err and "over 5 steps" in err
