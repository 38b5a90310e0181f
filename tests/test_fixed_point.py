"""Fixed point: formats, rounding and saturation, activation tables against the real functions, the
interpreter against a hand-written integer Elman and against float, the generated integer C against the
interpreter integer for integer on the shipped sequence specs, the quant file's located errors, and the
`quantize` and `run --quant` commands."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

import rnncompile
from conftest import ROOT, SPECS
from rnncompile import quant, registry
from rnncompile.errors import SpecError, UsageError
from rnncompile.quant.formats import FormatError, QFormat, parse, requantize, shift
from rnncompile.quant.tables import STATED_ERROR, TABLES, interpolation_bound

HAVE_CC = shutil.which("cc") is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
# every shipped sequence spec but the NTM's (its addressing ops: cosine, softplus, shift, sharpen)
SEQUENCE_SPECS = ["elman", "gru", "lstm", "deep_lstm", "bigru", "bilstm_gru", "char_predictor", "word_predictor",
                  "memn2n", "attention_luong", "attention_bahdanau", "sentiment", "captioner", "seq2seq", "clockwork"]


@pytest.fixture(autouse=True)
def no_formats_left_behind():
    """`run --quant` in-process configures the backends for the process: put them back after each test."""
    yield
    for name in quant.FIXED_BACKENDS:
        registry.get(name).config = None


# ---- formats and arithmetic ---------------------------------------------------------------------

@pytest.mark.parametrize("text,m,n,ctype", [("q15", 0, 15, "int16_t"), ("q7", 0, 7, "int8_t"),
                                            ("q3.12", 3, 12, "int16_t"), ("q8.23", 8, 23, "int32_t"),
                                            ("q2.5", 2, 5, "int8_t")])
def test_formats_parse(text, m, n, ctype):
    f = parse(text)
    assert (f.m, f.n, f.ctype) == (m, n, ctype)
    assert f.hi == 2 ** (m + n) - 1 and f.lo == -2 ** (m + n)


@pytest.mark.parametrize("text,message", [
    ("int8", "`int8` is not a fixed-point format: write qM.N"),
    ("q20.20", "`q20.20` needs 41 bits; formats hold at most 32"),
    ("q0.31", "`q0.31` has 31 fraction bits; at most 30"),
])
def test_bad_formats_say_why(text, message):
    with pytest.raises(FormatError) as e:
        parse(text)
    assert str(e.value).startswith(message)


def test_rounding_is_half_away_from_zero_and_saturates():
    f = QFormat(3, 0)  # whole numbers -8..7
    assert f.quantize([2.5, -2.5, 1.4999, -1.5, 0.5, -0.5, 100, -100, np.nan]).tolist() == \
        [3, -3, 1, -2, 1, -1, 7, -8, 0]
    assert shift(np.array([5, -5, 6, -6, 7, -7]), 1).tolist() == [3, -3, 3, -3, 4, -4]  # 2.5 -> 3, 3 -> 3, 3.5 -> 4
    assert requantize(np.array([1 << 20, -(1 << 20)]), 4, QFormat(3, 12)).tolist() == [32767, -32768]
    assert shift(np.array([3, -3]), -2).tolist() == [12, -12]


@pytest.mark.parametrize("name", sorted(TABLES))
def test_activation_tables_hold_their_stated_error(name):
    table = TABLES[name]
    err = table.max_error()  # over every input of 16 fraction bits in (and beyond) the domain
    assert err <= STATED_ERROR[name]
    assert err <= interpolation_bound(table)
    x = np.linspace(table.lo, table.hi, 1001)
    got = table.out.dequantize(table.lookup(table.out.quantize(x) * 0 + np.round(x * 65536).astype(np.int64), 16))
    ref = {"sigmoid": 1 / (1 + np.exp(-x)), "tanh": np.tanh(x), "exp": np.exp(x)}[name]  # the textbook forms
    assert np.abs(got - ref).max() <= STATED_ERROR[name] + 2 ** -17


# ---- the interpreter ----------------------------------------------------------------------------

def _elman_by_hand(params, x, cfg):
    """h = tanh(W_xh x + W_hh h + b_h), y = W_hy h + b_y in integers, from the classes in quant/assign.py."""
    fw, fb, fx, fs = (cfg.formats[c] for c in ("weights", "biases", "inputs", "state"))
    facc = cfg.formats["accumulators"]
    W = {k: (fw if params[k].ndim == 2 else fb).quantize(v) for k, v in params.items()}
    xs = fx.quantize(x)
    h = np.zeros((x.shape[0], params["W_hh"].shape[0]), np.int64)
    ys = []
    for t in range(x.shape[1]):
        a = requantize(xs[:, t] @ W["W_xh"].T, fw.n + fx.n, facc)
        a = requantize((a << (max(facc.n, fb.n) - facc.n)) + (W["b_h"] << (max(facc.n, fb.n) - fb.n)),
                       max(facc.n, fb.n), facc)
        r = requantize(h @ W["W_hh"].T, fw.n + fs.n, facc)
        pre = requantize(r + a, facc.n, facc)
        h = requantize(TABLES["tanh"].lookup(pre, facc.n), 15, fs)
        y = requantize(h @ W["W_hy"].T, fw.n + fs.n, facc)
        f = max(facc.n, fb.n)
        ys.append(requantize((y << (f - facc.n)) + (W["b_y"] << (f - fb.n)), f, facc))
    return facc.dequantize(np.stack(ys, axis=1)), fs.dequantize(h)


def test_interpreter_matches_a_hand_written_integer_elman():
    program = rnncompile.compile(SPECS / "elman.yaml")
    params = rnncompile.make_params(program, seed=2)
    params["b_h"] = np.linspace(-0.3, 0.3, 16).astype(np.float32)
    x = np.random.default_rng(0).normal(size=(3, 10, 8))
    cfg = quant.uniform("q3.12")
    with quant.using(cfg, program):
        got = rnncompile.run(program, inputs={"x": x}, params=params, backend="fixed")
    y, h = _elman_by_hand(params, x, cfg)
    np.testing.assert_array_equal(got.outputs["y"], y)
    np.testing.assert_array_equal(got.final_state["h"], h)


@pytest.mark.parametrize("spec,bound", [("elman", 3e-3), ("gru", 2e-3), ("lstm", 1e-3)])
def test_interpreter_is_close_to_float(spec, bound):
    program = rnncompile.compile(SPECS / f"{spec}.yaml")
    want = rnncompile.run(program, batch=4, seed=1, dtype="float64")
    with quant.using(quant.uniform("q3.12"), program):
        got = rnncompile.run(program, batch=4, seed=1, backend="fixed")
    for name in want.outputs:
        assert got.outputs[name].dtype == np.float64
        err = np.abs(got.outputs[name] - want.outputs[name]).max()
        assert 0 < err < bound, f"{name}: {err}"


def test_saturation_not_wraparound():
    program = rnncompile.compile(SPECS / "elman.yaml")
    x = np.full((1, 3, 8), 1e6)
    with quant.using(quant.uniform("q3.12"), program):
        got = rnncompile.run(program, inputs={"x": x}, backend="fixed")
    ref = rnncompile.run(program, inputs={"x": np.full((1, 3, 8), 7.99975)}, dtype="float64")  # q3.12's top
    assert np.abs(got.final_state["h"] - ref.final_state["h"]).max() < 3e-3


def test_trace_gives_every_node_dequantised():
    program = rnncompile.compile(SPECS / "lstm.yaml")
    with quant.using(quant.uniform("q3.12"), program):
        res = rnncompile.run(program, batch=2, backend="fixed", trace=True)
    assert "c_next" in res.values and res.values["c_next"].shape == (2, 10, 16)
    np.testing.assert_array_equal(res.values["c_next"][:, -1], res.final_state["c"])


# ---- the generated C ----------------------------------------------------------------------------

def _case(program):
    kw = {"batch": 3, "seed": 4}
    if program.plan.stack is not None:
        t = program.checked.steps(None)
        kw["lengths"] = np.array([t, max(1, t // 2), 1])  # padded steps keep the state, give zeros
    return kw


EXAMPLES = ["examples/hello/spec.yaml", "examples/seq2seq/teacher_forcing.yaml", "examples/sweep/cells.yaml"]
# the cell gallery but layer norm (mean, sqrt, division), the NTM and the tree GRU (division)
CELLS = [f"specs/cells/{n}.yaml" for n in ("cifg_lstm", "gru_onnx_lbr", "indrnn", "jordan", "mgu", "mlstm",
                                          "peephole_lstm")]


@needs_cc
@pytest.mark.parametrize("spec", SEQUENCE_SPECS + EXAMPLES + CELLS)
def test_c_equals_the_interpreter_exactly(spec):
    path = ROOT / spec if "/" in spec else SPECS / f"{spec}.yaml"
    if not path.exists():
        pytest.skip(f"{spec} is not shipped in this checkout")
    program = rnncompile.compile(path)
    with quant.using(quant.uniform("q3.12"), program):
        a = rnncompile.run(program, backend="fixed", **_case(program))
        b = rnncompile.run(program, backend="fixed_c", **_case(program))
    assert set(a.outputs) == set(b.outputs) and set(a.final_state) == set(b.final_state)
    for name in a.outputs:
        np.testing.assert_array_equal(a.outputs[name], b.outputs[name], err_msg=name)
        assert np.abs(a.outputs[name]).max() > 0
    for name in a.final_state:
        np.testing.assert_array_equal(a.final_state[name], b.final_state[name], err_msg=name)


@needs_cc
@pytest.mark.parametrize("fmt", ["q7", "q1.14", "q5.10"])
def test_c_equals_the_interpreter_in_other_formats(fmt):
    program = rnncompile.compile(SPECS / "lstm.yaml")
    x = np.random.default_rng(1).normal(scale=3, size=(2, 10, 8))  # wide enough to saturate q7 and q1.14
    with quant.using(quant.uniform(fmt), program):
        a = rnncompile.run(program, inputs={"x": x}, backend="fixed")
        b = rnncompile.run(program, inputs={"x": x}, backend="fixed_c")
    np.testing.assert_array_equal(a.outputs["y"], b.outputs["y"])
    np.testing.assert_array_equal(a.final_state["c"], b.final_state["c"])


def _sources(spec, cfg):
    from rnncompile.backends.fixed.crun import CellRunner

    program = rnncompile.compile(SPECS / f"{spec}.yaml")
    return [CellRunner(program.cell(u), cfg).source for u in program.plan.uses()]


@needs_cc
@pytest.mark.parametrize("spec", ["elman", "gru", "lstm", "char_predictor"])
def test_c_is_strict_c99_without_float(spec, tmp_path):
    for i, source in enumerate(_sources(spec, quant.uniform("q3.12"))):
        assert not re.search(r"\b(float|double)\b", source)
        assert "int16_t" in source and "int32_t" in source
        path = tmp_path / f"cell{i}.c"
        path.write_text(source)
        done = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-c", str(path), "-o",
                               str(tmp_path / f"cell{i}.o")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


@needs_cc
@pytest.mark.slow
def test_every_generated_file_is_strict_c99(tmp_path):
    """Each cell of every spec the C runs, in one strict compiler run."""
    from rnncompile.backends.fixed import FixedPlan
    from rnncompile.backends.fixed.csource import source

    files = []
    for spec in SEQUENCE_SPECS + EXAMPLES + CELLS:
        path = ROOT / spec if "/" in spec else SPECS / f"{spec}.yaml"
        if not path.exists():
            continue
        program = rnncompile.compile(path)
        for i, use in enumerate(program.plan.uses()):
            files.append(tmp_path / f"{path.stem}_{i}.c")
            files[-1].write_text(source(FixedPlan(program.cell(use), quant.uniform("q3.12")), "scan"))
    strict = ["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-c"]
    done = subprocess.run(strict + [str(f) for f in files], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[:3000]
    assert len(files) > 30


@needs_cc
def test_int8_formats_use_int8_t():
    source = _sources("elman", quant.uniform("q7"))[0]
    assert "const int8_t *k" in source and "int8_t *s" in source


# ---- the quant file -----------------------------------------------------------------------------

def test_quant_file_round_trips(tmp_path):
    cfg = quant.QuantConfig({**quant.uniform("q3.12").formats, "weights": parse("q1.14")},
                            {"lstm.c": parse("q4.11")}, "lstm")
    path = tmp_path / "q.yaml"
    path.write_text(cfg.to_yaml())
    back = quant.load(str(path))
    assert (back.formats, back.tensors, back.spec) == (cfg.formats, cfg.tensors, cfg.spec)


def test_quant_file_errors_are_located(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text("rnncompile-quant: 1\nformats:\n  weight: q1.14\n  state: q3.99\nrounding: nearest_even\n")
    with pytest.raises(SpecError) as e:
        quant.load(str(path))
    text = e.value.format()
    assert f"{path}:3:3: error: unknown tensor class `weight` [formats.weight]" in text
    assert "hint: did you mean `weights`?" in text
    assert f"{path}:4:10: error: `q3.99` needs 103 bits; formats hold at most 32" in text
    assert f"{path}:5:11: error: rounding `nearest_even` is not supported" in text
    assert text.endswith("3 errors")


def test_unknown_tensor_names_are_located(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text("formats: {state: q3.12}\ntensors:\n  lstm.cc: q4.11\n")
    program = rnncompile.compile(SPECS / "lstm.yaml")
    with pytest.raises(SpecError) as e:
        with quant.using(quant.load(str(path)), program):
            pass
    assert f"{path}:3:3: error: `lstm.cc` is no tensor of the model [tensors.lstm.cc]" in e.value.format()
    assert "did you mean `lstm.c`?" in e.value.format()


def test_a_tensor_format_applies_to_that_state():
    program = rnncompile.compile(SPECS / "lstm.yaml")
    cfg = quant.QuantConfig(quant.uniform("q3.12").formats, {"lstm.c": parse("q1.14")})
    from rnncompile.backends.fixed import FixedPlan

    plan = FixedPlan(program.scan_cell, cfg)
    cell = program.scan_cell
    assert str(plan.fmt[cell.by_name("state")["c"]]) == "q1.14"
    assert str(plan.fmt[cell.updates()["c"]]) == "q1.14"  # c_next: what becomes c
    assert str(plan.fmt[cell.by_name("state")["h"]]) == "q3.12"


def test_unsupported_ops_are_named():
    program = rnncompile.compile(SPECS / "ntm.yaml")
    with quant.using(quant.uniform("q3.12"), program):
        with pytest.raises(UsageError, match=r"has no fixed-point form; the fixed-point backends run"):
            rnncompile.run(program, backend="fixed")


# ---- the commands -------------------------------------------------------------------------------

def test_run_needs_formats(cli):
    code, _, err = cli("run", SPECS / "elman.yaml", "--backend", "fixed")
    assert code == 2 and "the fixed-point backends need formats: give --quant quant.yaml" in err
    code, _, err = cli("run", SPECS / "elman.yaml", "--quant", "q15")
    assert code == 2 and "--quant is for the fixed-point backends (fixed, fixed_c)" in err
    code, _, err = cli("run", SPECS / "elman.yaml", "--backend", "fixed", "--quant", "q99")
    assert code == 2 and "--quant q99: `q99` needs 100 bits" in err
    code, _, err = cli("run", SPECS / "elman.yaml", "--backend", "fixed", "--quant", "q15", "--engine", "dask")
    assert code == 2 and "--quant runs on this machine only" in err


def test_distributions_are_told_by_their_rows():
    from rnncompile.quant.calibrate import distribution_rows

    p = np.array([[[0.2, 0.8], [0.5, 0.5]], [[1.0, 0.0], [0.0, 0.0]]])  # the last row: after an end token
    assert distribution_rows(p).tolist() == [[True, True], [True, False]]
    assert distribution_rows(p * 2) is None and distribution_rows(p - 0.1) is None
    assert distribution_rows(np.zeros((2, 3, 4))) is None


def test_quantize_then_run(cli, tmp_path):
    """quantize writes the formats and reports per output (max, mean, top-1) on both sets; run reads them."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", ch=rng.integers(0, 32, size=(40, 20)))
    code, _, err = cli("run", SPECS / "char_predictor.yaml", "--save-weights", tmp_path / "w.npz")
    assert code == 0, err
    code, out, err = cli("quantize", SPECS / "char_predictor.yaml", "--weights", tmp_path / "w.npz",
                         "--calibrate", tmp_path / "cal.npz", "-o", tmp_path / "quant.yaml", "--c", tmp_path / "cp.c")
    assert code == 0, err
    if HAVE_CC:  # the standalone C of both cells (the LSTM and the head), in the chosen formats
        built = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-c",
                                str(tmp_path / "cp.c"), "-o", str(tmp_path / "cp.o")], capture_output=True, text=True)
        assert built.returncode == 0, built.stderr
        assert "void char_predictor_scan(" in (tmp_path / "cp.c").read_text()
        assert "void char_predictor_head_scan(" in (tmp_path / "cp.c").read_text()
    assert "formats from" in out and "held-out set (the last 25% of the sequences)" in out
    rows = re.findall(r"^  p +([0-9.e+-]+) +([0-9.e+-]+) +([0-9.]+)%$", out, re.M)
    assert len(rows) == 2  # calibration and held-out
    for max_err, mean_err, top1 in rows:
        assert float(max_err) < 1e-2 and float(mean_err) < 1e-3 and float(top1) > 95
    cfg = quant.load(str(tmp_path / "quant.yaml"))
    assert str(cfg.formats["activations"]) == "q0.15" and "lstm.c" in cfg.tensors
    code, out, err = cli("run", SPECS / "char_predictor.yaml", "--backend", "fixed", "--quant",
                         tmp_path / "quant.yaml", "--weights", tmp_path / "w.npz", "--text", "hello")
    assert code == 0, err
    assert "(fixed, float32, seed 0)" in out


