"""The step and integers: `t`, `seq_len`, `%`, `//`, comparisons and `where`.

Each is checked against hand-written NumPy on every backend: a clockwork RNN
(specs/clockwork.yaml, Koutnik et al. 2014) forward, reverse and with variable
lengths; `t` across the drivers' chunk boundary (a scan longer than SCAN_CHUNK
steps gives the numbers of one unchunked scan); and the operators' floor
semantics on negative numbers. The parser's precedence and the located
messages for misuse are pinned as text.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnncompile
from conftest import SPECS
from rnncompile import registry
from rnncompile.api import make_params
from rnncompile.drivers import Executable
from rnncompile.errors import DataError
from rnncompile.expr import ExprSyntaxError, parse, to_text
from rnncompile.program import SCAN_CHUNK

BACKENDS = registry.available()  # numpy (the reference), python, c
TOL = {"float64": 1e-12, "float32": 2e-5}


def _runnable(backend: str):
    why = getattr(registry.get(backend), "unsupported", lambda program: None)(None)
    if why:
        pytest.skip(f"backend {backend}: {why}")


# ---- the parser ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,reading", [
    ("t % 4 == 0", "(t % 4) == 0"),
    ("a + b < c * d", "(a + b) < (c * d)"),
    ("a - b >= -c", "(a - b) >= -c"),
    ("a // b * c", "(a // b) * c"),           # one level with * / @, left to right
    ("a * b // c % d", "((a * b) // c) % d"),
    ("-t % 3", "-t % 3"),                      # unary minus binds tighter: (-t) % 3
    ("x ** 2 % 3", "(x ** 2) % 3"),
    ("a + b % c", "a + (b % c)"),
    ("where(t < T, x, -x) != 0", "where((t < T), x, -x) != 0"),
    ("f(a == b, k=c <= d)", "f((a == b), k=(c <= d))"),
])
def test_precedence(text, reading):
    assert to_text(parse(text)) == reading
    assert to_text(parse(reading)) == reading  # the reading parses back to itself


def test_comparisons_do_not_chain():
    with pytest.raises(ExprSyntaxError) as e:
        parse("a < b < c")
    assert e.value.message == "comparisons do not chain: `<` then `<`"
    assert e.value.pos == 6
    assert e.value.hint == "a comparison gives 0 or 1; for both to hold, multiply them: (a < b) * (b < c)"
    assert to_text(parse("(a < b) * (b < c)")) == "(a < b) * (b < c)"


def test_modulo_is_an_operator_now_and_other_symbols_say_what_to_write():
    assert to_text(parse("t % 2")) == "t % 2"
    with pytest.raises(ExprSyntaxError) as e:
        parse("a & b")
    assert e.value.hint == "for `a and b` on 0/1 values write a * b"
    with pytest.raises(ExprSyntaxError) as e:
        parse("!a")
    assert e.value.hint == "write `!=` for not-equal, or `1 - c` for not c"


# ---- located errors ----------------------------------------------------------------------------

CELL = """\
rnncompile: 1
name: probe
dims: {{I: 3, H: 4, T: 6}}
cells:
  rnn:
    inputs: {{x: {x}}}
    state: {{h: H}}
    params: {{W: {{shape: [H, H]}}, U: {{shape: [H, I]}}}}
    update:
      h: {update}
    outputs:
      y: {output}
