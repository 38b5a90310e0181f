"""The spec's `train:` section (rnncompile.train_spec) and the binary cross-entropy loss.

- the section gives GradProgram / TreeGradProgram their defaults; explicit arguments override it;
- a target that is a model input (an autoencoder) is read from the inputs;
- bce against PyTorch (binary_cross_entropy_with_logits for a sigmoid output, BCELoss for another output in
  (0, 1)) and against central finite differences, float64; stable for confident wrong predictions;
- every problem is a located error (file:line:col, the key, a did-you-mean), tested by its text;
- `rnncompile schema` shows the section.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import rnncompile
from rnncompile.autodiff.bpts import TreeGradProgram
from rnncompile.autodiff.bptt import GradProgram
from rnncompile.autodiff.losses import default_loss, reference_loss
from rnncompile.check import check_text
from rnncompile.drivers import Executable
from rnncompile.errors import SpecError
from rnncompile.params import make_params

from conftest import SPECS
from finite_differences import central_difference

TAGGER = """rnncompile: 1
name: tagger
dims: {I: 3, H: 4, K: 2, T: 5}
cells:
  rnn:
    inputs: {x: I}
    state: {h: H}
    params:
      W: {shape: [H, H + I]}
      b: {shape: [H], init: zeros}
    update:
      h: tanh(W @ concat(h, x) + b)
    outputs: {h: h}
model:
  input: {x: [T, I]}
  scan: rnn
  head:
    params:
      W_y: {shape: [K, H]}
      b_y: {shape: [K], init: zeros}
    outputs:
      y: sigmoid(W_y @ h + b_y)          # K independent yes/no labels per step
      q: 0.25 + 0.5 * sigmoid(W_y @ h)   # in (0, 1), not a sigmoid: bce takes its logs
"""


def _tagger(train: str = ""):
    return rnncompile.compile_text(TAGGER + train, "tagger.yaml")


def _perturbed(program, seed=0):
    rng = np.random.default_rng(seed)
    return {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in make_params(program, 0, None, "float64").items()}


def _batch(seed=1, batch=3, steps=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, steps, 3)), rng.uniform(0, 1, (batch, steps, 2)), np.array([5, 2, 4])


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-30))


def _errors(text: str, file: str = "s.yaml") -> str:
    with pytest.raises(SpecError) as e:
        check_text(text, file)
    return e.value.format()


# -- defaults from the section --------------------------------------------------------------------------
def test_the_section_gives_the_defaults_and_arguments_override_them():
    program = _tagger("train: {loss: bce, output: y, reduction: mean, at: every_step}\n")
    gp = GradProgram(program)
    assert (gp.kind, gp.output, gp.reduction) == ("bce", "y", "mean")
    gp = GradProgram(program, "mse", "q", "sum")
    assert (gp.kind, gp.output, gp.reduction) == ("mse", "q", "sum")
    assert default_loss(program, None) == "bce" and default_loss(program, "mse") == "mse"
    x, t, lengths = _batch()
    params = _perturbed(program)
    got = GradProgram(program)({"x": x}, t, params, lengths)
    out = Executable(program, "numpy", "float64").run({"x": x}, params, lengths=lengths).outputs["y"]
    assert got.loss == pytest.approx(reference_loss(out, t, "bce", lengths, "mean"), rel=1e-12)


def test_without_a_section_the_defaults_are_as_before():
    program = rnncompile.compile(SPECS / "char_predictor.yaml")
    gp = GradProgram(program)
    assert (gp.kind, gp.output, gp.reduction) == ("xent", "p", "sum")
    with pytest.raises(rnncompile.errors.UsageError, match="the model has outputs y, q; say which one"):
        GradProgram(_tagger(), "bce")


@pytest.mark.parametrize("name, section", [("char_predictor", "xent every_step sum"),
                                           ("sentiment", "xent last_step sum")])
def test_shipped_specs_state_their_loss(name, section):
    program = rnncompile.compile(SPECS / f"{name}.yaml")
    train = program.checked.spec.train
    assert f"{train.loss} {train.at} {train.reduction}" == section
    gp = GradProgram(program)
    assert (gp.kind, gp.reduction) == ("xent", "sum")


def test_a_tree_model_takes_its_defaults_from_the_section():
    text = (SPECS / "rvnn.yaml").read_text() + "train: {loss: xent, output: y, at: every_node, reduction: mean}\n"
    program = rnncompile.compile_text(text, str(SPECS / "rvnn_train.yaml"), {"H": 4})
    gp = TreeGradProgram(program)
    assert (gp.kind, gp.output, gp.reduction) == ("xent", "y", "mean")


AUTOENCODER = """rnncompile: 1
name: autoencoder
dims: {I: 3, H: 2, T: 4}
cells:
  rnn:
    inputs: {x: I}
    state: {h: H}
    params: {W: [H, H + I], W_o: [I, H]}
    update:
      h: tanh(W @ concat(h, x))
    outputs:
      y: W_o @ h
