"""The long-lag benchmarks after Hochreiter & Schmidhuber (1997): the original LSTM (specs/lstm1997.yaml) against
the paper's equations written out in NumPy and its gradient against finite differences; the task generators
against independent checks (a regular expression for the embedded Reber grammar, the adding problem's target
recomputed from its inputs); the task specs; and a tiny training run in which the original LSTM bridges a lag."""
from __future__ import annotations

import re
import sys
from collections import defaultdict

import numpy as np
import pytest

import rnncompile
from conftest import ROOT, SPECS
from rnncompile.autodiff import GradProgram
from rnncompile.autodiff.losses import reference_loss
from rnncompile.drivers import Executable
from rnncompile.errors import UsageError
from rnncompile.params import make_params
from rnncompile.tasks import long_lag as L
from finite_differences import central_difference

TASK_SPECS = sorted((SPECS / "tasks").glob("*.yaml"))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm1997_reference(p: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hochreiter & Schmidhuber (1997), section 4, for memory cells of size 1 without forget gates:
    y_in = f(net_in), y_out = f(net_out) with f the logistic sigmoid; s_c(t) = s_c(t-1) + y_in g(net_c) with
    g(x) = 4 / (1 + e^-x) - 2; y_c = y_out h(s_c) with h(x) = 2 / (1 + e^-x) - 1; every net input an affine map
    of (y_c(t-1), x(t)). Returns the cell outputs [B, T, H] and the final cell states [B, H]."""
    batch, steps, _ = x.shape
    size = p["b_i"].shape[0]
    y, s = np.zeros((batch, size)), np.zeros((batch, size))
    out = np.zeros((batch, steps, size))
    for t in range(steps):
        u = np.concatenate([y, x[:, t]], axis=1)
        y_in = 1.0 / (1.0 + np.exp(-(u @ p["W_i"].T + p["b_i"])))
        y_out = 1.0 / (1.0 + np.exp(-(u @ p["W_o"].T + p["b_o"])))
        g = 4.0 / (1.0 + np.exp(-(u @ p["W_z"].T + p["b_z"]))) - 2.0
        s = s + y_in * g
        y = y_out * (2.0 / (1.0 + np.exp(-s)) - 1.0)
        out[:, t] = y
    return out, s


def test_lstm1997_forward_is_the_papers_equations():
    program = rnncompile.compile(SPECS / "lstm1997.yaml", dims={"I": 3, "H": 4})
    rng = np.random.default_rng(0)
    params = {k: 2.0 * rng.standard_normal(v.shape) for k, v in make_params(program, 0, None, "float64").items()}
    x = rng.standard_normal((2, 30, 3))
    got = rnncompile.run(program, {"x": x}, params, dtype="float64")
    want, s = lstm1997_reference(params, x)
    np.testing.assert_allclose(got.outputs["h"], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.final_state["c"], s, rtol=1e-12, atol=1e-12)
    assert np.abs(s).max() > 2.0  # the carousel accumulates: the cell state leaves g's range [-2, 2]


def test_lstm1997_cell_has_no_forget_gate():
    params = make_params(rnncompile.compile(SPECS / "lstm1997.yaml"), 0)
    assert sorted(params) == ["W_i", "W_o", "W_z", "b_i", "b_o", "b_z"]


@pytest.mark.parametrize("head, kind", [("next", "xent"), ("regress", "mse"), ("classify", "xent")])
def test_lstm1997_gradients_match_finite_differences(head, kind):
    program = rnncompile.compile(SPECS / "tasks" / f"lstm1997_{head}.yaml", dims={"I": 3, "H": 3, "O": 3})
    rng = np.random.default_rng(1)
    gp = GradProgram(program, kind)
    x = rng.standard_normal((3, 6, 3))
    lengths = np.array([6, 2, 4])
    target = (rng.integers(0, 3, (3, 6) if gp.per_step else (3,)) if kind == "xent"
              else rng.standard_normal((3, 3)))
    params = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in make_params(program, 0, None, "float64").items()}
    got = gp({"x": x}, target, params, lengths)
    exe = Executable(program, "numpy", "float64")
    out_name = gp.output

    def loss(p):
        out = exe.run({"x": x}, p, lengths=lengths).outputs[out_name]
        return reference_loss(out, target, kind, lengths if gp.per_step else None, "sum", gp.per_step)

    assert got.loss == pytest.approx(loss(params), rel=1e-12)
    eps = 1e-6
    for key, value in params.items():
        num = central_difference(loss, params, key, eps)
        np.testing.assert_allclose(got.grads[key], num, rtol=1e-6, atol=1e-8, err_msg=key)


# -- the task specs --------------------------------------------------------------------------------------------

def test_every_model_has_every_head():
    names = {p.stem for p in TASK_SPECS}
    assert names == {f"{m}_{h}" for m in ("lstm1997", "lstm", "rnn") for h in ("next", "classify", "regress")}


def test_task_specs_share_the_shipped_cells():
    """The task specs' lstm1997 cell computes what specs/lstm1997.yaml computes, weight for weight."""
    base = rnncompile.compile(SPECS / "lstm1997.yaml", dims={"I": 3, "H": 4})
    task = rnncompile.compile(SPECS / "tasks" / "lstm1997_regress.yaml", dims={"I": 3, "H": 4})
    params = make_params(task, 0, None, "float64")
    x = np.random.default_rng(2).standard_normal((2, 7, 3))
    h = rnncompile.run(base, {"x": x}, {k: params[k] for k in make_params(base, 0)}, dtype="float64").outputs["h"]
    y = rnncompile.run(task, {"x": x}, params, dtype="float64").outputs["y"]
    np.testing.assert_allclose(y, h[:, -1] @ params["head.W_y"].T + params["head.b_y"], rtol=1e-12)


# -- the generators --------------------------------------------------------------------------------------------

# The Reber grammar as a regular expression, written from its graph independently of REBER_EDGES: through T the
# S loop then X, or through P the T loop, V, then P, to the node of the X T* V P loop; out by S, or X T* V V;
# or straight from the P branch's V by V.
INNER = r"B(?:(?:TS*X|PT*VP)(?:XT*VP)*(?:S|XT*VV)|PT*VV)E"
EMBEDDED = re.compile(rf"B(?:T{INNER}T|P{INNER}P)E")


def test_embedded_reber_strings_are_in_the_grammar():
    rng = np.random.default_rng(3)
    strings = [L.embedded_reber_string(rng) for _ in range(500)]
    assert all(EMBEDDED.fullmatch(s) for s in strings)
    assert {s[1] for s in strings} == {"T", "P"}
    assert len(set(strings)) > 100


def test_reber_next_symbols_are_what_the_grammar_produces():
    """Every next symbol seen after a prefix in many sampled strings is allowed, and a prefix seen often shows
    every symbol allowed after it."""
    rng = np.random.default_rng(4)
    seen = defaultdict(set)
    counts = defaultdict(int)
    for _ in range(3000):
        s = L.embedded_reber_string(rng)
        for t in range(1, len(s)):
            seen[s[:t]].add(s[t])
            counts[s[:t]] += 1
    for prefix, nxt in seen.items():
        allowed = L.reber_next_symbols(prefix)
        assert nxt <= allowed, prefix
        if counts[prefix] >= 40:
            assert nxt == allowed, prefix
    assert L.reber_next_symbols("BTBTXSE") == {"T"}  # the long-lag step: the branch symbol comes back
    assert L.reber_next_symbols("BPBTXSE") == {"P"}
    assert L.reber_next_symbols("BPBTXSEPE") == set()


def test_reber_prefix_outside_the_grammar_is_named():
    with pytest.raises(UsageError, match=r"'BTBTT': symbol 4 is T, but the grammar allows S or X there"):
        L.reber_next_symbols("BTBTT")
    with pytest.raises(UsageError, match="second symbol of an embedded Reber string is T or P, not S"):
        L.reber_next_symbols("BS")


def test_embedded_reber_data_and_criterion():
    data = L.embedded_reber(50, seed=5)
    x, target, lengths = data["x"], data["target"], data["lengths"]
    assert x.shape[:2] == target.shape and x.shape[2] == 7 and x.dtype == np.float32
    for k in range(50):
        n = lengths[k]
        s = "".join(L.REBER_SYMBOLS[i] for i in x[k, :n].argmax(-1)) + L.REBER_SYMBOLS[target[k, n - 1]]
        assert EMBEDDED.fullmatch(s)
        assert not x[k, n:].any()
    legal = L.reber_legal(data)
    assert L.reber_correct(legal / np.maximum(legal.sum(-1, keepdims=True), 1), data).all()
    wrong = legal.astype(float)
    k = 7
    crit = lengths[k] - 2  # the step that must predict the branch symbol again
    wrong[k, crit] = wrong[k, crit, ::-1]
    got = L.reber_correct(wrong, data)
    assert not got[k] and got.sum() == 49


def test_noise_free_long_lag():
    data = L.noise_free_long_lag(20, p=6, seed=6)
    ids = data["x"].argmax(-1)
    assert data["x"].shape == (20, 6, 7)
    assert set(ids[:, 0]) == {5, 6}
    np.testing.assert_array_equal(ids[:, 1:], np.tile(np.arange(5), (20, 1)))
    np.testing.assert_array_equal(data["target"][:, -1], ids[:, 0])  # the last symbol repeats the first
    np.testing.assert_array_equal(data["target"][:, :-1], ids[:, 1:])
    both = L.long_lag_sequences(6)
    assert list(both["x"][:, 0].argmax(-1)) == [5, 6]
    probs = np.full((2, 6, 7), 0.2 / 6)
    probs[np.arange(2)[:, None], np.arange(6), both["target"]] = 0.8
    assert L.long_lag_correct(probs, both).all()
    probs[1, -1] = 1 / 7
    assert list(L.long_lag_correct(probs, both)) == [True, False]
    with pytest.raises(UsageError, match="the lag p must be an integer of at least 2, not 1"):
        L.noise_free_long_lag(3, p=1)


def test_adding_problem_follows_the_paper():
    steps = 40
    data = L.adding_problem(300, steps=steps, seed=7)
    x, lengths = data["x"], data["lengths"]
    assert lengths.min() >= steps and lengths.max() <= steps + steps // 10
    for k in range(300):
        n = lengths[k]
        marks = x[k, :n, 1]
        ones = np.flatnonzero(marks == 1.0)
        assert len(ones) == 2 and ones[0] < 10 and ones[1] < steps // 2 - 1
        assert set(np.flatnonzero(marks == -1.0)) <= {0, n - 1}
        assert np.abs(x[k, :n, 0]).max() <= 1.0 and not x[k, n:].any()
        assert data["target"][k, 0] == pytest.approx(0.5 + x[k, ones, 0].sum() / 4.0, abs=1e-6)
    assert 0.0 <= data["target"].min() and data["target"].max() <= 1.0
    y = data["target"] + np.where(np.arange(300) % 2, 0.05, 0.03)[:, None]
    assert list(L.adding_correct(y, data)[:4]) == [True, False, True, False]
    with pytest.raises(UsageError, match="at least 10 steps"):
        L.adding_problem(4, steps=5)


def test_temporal_order_follows_experiment_6a():
    data = L.temporal_order(300, length=100, seed=8)
    ids, lengths = data["x"].argmax(-1), data["lengths"]
    assert lengths.min() >= 100 and lengths.max() <= 110
    for k in range(300):
        n = lengths[k]
        row = ids[k, :n]
        assert row[0] == 0 and row[-1] == 1 and set(row[1:-1]) <= set(range(2, 8))
        (t1, t2) = np.flatnonzero(row >= 6)
        assert 10 <= t1 <= 20 and 50 <= t2 <= 60
        assert L.TEMPORAL_CLASSES[data["target"][k]] == "".join(L.TEMPORAL_SYMBOLS[i] for i in row[[t1, t2]])
    assert set(data["target"]) == {0, 1, 2, 3}
    hot = np.eye(4)[data["target"]] * 0.75 + 0.25 / 4
    assert L.temporal_order_correct(hot, data).all()
    assert not L.temporal_order_correct(np.full((300, 4), 0.25), data).any()


def test_generators_are_seeded():
    for make in (L.embedded_reber, L.adding_problem, L.temporal_order, L.noise_free_long_lag):
        a, b = make(8, seed=11), make(8, seed=11)
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert not np.array_equal(a["x"], make(8, seed=12)["x"]) or make is L.noise_free_long_lag
    with pytest.raises(UsageError, match="positive integer, not 0"):
        L.adding_problem(0)


# -- training --------------------------------------------------------------------------------------------------

def test_the_original_lstm_bridges_a_lag_and_the_benchmark_says_so():
    """One seed of the benchmark's quick long lag (p = 10): lstm1997 solves it inside its budget."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_long_lag as bench

    task = bench._tasks(quick=True)["long_lag_10"]
    got = bench.train_one(task, "lstm1997", 0, bench.test_set(task))
    assert got.solved and got.sequences <= task.budget and got.share == 1.0
