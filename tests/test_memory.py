"""Networks with explicit memory: the NTM and MemN2N specs against independent NumPy
implementations of the papers (tests/memory_reference.py), the `memory:` shorthand against the
written-out spec, the fact-memory example, stable numerics over long runs, and the plot command."""
from __future__ import annotations

import time

import numpy as np
import pytest

import memory_reference as ref
import rnncompile
from conftest import ROOT, SPECS
from rnncompile.backends.numpy.kernels import kernel
from rnncompile.graph import to_text
from rnncompile.ops import OPS
from rnncompile.plot import find, weightings

EXAMPLE = ROOT / "examples" / "memory" / "spec.yaml"
NTM_DIMS = {"I": 3, "O": 2, "H": 5, "N": 6, "W": 4}


def _trace(program, result, name):
    use = program.main_use
    return result.trace[use.prefix][find(program.cell(use), name)]


def _random_params(program, rng, scale=0.8, dtype="float64"):
    """Every param random and non-zero; initial weightings are random distributions."""
    out = {}
    for name, info in program.params.items():
        v = rng.uniform(-scale, scale, info.shape)
        if name.endswith("_init"):
            v = ref.softmax(2 * v)
        out[name] = np.asarray(v, dtype)
    return out


def _default_state(program, params, batch):
    """The spec's own initial state: zeros, the memory's constant, weightings from their params."""
    state = {}
    for name, info in program.scan_cell.states.items():
        value = params[info.init] if isinstance(info.init, str) else np.full(info.shape, info.init)
        state[name] = np.broadcast_to(np.asarray(value, np.float64), (batch,) + info.shape).copy()
    return state


def _random_state(program, rng, batch):
    state = {}
    for name, info in program.scan_cell.states.items():
        v = rng.standard_normal((batch,) + info.shape)
        state[name] = ref.softmax(v) if name.startswith("w_") else v
    return state


def _as64(d):
    return {k: np.asarray(v, np.float64) for k, v in d.items()}


def _ntm_text(reads=1, writes=1, addressing="content+location", init="1.0e-6", extra=""):
    """A small NTM through the shorthand; the LSTM controller reads x and every read vector."""
    rs = ", ".join(f"r{i}" for i in range(reads))
    gate = "{{act: {act}, from: [h, x, " + rs + "], size: H}}"
    return f"""
rnncompile: 1
name: ntm_test
dims: {{I: 3, O: 2, H: 5, N: 6, W: 4, T: 7}}
cells:
  ntm:
    inputs: {{x: I}}
    state: {{h: H, c: H}}
    memory: {{slots: N, width: W, controller: h_next, read_heads: {reads}, write_heads: {writes},
              addressing: {addressing}, init: {init}{extra}}}
    gates:
      i: {gate.format(act="sigmoid")}
      f: {gate.format(act="sigmoid")}
      g: {gate.format(act="tanh")}
      o: {gate.format(act="sigmoid")}
    params: {{W_y: [O, H + {reads} * W], b_y: [O]}}
    let: {{c_next: f * c + i * g, h_next: o * tanh(c_next)}}
    update: {{c: c_next, h: h_next}}
    outputs: {{y: "sigmoid(W_y @ concat(h_next, {rs}) + b_y)"}}
model: {{scan: ntm, input: {{x: [T, I]}}}}
"""


# ---- the NTM against the paper's equations ---------------------------------------------------------