MIXED = """\
rnncompile: 1
name: mixed
dims: {I: 4, H: 6, T: 7}
cells:
  mixed:
    inputs: {x: I}
    state: {h: H, M: [H, H]}
    params:
      W: {shape: [H, I]}
      U: {shape: [H, H]}
    let:
      a: W @ x
      r: relu(a) - relu(-a)
      m: maximum(r, 0.25) + minimum(r, -0.25)
    update:
      h: tanh(m + U @ h) * 0.5
      M: M * 0.5 + outer(h, h)
    outputs:
      y: sum(M, axis=1) + h
      s: softmax(h)
model:
  scan: mixed
  input: {x: [T, I]}
"""


@needs_cc
def test_every_elementwise_op_in_c_and_the_interpreter(tmp_path):
    """relu, neg, maximum and minimum against literals (exact 32-bit constants), outer, a sum over an axis,
    a matrix state and softmax: equal in C and the interpreter, and close to float."""
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)
    program = rnncompile.compile(path)
    want = rnncompile.run(program, batch=3, seed=2, dtype="float64")
    with quant.using(quant.uniform("q3.12"), program):
        a = rnncompile.run(program, batch=3, seed=2, backend="fixed")
        b = rnncompile.run(program, batch=3, seed=2, backend="fixed_c")
    for name in want.outputs:
        np.testing.assert_array_equal(a.outputs[name], b.outputs[name])
        assert np.abs(a.outputs[name] - want.outputs[name]).max() < 5e-3
    np.testing.assert_array_equal(a.final_state["M"], b.final_state["M"])