model:
  scan: rnn
  input: {{x: [T{xdim}]}}
{extra}"""


def _spec(tmp_path, update="tanh(W @ h + U @ x)", output="h", x="I", extra=""):
    path = tmp_path / "probe.yaml"
    path.write_text(CELL.format(update=update, output=output, x=x, xdim="" if x == "token" else ", I", extra=extra))
    return path


def _errors(cli, path) -> str:
    code, out, err = cli("validate", path)
    assert code == 1, out + err
    return err


def test_a_shape_mismatch_in_where_is_located(cli, tmp_path):
    err = _errors(cli, _spec(tmp_path, update="where(t % 2 == 0, tanh(W @ h), x)"))
    assert f"{tmp_path / 'probe.yaml'}:10:" in err
    assert ("error: shape mismatch: cannot choose between [] and [4] and [3] in `where(((t % 2) == 0), tanh((W @ h)), x)`:"
            " the condition and the two choices [], [4], [3] do not broadcast [cells.rnn.update.h]") in err


def test_a_comparison_of_mismatched_shapes_is_located(cli, tmp_path):
    err = _errors(cli, _spec(tmp_path, update="tanh(W @ h) * (h < x)"))
    assert ("error: shape mismatch: cannot compare [4] and [3] in `h < x`: shapes [4] and [3] do not broadcast "
            "[cells.rnn.update.h]") in err


@pytest.mark.parametrize("divisor", ["0", "(2 - 2)", "(H - 4)", "-0.0"])
def test_a_constant_zero_divisor_is_a_compile_time_error(cli, tmp_path, divisor):
    err = _errors(cli, _spec(tmp_path, update=f"tanh(W @ h) * (t // {divisor})"))
    assert f"error: division by zero: the divisor of `//` in `t // {divisor}` is 0" in err
    assert "hint: x % 0 and x // 0 have no value; check the divisor" in err


def test_a_divisor_that_reads_the_step_is_not_a_compile_time_error(tmp_path):
    rnncompile.compile(_spec(tmp_path, update="tanh(W @ h + U @ x) * (t // (0 * t) > 0)"))


def test_a_token_is_not_a_number_in_a_comparison(cli, tmp_path):
    err = _errors(cli, _spec(tmp_path, x="token", update="tanh(W @ h) * (x == 2)"))
    assert "error: `x == 2` uses the token `x` as a number" in err
    assert "hint: turn it into a vector first: one_hot(x, V) or embed(x, E)" in err


def test_the_step_index_is_not_defined_in_a_head(cli, tmp_path):
    extra = "  head: {params: {W_y: {shape: [2, H]}}, outputs: {p: softmax((W_y @ y) * t)}, at: last}\n"
    err = _errors(cli, _spec(tmp_path, update="tanh(W @ h + U @ x)", extra=extra))
    assert ("error: `t` (the step index) is only defined inside a cell that a model scans over time "
            "[model.head.outputs.p]") in err
    assert ("hint: a head or a decoder's init is computed once per sequence or output, not inside the scan; "
            "compute what needs `t` in the scanned cell and give it to this one as an output") in err


def test_the_step_index_is_not_defined_in_a_tree_cell(cli, tmp_path):
    text = (SPECS / "rvnn.yaml").read_text()
    assert "h: tanh(W @ concat(children[0].h, children[1].h) + b)" in text
    path = tmp_path / "tree.yaml"
    path.write_text(text.replace("h: tanh(W @ concat(children[0].h, children[1].h) + b)",
                                 "h: tanh(W @ concat(children[0].h, children[1].h) + b * t)"))
    err = _errors(cli, path)
    assert "error: `t` (the step index) is only defined inside a cell that a model scans over time" in err
    assert "hint: a tree cell's rules run on tree nodes, not steps" in err


def test_a_name_the_spec_declares_hides_the_step_index(tmp_path):
    path = _spec(tmp_path, update="tanh(W @ h + U @ x) * t", extra="")
    text = path.read_text().replace("params: {W: {shape: [H, H]}, U: {shape: [H, I]}}",
                                    "params: {W: {shape: [H, H]}, U: {shape: [H, I]}, t: {shape: [H]}}")
    path.write_text(text)
    program = rnncompile.compile(path)
    cell = program.cell(program.plan.uses()[0])
    assert not [n for n in cell.g.nodes if cell.node(n).op == "step_index"]  # the param `t`, not the step


def test_a_decoder_that_feeds_back_its_output_may_not_read_the_step(cli, tmp_path):
    path = tmp_path / "dec.yaml"
    path.write_text("""\
