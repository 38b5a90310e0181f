"""`rnncompile plot gradients`: the norms behind the picture against hand-written NumPy BPTT for an Elman net and
against `rnncompile grad --wrt-state`; the spectral-radius rescaling; clipping; the command and its errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnncompile.api import seeded_inputs
from rnncompile.errors import UsageError
from rnncompile.params import make_params
from rnncompile.plot_gradients import (clipped, curves, loss_at_last_program, parse_loss_at, seeded_target,
                                       spectral_radius, with_radius)

ROOT = Path(__file__).resolve().parents[1]
ELMAN = ROOT / "specs" / "elman.yaml"


def elman_state_grads(p: dict, x: np.ndarray, target: np.ndarray, loss_step: int, clip: float | None = None):
    """dL/dh_t [B, T, H] for L = mean over the batch of mean_o (y_K - target)^2, y_K = W_hy h_K + b_y, from the
    equations h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h): dL/dh_{t-1} = W_hh^T ((1 - h_t^2) * dL/dh_t); with
    `clip`, each sequence's carried gradient is scaled to norm <= clip at every step before it goes back."""
    B, T, _ = x.shape
    H = p["W_hh"].shape[0]
    h, hs = np.zeros((B, H)), []
    for t in range(T):
        h = np.tanh(x[:, t] @ p["W_xh"].T + h @ p["W_hh"].T + p["b_h"])
        hs.append(h)
    y = hs[loss_step] @ p["W_hy"].T + p["b_y"]
    d = (2.0 / (B * y.shape[1]) * (y - target)) @ p["W_hy"]
    out = np.zeros((B, T, H))
    for t in range(loss_step, -1, -1):
        if clip is not None:
            n = np.linalg.norm(d, axis=1, keepdims=True)
            d = d * np.minimum(1.0, clip / np.maximum(n, 1e-300))
        out[:, t] = d
        d = ((1 - hs[t] ** 2) * d) @ p["W_hh"]
    return out


def _setup(steps=30, batch=3, seed=4, radius=None, scale=1.0):
    program = loss_at_last_program(ELMAN)
    x = seeded_inputs(program, batch, steps, seed, "float64")["x"] * scale
    params = make_params(program, seed, None, "float64")
    if radius is not None:
        params = with_radius(params, radius)
    target = seeded_target(program, params, {"x": x}, seed)
    return program, params, x, target


def _norms(g):
    return np.linalg.norm(g, axis=-1).mean(axis=0)


def test_last_step_norms_match_numpy_bptt():
    _, params, x, target = _setup()
    want = _norms(elman_state_grads(params, x, target, loss_step=29))
    (c,) = curves([ELMAN], steps=30, batch=3, seed=4)
    assert c.loss_steps == [29] and c.state == "h"
    np.testing.assert_allclose(c.norms, want, rtol=1e-9)
    assert want[0] < 1e-3 * want[-1]  # the random Elman net's gradient vanishes back in time


@pytest.mark.parametrize("radius", [0.5, 1.0, 2.0])
def test_radius_rescaling(radius):
    program = loss_at_last_program(ELMAN)
    params = make_params(program, 4, None, "float64")
    scaled = with_radius(params, radius)
    assert spectral_radius(scaled["W_hh"]) == pytest.approx(radius, rel=1e-10)
    np.testing.assert_allclose(scaled["W_hh"] / params["W_hh"], radius / spectral_radius(params["W_hh"]))
    assert all(np.array_equal(scaled[k], params[k]) for k in params if k != "W_hh")
    _, p, x, target = _setup(radius=radius, scale=0.1)
    (c,) = curves([ELMAN], radii=[radius], steps=30, batch=3, seed=4, input_scale=0.1)
    assert c.radius == radius and "radius" in c.label
    np.testing.assert_allclose(c.norms, _norms(elman_state_grads(p, x, target, 29)), rtol=1e-9)


def test_radius_two_explodes_and_half_vanishes_with_small_inputs():
    half, two = curves([ELMAN], radii=[0.5, 2.0], steps=60, batch=4, input_scale=0.1)
    assert half.norms[0] < 1e-12 * half.norms[-1]
    assert two.norms[0] > 100 * two.norms[-1]


def test_clipping_matches_a_clipped_numpy_recursion():
    _, p, x, target = _setup(radius=2.0, scale=0.1, steps=40)
    raw, clip = curves([ELMAN], radii=[2.0], clip=0.5, steps=40, batch=3, seed=4, input_scale=0.1)
    assert clip.clip == 0.5 and raw.clip is None
    np.testing.assert_allclose(raw.norms, _norms(elman_state_grads(p, x, target, 39)), rtol=1e-9)
    np.testing.assert_allclose(clip.norms, _norms(elman_state_grads(p, x, target, 39, clip=0.5)), rtol=1e-9)
    assert np.nanmax(clip.norms) <= 0.5 + 1e-12 < np.nanmax(raw.norms)