@pytest.mark.parametrize("spec", ["rvnn", "treelstm_childsum", "treelstm_nary"])
def test_tree_models_in_the_interpreter(spec):
    program = rnncompile.compile(SPECS / f"{spec}.yaml")
    trees = ["(S (NP the cat) (VP sat))", "(S a b)"]
    want = rnncompile.run(program, trees=trees, dtype="float64")
    with quant.using(quant.uniform("q3.12"), program):
        got = rnncompile.run(program, trees=trees, backend="fixed")
    for name in want.outputs:
        assert 0 < np.abs(np.asarray(got.outputs[name]) - np.asarray(want.outputs[name])).max() < 2e-3


@needs_cc
def test_the_c_refuses_a_children_axis():
    program = rnncompile.compile(SPECS / "treelstm_childsum.yaml")
    with quant.using(quant.uniform("q3.12"), program):
        with pytest.raises(UsageError, match="children axis varies from node to node; run it with --backend fixed"):
            rnncompile.run(program, trees=["(S a b)"], backend="fixed_c")


def _c_array(name: str, ctype: str, values) -> str:
    return f"static const {ctype} {name}[] = {{{', '.join(str(int(v)) for v in np.ravel(values))}}};"


@needs_cc
@pytest.mark.parametrize("spec", ["elman", "gru", "lstm"])
def test_the_standalone_file_is_a_program_of_its_own(spec, tmp_path):
    """The exported file, weights as static tables, built with -Werror into a program with a main() that
    feeds it quantised inputs: what it prints is the interpreter's integers."""
    from rnncompile.backends.fixed import FixedPlan
    from rnncompile.backends.fixed.standalone import standalone_source

    program = rnncompile.compile(SPECS / f"{spec}.yaml")
    cfg = quant.uniform("q3.12")
    params = rnncompile.make_params(program, seed=3)
    x = np.random.default_rng(5).normal(size=(2, 10, 8))
    lengths = np.array([10, 4])
    with quant.using(cfg, program):
        want = rnncompile.run(program, inputs={"x": x}, params=params, lengths=lengths, backend="fixed")
    plan = FixedPlan(program.scan_cell, cfg)
    (tmp_path / f"{spec}.c").write_text(standalone_source(program, cfg, params))
    xq = plan.quantize_input(plan.inputs["x"], np.swapaxes(x, 0, 1))  # time-major
    states = list(plan.states.items())
    outputs = list(plan.outputs.items())
    ctype = {n: plan.fmt[nid].ctype for n, nid in states + outputs}
    main = [f'#include "{spec}.c"', "#include <stdio.h>", _c_array("x", plan.fmt[plan.inputs["x"]].ctype, xq),
            "static const int32_t lengths[] = {10, 4};"]
    main += [f"static {ctype[n]} state_{n}[2 * {plan.cell.node(sid).size}];" for n, sid in states]
    main += [f"static {ctype[n]} out_{n}[10 * 2 * {plan.cell.node(nid).size}];" for n, nid in outputs]
    main += ["int main(void)", "{", "    const void *inputs[] = {x};",
             f"    void *states[] = {{{', '.join(f'state_{n}' for n, _ in states)}}};",
             f"    void *outputs[] = {{{', '.join(f'out_{n}' for n, _ in outputs)}}};", "    size_t i;",
             f"    {program.name}_scan(2, 10, 0, lengths, inputs, states, outputs);"]
    for n, _ in outputs + states:
        arr = f"out_{n}" if any(n == o for o, _ in outputs) else f"state_{n}"
        main += [f"    for (i = 0; i < sizeof {arr} / sizeof {arr}[0]; i++) {{",
                 f'        printf("%ld ", (long){arr}[i]);',
                 "    }", '    printf("\\n");']
    main += ["    return 0;", "}"]
    (tmp_path / "main.c").write_text("\n".join(main) + "\n")
    built = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-o", str(tmp_path / "prog"),
                            str(tmp_path / "main.c")], capture_output=True, text=True, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    printed = subprocess.run([str(tmp_path / "prog")], capture_output=True, text=True, check=True).stdout.splitlines()
    for line, (name, nid) in zip(printed, outputs + states):
        got = np.array(line.split(), np.int64)
        value = want.outputs[name] if (name, nid) in outputs else want.final_state[name]
        fmt = plan.fmt[nid]
        if (name, nid) in outputs:
            value = np.swapaxes(value, 0, 1)  # the program's arrays are time-major
        np.testing.assert_array_equal(got, fmt.quantize(value).reshape(-1), err_msg=name)