rnncompile: 1
name: gen
dims: {V: 4, H: 3, E: 2}
vocab: {tokens: [a, b, c, "</s>"], end: "</s>"}
cells:
  dec:
    inputs: {y_prev: token}
    state: {h: H}
    params: {E_w: {shape: [V, E]}, W: {shape: [H, H + E]}}
    update:
      h: tanh(W @ concat(h, embed(y_prev, E_w))) * (t < 3)
    outputs: {o: h}
model:
  context: {}
  decoder:
    scan: dec
    init: zeros
    steps: 5
    head: {params: {W_p: {shape: [V, H]}}, outputs: {p: softmax(W_p @ o)}}
""")
    err = _errors(cli, path)
    assert ("error: decoder cell `dec` reads `t`, but a decoder that feeds back its output runs one step at a time, "
            "where the step index is not given [model.decoder.scan]") in err
    assert "hint: use `feed: target` (teacher forcing scans the target)" in err


# ---- the ops against NumPy, end to end ---------------------------------------------------------

OPS_SPEC = """\
rnncompile: 1
name: integers
dims: {I: 5, T: 9}
cells:
  ints:
    inputs: {x: I}
    state: {s: I}
    update:
      s: s + where(x > 0, x % 3, x // 2)
    outputs:
      m: x % (t - 4.5)
      q: (3 * x) // (t - 4)
      c: concat(x < t - 4, x <= 0, x > 1, x >= -1, x == t % 3, x != 1)
      w: where(t % 3 == 0, seq_len - t, -t)
      z: x % (t - 4)            # at t = 4 a zero divisor: NaN at run time, on every backend
model:
  scan: ints
  input: {x: [T, I]}
"""


def _ops_reference(x, lengths):
    """The same cell by hand; integer-valued x, so floor semantics on negatives are exact."""
    b_, t_, i_ = x.shape
    s = np.zeros((b_, i_))
    out = {k: np.zeros((b_, t_, n)) for k, n in (("m", i_), ("q", i_), ("c", 6 * i_), ("w", 1), ("z", i_))}
    for b in range(b_):
        n = lengths[b]
        for t in range(n):
            v = x[b, t]
            s[b] = s[b] + np.array([(a % 3) if a > 0 else (a // 2) for a in v])  # Python's own % and //
            out["m"][b, t] = [a % (t - 4.5) for a in v]
            out["q"][b, t] = [(3 * a) // (t - 4) if t != 4 else np.copysign(np.inf, 3 * a) if a else np.nan
                              for a in v]
            out["c"][b, t] = np.concatenate([v < t - 4, v <= 0, v > 1, v >= -1, v == t % 3, v != 1]).astype(float)
            out["w"][b, t] = [n - t if t % 3 == 0 else -t]
            out["z"][b, t] = [a % (t - 4) if t != 4 else np.nan for a in v]
    return out, s


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_new_op_against_numpy(backend, dtype, tmp_path):
    _runnable(backend)
    path = tmp_path / "ints.yaml"
    path.write_text(OPS_SPEC)
    program = rnncompile.compile(path)
    rng = np.random.default_rng(7)
    x = rng.integers(-6, 7, (3, 9, 5)).astype(dtype)
    lengths = np.array([9, 5, 1])
    got = rnncompile.run(program, backend=backend, dtype=dtype, inputs={"x": x}, lengths=lengths, params={})
    want, s = _ops_reference(x.astype(np.float64), lengths)
    for name, w in want.items():
        g = got.outputs[name].reshape(w.shape)
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, w, rtol=TOL[dtype], atol=TOL[dtype], err_msg=name)
    np.testing.assert_allclose(got.final_state["s"], s, rtol=TOL[dtype], atol=TOL[dtype])


# ---- the clockwork RNN ---------------------------------------------------------------------------

PERIODS = (1, 2, 4, 8)


def clockwork_reference(x, p, m, reverse=False, lengths=None):
    """Koutnik et al. (2014), eqs. (1)-(3): module i (period T_i) updates at step t iff t mod T_i = 0, from
    itself and the slower modules (W_H block upper triangular) and the input; the others keep their value."""
    b_, t_, _ = x.shape
    n = len(PERIODS)
    out = np.zeros((b_, t_, p["W_y"].shape[0]))
    finals = np.zeros((b_, n * m))
    for b in range(b_):
        length = t_ if lengths is None else lengths[b]
        h = np.zeros(n * m)
        for t in (reversed(range(length)) if reverse else range(length)):
            modules = [h[i * m:(i + 1) * m] for i in range(n)]
            new = h.copy()
            for i, period in enumerate(PERIODS):
                if t % period == 0:
                    z = p[f"W_c{i}"] @ np.concatenate(modules[i:] + [x[b, t]]) + p[f"b_c{i}"]
                    new[i * m:(i + 1) * m] = np.tanh(z)
            h = new
            out[b, t] = p["W_y"] @ h + p["b_y"]
        finals[b] = h
    return out, finals


def _clockwork(tmp_path, direction="forward", steps=None):
    text = (SPECS / "clockwork.yaml").read_text()
    if direction != "forward":
        text = text.replace("  scan: clockwork\n", f"  scan: clockwork\n  direction: {direction}\n")
    if steps is not None:
        text = text.replace("T: 20,", f"T: {steps},")
    path = tmp_path / "clockwork.yaml"
    path.write_text(text)
    return rnncompile.compile(path)


@pytest.mark.parametrize("lengths", [None, [20, 11, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_clockwork_against_its_equations(backend, direction, lengths, tmp_path):
    _runnable(backend)
    program = _clockwork(tmp_path, direction)
    params = make_params(program, seed=1, dtype="float64")
    x = np.random.default_rng(2).standard_normal((3, 20, 6))
    lens = None if lengths is None else np.array(lengths)
    got = rnncompile.run(program, backend=backend, dtype="float64", inputs={"x": x}, params=params, lengths=lens)
    want, finals = clockwork_reference(x, params, 4, direction == "reverse", lens)
    np.testing.assert_allclose(got.outputs["y"], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.final_state["h"], finals, rtol=1e-12, atol=1e-12)


def test_the_clock_really_holds_slow_modules(tmp_path):
    """Between its ticks a module's state does not move: module 3 (period 8) changes only at t = 0, 8, 16."""
    program = _clockwork(tmp_path)
    params = make_params(program, seed=1, dtype="float64")
    x = np.random.default_rng(2).standard_normal((1, 20, 6))
    h = rnncompile.run(program, dtype="float64", inputs={"x": x}, params=params, trace=True)
    cell = program.cell(program.plan.uses()[0])
    (state,) = [n for n in cell.g.nodes if cell.node(n).op == "state"]
    before = h.trace[""][state][0]  # the state before each step
    slow = before[:, 12:16]
    moved = [t for t in range(1, 20) if not np.array_equal(slow[t], slow[t - 1])]
    assert moved == [1, 9, 17]  # the state before step t+1 shows step t's update: steps 0, 8, 16


# ---- chunks ---------------------------------------------------------------------------------------

CHUNK_SPEC = """\
rnncompile: 1
name: counter
dims: {I: 2, T: 1100}
cells:
  count:
    inputs: {x: I}
    state: {a: I}
    update:
      a: a + where(t % 7 == 3, x, 0) + t / seq_len
    outputs:
      y: concat(a, t + 0 * x, seq_len + 0 * x)
model:
  scan: count
  input: {x: [T, I]}
"""


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_step_index_runs_on_across_chunks(backend, direction, tmp_path):
    _runnable(backend)
    steps = 2 * SCAN_CHUNK + 76  # three chunks, the last a short one
    path = tmp_path / "counter.yaml"
    path.write_text(CHUNK_SPEC.replace("scan: count\n", f"scan: count\n  direction: {direction}\n"))
    program = rnncompile.compile(path)
    x = np.random.default_rng(4).standard_normal((2, steps, 2))
    chunked = rnncompile.run(program, backend=backend, dtype="float64", inputs={"x": x}, params={})
    whole = rnncompile.run(program, backend=backend, dtype="float64", inputs={"x": x}, params={},
                           lengths=np.array([steps, steps]))  # lengths given: one call, unchunked
    np.testing.assert_array_equal(chunked.outputs["y"], whole.outputs["y"])
    np.testing.assert_array_equal(chunked.final_state["a"], whole.final_state["a"])
    ts = np.arange(steps, dtype=float)
    np.testing.assert_array_equal(chunked.outputs["y"][0, :, 2], ts)  # t is the real position, either way
    np.testing.assert_array_equal(chunked.outputs["y"][0, :, 4], np.full(steps, steps))
    a = np.zeros((2, 2))
    for t in (reversed(range(steps)) if direction == "reverse" else range(steps)):
        a = a + (x[:, t] if t % 7 == 3 else 0) + t / steps
    np.testing.assert_allclose(chunked.final_state["a"], a, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_seq_len_is_each_sequences_own_length(backend, tmp_path):
    _runnable(backend)
    path = tmp_path / "counter.yaml"
    path.write_text(CHUNK_SPEC.replace("T: 1100", "T: 8"))
    program = rnncompile.compile(path)
    x = np.zeros((3, 8, 2))
    got = rnncompile.run(program, backend=backend, dtype="float64", inputs={"x": x}, params={},
                         lengths=np.array([8, 3, 1]))
    y = got.outputs["y"]
    assert y[1, :3, 4].tolist() == [3, 3, 3] and y[1, 3:].tolist() == [[0.0] * 6] * 5  # padded steps: zeros
    assert y[2, 0, 4] == 1 and y[0, :, 2].tolist() == list(range(8))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_single_step_of_a_cell_that_reads_t_needs_it(backend, tmp_path):
    _runnable(backend)
    program = _clockwork(tmp_path)
    use = program.plan.uses()[0]
    exe = Executable(program, backend, "float64")
    bound = exe.bind(use, make_params(program, seed=1, dtype="float64"))
    x = np.random.default_rng(2).standard_normal((2, 6))
    h0 = {"h": np.zeros((2, 16))}
    with pytest.raises(DataError, match="cell `clockwork` reads `t`, which a single step is not given here"):
        bound.step({"x": x}, h0)
    out, state = bound.step({"x": x}, h0, t=3)
    # one step at t = 3 from zeros: only module 0 (period 1) ticks; the others keep their zeros
    params = make_params(program, seed=1, dtype="float64")
    h = np.concatenate([np.tanh(params["W_c0"] @ np.concatenate([np.zeros(16), x[0]]) + params["b_c0"]),
                        np.zeros(12)])
    np.testing.assert_allclose(state["h"][0], h, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out["y"][0], params["W_y"] @ h + params["b_y"], rtol=1e-12)


# ---- diagrams ---------------------------------------------------------------------------------

def test_the_folded_cell_writes_the_new_operators_as_written_and_they_parse_back():
    from rnncompile.render.shown import shown_nodes

    program = rnncompile.compile(SPECS / "clockwork.yaml")
    folded = shown_nodes(program.cell(program.plan.uses()[0]))
    kinds = {(s.kind, s.name) for s in folded.nodes.values()}
    assert ("input", "t") in kinds  # the step index is drawn as what the step reads
    formulas = {s.formula for s in folded.nodes.values() if s.op in ("mod", "eq")}
    assert formulas == {"t % 1", "t % 2", "t % 4", "t % 8", "· == 0"}
    for f in formulas:
        text = f.replace("·", "u")
        assert to_text(parse(text)) == text


# ---- exports ------------------------------------------------------------------------------------

@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_the_exported_python_module_ticks_the_clock_like_the_equations(cli, tmp_path, direction):
    import importlib.util

    program = _clockwork(tmp_path, direction)
    code, out, err = cli("export", tmp_path / "clockwork.yaml", "-o", tmp_path / "cw_model.py")
    assert code == 0, err
    spec = importlib.util.spec_from_file_location("cw_model", tmp_path / "cw_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = make_params(program, seed=1, dtype="float64")
    x = np.random.default_rng(2).standard_normal((3, 20, 6))
    lengths = np.array([20, 11, 1])
    outputs, final = module.run(params, {"x": x}, lengths=lengths, dtype="float64")
    want, finals = clockwork_reference(x, params, 4, direction == "reverse", lengths)
    np.testing.assert_allclose(outputs["y"], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(final["h"], finals, rtol=1e-12, atol=1e-12)
    # a chunk of a longer scan: the cell's scan takes the step index of its first step
    k = module.clockwork_prepare(params, "", "float64")
    first, state = module.clockwork_scan(k, {"x": x[:, :8]}, None, None, False)
    rest, state = module.clockwork_scan(k, {"x": x[:, 8:]}, state, None, False, step0=8, total=20)
    whole, _ = clockwork_reference(x, params, 4)
    np.testing.assert_allclose(np.concatenate([first["y"], rest["y"]], axis=1), whole, rtol=1e-12, atol=1e-12)


def test_the_c_cell_keeps_its_scan_signature_and_adds_scan_from():
    from rnncompile.backends.c.cell import CellWriter
    from rnncompile.backends.c.emitters import DOUBLE

    program = rnncompile.compile(SPECS / "clockwork.yaml")
    code = CellWriter(program.cell(program.plan.uses()[0]), "cw", DOUBLE).write()
    assert code.reads_time
    assert code.scan_signature.split("\n")[0].startswith("int cw_scan(const cw_consts *k, int B, int T, const double *x,")
    assert "int reverse, double *y" in " ".join(code.scan_signature.split())
    src = " ".join(code.functions.split())
    assert "int cw_scan_from(const cw_consts *k, int B, int T, const double *x, double *h, const int32_t *lengths, " \
           "int reverse, int start, int total, double *y" in src
    assert "return cw_scan_from(k, B, T, x, h, lengths, reverse, 0, T, y, work, trace);" in src
    assert "work->t[0] = (double)(start + t); /* t */" in src
    lstm = rnncompile.compile(SPECS / "lstm.yaml")
    plain = CellWriter(lstm.cell(lstm.plan.uses()[0]), "lstm", DOUBLE).write()
    assert not plain.reads_time and "_scan_from" not in plain.functions and "start" not in plain.scan_signature


def test_a_guessed_name_for_the_step_points_at_t(cli, tmp_path):
    err = _errors(cli, _spec(tmp_path, update="tanh(W @ h + U @ x) * (step % 2)"))
    assert "error: undefined name `step` [cells.rnn.update.h]" in err
    assert "hint: the step index is `t` (0, 1, ...) and the sequence's length `seq_len`, e.g. t % 2 == 0" in err


def test_mixing_at_with_modulo_unbracketed_warns_with_the_reading(cli, tmp_path):
    code, out, err = cli("validate", _spec(tmp_path, update="tanh(W @ h + U @ x % 2)"))
    assert code == 0
    text = out + err
    assert "warning: `@` and `*` or `/` share one precedence level and group left to right [cells.rnn.update.h]" in text
    assert "hint: `U @ x % 2` reads as `(U @ x) % 2`; add brackets to say which you mean" in text


def test_integer_operators_in_compile_time_sizes(tmp_path):
    """Slice bounds and attributes are constants: `//` and `%` work there too (H = 4)."""
    program = rnncompile.compile(_spec(tmp_path, update="tanh(W @ h + U @ x)",
                                       output="concat(h[0:H // 2], h[H // 2 + H % 3:])"))
    x = np.random.default_rng(0).standard_normal((1, 6, 3))
    params = make_params(program, seed=0, dtype="float64")
    got = rnncompile.run(program, dtype="float64", inputs={"x": x}, params=params)
    h = got.final_state["h"][0]
    np.testing.assert_array_equal(got.outputs["y"][0, -1], np.concatenate([h[0:2], h[3:]]))


def test_a_zero_divisor_in_a_compile_time_size_is_located(cli, tmp_path):
    err = _errors(cli, _spec(tmp_path, output="h[0:H // (H - 4)]"))
    assert "error: division by zero: the divisor of `//` in `H // (H - 4)` is 0 [cells.rnn.outputs.y]" in err