@pytest.mark.parametrize("start", ["spec's own", "random"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ntm_matches_the_papers_equations(dtype, start):
    """Content and location addressing, erase/add and read, step by step, outputs, weightings and memory."""
    program = rnncompile.compile(SPECS / "ntm.yaml", dims=NTM_DIMS, optimize=False)
    rng = np.random.default_rng(5)
    batch, steps = 3, 12
    params = _random_params(program, rng, dtype=dtype)
    x = rng.standard_normal((batch, steps, NTM_DIMS["I"])).astype(dtype)
    state = _default_state(program, params, batch) if start == "spec's own" else _random_state(program, rng, batch)
    res = rnncompile.run(program, inputs={"x": x}, params=params, dtype=dtype, trace=True,
                         init_state=None if start == "spec's own" else {k: v.astype(dtype) for k, v in state.items()})
    want_y, want_final, want_w = ref.ntm(_as64(params), x.astype(np.float64), _as64(state))
    tol = 1e-9 if dtype == "float64" else 1e-5
    assert np.max(np.abs(res.outputs["y"] - want_y)) < tol
    for name, want in want_final.items():
        assert np.max(np.abs(res.final_state[name] - want)) < tol, name
    for name, want in want_w.items():
        got = _trace(program, res, name)
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) < tol, name
    assert np.abs(np.sum(want_w["w_r0"], axis=-1) - 1).max() < 1e-9  # weightings stay distributions


@pytest.mark.parametrize("reads,writes,addressing", [(2, 2, "content+location"), (1, 1, "content"),
                                                     (2, 1, "content"), (1, 3, "content+location")])
def test_shorthand_heads_match_the_papers_equations(reads, writes, addressing):
    """Several read and write heads (erasures multiply, adds sum) and content-only addressing."""
    program = rnncompile.compile_text(_ntm_text(reads, writes, addressing), "ntm_test.yaml")
    rng = np.random.default_rng(reads * 10 + writes)
    params = _random_params(program, rng)
    x = rng.standard_normal((2, 9, 3))
    state = _random_state(program, rng, 2)
    res = rnncompile.run(program, inputs={"x": x}, params=params, init_state=state, dtype="float64")
    tags = [f"r{i}" for i in range(reads)], [f"w{j}" for j in range(writes)]
    want_y, want_final, _ = ref.ntm(params, x, state, *tags, location=addressing == "content+location")
    np.testing.assert_allclose(res.outputs["y"], want_y, rtol=1e-9, atol=1e-9)
    for name, want in want_final.items():
        np.testing.assert_allclose(res.final_state[name], want, rtol=1e-9, atol=1e-9, err_msg=name)


def test_ntm_float32_error_is_measured_on_a_long_run():
    program = rnncompile.compile(SPECS / "ntm.yaml")
    rng = np.random.default_rng(11)
    params = _random_params(program, rng, dtype="float32")
    x = rng.standard_normal((2, 100, 8)).astype("float32")
    res = rnncompile.run(program, inputs={"x": x}, params=params, dtype="float32")
    want_y, want_final, _ = ref.ntm(_as64(params), x.astype(np.float64), _default_state(program, params, 2))
    err = max(np.max(np.abs(res.outputs["y"] - want_y)), np.max(np.abs(res.final_state["M"] - want_final["M"])))
    assert err < 1e-5, f"float32 max abs error {err:.3g} after 100 steps"


# ---- the shorthand is the written-out spec -----------------------------------------------------------

@pytest.mark.parametrize("optimize", [False, True])
def test_shorthand_compiles_to_the_written_out_graph(optimize):
    long = rnncompile.compile(SPECS / "ntm.yaml", optimize=optimize)
    short = rnncompile.compile(SPECS / "ntm_shorthand.yaml", optimize=optimize)
    assert to_text(short.scan_cell) == to_text(long.scan_cell)
    assert {k: v.shape for k, v in short.params.items()} == {k: v.shape for k, v in long.params.items()}
    assert list(short.params) == list(long.params)  # weight files fit both
    assert short.scan_cell.states == long.scan_cell.states


def test_shorthand_gives_the_same_numbers():
    long = rnncompile.compile(SPECS / "ntm.yaml")
    short = rnncompile.compile(SPECS / "ntm_shorthand.yaml")
    params = rnncompile.make_params(long, seed=4)
    a = rnncompile.run(long, params=params, steps=30, batch=2, seed=4)
    b = rnncompile.run(short, params=params, steps=30, batch=2, seed=4)
    np.testing.assert_array_equal(a.outputs["y"], b.outputs["y"])
    for name in a.final_state:
        np.testing.assert_array_equal(a.final_state[name], b.final_state[name], err_msg=name)


def test_memory_start_values():
    """The memory starts from a constant, zeros, a param, or a value given at run time."""
    const = rnncompile.compile_text(_ntm_text(init="0.5"), "a.yaml")
    zeros = rnncompile.compile_text(_ntm_text(init="0"), "b.yaml")
    param = rnncompile.compile_text(
        _ntm_text(init="M0").replace("params: {W_y", "params: {M0: {shape: [N, W], init: normal}, W_y"), "c.yaml")
    x = np.random.default_rng(0).standard_normal((1, 3, 3))

    def first_memory(program, **kw):
        res = rnncompile.run(program, inputs={"x": x}, trace=True, dtype="float64", **kw)
        return _trace(program, res, "M.prev")[0, 0]

    assert np.all(first_memory(const) == 0.5)
    assert np.all(first_memory(zeros) == 0)
    params = rnncompile.make_params(param, dtype="float64")
    np.testing.assert_array_equal(first_memory(param, params=params), params["M0"])
    given = np.arange(24.0).reshape(1, 6, 4)
    state = {n: np.zeros((1,) + s.shape) for n, s in zeros.scan_cell.states.items()}
    np.testing.assert_array_equal(first_memory(zeros, init_state={**state, "M": given}), given[0])


def test_shorthand_names_are_predictable():
    program = rnncompile.compile_text(_ntm_text(2, 1), "ntm_test.yaml", optimize=False)
    cell = program.scan_cell
    assert list(cell.states) == ["h", "c", "M", "r0", "r1", "w_r0", "w_r1", "w_w0"]
    labels = {cell.node(n).label for n in cell.g.nodes}
    assert {"k_w0", "beta_w0", "g_w0", "s_w0", "gamma_w0", "wc_w0", "wg_w0", "ws_w0", "w_w0_next", "e_w0",
            "a_w0", "M_next", "k_r1", "w_r1_next"} <= labels
    assert [t for t, _ in weightings(cell)] == ["w_w0  (write weighting)", "w_r0  (read weighting)",
                                                "w_r1  (read weighting)"]


def test_shorthand_errors_are_located():
    text = _ntm_text(extra=", controller_size: HH, shifts: 3")
    with pytest.raises(rnncompile.SpecError) as e:
        rnncompile.compile_text(text.replace("controller: h_next", "controller: h_nex"), "bad.yaml")
    msg = e.value.format()
    assert "undefined name `h_nex`" in msg and "did you mean `h_next`?" in msg
    assert "undefined dim `HH`" in msg
    assert "7 shifts (-3..3) do not fit a memory of 6 slots" in msg and "use at most shifts: 2" in msg
    assert msg.endswith("3 errors")  # nothing repeated from the written-out entries


def test_shorthand_refuses_to_shadow_a_name():
    text = _ntm_text().replace("let: {c_next", "let: {k_r0: h, c_next")
    with pytest.raises(rnncompile.SpecError) as e:
        rnncompile.compile_text(text, "bad.yaml")
    assert "the memory shorthand defines `k_r0` (let), but the cell already has `k_r0` under `let:`" in str(e.value)


# ---- stable numerics ---------------------------------------------------------------------------------

def _kernel(op, shapes, attrs=None):
    attrs = {**OPS[op].attrs, **(attrs or {})}
    return kernel(op, [True] * len(shapes), shapes, attrs, OPS[op].shape(list(shapes), attrs))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_addressing_ops_never_make_nan(dtype):
    zeros_m, zeros_k = np.zeros((2, 4, 3), dtype), np.zeros((2, 3), dtype)
    with np.errstate(divide="raise", over="raise", invalid="raise"):  # no 0/0, inf or NaN, anywhere
        cos = _kernel("cosine", ((4, 3), (3,)))(zeros_m, zeros_k)
        np.testing.assert_array_equal(cos, 0)
        tiny = np.full((2, 4, 3), 1e-30, dtype)
        assert np.all(np.abs(_kernel("cosine", ((4, 3), (3,)))(tiny, zeros_k + 1)) <= 1)
        sharpen = _kernel("sharpen", ((4,), ()))
        np.testing.assert_array_equal(sharpen(np.zeros((2, 4), dtype), np.full(2, 3, dtype)), 0)
        peaked = sharpen(np.array([[1e-30, 2e-30, 0, 1e-30]] * 2, dtype), np.full(2, 500.0, dtype))
        np.testing.assert_allclose(peaked, [[0, 1, 0, 0]] * 2, atol=1e-6)  # neither 0/0 nor overflow
        flat = sharpen(np.full((2, 4), 0.25, dtype), np.full(2, 1e4, dtype))
        np.testing.assert_allclose(flat, 0.25, rtol=1e-5)
        shifted = _kernel("shift", ((4,), (3,)))(np.eye(4, dtype=dtype)[:2], np.array([[0, 0, 1]] * 2, dtype))
        np.testing.assert_array_equal(shifted, np.eye(4, dtype=dtype)[[1, 2]])  # +1: one slot forward, exactly


def test_ntm_runs_nan_free_for_ten_thousand_steps():
    """Large random weights and inputs, T = 10,000, batch 1 (float32)."""
    program = rnncompile.compile(SPECS / "ntm.yaml", dims={"I": 4, "O": 4, "H": 8, "N": 8, "W": 4})
    rng = np.random.default_rng(7)
    params = {k: (v * 4).astype("float32") for k, v in _random_params(program, rng).items()}
    x = (3 * rng.standard_normal((1, 10_000, 4))).astype("float32")
    start = time.perf_counter()
    res = rnncompile.run(program, inputs={"x": x}, params=params)
    seconds = time.perf_counter() - start
    assert np.isfinite(res.outputs["y"]).all()
    for name, v in res.final_state.items():
        assert np.isfinite(v).all(), name
    np.testing.assert_allclose(res.final_state["w_r0"].sum(), 1, rtol=1e-4)
    print(f"NTM, T = 10,000: {seconds:.2f} s")


@pytest.mark.parametrize("case", ["zero memory and keys", "huge strengths", "huge weights"])
def test_ntm_stays_finite_at_the_edges(case):
    program = rnncompile.compile(SPECS / "ntm.yaml", dims={"I": 4, "O": 4, "H": 8, "N": 8, "W": 4})
    rng = np.random.default_rng(3)
    params = _random_params(program, rng, dtype="float32")
    state = None
    if case == "zero memory and keys":
        for tag in ("r0", "w0"):
            params[f"W_k_{tag}"] *= 0
            params[f"b_k_{tag}"] *= 0
        state = {n: np.zeros((2,) + s.shape, "float32") for n, s in program.scan_cell.states.items()}
    elif case == "huge strengths":
        for name in params:
            if name.startswith(("b_beta", "b_gamma")):
                params[name] = np.float32(1e4)
    else:
        params = {k: v * 1e3 for k, v in params.items()}
    x = (10 * rng.standard_normal((2, 500, 4))).astype("float32")
    with np.errstate(over="ignore"):  # exp overflow inside tanh and sigmoid is harmless
        res = rnncompile.run(program, inputs={"x": x}, params=params, init_state=state)
    assert np.isfinite(res.outputs["y"]).all()
    assert all(np.isfinite(v).all() for v in res.final_state.values())


# ---- MemN2N ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_memn2n_matches_the_papers_equations(dtype):
    program = rnncompile.compile(SPECS / "memn2n.yaml")
    rng = np.random.default_rng(2)
    params = {k: rng.normal(0, 0.3, v.shape).astype(dtype) for k, v in program.params.items()}
    vocab = len(program.vocab.tokens)
    story = rng.integers(0, vocab, (3, 4, 6, 5))
    question = rng.integers(0, vocab, (3, 4, 5))
    res = rnncompile.run(program, inputs={"story": story, "question": question}, params=params, dtype=dtype)
    want, attention = ref.memn2n(_as64(params), story, question)
    tol = 1e-9 if dtype == "float64" else 1e-5
    assert np.max(np.abs(res.outputs["answer"] - want)) < tol
    for k, p in enumerate(attention, start=1):
        assert np.max(np.abs(res.outputs[f"p{k}"] - p)) < tol


# ---- the example: knowledge stored explicitly and fetched --------------------------------------------

FACTS = [("france", "paris"), ("italy", "rome"), ("japan", "tokyo"), ("peru", "lima"), ("kenya", "nairobi"),
         ("egypt", "cairo")]


def _ask(program, told, asked):
    ids = {t: i for i, t in enumerate(program.vocab.tokens)}
    key = [ids[k] for k, _ in told] + [ids[k] for k in asked]
    value = [ids[v] for _, v in told] + [ids["?"]] * len(asked)
    res = rnncompile.run(program, inputs={"key": np.array([key]), "value": np.array([value])})
    return res.outputs["answer"][0, len(told):]


@pytest.mark.parametrize("order", range(4))
def test_example_retrieves_every_stored_fact(order):
    program = rnncompile.compile(EXAMPLE)
    rng = np.random.default_rng(order)
    told = [FACTS[i] for i in rng.permutation(len(FACTS))][: 3 + order]
    asked = [told[i][0] for i in rng.permutation(len(told))]
    answers = _ask(program, told, asked)
    capital = dict(told)
    tokens = program.vocab.tokens
    for key, p in zip(asked, answers):
        assert tokens[int(p.argmax())] == capital[key]
        assert p.max() > 0.999, f"{key}: {p.max()}"


def test_example_runs_from_its_data_file(cli):
    code, out, err = cli("run", EXAMPLE, "--input", EXAMPLE.parent / "facts.json")
    assert code == 0, err
    assert "top: 'rome':1.000" in out  # the last question: italy ?


# ---- pictures -----------------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_draws_the_example(cli, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "facts.png"
    code, stdout, err = cli("plot", EXAMPLE, "--input", EXAMPLE.parent / "facts.json", "-o", out)
    assert code == 0, err
    assert out.read_bytes()[:8] == PNG


@pytest.mark.parametrize("spec,args", [("ntm_shorthand.yaml", ["-t", "15", "-s", "w_r0,wc_r0", "-m", "M"]),
                                       ("memn2n.yaml", ["--sequence", "1", "--dim", "T=3"]),
                                       ("ntm.yaml", ["-t", "5"])])
def test_plot_draws_the_specs(cli, tmp_path, spec, args):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run.png"
    extra = ["--input", _memn2n_inputs(tmp_path)] if spec == "memn2n.yaml" else []
    code, stdout, err = cli("plot", SPECS / spec, "-o", out, *args, *extra)
    assert code == 0, err
    assert out.read_bytes()[:8] == PNG


def _memn2n_inputs(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "episodes.npz"
    np.savez(path, story=rng.integers(0, 20, (2, 3, 6, 5)), question=rng.integers(0, 20, (2, 3, 5)))
    return path


def test_plot_errors_are_clear(cli, tmp_path):
    pytest.importorskip("matplotlib")
    code, _, err = cli("plot", SPECS / "ntm.yaml", "-o", tmp_path / "x.png", "-s", "w_r00")
    assert code == 2 and "no value named `w_r00`" in err and "did you mean `w_r0`?" in err
    code, _, err = cli("plot", SPECS / "ntm.yaml", "-o", tmp_path / "x.png", "-m", "h")
    assert code == 2 and "`h` is not a matrix state" in err
    code, _, err = cli("plot", SPECS / "ntm.yaml", "-o", tmp_path / "x.jpg")
    assert code == 2 and "write the picture as .png, .svg, .pdf" in err
    assert not (tmp_path / "x.png").exists()


def test_weightings_are_found_from_the_graph():
    def names(path):
        program = rnncompile.compile(path, optimize=False)
        return [t for t, _ in weightings(program.scan_cell)]

    assert names(SPECS / "ntm.yaml") == ["w_w0  (write weighting)", "w_r0  (read weighting)"]
    assert names(EXAMPLE) == ["w_w (prev)  (write weighting)", "w_r  (read weighting)"]
    assert names(SPECS / "memn2n.yaml") == [f"p{k}  (read weighting)" for k in (1, 2, 3)]


def test_ntm_demo_draws_its_picture(tmp_path):
    pytest.importorskip("matplotlib")
    import importlib.util

    spec = importlib.util.spec_from_file_location("ntm_demo", EXAMPLE.parent / "ntm_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out = demo.main(tmp_path / "ntm.png", steps=8)
    assert out.read_bytes()[:8] == PNG
    program = rnncompile.compile(SPECS / "ntm.yaml", optimize=False)
    res = rnncompile.run(program, params=demo.demo_params(program), steps=20, seed=1, trace=True)
    w = _trace(program, res, "w_w0")[0]
    assert list(w.argmax(axis=1)) == [(t + 1) % 16 for t in range(20)]  # one slot forward per step
    assert w.max(axis=1).min() > 0.99


def test_every_memory_spec_validates_without_warnings(cli):
    for path in (SPECS / "ntm.yaml", SPECS / "ntm_shorthand.yaml", SPECS / "memn2n.yaml", EXAMPLE):
        code, out, err = cli("validate", path)
        assert code == 0 and "warning" not in err, err


@pytest.mark.parametrize("path", [SPECS / "ntm.yaml", SPECS / "memn2n.yaml", EXAMPLE])
def test_passes_keep_the_values(path):
    plain = rnncompile.compile(path, optimize=False)
    fast = rnncompile.compile(path)
    params = rnncompile.make_params(plain, seed=1, dtype="float64")
    if path == EXAMPLE:
        a, b = (_ask(p, FACTS, ["peru", "italy"]) for p in (plain, fast))
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        return
    a = rnncompile.run(plain, params=params, steps=6, batch=2, seed=1, dtype="float64")
    b = rnncompile.run(fast, params=params, steps=6, batch=2, seed=1, dtype="float64")
    for name in a.outputs:
        np.testing.assert_allclose(a.outputs[name], b.outputs[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_cosine_takes_its_eps_as_a_number():
    text = EXAMPLE.read_text().replace("cosine(keys, k)", "cosine(keys, k, eps=0.001)")
    program = rnncompile.compile_text(text, "facts.yaml", optimize=False)
    (line,) = [ln for ln in to_text(program.scan_cell).splitlines() if "cosine(" in ln]
    assert "eps=0.001 : [8]" in line