def test_a_concat_of_two_formats_keeps_the_wider_range():
    from rnncompile.quant.assign import _joined

    real = ["state", "inputs"]
    assert str(_joined([parse("q1.14"), parse("q3.12")], real, [None, None])) == "q3.12"
    assert str(_joined([parse("q0.7"), parse("q2.13")], real, [None, None])) == "q2.13"
    assert str(_joined([parse("q4.3"), parse("q1.14")], real, [None, None])) == "q4.11"
    # where(c, x, 0) and concat(h, t % 5): a literal counts by its value, a whole number not at all
    assert str(_joined([parse("q1.14"), parse("q31.0")], ["inputs", "const"], [None, 0.0])) == "q1.14"
    assert str(_joined([parse("q1.14"), parse("q31.0")], ["inputs", "const"], [None, 5.0])) == "q3.12"
    assert str(_joined([parse("q1.14"), parse("q31.0")], ["inputs", "exact"], [None, None])) == "q1.14"
    assert str(_joined([parse("q30.1"), parse("q31.0")], ["exact", "const"], [None, 2.0])) == "q30.1"


def test_a_long_scan_in_chunks_carries_the_integers_exactly():
    """Past SCAN_CHUNK steps the drivers scan in chunks, carrying the state as floats between them: the
    dequantised state re-enters as the same integers, so chunked and whole runs agree exactly."""
    from rnncompile.program import SCAN_CHUNK

    program = rnncompile.compile(SPECS / "gru.yaml")
    x = np.random.default_rng(2).normal(size=(2, SCAN_CHUNK + 88, 8))
    with quant.using(quant.uniform("q3.12"), program):
        chunked = rnncompile.run(program, inputs={"x": x}, backend="fixed")
        whole = rnncompile.run(program, inputs={"x": x}, lengths=np.array([x.shape[1]] * 2), backend="fixed")
    np.testing.assert_array_equal(chunked.outputs["y"], whole.outputs["y"])


