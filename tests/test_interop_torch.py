"""rnncompile.interop: PyTorch state_dicts converted to the shipped specs' weights and back, checked by running
both frameworks on the same inputs; and the errors when a state_dict or a spec does not fit."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile.backends.c import build
from rnncompile.errors import DataError, UsageError
from rnncompile.interop import from_torch, read_state_dict, to_torch

torch = pytest.importorskip("torch", reason="converting PyTorch weights is checked against PyTorch")
nn = torch.nn
pytestmark = pytest.mark.torch

SPECS = Path(__file__).resolve().parents[1] / "specs"
BATCH, STEPS = 3, 6
TOL = dict(rtol=1e-5, atol=1e-5)
BACKENDS = ["numpy", pytest.param("c", marks=pytest.mark.skipif(build.find_compiler() is None,
                                                                reason="no C compiler on PATH"))]


@pytest.fixture(autouse=True)
def _float64_torch(torch_float64):
    yield


class Net(nn.Module):
    """What a user trains: an optional embedding, one recurrent module, an optional linear head."""

    def __init__(self, rnn, emb=None, fc=None, softmax=False):
        super().__init__()
        if emb is not None:
            self.emb = emb
        self.rnn = rnn
        if fc is not None:
            self.fc = fc
        self.softmax = softmax

    def forward(self, x, state):
        if hasattr(self, "emb"):
            x = self.emb(x)
        y, final = self.rnn(x, state)
        if hasattr(self, "fc"):
            y = self.fc(y)
        return (torch.softmax(y, -1) if self.softmax else y), final

    def weights(self):
        """The state_dict as saved: the bare recurrent module's when there is nothing around it."""
        module = self if hasattr(self, "emb") or hasattr(self, "fc") else self.rnn
        return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}

    def load(self, arrays):
        module = self if hasattr(self, "emb") or hasattr(self, "fc") else self.rnn
        module.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in arrays.items()})


CASES = {  # spec -> (dims, the torch model computing it)
    "elman": ({"I": 3, "H": 5, "O": 4}, lambda: Net(nn.RNN(3, 5, batch_first=True), fc=nn.Linear(5, 4))),
    "lstm": ({"I": 3, "H": 5}, lambda: Net(nn.LSTM(3, 5, batch_first=True))),
    "gru": ({"I": 3, "H": 5}, lambda: Net(nn.GRU(3, 5, batch_first=True))),
    "deep_lstm": ({"I": 3, "H": 5}, lambda: Net(nn.LSTM(3, 5, num_layers=2, batch_first=True))),
    "bigru": ({"I": 3, "H": 5}, lambda: Net(nn.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True))),
    "char_predictor": ({"E": 6, "H": 7}, lambda: Net(nn.LSTM(6, 7, batch_first=True), emb=nn.Embedding(32, 6),
                                                     fc=nn.Linear(7, 32), softmax=True)),
    "lstm_proj": ({"I": 3, "H": 5, "P": 2}, lambda: Net(nn.LSTM(3, 5, proj_size=2, batch_first=True))),
}


def _program(spec, dims=None):
    return rnncompile.compile(SPECS / f"{spec}.yaml", dims=dims if dims is not None else CASES[spec][0])


def _model(spec):
    net = CASES[spec][1]()
    for p in net.parameters():  # wider than torch's own init, and no zero biases
        nn.init.uniform_(p, -0.5, 0.5)
    return net


def _inputs(prog, seed):
    """Inputs and an initial state for both sides; torch's state is [layers * directions, B, H]."""
    rng = np.random.default_rng(seed)
    (name, info), = rnncompile.api.input_infos(prog).items()
    token = info.dtype == "token"
    x = rng.integers(0, 32, (BATCH, STEPS)) if token else rng.standard_normal((BATCH, STEPS) + info.shape)
    ours, stacked = {}, {}
    uses = [u for layer in prog.plan.stack.layers for u in layer.uses]
    for use in uses:
        for s, st in use.cell.states.items():
            ours[use.key(s)] = rng.uniform(-1, 1, (BATCH,) + st.shape)
            stacked.setdefault(s, []).append(ours[use.key(s)])
    state = {s: torch.from_numpy(np.stack(v)) for s, v in stacked.items()}
    return {name: x}, ours, state, uses