model:
  input: {x: [T, I]}
  scan: rnn
train: {loss: mse, target: x}            # reconstruct the input at every step
"""


def test_a_target_that_is_a_model_input_is_read_from_the_inputs():
    program = rnncompile.compile_text(AUTOENCODER, "autoencoder.yaml")
    params = _perturbed(program, 2)
    x = np.random.default_rng(3).standard_normal((2, 4, 3))
    got = GradProgram(program)({"x": x}, None, params)
    same = GradProgram(program)({"x": x}, x, params)
    out = Executable(program, "numpy", "float64").run({"x": x}, params).outputs["y"]
    assert got.loss == pytest.approx(reference_loss(out, x, "mse"), rel=1e-12) == same.loss
    for k in got.grads:
        np.testing.assert_array_equal(got.grads[k], same.grads[k])


# -- binary cross-entropy ---------------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["y", "q"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_bce_gradients_match_finite_differences(output, reduction):
    program = _tagger()
    gp = GradProgram(program, "bce", output, reduction)
    x, t, lengths = _batch()
    params = _perturbed(program)
    got = gp({"x": x}, t, params, lengths)
    exe = Executable(program, "numpy", "float64")

    def loss(p):
        return reference_loss(exe.run({"x": x}, p, lengths=lengths).outputs[output], t, "bce", lengths, reduction)

    assert got.loss == pytest.approx(loss(params), rel=1e-12)
    eps = 1e-6
    for key, value in params.items():
        num = central_difference(loss, params, key, eps)
        assert _rel(got.grads[key], num) < 1e-7, key


@pytest.mark.torch
@pytest.mark.parametrize("output", ["y", "q"])
def test_bce_matches_pytorch(output, request):
    """y = sigmoid(z): torch's binary_cross_entropy_with_logits of z; q: torch's BCELoss of q. The mean over
    every real step and label (reduction mean over the batch's steps, each step's mean over its labels)."""
    pytest.importorskip("torch", reason="compares against PyTorch autograd")
    torch = request.getfixturevalue("torch_float64")
    F = torch.nn.functional
    program = _tagger()
    x, t, lengths = _batch(seed=4)
    params = _perturbed(program, 5)
    got = GradProgram(program, "bce", output, "mean")({"x": x}, t, params, lengths)

    w = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    h = torch.zeros(3, 4)
    zs = []
    for step in range(5):
        new = torch.tanh(torch.cat([h, torch.as_tensor(x[:, step])], dim=1) @ w["W"].T + w["b"])
        real = torch.as_tensor(step < lengths)[:, None]
        h = torch.where(real, new, h)
        zs.append(h)
    hs = torch.stack(zs, dim=1)
    mask = torch.as_tensor((np.arange(5)[None, :] < lengths[:, None]).astype(np.float64))[..., None]
    target = torch.as_tensor(t)
    if output == "y":
        each = F.binary_cross_entropy_with_logits(hs @ w["head.W_y"].T + w["head.b_y"], target, reduction="none")
    else:
        each = F.binary_cross_entropy(0.25 + 0.5 * torch.sigmoid(hs @ w["head.W_y"].T), target, reduction="none")
    loss = (each * mask).sum() / (mask.sum() * 2)
    loss.backward()
    assert got.loss == pytest.approx(loss.item(), rel=1e-12)
    worst = 0.0
    for key, tensor in w.items():
        if tensor.grad is None:  # q does not read the head's bias
            assert not got.grads[key].any(), key
            continue
        worst = max(worst, _rel(got.grads[key], tensor.grad.numpy()))
    print(f"bce of {output}: loss {got.loss:.12g} (torch {loss.item():.12g}), worst relative gradient error "
          f"{worst:.1e}")
    assert worst < 1e-10


def test_bce_of_a_sigmoid_is_stable_for_confident_wrong_predictions():
    """z = +-800: the sigmoid is exactly 1 or 0 in float64, log p would be -inf; from the argument the loss is
    |z| and its gradient sigmoid(z) - t exactly, as PyTorch's binary_cross_entropy_with_logits gives."""
    program = _tagger()
    params = {k: np.zeros_like(v) for k, v in make_params(program, 0, None, "float64").items()}
    params["head.b_y"] = np.array([800.0, -800.0])
    x, _, _ = _batch()
    t = np.zeros((3, 5, 2))
    t[..., 1] = 1.0  # both labels confidently wrong
    got = GradProgram(program, "bce", "y")({"x": x}, t, params)
    assert got.loss == pytest.approx(5 * 800.0)  # each step's mean over its labels: (800 + 800) / 2
    np.testing.assert_allclose(got.grads["head.b_y"], [5 * 0.5, -5 * 0.5])  # (sigmoid(z) - t) / K, per step
    assert all(np.isfinite(v).all() for v in got.grads.values())