def test_clip_factor_is_a_running_minimum():
    d = {"h": np.array([[[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]]])}  # norms 5, 0.5, 10 at steps 0, 1, 2
    np.testing.assert_allclose(clipped(d, 1.0), [[0.1, 0.1, 0.1]])
    np.testing.assert_allclose(clipped(d, 20.0), [[1.0, 1.0, 1.0]])


def test_loss_at_a_step_matches_numpy_and_has_no_gradient_after_it():
    _, params, x, target = _setup(steps=12)
    (c,) = curves([ELMAN], steps=30, batch=3, seed=4, loss_at=11)
    assert c.loss_steps == [11] and np.isnan(c.norms[12:]).all()
    np.testing.assert_allclose(c.norms[:12], _norms(elman_state_grads(params, x, target, 11)), rtol=1e-9)


def test_every_step_loss_matches_grad_wrt_state(cli, tmp_path):
    code, _, err = cli("grad", ELMAN, "--wrt-state", "-b", "3", "-t", "15", "--seed", "2", "-o", tmp_path / "g.npz")
    assert code == 0, err
    want = _norms(np.load(tmp_path / "g.npz")["dstate.h"])
    (c,) = curves([ELMAN], loss_at="every", steps=15, batch=3, seed=2)
    assert len(c.loss_steps) == 15
    np.testing.assert_allclose(c.norms, want, rtol=1e-9)
    printed = [line for line in err.splitlines() if "by step" in line][0].split(":")[-1].split()
    np.testing.assert_allclose([float(v) for v in printed], want, rtol=2e-3)  # grad prints 3 digits


def test_gated_cells_and_trained_weights(tmp_path):
    lstm, gru = ROOT / "specs" / "lstm.yaml", ROOT / "specs" / "gru.yaml"
    found = curves([lstm, gru], steps=20, batch=2)
    assert [c.label for c in found] == ["lstm", "gru"] and all(np.isfinite(c.norms).all() for c in found)
    (deep,) = curves([ROOT / "specs" / "deep_lstm.yaml"], steps=6, batch=1)  # a stack: its top layer's h
    (char,) = curves([ROOT / "specs" / "char_predictor.yaml"], steps=6, batch=1)  # a stated `train: at:`
    assert deep.state == "layers.1.h" and char.state == "h" and np.isfinite(deep.norms + char.norms).all()
    program = loss_at_last_program(ELMAN)
    params = {k: v * 0.5 for k, v in make_params(program, 0, None, "float64").items()}
    np.savez(tmp_path / "w.npz", **params)
    (c,) = curves([ELMAN], weights=[tmp_path / "w.npz"], steps=20, batch=2)
    x = seeded_inputs(program, 2, 20, 0, "float64")["x"]
    np.testing.assert_allclose(c.norms, _norms(elman_state_grads(params, x, seeded_target(program, params, {"x": x}, 0),
                                                                 19)), rtol=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    ({"specs": [ROOT / "specs" / "lstm.yaml"], "radii": [2.0]},
     "lstm.yaml: --radius rescales the recurrent matrix `W_hh`, which it has not"),
    ({"specs": [ELMAN], "clip": 1.0, "loss_at": "every"}, "--clip is drawn for a loss at one step"),
    ({"specs": [ELMAN], "weights": ["a.npz", "b.npz"]}, "--weights: give one weights file per spec (1), or none; got 2"),
    ({"specs": [ELMAN], "loss_at": 10}, "--loss-at 10: "),
    ({"specs": [ELMAN], "state": "c"}, "no state `c` to draw; its states: h"),
    ({"specs": [ROOT / "specs" / "rvnn.yaml"], "loss_at": "every"},
     "rvnn.yaml: gradients over time are drawn for sequence models (a scan over time); this is a tree model"),
    ({"specs": [ROOT / "specs" / "seq2seq.yaml"]}, "drawn for sequence models (a scan over time); this is a seq2seq model"),
])
def test_bad_requests_say_what_is_wrong(kwargs, message):
    with pytest.raises(UsageError) as e:
        curves(**kwargs)
    assert message in str(e.value)


def test_parse_loss_at():
    assert parse_loss_at("last") == "last" and parse_loss_at("every") == "every" and parse_loss_at("7") == 7
    with pytest.raises(UsageError, match="write last, every or a step number"):
        parse_loss_at("end")


def test_command_writes_the_picture(cli, tmp_path):
    out = tmp_path / "g.png"
    code, stdout, err = cli("plot", "gradients", ELMAN, "--radius", "0.5,2", "--clip", "1", "-t", "8", "-b", "1",
                            "--input-scale", "0.1", "-o", out)
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "elman, radius 0.5: |dL/dh_t| t=7" in stdout and "elman, radius 2, clipped at 1:" in stdout
    code, _, err = cli("plot", "gradients", ELMAN, "--radius", "0.5,x", "-o", tmp_path / "h.png")
    assert code != 0 and "--radius 0.5,x: `x` is not a number" in err and not (tmp_path / "h.png").exists()
    code, stdout, _ = cli("plot", "--help")
    assert code == 0 and "rnncompile plot gradients --help" in stdout and "--memory" in stdout