def _torch_run(net, x, state):
    with torch.no_grad():
        hx = (state["h"], state["c"]) if "c" in state else state["h"]
        y, final = net(torch.from_numpy(x), hx)
    final = {"h": final[0], "c": final[1]} if isinstance(final, tuple) else {"h": final}
    return y.numpy(), {k: v.numpy() for k, v in final.items()}


def _differences(prog, net, params, seed, backend="numpy") -> dict[str, float]:
    """Max abs difference of rnncompile's outputs and final states from torch's, by name."""
    inputs, ours_state, torch_state, uses = _inputs(prog, seed)
    ours = rnncompile.run(prog, inputs=inputs, params=params, init_state=ours_state, dtype="float64",
                          backend=backend)
    y, final = _torch_run(net, next(iter(inputs.values())), torch_state)
    (out,) = ours.outputs.values()
    diffs = {"outputs": float(np.max(np.abs(out - y)))}
    for i, use in enumerate(uses):
        for s in use.cell.states:
            diffs[use.key(s)] = float(np.max(np.abs(ours.final_state[use.key(s)] - final[s][i])))
    assert set(ours.final_state) == {use.key(s) for use in uses for s in use.cell.states}
    return diffs


def differences_from_torch(spec, backend="numpy", seed=1) -> dict[str, float]:
    """torch weights -> ours, both run on the same inputs (for the report as well as the tests)."""
    prog, net = _program(spec), _model(spec)
    params = from_torch(prog, net.weights()).arrays
    return _differences(prog, net, params, seed, backend)


# ---- the shipped specs, both ways ----------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", list(CASES))
def test_torch_weights_run_the_same_here(spec, backend):
    diffs = differences_from_torch(spec, backend)
    assert max(diffs.values()) < 1e-5, diffs


@pytest.mark.parametrize("spec", list(CASES))
def test_spec_weights_run_the_same_in_torch(spec):
    prog = _program(spec)
    params = rnncompile.make_params(prog, seed=3, dtype="float64")
    params = {k: v + np.random.default_rng(4).uniform(-0.3, 0.3, v.shape) for k, v in params.items()}  # no zeros
    net = _model(spec)
    net.load({_rename(k): v for k, v in to_torch(prog, params).arrays.items()})
    diffs = _differences(prog, net, params, seed=2)
    assert max(diffs.values()) < 1e-5, diffs


def _rename(key):
    """to_torch's default module names (embedding, rnn, linear) -> the test model's (emb, rnn, fc)."""
    module, dot, leaf = key.partition(".")
    return {"embedding": "emb", "linear": "fc"}.get(module, module) + dot + leaf


@pytest.mark.parametrize("spec", list(CASES))
def test_spec_to_torch_to_spec_gives_every_array_back(spec):
    prog = _program(spec)
    params = rnncompile.make_params(prog, seed=5, dtype="float64")
    back = from_torch(prog, to_torch(prog, params).arrays).arrays
    assert list(back) == list(prog.params)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k], err_msg=k)