# -- located errors ---------------------------------------------------------------------------------------
def test_a_missing_output_or_input_is_located_with_a_suggestion():
    text = _errors(TAGGER + "train:\n  loss: bce\n  output: yy\n")
    assert text == ("s.yaml:26:11: error: the model has no output `yy` [train.output]\n"
                    "      output: yy\n"
                    "              ^\n"
                    "    hint: did you mean `y`?\n"
                    "1 error")
    text = _errors(AUTOENCODER.replace("target: x}", "target: xs}"))
    assert text == ("s.yaml:16:28: error: `xs` is not a model input (the target is one, or the training data's own "
                    "`target` when `target:` is left out) [train.target]\n"
                    "    train: {loss: mse, target: xs}            # reconstruct the input at every step\n"
                    "                               ^\n"
                    "    hint: did you mean `x`?\n"
                    "1 error")


def test_several_outputs_need_one_named():
    text = _errors(TAGGER + "train: {loss: bce}\n")
    assert text == ("s.yaml:24:1: error: the model has outputs y, q; say which one the loss reads [train]\n"
                    "    train: {loss: bce}\n"
                    "    ^^^^^\n"
                    "    hint: add `output: y` (or one of the others) under `train:`\n"
                    "1 error")


def test_cross_entropy_needs_a_softmax():
    text = _errors(TAGGER + "train: {loss: xent, output: y}\n")
    assert text == ("s.yaml:24:15: error: cross-entropy needs a distribution over tokens, but output `y` is computed "
                    "by `sigmoid`, not a softmax [train.loss]\n"
                    "    train: {loss: xent, output: y}\n"
                    "                  ^\n"
                    "    hint: write the output as softmax(...), or use `loss: mse` (or `bce` for a sigmoid)\n"
                    "1 error")


def test_bce_of_an_output_that_is_not_a_sigmoid_is_allowed_with_a_warning():
    checked = check_text(TAGGER + "train: {loss: bce, output: q}\n", "s.yaml")
    (w,) = checked.warnings
    assert w.format() == ("s.yaml:24:15: warning: binary cross-entropy reads probabilities, but output `q` is not a "
                          "sigmoid (it is computed by `add`): the loss takes log p and log(1 - p), NaN outside [0, 1] "
                          "[train.loss]\n"
                          "    train: {loss: bce, output: q}\n"
                          "                  ^\n"
                          "    hint: write the output as sigmoid(...): the loss is then computed from its argument, "
                          "stably")
    assert not check_text(TAGGER + "train: {loss: bce, output: y}\n", "s.yaml").warnings


