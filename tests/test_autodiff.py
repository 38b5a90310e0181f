"""Reverse-mode differentiation (rnncompile.autodiff) against references that share no code with it.

- every op of the op table has a vector–Jacobian rule or a stated reason for having none;
- each rule, as a backward graph run by the NumPy backend, against central finite differences of the op
  table's own one-example meaning, for every shape case the kernel tests use;
- every shipped sequence spec's backward cells verify and optimise; their gradients through time (lengths,
  reverse and bidirectional layers, stacks, heads at every step or at the last) against central finite
  differences of the interpreter's loss (float64, relative error < 1e-6);
- lstm, gru and char_predictor against PyTorch autograd with the same weights;
- the python and c backends run the backward cells to the interpreter's numbers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile import flow
from rnncompile.autodiff import NO_RULE, VJP, GradError, grad
from rnncompile.autodiff.bptt import BACKWARD, NOT_DIFFERENTIATED, GradProgram
from rnncompile.autodiff.cellgrad import IN, OUT
from rnncompile.autodiff.losses import reference_loss
from rnncompile.backends.numpy import NumpyBackend
from rnncompile.check import check_file
from rnncompile.drivers import Executable
from rnncompile.errors import DataError, UsageError
from rnncompile.graph import CellGraph, InputInfo, Node, make_attrs, verify
from rnncompile.ops import OPS
from rnncompile.params import make_params
from rnncompile.passes import optimise
from test_kernels import CASES, _array

from conftest import SPECS
from finite_differences import central_difference

PIECEWISE_CONSTANT = {"floordiv", "lt", "le", "gt", "ge", "eq", "ne"}
NOT_DIFFERENTIABLE_KINDS = {"token", "bit", "mask", "whole"}
# shape cases a rule refuses with a stated reason (GradError): op -> shapes
REFUSED = {("matmul", ((2, 3, 4), (4,))), ("flatten", ((2, 3, 2),))}


def test_every_op_has_a_rule_or_a_reason():
    missing = [n for n in OPS if n not in VJP and n not in NO_RULE]
    assert not missing, f"ops without a derivative rule or a stated reason: {missing}"
    assert not set(VJP) & set(NO_RULE), "an op with a rule and a reason for having none"
    assert set(VJP) | set(NO_RULE) <= set(OPS), "rules for ops the op table does not have"


def test_every_flow_op_has_a_backward_or_a_reason():
    missing = [n for n in flow.OP_NAMES if n not in BACKWARD and n not in NOT_DIFFERENTIATED]
    assert not missing, f"flow ops without a backward method or a stated reason: {missing}"


# -- each rule against finite differences of the op's meaning ------------------------------------------
def _one_op_cell(op, shapes, attrs, kinds):
    cell = CellGraph(f"one_{op}")
    args = []
    for i, (shape, kind) in enumerate(zip(shapes, kinds)):
        dtype = "token" if kind == "token" else "float"
        name = f"a{i}"
        args.append(cell.add(Node("input", shape, make_attrs({"name": name, "shape": shape}), dtype)))
        cell.inputs[name] = InputInfo(name, shape, dtype)
    full = {**OPS[op].attrs, **attrs}
    out_shape = OPS[op].shape(list(shapes), full)
    y = cell.add(Node(op, tuple(out_shape), make_attrs(attrs), "float", f"test.{op}"), args)
    cell.add(Node("output", tuple(out_shape), make_attrs({"name": "y"})), [y])
    verify(cell)
    return cell, tuple(out_shape)


def _meaning(op, args, attrs):
    full = {**OPS[op].attrs, **attrs}
    return np.asarray(OPS[op].meaning(*args, **{k: v for k, v in full.items() if k in OPS[op].attrs}), np.float64)


def _rule_cases():
    for op in sorted(VJP):
        for n, (shapes, attrs, kinds) in enumerate(CASES.get(op, [])):
            yield pytest.param(op, shapes, attrs, kinds, id=f"{op}-{n}")


@pytest.mark.parametrize("op, shapes, attrs, kinds", _rule_cases())
def test_rule_matches_finite_differences(op, shapes, attrs, kinds):
    rng = np.random.default_rng(7)
    cell, out_shape = _one_op_cell(op, shapes, attrs, kinds)
    if (op, shapes) in REFUSED:
        with pytest.raises(GradError, match=f"test.{op}: {op}: no .*rule"):
            grad(cell)
        return
    back = grad(cell)
    verify(back.cell)
    bw, _ = optimise(back.cell)
    batch = 2
    values = [_array(rng, (batch,) + s, k, "float64") for s, k in zip(shapes, kinds)]
    if op == "sharpen":  # away from the kink at w = 0
        values[0] = np.where(np.abs(values[0]) < 0.2, 0.5, values[0])
    weights = rng.standard_normal((batch,) + out_shape)
    feed = {f"a{i}": v[:, None] for i, v in enumerate(values)}
    feed[OUT + "y"] = weights[:, None]
    res = NumpyBackend().cell_runner(bw, "float64").bind({}).scan(feed)
    eps = 1e-6
    for i, (v, kind) in enumerate(zip(values, kinds)):
        got = res.outputs.get(IN + f"a{i}")
        if kind == "token":
            assert got is None
            continue
        got = got[:, 0]
        if kind in NOT_DIFFERENTIABLE_KINDS or op in PIECEWISE_CONSTANT:
            if op in PIECEWISE_CONSTANT or (op == "where" and i == 0) or (op == "masked_softmax" and i == 1):
                assert np.all(got == 0)
            continue
        num = np.zeros_like(v)
        for b in range(batch):
            for idx in np.ndindex(v.shape[1:]):
                hi, lo = [np.array(x[b]) for x in values], [np.array(x[b]) for x in values]
                hi[i][idx] += eps
                lo[i][idx] -= eps
                num[(b,) + idx] = ((_meaning(op, hi, attrs) - _meaning(op, lo, attrs)) * weights[b]).sum() / (2 * eps)
        np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-7, err_msg=f"adjoint of argument {i}")


def test_a_missing_rule_names_the_node(monkeypatch):
    program = rnncompile.compile(SPECS / "lstm.yaml")
    monkeypatch.delitem(VJP, "tanh")
    with pytest.raises(GradError, match=r"cells\.lstm\.update\.h: op `tanh` has no derivative rule"):
        grad(program.cell(program.main_use))


# -- whole specs --------------------------------------------------------------------------------------
SEQUENCE_SPECS = {"elman": "mse", "lstm": "mse", "gru": "mse", "deep_lstm": "mse", "bigru": "mse",
                  "sentiment": "xent", "char_predictor": "xent", "bilstm_gru": "mse", "clockwork": "mse",
                  "word_predictor": "xent", "ntm": "mse"}
SMALL = {"H": 5, "T": 5, "I": 3, "E": 3, "O": 2, "N": 4, "W": 3}
# specs compared over all their params at once: the NTM's key-strength gradients are ~1e-7 against a loss of ~2,
# so float64 rounding of the loss alone limits central differences to ~1e-4 on those tensors
WHOLE_GRADIENT = {"ntm"}


def _small(name, **extra):
    known = check_file(SPECS / f"{name}.yaml").dims
    return rnncompile.compile(SPECS / f"{name}.yaml", dims={k: v for k, v in {**SMALL, **extra}.items() if k in known})


def _batch(program, gp, rng, batch=3, steps=5, kind="mse"):
    inputs = {}
    for n, s in program.plan.inputs.items():
        if program.plan.input_dtypes.get(n) == "token":
            inputs[n] = rng.integers(0, len(program.vocab.tokens), (batch, steps))
        else:
            inputs[n] = rng.standard_normal((batch, steps) + s)
    shape = gp._output_shapes()[gp.output]
    lead = (batch, steps) if gp.per_step else (batch,)
    target = rng.integers(0, shape[0], lead) if kind == "xent" else rng.standard_normal(lead + shape)
    return inputs, target


def _perturbed_params(program, rng):
    return {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in make_params(program, 0, None, "float64").items()}


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("name", sorted(SEQUENCE_SPECS))
def test_backward_cells_verify_and_optimise(name):
    program = _small(name)
    for use in program.plan.uses():
        for cell in (use.cell, program.cell(use)):
            back = grad(cell)
            verify(back.cell)
            optimised, _ = optimise(back.cell)
            verify(optimised)
            assert set(back.params) <= set(cell.params)


FD_CASES = [(n, "sum") for n in sorted(SEQUENCE_SPECS)] + [("char_predictor", "mean"), ("sentiment", "mean"),
                                                           ("elman", "mean")]
SLOW_FD = {"word_predictor", "bilstm_gru"}


@pytest.mark.parametrize("name, reduction", [pytest.param(n, r, marks=[pytest.mark.slow] if n in SLOW_FD else [])
                                             for n, r in FD_CASES])
def test_gradients_match_finite_differences(name, reduction):
    kind = SEQUENCE_SPECS[name]
    program = _small(name)
    rng = np.random.default_rng(1)
    gp = GradProgram(program, kind, reduction=reduction)
    inputs, target = _batch(program, gp, rng, kind=kind)
    lengths = np.array([5, 2, 4])
    params = _perturbed_params(program, rng)
    got = gp(inputs, target, params, lengths)
    exe = Executable(program, "numpy", "float64")

    def loss(p):
        out = exe.run(inputs, p, lengths=lengths).outputs[gp.output]
        return reference_loss(out, target, kind, lengths if gp.per_step else None, reduction, gp.per_step)

    assert got.loss == pytest.approx(loss(params), rel=1e-12)
    eps = 1e-5
    nums = {}
    for key, value in params.items():
        num = nums[key] = central_difference(loss, params, key, eps)
        if name not in WHOLE_GRADIENT:
            assert _rel(got.grads[key], num) < 1e-6, key
    whole = np.concatenate([np.ravel(got.grads[k]) for k in params]), np.concatenate([np.ravel(nums[k]) for k in params])
    assert _rel(*whole) < 1e-6


# -- encoder-decoders, teacher-forced -------------------------------------------------------------------------
def _teacher_forced(name):
    """A shipped encoder-decoder spec, decoding with teacher forcing (`feed: target`, a target input `tgt`)."""
    text = (SPECS / f"{name}.yaml").read_text()
    if name == "seq2seq":
        text = text.replace("input: {src: [S]}", "input: {src: [S], tgt: [T]}").replace(
            "feed: previous_output ", "feed: target\n    target: tgt\n   ")
    elif name == "attention_luong":
        text = text.replace("input: {src: [S]}", "input: {src: [S], tgt: [T]}").replace(
            "feed: previous_output ", "feed: target\n    target: tgt\n   ")
    dims = {"seq2seq": {"E": 3, "H": 4, "S": 5, "T": 4}, "attention_luong": {"E": 3, "H": 4, "S": 5, "T": 4},
            "attention_bahdanau": {"H": 3, "D": 4, "A": 3, "L": 2, "E": 3, "S": 5, "T": 4}}[name]
    return rnncompile.compile_text(text, f"{name}.yaml", dims)


@pytest.mark.parametrize("name", ["seq2seq", "attention_luong", "attention_bahdanau"])
def test_teacher_forced_decoders_match_finite_differences(name):
    """The loss of every target step (cross-entropy of the decoder's head against the target it is fed): its
    gradient through the head, the decoder's steps, attention over the memory and its mask, the bridge that
    starts the decoder, and the encoder (bidirectional for Bahdanau's)."""
    program = _teacher_forced(name)
    gp = GradProgram(program, "xent")
    rng = np.random.default_rng(0)
    params = _perturbed_params(program, rng)
    inputs = {"src": rng.integers(0, 12, (3, 5)), "tgt": rng.integers(0, 12, (3, 4))}
    lengths = {"src": np.array([5, 2, 4]), "tgt": np.array([4, 3, 1])}
    got = gp(inputs, None, params, lengths)
    exe = Executable(program, "numpy", "float64")

    def loss(p):
        out = exe.run(inputs, p, lengths=lengths).outputs["p"]
        return reference_loss(out, inputs["tgt"], "xent", lengths["tgt"], "sum", True)

    assert got.loss == pytest.approx(loss(params), rel=1e-12)
    eps = 1e-5
    for key, value in params.items():
        num = central_difference(loss, params, key, eps)
        assert _rel(got.grads[key], num) < 1e-6, key


def test_decoders_that_feed_back_their_own_tokens_are_refused():
    with pytest.raises(UsageError, match=r"`model\.decoder` feeds back its own greedy tokens, which are not "
                                         r"differentiable; train it with teacher forcing"):
        GradProgram(rnncompile.compile(SPECS / "seq2seq.yaml"), "xent")


def test_state_gradients_through_time():
    """d loss / d h_t (wrt_state) for the Elman network: the path through this step's output y_t = W_hy h_t + b_y
    (mse: W_hy^T 2 (y_t - target_t) / (O B)) plus the path through every later step, measured by restarting the
    interpreter from a perturbed h_t."""
    program = _small("elman")
    gp = GradProgram(program, "mse", wrt_state=True)
    rng = np.random.default_rng(6)
    inputs, target = _batch(program, gp, rng)
    params = _perturbed_params(program, rng)
    got = gp(inputs, target, params)
    exe = Executable(program, "numpy", "float64")
    x, (batch, steps) = inputs["x"], inputs["x"].shape[:2]
    t = 2
    head = exe.run({"x": x[:, :t + 1]}, params)
    h_t = head.final_state["h"]

    def future(h):
        out = exe.run({"x": x[:, t + 1:]}, params, init_state={"h": h}).outputs["y"]
        return reference_loss(out, target[:, t + 1:], "mse")
    num = np.zeros_like(h_t)
    for idx in np.ndindex(h_t.shape):
        hi, lo = h_t.copy(), h_t.copy()
        hi[idx] += 1e-6
        lo[idx] -= 1e-6
        num[idx] = (future(hi) - future(lo)) / 2e-6
    y_t = head.outputs["y"][:, t]
    through_output = 2 * (y_t - target[:, t]) / (y_t.shape[-1] * batch) @ params["W_hy"]
    np.testing.assert_allclose(got.states["h"][:, t], num + through_output, rtol=1e-6, atol=1e-10)
    assert got.states["h"].shape == (batch, steps, 5)


@pytest.mark.parametrize("how", ["sum", "mean", "separate"])
def test_every_merge_of_two_directions(how):
    """bigru's top layer merged by sum, mean or kept apart (the loss reads h_forward then) instead of concat."""
    text = (SPECS / "bigru.yaml").read_text()
    top = "- {scan: gru, direction: bidirectional, merge: concat}   # I follows: 2H"
    assert top in text
    program = rnncompile.compile_text(text.replace(top, top.replace("concat", how)), "bigru.yaml", {"H": 3, "I": 2})
    gp = GradProgram(program, "mse", output="h_forward" if how == "separate" else None)
    rng = np.random.default_rng(8)
    inputs, target = _batch(program, gp, rng, steps=4)
    lengths = np.array([4, 1, 3])
    params = _perturbed_params(program, rng)
    got = gp(inputs, target, params, lengths)
    exe = Executable(program, "numpy", "float64")

    def loss(p):
        return reference_loss(exe.run(inputs, p, lengths=lengths).outputs[gp.output], target, "mse", lengths)
    for key, value in params.items():
        num = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            hi, lo = dict(params), dict(params)
            hi[key], lo[key] = np.array(value), np.array(value)
            hi[key][idx] += 1e-5
            lo[key][idx] -= 1e-5
            num[idx] = (loss(hi) - loss(lo)) / 2e-5
        assert _rel(got.grads[key], num) < 1e-6, key


def test_padded_steps_change_nothing():
    """Padding after a sequence's end (any values) leaves the loss and every gradient as they were."""
    program = _small("bigru")
    gp = GradProgram(program, "mse")
    rng = np.random.default_rng(3)
    inputs, target = _batch(program, gp, rng)
    params = _perturbed_params(program, rng)
    lengths = np.array([5, 2, 4])
    a = gp(inputs, target, params, lengths)
    noisy = {n: v.copy() for n, v in inputs.items()}
    noisy["x"][1, 2:] = 100.0
    target2 = target.copy()
    target2[1, 2:] = -7.0
    b = gp(noisy, target2, params, lengths)
    assert a.loss == pytest.approx(b.loss, rel=1e-13)
    for k in a.grads:
        np.testing.assert_allclose(a.grads[k], b.grads[k], rtol=1e-12, atol=1e-14)


def test_cross_entropy_is_stable_for_confident_wrong_predictions():
    """Logits of 1e3: softmax underflows to 0 at the target, yet the loss is finite (via log-softmax) and the
    adjoint of the logits is softmax - onehot, not NaN."""
    program = _small("char_predictor")
    gp = GradProgram(program, "xent")
    params = make_params(program, 0, None, "float64")
    params["head.b_y"] = np.zeros_like(params["head.b_y"])
    params["head.b_y"][0] = 1e3
    x = np.ones((1, 3), np.int64)
    target = np.full((1, 3), 5)
    got = gp({"ch": x}, target, params)
    assert np.isfinite(got.loss) and got.loss == pytest.approx(3 * 1e3, rel=1e-2)
    np.testing.assert_allclose(got.grads["head.b_y"][[0, 5]], [3.0, -3.0], atol=1e-9)
    assert all(np.isfinite(v).all() for v in got.grads.values())


def test_the_loss_is_the_lectures_sum_over_time_mean_over_batch():
    program = _small("char_predictor")
    rng = np.random.default_rng(0)
    gp_sum, gp_mean = GradProgram(program, "xent", reduction="sum"), GradProgram(program, "xent", reduction="mean")
    inputs, target = _batch(program, gp_sum, rng, kind="xent")
    params = make_params(program, 0, None, "float64")
    lengths = np.array([5, 2, 4])
    s, m = gp_sum(inputs, target, params, lengths), gp_mean(inputs, target, params, lengths)
    assert s.tokens == m.tokens == 11
    assert s.loss * 3 == pytest.approx(m.loss * 11, rel=1e-12)


def test_the_sequence_walk_sends_tree_models_to_backpropagation_through_structure():
    program = rnncompile.compile(SPECS / "rvnn.yaml")
    with pytest.raises(UsageError, match=r"cannot differentiate `model\.fold`: .*autodiff\.bpts\.TreeGradProgram"):
        GradProgram(program, "xent")


# -- trees: backpropagation through structure -------------------------------------------------------------
def _tree_case(name, batch=3, seed=0):
    from rnncompile.trees.api import default_trees
    from rnncompile.trees.forest import Forest

    known = check_file(SPECS / f"{name}.yaml").dims
    program = rnncompile.compile(SPECS / f"{name}.yaml", dims={k: v for k, v in {"H": 4, "E": 3, "C": 3}.items()
                                                               if k in known})
    return program, Forest.of(default_trees(program, batch, seed))


def _tree_loss(program, forest, target, params):
    (y,) = rnncompile.run(program, trees=forest, params=params, dtype="float64").outputs.values()
    return reference_loss(y, target, "xent", None, "sum", per_step=False) * len(y) / len(forest.roots)


@pytest.mark.parametrize("name", ["rvnn", "treelstm_childsum", "treelstm_nary"])
def test_tree_gradients_match_finite_differences(name):
    """The head at every node (rvnn) or at the root (Tree-LSTMs), child-sum over a children axis or N-ary with a
    forget gate per child, leaf and node rules sharing weights."""
    from rnncompile.autodiff.bpts import TreeGradProgram

    program, forest = _tree_case(name)
    gp = TreeGradProgram(program, "xent")
    rng = np.random.default_rng(0)
    params = _perturbed_params(program, rng)
    target = rng.integers(0, gp.classes, forest.size if gp.per_node else len(forest.roots))
    got = gp(forest, target, params)
    assert got.loss == pytest.approx(_tree_loss(program, forest, target, params), rel=1e-12)
    eps = 1e-5
    for key, value in params.items():
        num = central_difference(lambda p: _tree_loss(program, forest, target, p), params, key, eps)
        assert _rel(got.grads[key], num) < 1e-6, key


def test_a_chain_ten_thousand_deep_is_differentiated_without_recursion():
    from rnncompile.autodiff.bpts import TreeGradProgram
    from rnncompile.trees.forest import Forest
    from rnncompile.trees.parse import as_trees

    program = rnncompile.compile(SPECS / "treelstm_childsum.yaml", dims={"H": 4})
    word = program.vocab.tokens[5]
    text = word
    for _ in range(10_000):
        text = f"({word} {text})"
    forest = Forest.of(as_trees([text]))
    assert forest.size >= 10_000  # a preterminal (w w) is one node
    params = _perturbed_params(program, np.random.default_rng(1))
    got = TreeGradProgram(program, "xent")(forest, np.array([2]), params)
    assert np.isfinite(got.loss) and all(np.isfinite(v).all() for v in got.grads.values())
    eps, key = 1e-5, "head.b_s"  # the head's bias: its gradient is softmax - onehot at the root
    hi, lo = dict(params), dict(params)
    hi[key], lo[key] = params[key].copy(), params[key].copy()
    hi[key][0] += eps
    lo[key][0] -= eps
    num = (_tree_loss(program, forest, [2], hi) - _tree_loss(program, forest, [2], lo)) / (2 * eps)
    assert got.grads[key][0] == pytest.approx(num, rel=1e-6)


def test_shapes_without_a_rule_are_refused_by_name():
    """Flattening a [S, L, D] value: its adjoint would need a reshape the op table does not have (MemN2N's sum
    over a middle axis has one: tests/test_grad_memn2n.py)."""
    text = """rnncompile: 1
name: bag
vocab: {tokens: [a, b, c, d]}
dims: {S: 2, L: 3, D: 2, T: 3}
cells:
  bag:
    inputs: {story: {shape: [S, L], dtype: token}}
    params: {A: [V, D], W: [V, S * L * D]}
    outputs:
      p: softmax(W @ flatten(embed(story, A)))
model: {scan: bag, input: {story: [T, S, L]}}
"""
    with pytest.raises(GradError, match=r"cells\.bag\.outputs\.p: flatten: no rule for flattening a \[2, 3, 2\] "
                                        r"value"):
        GradProgram(rnncompile.compile_text(text, "bag.yaml"), "xent")


def test_the_backward_of_the_optimised_and_the_unoptimised_cell_agree():
    program = _small("lstm")
    use = program.main_use
    rng = np.random.default_rng(4)
    params = {k: v for k, v in _perturbed_params(program, rng).items()}
    feed = {"x": rng.standard_normal((2, 3, 3)), "h": rng.standard_normal((2, 3, 5)),
            "c": rng.standard_normal((2, 3, 5)), OUT + "y": rng.standard_normal((2, 3, 5))}
    results = []
    for cell in (use.cell, program.cell(use)):
        bw, _ = optimise(grad(cell).cell)
        results.append(NumpyBackend().cell_runner(bw, "float64").bind(params).scan(feed, reverse=True))
    a, b = results
    np.testing.assert_allclose(a.outputs[IN + "x"], b.outputs[IN + "x"], rtol=1e-12)
    for name in a.final_state:
        np.testing.assert_allclose(a.final_state[name], b.final_state[name], rtol=1e-11, atol=1e-13)


def test_bad_targets_are_refused():
    program = _small("char_predictor")
    gp = GradProgram(program, "xent")
    params = make_params(program, 0, None, "float64")
    x = np.zeros((2, 4), np.int64)
    with pytest.raises(DataError, match=r"the target has shape \[2, 3\]; .* needs \[2, 4\] \(one per step\)"):
        gp({"ch": x}, np.zeros((2, 3), np.int64), params)
    with pytest.raises(DataError, match=r"target token ids must be 0\.\.31 \(output `p` has 32 classes\); target\[0, 0\] is 40"):
        gp({"ch": x}, np.full((2, 4), 40), params)


# -- backends -------------------------------------------------------------------------------------------
def _backend_case():
    program = _small("char_predictor")
    rng = np.random.default_rng(5)
    params = _perturbed_params(program, rng)
    x = rng.integers(0, 32, (3, 5))
    t = rng.integers(0, 32, (3, 5))
    return program, params, x, t, np.array([5, 3, 4])


@pytest.mark.parametrize("backend", ["python", pytest.param("c", marks=pytest.mark.slow)])
def test_backends_run_the_backward_cells(backend):
    program, params, x, t, lengths = _backend_case()
    ref = GradProgram(program, "xent")({"ch": x}, t, params, lengths)
    got = GradProgram(program, "xent", backend=backend)({"ch": x}, t, params, lengths)
    assert got.loss == pytest.approx(ref.loss, rel=1e-12)
    for k in ref.grads:
        np.testing.assert_allclose(got.grads[k], ref.grads[k], rtol=1e-10, atol=1e-12)


# -- PyTorch autograd ------------------------------------------------------------------------------------
def _torch_loss(torch, out, target, mask, kind):
    if kind == "xent":
        logp = torch.log_softmax(out, dim=-1)
        each = -logp.gather(-1, torch.as_tensor(target)[..., None])[..., 0]
    else:
        each = ((out - torch.as_tensor(target)) ** 2).mean(-1)
    return (each * torch.as_tensor(mask)).sum() / out.shape[0]


@pytest.mark.torch
@pytest.mark.parametrize("name", ["lstm", "gru", "char_predictor"])
def test_gradients_match_pytorch(name, request):
    pytest.importorskip("torch", reason="compares against PyTorch autograd")
    torch = request.getfixturevalue("torch_float64")
    from rnncompile import interop

    program = rnncompile.compile(SPECS / f"{name}.yaml", dims={"T": 7})
    kind = "xent" if name == "char_predictor" else "mse"
    gp = GradProgram(program, kind)
    rng = np.random.default_rng(11)
    params = _perturbed_params(program, rng)
    inputs, target = _batch(program, gp, rng, batch=4, steps=7, kind=kind)
    lengths = np.array([7, 3, 5, 1])
    got = gp(inputs, target, params, lengths)
    mask = (np.arange(7)[None, :] < lengths[:, None]).astype(np.float64)

    sd = {k: torch.tensor(v, requires_grad=True) for k, v in interop.to_torch(program, params, {}).arrays.items()}
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    if name == "char_predictor":  # nn.Embedding(32, 16) -> nn.LSTM(16, 64) -> nn.Linear(64, 32)
        x = torch.nn.functional.embedding(torch.as_tensor(inputs["ch"]), sd["embedding.weight"])
        rnn, weights = torch.nn.LSTM(16, 64, batch_first=True), {n: sd[f"rnn.{n}"] for n in names}
    else:
        x = torch.as_tensor(inputs["x"])
        rnn, weights = (torch.nn.LSTM if name == "lstm" else torch.nn.GRU)(8, 16, batch_first=True), \
            {n: sd[n] for n in names}
    out, _ = torch.func.functional_call(rnn, weights, (x,))
    if name == "char_predictor":
        out = out @ sd["linear.weight"].T + sd["linear.bias"]
    loss = _torch_loss(torch, out, target, mask, kind)
    loss.backward()
    assert got.loss == pytest.approx(loss.item(), rel=1e-12)
    ours = interop.to_torch(program, got.grads, {}).arrays
    worst = 0.0
    for key, tensor in sd.items():
        theirs = tensor.grad.numpy()
        mine = ours[key]
        if key.endswith("bias_hh_l0"):  # one spec bias stands for torch's two: compare where it was placed
            placed = np.abs(interop.to_torch(program, {k: np.ones_like(v) for k, v in params.items()}, {})
                            .arrays[key]) > 0
            theirs, mine = theirs[placed], mine[placed]
        worst = max(worst, _rel(mine, theirs))
    print(f"{name}: loss {got.loss:.12g} (torch {loss.item():.12g}), worst relative gradient error {worst:.1e}")
    assert worst < 1e-10


def test_the_python_api_gives_the_grad_command_s_gradients(tmp_path):
    """rnncompile.grad (the public API) and `rnncompile grad` compute the same loss and gradients."""
    from click.testing import CliRunner

    from rnncompile.cli import cli as rnncompile_cli

    spec = str(Path(__file__).resolve().parents[1] / "specs" / "elman.yaml")
    out = tmp_path / "g.npz"
    res = CliRunner().invoke(rnncompile_cli, ["grad", spec, "--input", str(_elman_data(tmp_path)), "-o", str(out)])
    assert res.exit_code == 0, res.output
    saved = dict(np.load(out))
    data = dict(np.load(tmp_path / "elman_data.npz"))
    prog = rnncompile.compile(spec)
    g = rnncompile.grad(prog, {"x": data["x"]}, target=data["target"], loss="mse", dtype="float32")
    assert np.isclose(g.loss, float(saved["loss"]), rtol=1e-6)
    for key, v in g.grads.items():
        np.testing.assert_allclose(v, saved[f"grad.{key}"], rtol=1e-5, atol=1e-7)


def _elman_data(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "elman_data.npz"
    prog = rnncompile.compile(str(Path(__file__).resolve().parents[1] / "specs" / "elman.yaml"))
    (i,) = prog.plan.inputs.values()
    out_shape = next(iter(prog.cell(prog.plan.uses()[0]).outputs().values()))
    y = prog.cell(prog.plan.uses()[0]).node(out_shape).shape
    np.savez(path, x=rng.standard_normal((2, 5) + i).astype(np.float32),
             target=rng.standard_normal((2, 5) + y).astype(np.float32))
    return path