@pytest.mark.parametrize("spec", list(CASES))
def test_torch_to_spec_to_torch_keeps_weights_and_bias_sums(spec):
    prog, net = _program(spec), _model(spec)
    sd = net.weights()
    back = {_rename(k): v for k, v in to_torch(prog, from_torch(prog, sd).arrays).arrays.items()}
    assert set(back) == set(sd)
    for k, v in sd.items():
        if "bias_hh" in k:
            continue
        if "bias_ih" in k:
            hh = k.replace("bias_ih", "bias_hh")
            if spec in ("gru", "bigru"):  # r and z keep the sum; n keeps its two biases apart
                h = v.shape[0] // 3
                np.testing.assert_allclose(back[k][:2 * h], v[:2 * h] + sd[hh][:2 * h], rtol=0, atol=1e-15)
                np.testing.assert_array_equal(back[k][2 * h:], v[2 * h:])
                np.testing.assert_array_equal(back[hh][2 * h:], sd[hh][2 * h:])
            else:
                np.testing.assert_allclose(back[k] + back[hh], v + sd[hh], rtol=0, atol=1e-15)
        else:
            np.testing.assert_array_equal(back[k], v, err_msg=k)


def test_which_torch_key_went_where_is_said():
    prog, net = _program("char_predictor"), _model("char_predictor")
    conv = from_torch(prog, net.weights())
    assert "rnn.weight_ih_l0 → W_i[:, 7:13], W_f[:, 7:13], W_g[:, 7:13], W_o[:, 7:13] (rows i, f, g, o)" in conv.moves
    assert "rnn.bias_ih_l0 + rnn.bias_hh_l0 → b_i, b_f, b_g, b_o (rows i, f, g, o)" in conv.moves
    assert {"emb.weight → E_c", "fc.weight → head.W_y", "fc.bias → head.b_y"} <= set(conv.moves)
    notes = to_torch(prog, conv.arrays).notes
    assert notes == ["rnn: nn.LSTM(6, 7); each bias goes to bias_ih, bias_hh is zero",
                     "embedding: nn.Embedding(32, 6)", "linear: nn.Linear(7, 32) (the head)"]


# ---- configurations beyond the shipped specs: relu, bias=False ------------------------

RELU_RNN = """
rnncompile: 1
name: relu_rnn
dims: {I: 3, H: 5}
cells:
  rnn:
    inputs: {x: I}
    state: {h: H}
    params:
      U: {shape: [H, H]}
      V: {shape: [H, I]}
      c: {shape: [H]}
    update: {h: relu(c + U @ h + V @ x)}
    outputs: {h: h}
model: {scan: rnn, input: {x: [T, I]}}
"""

LSTM_NO_BIAS = (SPECS / "lstm.yaml").read_text().replace("from: [h, x]}", "from: [h, x], bias: false}")


def test_relu_rnn_in_any_param_names():
    prog = rnncompile.compile_text(RELU_RNN)
    net = Net(nn.RNN(3, 5, nonlinearity="relu", batch_first=True))
    conv = from_torch(prog, net.weights())
    assert conv.moves == ["weight_ih_l0 → V", "weight_hh_l0 → U", "bias_ih_l0 + bias_hh_l0 → c"]
    assert max(_differences(prog, net, conv.arrays, seed=6).values()) < 1e-5
    assert "nn.RNN(3, 5, nonlinearity='relu')" in to_torch(prog, conv.arrays).notes[0]


def test_lstm_without_biases_both_ways():
    prog = rnncompile.compile_text(LSTM_NO_BIAS, dims={"I": 3, "H": 5})
    net = Net(nn.LSTM(3, 5, bias=False, batch_first=True))
    conv = from_torch(prog, net.weights())
    assert max(_differences(prog, net, conv.arrays, seed=7).values()) < 1e-5
    back = to_torch(prog, conv.arrays)
    assert set(back.arrays) == {"weight_ih_l0", "weight_hh_l0"}
    assert "nn.LSTM(3, 5, bias=False)" in back.notes[0]
    # a bias-free state_dict into the spec with biases: they are zero
    with_biases = from_torch(_program("lstm"), net.weights())
    assert not np.any(with_biases.arrays["b_f"]) and "bias=False" in with_biases.notes[0]