def test_misspelt_names_and_places_are_located():
    text = _errors(TAGGER + "train: {loss: bec, output: y}\n")
    assert text == ("s.yaml:24:15: error: unknown loss `bec`; use one of: xent, mse, bce [train.loss]\n"
                    "    train: {loss: bec, output: y}\n"
                    "                  ^\n"
                    "    hint: did you mean `bce`?\n"
                    "1 error")
    text = _errors(TAGGER + "train: {output: y, at: last_step}\n")
    assert text == ("s.yaml:24:24: error: the loss cannot be taken at `last_step`: the head runs at every step "
                    "(`model.head.at: every_step`) [train.at]\n"
                    "    train: {output: y, at: last_step}\n"
                    "                           ^\n"
                    "    hint: set the head's `at: last`, or write `at: every_step`\n"
                    "1 error")
    text = _errors(TAGGER + "train: {output: y, at: root}\n")
    assert "error: a sequence model's loss is at `every_step` or `last_step`, not `root` [train.at]" in text
    text = _errors(TAGGER + "train: {outputs: y}\n")
    assert text == ("s.yaml:24:9: error: unknown key `outputs` [train.outputs]\n"
                    "    train: {outputs: y}\n"
                    "            ^^^^^^^\n"
                    "    hint: did you mean `output`?\n"
                    "1 error")


def test_a_target_input_must_fit_the_loss():
    text = _errors(AUTOENCODER.replace("loss: mse", "loss: xent"))
    assert "cross-entropy needs a distribution over tokens, but output `y` is computed by `matmul`" in text
    assert "cross-entropy compares with token ids, but input `x` holds floats [train.target]" in text
    text = _errors(AUTOENCODER.replace("y: W_o @ h", "y: W_o @ h + 0").replace("W_o: [I, H]", "W_o: [H, H]"))
    assert "error: input `x` is [3] per step but output `y` is [2] [train.target]" in text


def test_a_teacher_forced_decoder_compares_with_its_own_target():
    text = (SPECS / "seq2seq.yaml").read_text().replace("input: {src: [S]}", "input: {src: [S], tgt: [T]}").replace(
        "feed: previous_output ", "feed: target\n    target: tgt\n   ")
    assert not check_text(text + "train: {target: tgt}\n", "s.yaml").warnings
    got = _errors(text + "train: {target: src}\n")
    assert "error: the decoder is teacher-forced with `tgt`: its loss compares with that input, not `src`" in got
    assert "hint: write `target: tgt`, or leave `target:` out" in got


def test_a_tree_model_s_places_are_root_and_every_node():
    text = (SPECS / "rvnn.yaml").read_text()
    got = _errors(text + "train: {at: root}\n", str(SPECS / "rvnn_train.yaml"))
    assert "error: the loss cannot be taken at `root`: the head runs at every node (`model.head.at: every_node`)" \
           in got
    got = _errors(text + "train: {at: last_step}\n", str(SPECS / "rvnn_train.yaml"))
    assert "error: a tree model's loss is at `root` or `every_node`, not `last_step`" in got
    assert "hint: the head is at `every_node`: write `at: every_node`" in got


def test_the_schema_shows_the_section(cli):
    code, out, _ = cli("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["properties"]["train"]["anyOf"][0] == {"$ref": "#/$defs/TrainSpec"}
    fields = schema["$defs"]["TrainSpec"]["properties"]
    assert set(fields) == {"loss", "output", "target", "at", "reduction"}
    assert fields["loss"]["enum"] == ["xent", "mse", "bce"]
    assert fields["at"]["enum"] == ["every_step", "last_step", "every_node", "root"]
    assert fields["reduction"]["enum"] == ["sum", "mean"]


def test_the_grad_command_takes_the_loss_and_output_from_the_section(cli, tmp_path):
    spec = tmp_path / "tagger.yaml"
    spec.write_text(TAGGER + "train: {loss: bce, output: y}\n")
    code, _, err = cli("grad", spec, "-o", tmp_path / "g.npz")
    assert code == 0, err
    assert err.startswith("tagger: bce loss ")
    code, _, err = cli("grad", spec, "--loss", "mse", "--output-name", "q", "-o", tmp_path / "g.npz")
    assert code == 0, err
    assert err.startswith("tagger: mse loss ")
    with np.load(tmp_path / "g.npz") as got:
        assert not got["grad.head.b_y"].any()  # q does not read the head's bias
