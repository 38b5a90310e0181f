"""The shipped specs against torch.nn.RNN / LSTM / GRU with the same weights, mapped both ways."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import reference
import rnncompile

torch = pytest.importorskip("torch", reason="parity tests compare against PyTorch")
pytestmark = pytest.mark.torch

SPECS = Path(__file__).resolve().parents[1] / "specs"
SIZES = ((1, 1), (3, 5), (8, 16))  # (I, H)
BATCH, STEPS, OUT = 3, 6, 4
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True)
def _float64_torch(torch_float64):
    yield


def _program(cell, i, h):
    dims = {"I": i, "H": h, "O": OUT} if cell == "elman" else {"I": i, "H": h}
    return rnncompile.compile(SPECS / f"{cell}.yaml", dims=dims)


def _torch_modules(cell, i, h):
    kind = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = kind(i, h, batch_first=True)
    head = torch.nn.Linear(h, OUT) if cell == "elman" else None
    for m in (rnn, head):  # PyTorch's own init gives zero-free but small values; widen them
        if m is not None:
            for p in m.parameters():
                torch.nn.init.uniform_(p, -0.5, 0.5)
    return rnn, head


def _numpy_state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _load(module, arrays):
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v, np.float64)) for k, v in arrays.items()})


def _run_torch(cell, rnn, head, x, state):
    with torch.no_grad():
        xt = torch.from_numpy(x)
        h0 = torch.from_numpy(state["h"])[None]
        if cell == "lstm":
            y, (hn, cn) = rnn(xt, (h0, torch.from_numpy(state["c"])[None]))
            final = {"h": hn[0], "c": cn[0]}
        else:
            y, hn = rnn(xt, h0)
            final = {"h": hn[0]}
        if head is not None:
            y = head(y)
    return y.numpy(), {k: v.numpy() for k, v in final.items()}


def _from_torch(cell, rnn, head):
    if cell == "elman":
        return reference.from_torch_rnn(_numpy_state(rnn), _numpy_state(head))
    return {"lstm": reference.from_torch_lstm, "gru": reference.from_torch_gru}[cell](_numpy_state(rnn))


def _to_torch(cell, params, rnn, head):
    if cell == "elman":
        sd, lin = reference.to_torch_rnn(params)
        _load(rnn, sd)
        _load(head, lin)
    else:
        _load(rnn, {"lstm": reference.to_torch_lstm, "gru": reference.to_torch_gru}[cell](params))


def _inputs(prog, i, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, STEPS, i))
    return x, reference.random_state(prog.scan_cell.states, BATCH, rng)


def _compare(ours, y, final):
    np.testing.assert_allclose(ours.outputs["y"], y, **TOL)
    assert set(ours.final_state) == set(final)
    for name, want in final.items():
        np.testing.assert_allclose(ours.final_state[name], want, **TOL, err_msg=name)


@pytest.mark.parametrize("i,h", SIZES)
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_torch_weights_mapped_into_ours(cell, i, h):
    prog = _program(cell, i, h)
    rnn, head = _torch_modules(cell, i, h)
    params = _from_torch(cell, rnn, head)
    assert {k: v.shape for k, v in params.items()} == {k: info.shape for k, info in prog.params.items()}
    x, state = _inputs(prog, i, seed=i * 100 + h)
    ours = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, dtype="float64")
    _compare(ours, *_run_torch(cell, rnn, head, x, state))


@pytest.mark.parametrize("i,h", SIZES)
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_our_weights_mapped_into_torch(cell, i, h):
    prog = _program(cell, i, h)
    params = reference.random_params(prog.params, np.random.default_rng([i, h, 7]))
    rnn, head = _torch_modules(cell, i, h)
    _to_torch(cell, params, rnn, head)
    x, state = _inputs(prog, i, seed=i * 100 + h + 1)
    ours = rnncompile.run(prog, inputs={"x": x}, params=params, init_state=state, dtype="float64")
    _compare(ours, *_run_torch(cell, rnn, head, x, state))


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_mapping_round_trips(cell):
    """torch -> ours -> torch gives back every array (biases: the sum is what is kept)."""
    rnn, head = _torch_modules(cell, 3, 5)
    params = _from_torch(cell, rnn, head)
    rnn2, head2 = _torch_modules(cell, 3, 5)
    _to_torch(cell, params, rnn2, head2)
    a, b = _numpy_state(rnn), _numpy_state(rnn2)
    np.testing.assert_array_equal(a["weight_ih_l0"], b["weight_ih_l0"])
    np.testing.assert_array_equal(a["weight_hh_l0"], b["weight_hh_l0"])
    if cell == "gru":  # n's biases stay apart; r's and z's are summed
        np.testing.assert_array_equal(a["bias_hh_l0"][10:], b["bias_hh_l0"][10:])
        np.testing.assert_allclose(a["bias_ih_l0"][:10] + a["bias_hh_l0"][:10], b["bias_ih_l0"][:10])
        np.testing.assert_array_equal(a["bias_ih_l0"][10:], b["bias_ih_l0"][10:])
    else:
        np.testing.assert_allclose(a["bias_ih_l0"] + a["bias_hh_l0"], b["bias_ih_l0"] + b["bias_hh_l0"])


def test_float32_against_torch_float32():
    """Both sides in float32 on the LSTM: agreement to float32 tolerance."""
    prog = _program("lstm", 8, 16)
    torch.set_default_dtype(torch.float32)
    rnn = torch.nn.LSTM(8, 16, batch_first=True)
    params = reference.from_torch_lstm(_numpy_state(rnn))
    x = np.random.default_rng(5).standard_normal((BATCH, 20, 8)).astype(np.float32)
    ours = rnncompile.run(prog, inputs={"x": x}, params=params, dtype="float32")
    with torch.no_grad():
        y, (hn, cn) = rnn(torch.from_numpy(x))
    np.testing.assert_allclose(ours.outputs["y"], y.numpy(), **TOL)
    np.testing.assert_allclose(ours.final_state["c"], cn[0].numpy(), **TOL)