def test_torch_biases_where_the_spec_has_none_are_refused():
    prog = rnncompile.compile_text(LSTM_NO_BIAS, dims={"I": 3, "H": 5})
    with pytest.raises(DataError, match=r"gate i of the l0 biases: the spec has no bias there, and the torch "
                                        r"values are not zero"):
        from_torch(prog, _model("lstm").weights())


# ---- specs torch cannot compute: refused, saying which term differs --------------------

def _refusal(text, replace, dims=None):
    prog = rnncompile.compile_text(text.replace(*replace), dims=dims)
    with pytest.raises(DataError) as e:
        to_torch(prog, rnncompile.make_params(prog))
    return str(e.value)


def test_cho_gru_is_not_torch_gru():
    spec = (SPECS / "gru.yaml").read_text()
    message = _refusal(spec, ("n: tanh(W_in @ x + b_in + r * (W_hn @ h + b_hn))",
                              "n: tanh(W_in @ x + W_hn @ (r * h) + b_in)"))
    assert message.startswith("cell `gru` does not compute nn.GRU: the candidate multiplies `W_hn` by r * h: the "
                              "reset gate acts before the matrix multiply (Cho et al. 2014, ONNX "
                              "linear_before_reset=0), and nn.GRU applies it after, r * (W_hn @ h + b_hn) "
                              "(cells.gru.let.n)\n")
    assert "hint: the two are different models" in message


def test_gru_with_z_on_the_candidate_is_refused():
    message = _refusal((SPECS / "gru.yaml").read_text(), ("h: (1 - z) * n + z * h", "h: (1 - z) * h + z * n"))
    assert message.startswith("cell `gru` does not compute nn.GRU: the old state is weighted by 1 - z and the "
                              "candidate by z; nn.GRU keeps z * h (z weights the old state) (cells.gru.update.h)")


def test_a_one_state_cell_of_another_kind_names_both_torch_cells():
    message = _refusal((SPECS / "elman.yaml").read_text(), ("h: tanh(W_xh", "h: sigmoid(W_xh"))
    assert message.startswith("cell `elman` does not compute nn.RNN or nn.GRU: its state is updated as sigmoid(...) "
                              "(cells.elman.update.h)\n  nn.RNN computes h' = tanh(")


def test_peephole_lstm_is_refused():
    spec = (SPECS / "lstm.yaml").read_text()
    message = _refusal(spec, ("f: {act: sigmoid, from: [h, x]}", "f: {act: sigmoid, from: [h, x, c]}"))
    assert "cell `lstm` does not compute nn.LSTM: the forget gate f multiplies `c` (state) by `W_f`" in message
    assert "peephole" in message


def test_a_decoder_model_is_refused():
    prog = rnncompile.compile(SPECS / "seq2seq.yaml")
    with pytest.raises(DataError, match="is a seq2seq model; torch weights convert for a sequence model"):
        to_torch(prog, rnncompile.make_params(prog))


# ---- state_dicts that do not fit ---------------------------------------------------------

def _error(spec, sd, dims=None, mapping=None):
    with pytest.raises((DataError, UsageError)) as e:
        from_torch(_program(spec, dims), sd, mapping, "model.pt")
    return str(e.value)


def test_a_gru_state_dict_for_an_lstm_spec():
    message = _error("lstm", _model("gru").weights())
    assert message == ("model.pt: the recurrent weights do not fit spec `lstm`, which expects nn.LSTM(3, 5):\n"
                       "  this looks like an nn.GRU state_dict (`weight_ih_l0` has 15 rows = 3 × 5) but the spec's "
                       "cell `lstm` is an LSTM (nn.LSTM stacks 4 gates)")


def test_a_bidirectional_state_dict_for_a_one_way_spec():
    message = _error("gru", Net(nn.GRU(3, 5, bidirectional=True)).weights())
    assert "  bidirectional: the state_dict has reverse-direction weights (…_reverse) but the spec has no reverse " \
           "direction — make each layer `direction: bidirectional, merge: concat` (see specs/bigru.yaml)" in message