COUNTER = """\
rnncompile: 1
name: counter
dims: {I: 2, T: 600}
cells:
  count:
    inputs: {x: I}
    state: {a: I}
    update:
      a: a * 0.5 + where(t % 7 == 3, x, 0) + where(t >= seq_len - 2, 1.0, 0.0)
    outputs:
      y: concat(a, where(x < 0, t % 5, -1.0))
model:
  scan: count
  input: {x: [T, I]}
"""


@needs_cc
def test_the_step_index_and_length_in_chunks_and_with_lengths(tmp_path):
    """`t`, `seq_len`, `%`, comparisons and `where` over 600 steps (two chunks: each is told where it
    starts and the whole length) and with lengths: the C equals the interpreter, both near float."""
    path = tmp_path / "counter.yaml"
    path.write_text(COUNTER)
    program = rnncompile.compile(path)
    x = np.random.default_rng(3).normal(size=(3, 600, 2))
    x += np.sign(x) * 0.01  # no input within a rounding of 0, where `x < 0` could read the other way
    for lengths in (None, np.array([600, 301, 5])):
        want = rnncompile.run(program, inputs={"x": x}, lengths=lengths, dtype="float64")
        with quant.using(quant.uniform("q4.11"), program):
            a = rnncompile.run(program, inputs={"x": x}, lengths=lengths, backend="fixed")
            b = rnncompile.run(program, inputs={"x": x}, lengths=lengths, backend="fixed_c")
        np.testing.assert_array_equal(a.outputs["y"], b.outputs["y"])
        np.testing.assert_array_equal(a.final_state["a"], b.final_state["a"])
        assert np.abs(a.outputs["y"] - want.outputs["y"]).max() < 2e-3


def test_spec_text_cannot_end_a_c_comment():
    from rnncompile.backends.fixed.csource import note

    assert note('x */ system("touch PWNED"); /* ??/\n') == "x __ system__touch PWNED___ __ ____"
    assert note("cells.lstm.let.c_next") == "cells.lstm.let.c_next"