def test_sizes_that_differ_suggest_the_dim():
    message = _error("lstm", _model("lstm").weights(), dims={"I": 3, "H": 8})
    assert "hidden size: 5 in the state_dict (`weight_hh_l0` is [20, 5]), 8 in the spec — try --dim H=5" in message


def test_a_head_of_another_size_is_listed_with_what_was_expected():
    net = Net(nn.LSTM(6, 7, batch_first=True), emb=nn.Embedding(32, 6), fc=nn.Linear(7, 30))
    message = _error("char_predictor", net.weights())
    assert "  missing `head.W_y` [32, 7]\n" in message
    assert "  unexpected `fc.weight` [30, 7]\n" in message
    assert "  expected: nn.LSTM(6, 7); nn.Embedding(32, 6) → E_c; nn.Linear(7, 32) → head.W_y\n" in message
    assert "  found: emb.weight [32, 6], rnn.weight_ih_l0 [28, 6]" in message


def test_two_heads_of_one_shape_need_a_map():
    net = Net(nn.LSTM(6, 7, batch_first=True), emb=nn.Embedding(32, 6), fc=nn.Linear(7, 32))
    net.out = nn.Linear(7, 32)
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    message = _error("char_predictor", sd)
    assert "`head.W_y` (nn.Linear [32, 7]): `fc.weight`, `out.weight` all fit — say which with --map " \
           "fc.weight=head.W_y" in message
    with pytest.raises(DataError, match=r"unexpected `fc.weight`"):  # out is the head; fc is left over
        from_torch(_program("char_predictor"), sd, {"out": "head.W_y"})
    sd.pop("fc.weight"), sd.pop("fc.bias")
    conv = from_torch(_program("char_predictor"), sd, {"out": "head.W_y"})
    np.testing.assert_array_equal(conv.arrays["head.b_y"], sd["out.bias"])


def test_a_map_onto_the_recurrent_weights_is_refused():
    message = _error("lstm", _model("lstm").weights(), mapping={"weight_ih_l0": "W_i"})
    assert message.startswith("--map weight_ih_l0=W_i: `W_i` belongs to the recurrent module")


def test_a_map_naming_nothing():
    message = _error("char_predictor", _model("char_predictor").weights(), mapping={"fc.weight": "head.W"})
    assert message.startswith("--map fc.weight=head.W: the spec has no param `head.W`\n"
                              "  hint: did you mean `head.W_y`?")


# ---- files and the command line --------------------------------------------------------

@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_cli_round_trip_through_files(cli, tmp_path, suffix):
    net = _model("char_predictor")
    state = tmp_path / f"model{suffix}"
    if suffix == ".pt":
        torch.save(net.state_dict(), state)
    else:
        np.savez(state, **net.weights())
    spec = SPECS / "char_predictor.yaml"
    code, out, err = cli("weights", spec, "--dim", "E=6", "--dim", "H=7", "--from-torch", state, "--dtype",
                         "float64", "-o", tmp_path / "w.npz")
    assert code == 0, err
    assert "  emb.weight → E_c\n" in out and out.endswith(f"wrote {tmp_path / 'w.npz'}\n")

    prog = _program("char_predictor")
    inputs, _, _, _ = _inputs(prog, seed=8)
    np.savez(tmp_path / "x.npz", **inputs)
    code, _, err = cli("run", spec, "--dim", "E=6", "--dim", "H=7", "--weights", tmp_path / "w.npz", "--input",
                       tmp_path / "x.npz", "--dtype", "float64", "-o", tmp_path / "out.npz")
    assert code == 0, err
    with torch.no_grad():
        y, (h, c) = net(torch.from_numpy(inputs["ch"]), None)
    ours = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(ours["outputs.p"], y.numpy(), **TOL)
    np.testing.assert_allclose(ours["state.c"], c[0].numpy(), **TOL)

    back = tmp_path / f"back{suffix}"
    code, _, err = cli("weights", spec, "--dim", "E=6", "--dim", "H=7", "--weights", tmp_path / "w.npz",
                       "--to-torch", "--map", "fc=head.W_y", "--map", "emb=E_c", "--dtype", "float64", "-o", back)
    assert code == 0, err
    assert "note: rnn: nn.LSTM(6, 7)" in err
    net2 = _model("char_predictor")
    net2.load_state_dict({k: torch.from_numpy(v) for k, v in read_state_dict(back).items()})
    with torch.no_grad():
        y2, _ = net2(torch.from_numpy(inputs["ch"]), None)
    np.testing.assert_allclose(y2.numpy(), y.numpy(), rtol=0, atol=1e-12)


def test_run_with_a_torch_state_dict_says_how_to_convert(cli, tmp_path):
    np.savez(tmp_path / "sd.npz", **_model("lstm").weights())
    code, _, err = cli("run", SPECS / "lstm.yaml", "--dim", "I=3", "--dim", "H=5", "--weights", tmp_path / "sd.npz")
    assert code == 1
    assert err.rstrip().endswith("hint: these are a PyTorch state_dict's names; convert it with `rnncompile weights "
                                 f"SPEC --from-torch {tmp_path / 'sd.npz'} -o W.npz`")


def test_cli_usage_errors(cli, tmp_path):
    code, _, err = cli("weights", SPECS / "lstm.yaml", "-o", tmp_path / "w.npz")
    assert code == 2 and "give --from-torch STATE (to write the spec's weights) or --to-torch" in err
    code, _, err = cli("weights", SPECS / "lstm.yaml", "--to-torch", "-o", tmp_path / "w.txt")
    assert code == 2 and "unknown output format (`.txt`); use .pt or .pth or .npz" in err
    assert not (tmp_path / "w.txt").exists()


def test_a_pickled_module_is_not_unpickled(tmp_path):
    torch.save(nn.LSTM(3, 5), tmp_path / "module.pt")
    with pytest.raises(DataError, match=r"holds pickled Python objects, not only tensors, and rnncompile does not "
                                        r"unpickle them") as e:
        read_state_dict(tmp_path / "module.pt")
    assert "torch.save(model.state_dict(), path)" in str(e.value)


def test_a_checkpoint_dict_gives_its_state_dict(tmp_path):
    net = _model("lstm")
    torch.save({"epoch": 3, "model_state_dict": net.rnn.state_dict()}, tmp_path / "ckpt.pt")
    assert set(read_state_dict(tmp_path / "ckpt.pt")) == set(net.weights())


def test_without_torch_a_pt_file_names_the_install(tmp_path, monkeypatch):
    torch.save(nn.LSTM(3, 5).state_dict(), tmp_path / "m.pt")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    with pytest.raises(UsageError, match=r"\.pt files need PyTorch: pip install torch==2\.13\.0"):
        read_state_dict(tmp_path / "m.pt")


def test_a_projected_lstm_stack_both_ways():
    """nn.LSTM(proj_size) with two bidirectional layers: h' = W_hr (o tanh(c')) in every layer and direction."""
    text = (SPECS / "lstm_proj.yaml").read_text().replace(
        "  scan: lstm\n", "  layers:\n    - {scan: lstm, direction: bidirectional}\n"
                          "    - {scan: lstm, direction: bidirectional}\n")
    prog = rnncompile.compile_text(text, file=str(SPECS / "lstm_proj2.yaml"), dims={"I": 3, "H": 5, "P": 2})
    net = Net(nn.LSTM(3, 5, proj_size=2, num_layers=2, bidirectional=True, batch_first=True))
    for p in net.parameters():
        nn.init.uniform_(p, -0.5, 0.5)
    conv = from_torch(prog, net.weights())
    assert any("weight_hr_l1_reverse" in m and "layers.1.reverse.W_hr" in m for m in conv.moves), conv.moves
    diffs = _differences(prog, net, conv.arrays, 4)
    assert max(diffs.values()) < 1e-12, diffs
    back = to_torch(prog, conv.arrays).arrays
    assert set(back) == set(net.weights())
    weights = net.weights()
    for k, v in weights.items():
        if k.startswith("weight"):
            np.testing.assert_array_equal(back[k], v, err_msg=k)
        elif k.startswith("bias_ih"):  # torch's two biases come back as their sum, in bias_ih
            np.testing.assert_allclose(back[k] + back[k.replace("_ih", "_hh")], v + weights[k.replace("_ih", "_hh")],
                                       rtol=1e-15, atol=1e-15, err_msg=k)
    assert "proj_size=2" in " ".join(to_torch(prog, conv.arrays).notes)


def test_a_projection_the_spec_does_not_have_is_refused():
    net = Net(nn.LSTM(3, 5, proj_size=2, batch_first=True))
    with pytest.raises(DataError, match=r"proj_size=2 projects h after each step, which the spec's cell does not"):
        from_torch(_program("lstm", {"I": 3, "H": 5}), net.weights())
    with pytest.raises(DataError, match=r"the spec projects h to 2 .* no `weight_hr_l0`"):
        from_torch(_program("lstm_proj"), Net(nn.LSTM(3, 5, batch_first=True)).weights())


NEW_CASES = [  # rnncompile new's options -> the torch module they describe
    ("rnn", dict(), lambda: nn.RNN(3, 5, batch_first=True)),
    ("rnn", dict(nonlinearity="relu", bias=False), lambda: nn.RNN(3, 5, nonlinearity="relu", bias=False,
                                                                   batch_first=True)),
    ("lstm", dict(layers=2, bidirectional=True), lambda: nn.LSTM(3, 5, num_layers=2, bidirectional=True,
                                                                 batch_first=True)),
    ("lstm", dict(proj_size=2, layers=2, bidirectional=True, bias=False),
     lambda: nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, bias=False, batch_first=True)),
    ("gru", dict(layers=3), lambda: nn.GRU(3, 5, num_layers=3, batch_first=True)),
    ("gru", dict(bidirectional=True, bias=False), lambda: nn.GRU(3, 5, bidirectional=True, bias=False,
                                                                 batch_first=True)),
]


@pytest.mark.parametrize("kind,options,module", NEW_CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_new_writes_the_spec_of_a_torch_configuration(kind, options, module, tmp_path):
    """`rnncompile new` gives a spec that a real module's state_dict converts into, running as torch does."""
    from rnncompile.interop.torch_specs import torch_spec

    text = torch_spec(kind, 3, 5, **options)
    prog = rnncompile.compile_text(text, file=str(tmp_path / f"{kind}.yaml"))
    net = Net(module())
    for p in net.parameters():
        nn.init.uniform_(p, -0.5, 0.5)
    params = from_torch(prog, net.weights()).arrays
    diffs = _differences(prog, net, params, 7)
    assert max(diffs.values()) < 1e-12, diffs
    lay = rnncompile.interop.torch_cells.layout(prog)
    assert lay.constructor().startswith(f"nn.{kind.upper()}(3, 5")


def test_new_on_the_command_line(cli, tmp_path):
    out = tmp_path / "lstmp.yaml"
    code, stdout, err = cli("new", "lstm", "--layers", "2", "--bidirectional", "--proj-size", "3", "-o", out)
    assert code == 0, err
    prog = rnncompile.compile(out)
    assert rnncompile.interop.torch_cells.layout(prog).constructor() == \
        "nn.LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=3)"
    code, _, err = cli("new", "gru", "--proj-size", "3", "-o", tmp_path / "g.yaml")
    assert code != 0 and "--proj-size is an nn.LSTM option" in err and not (tmp_path / "g.yaml").exists()
