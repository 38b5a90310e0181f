"""Every pass of the pipeline on every shipped spec: the verifier holds after each, values never change."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile.graph import stages, to_text, verify
from rnncompile.passes import PIPELINE, optimise
from rnncompile.program import Program, compile_text

SPECS = sorted((Path(__file__).resolve().parents[1] / "specs").glob("*.yaml"))
SPEC_IDS = [p.stem for p in SPECS]
PASS_NAMES = [name for name, _ in PIPELINE]


def _plain(path):
    return rnncompile.compile(path, optimize=False)


def _with(prog, prefix, cell):
    """The program with `cell` run in place of the graph of the cell use at `prefix`."""
    return Program(prog.checked, {**prog.optimised, prefix: cell})


def _run(prog, seed=0):
    """Random params (biases too), seeded random inputs, float64."""
    rng = np.random.default_rng(seed)
    params = {k: rng.uniform(-0.5, 0.5, info.shape) for k, info in prog.params.items()}
    return rnncompile.run(prog, params=params, batch=2, steps=4, seed=seed, dtype="float64")


def _assert_same_run(a, b):
    assert a.outputs.keys() == b.outputs.keys()
    for k in a.outputs:
        np.testing.assert_allclose(a.outputs[k], b.outputs[k], rtol=1e-12, atol=1e-12, err_msg=k)
    assert a.final_state.keys() == b.final_state.keys()
    for k in a.final_state:
        np.testing.assert_allclose(a.final_state[k], b.final_state[k], rtol=1e-12, atol=1e-12, err_msg=k)
    if a.tokens is not None or b.tokens is not None:
        np.testing.assert_array_equal(a.tokens, b.tokens)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_every_pass_keeps_the_graph_valid_and_the_values(spec):
    prog = _plain(spec)
    want = _run(prog)
    for use in prog.plan.uses():
        cell = prog.optimised[use.prefix]
        verify(cell)
        before = to_text(cell)
        for pass_name, fn in PIPELINE:
            cell = fn(cell)
            try:
                verify(cell)
            except ValueError as e:
                pytest.fail(f"{spec.name}: {use.prefix or 'main'} cell {cell.name}: after {pass_name}: {e}")
            _assert_same_run(_run(_with(prog, use.prefix, cell)), want)
        assert to_text(prog.optimised[use.prefix]) == before, "a pass changed its input graph in place"


@pytest.mark.parametrize("pass_name", sorted(set(PASS_NAMES)))
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_each_pass_alone(spec, pass_name):
    """Each pass on the unoptimised graphs, not only after the ones before it in the pipeline."""
    prog = _plain(spec)
    fn = dict(PIPELINE)[pass_name]
    changed = dict(prog.optimised)
    for prefix, cell in prog.optimised.items():
        changed[prefix] = fn(cell)
        verify(changed[prefix])
    _assert_same_run(_run(Program(prog.checked, changed)), _run(prog))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_optimised_program_equals_unoptimised(spec):
    _assert_same_run(_run(rnncompile.compile(spec), seed=3), _run(_plain(spec), seed=3))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_pipeline_is_idempotent(spec):
    """Optimising an optimised graph changes nothing more."""
    prog = rnncompile.compile(spec)
    for cell in prog.optimised.values():
        again, _ = optimise(cell)
        assert to_text(again) == to_text(cell)


def _matmuls_by_stage(cell):
    st = stages(cell)
    out = {"const": 0, "seq": 0, "loop": 0}
    for n in cell.nodes_of("matmul"):
        out[st[n]] += 1
    return out


def _lstm(dims=None):
    spec = next(p for p in SPECS if p.stem == "lstm")
    return rnncompile.compile(spec, dims=dims), rnncompile.compile(spec, dims=dims, optimize=False)


def test_lstm_hoisting_and_fusion_leave_one_loop_matmul():
    prog, plain = _lstm()
    assert _matmuls_by_stage(plain.scan_cell) == {"const": 0, "seq": 0, "loop": 4}
    assert _matmuls_by_stage(prog.scan_cell) == {"const": 0, "seq": 1, "loop": 1}
    h = prog.dims["H"]
    (loop_mm,) = [n for n in prog.scan_cell.nodes_of("matmul") if stages(prog.scan_cell)[n] == "loop"]
    assert prog.scan_cell.node(loop_mm).shape == (4 * h,)


def test_lstm_hoisting_alone_splits_but_does_not_fuse():
    _, plain = _lstm()
    hoist = dict(PIPELINE)["hoist-inputs"]
    assert _matmuls_by_stage(hoist(plain.scan_cell)) == {"const": 0, "seq": 4, "loop": 4}


def test_gru_fuses_recurrent_matmuls_including_the_candidate():
    spec = next(p for p in SPECS if p.stem == "gru")
    prog = rnncompile.compile(spec)
    assert _matmuls_by_stage(prog.scan_cell) == {"const": 0, "seq": 1, "loop": 1}


@pytest.mark.parametrize("dims", [{"I": 1, "H": 1}, {"I": 3, "H": 5}, {"I": 8, "H": 16}])
def test_lstm_optimised_equals_unoptimised(dims):
    prog, plain = _lstm(dims)
    _assert_same_run(_run(prog, seed=4), _run(plain, seed=4))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_pass_log_counts_nodes(spec):
    prog = rnncompile.compile(spec)
    for name, log in prog.pass_log.items():
        assert [entry[0] for entry in log] == PASS_NAMES
        assert all(after == before_next for (_, _, after), (_, before_next, _) in zip(log, log[1:]))
        assert log[-1][2] == prog.optimised[name].g.number_of_nodes()


def _ops_by_stage(cell, op):
    st = stages(cell)
    return sorted((st[n], cell.node(n).shape) for n in cell.nodes_of(op))


def test_lstm_biases_join_the_input_projection_and_one_add_per_step_remains():
    prog, _ = _lstm({"I": 3, "H": 5})
    cell = prog.scan_cell
    assert _ops_by_stage(cell, "add") == [("loop", (5,)), ("loop", (20,)), ("seq", (20,))]
    (seq_add,) = [n for n in cell.nodes_of("add") if stages(cell)[n] == "seq"]
    bias = [cell.node(a) for a in cell.args(seq_add) if cell.node(a).op == "concat"]
    assert len(bias) == 1 and bias[0].shape == (20,)
    # the input and forget gates are adjacent rows: one sigmoid for both, one for the output gate
    assert _ops_by_stage(cell, "sigmoid") == [("loop", (5,)), ("loop", (10,))]


def _fuse_alone(let: str, update: str):
    """The fuse-elementwise pass alone on a small cell: `let` as "name: expr; ...", `update` the new h [4]. Checks the graph and that the values do not change."""
    lets = "".join(f"      {item.strip()}\n" for item in let.split(";"))
    text = f"""rnncompile: 1
name: slices
dims: {{T: 3}}
cells:
  c:
    inputs: {{x: 2}}
    state: {{h: 4}}
    params: {{W: {{shape: [4, 4]}}, U: {{shape: [4, 2]}}, b: {{shape: [2]}}, d: {{shape: [2]}}}}
    let:
{lets}    update:
      h: {update}
    outputs: {{y: h}}
model: {{scan: c, input: {{x: [T, 2]}}}}
"""
    plain = compile_text(text, "slices.yaml", optimize=False)
    cell = dict(PIPELINE)["fuse-elementwise"](plain.scan_cell)
    verify(cell)
    _assert_same_run(_run(_with(plain, plain.main_use.prefix, cell)), _run(plain))
    return plain.scan_cell, cell


def test_fuse_elementwise_joins_adjacent_slices_with_the_same_op():
    before, after = _fuse_alone("f: W @ h; e0: sigmoid(f[0:2]); e1: sigmoid(f[2:4])",
                                "concat(e0, e1) * h")
    assert _ops_by_stage(before, "sigmoid") == [("loop", (2,)), ("loop", (2,))]
    assert _ops_by_stage(after, "sigmoid") == [("loop", (4,))]


def test_fuse_elementwise_joins_biases_and_matching_rows():
    _, after = _fuse_alone("f: W @ h; g: U @ x; e0: f[0:2] + g[0:2] + b; e1: f[2:4] + g[2:4] + d",
                           "concat(e0, e1)")
    assert _ops_by_stage(after, "add") == [("loop", (4,)), ("loop", (4,))]
    assert len(after.nodes_of("concat")) == 2  # the biases joined, and the update's own concat


@pytest.mark.parametrize("let", [
    "f: W @ h; e0: sigmoid(f[0:2]); e1: tanh(f[2:4])",  # different ops
    "f: W @ h; e0: sigmoid(f[0:1]); e1: sigmoid(f[2:3])",  # rows not adjacent
    "f: W @ h; e0: f[0:2] - b; e1: b - f[2:4]",  # the slice on different sides of a subtraction
    "f: W @ h; e0: f[0:2] + h[0:2]; e1: f[2:4] + h[1:3]",  # the other rows do not match
])
def test_fuse_elementwise_leaves_what_is_not_the_same_op_on_adjacent_rows(let):
    before, after = _fuse_alone(let, "concat(e0, e1, e0, e1)[0:4]")
    assert to_text(after) == to_text(before)


def test_fuse_elementwise_never_makes_an_op_read_its_own_result():
    """The second bias is made from the first sum: one add with concat(b, tanh(e0)) would read itself."""
    before, after = _fuse_alone("p: W @ concat(b, d); e0: p[0:2] + b; e1: p[2:4] + tanh(e0)",
                                "concat(e0, e1) * h")
    assert _ops_by_stage(after, "add") == _ops_by_stage(before, "add") == [("const", (2,)), ("const", (2,))]


LET_OF_A_SPLIT_PRODUCT = """
rnncompile: 1
name: letaff
dims: {I: 3, H: 4, T: 5}
cells:
  rnn:
    inputs: {x: I}
    state: {h: H}
    params:
      W: {shape: [H, H + I]}
    let:
      pre: W @ concat(h, x)
    update:
      h: tanh(pre)
    outputs: {h: h, pre: pre}
model:
  input: {x: [T, I]}
  scan: rnn
"""


def test_hoisting_keeps_the_name_of_a_let_it_splits():
    """`pre` was a matmul; split into W_h @ h + W_x @ x, the add that now computes it is `pre`
    (the output `pre` reads it), in the graph listing and in the exported code."""
    plain = compile_text(LET_OF_A_SPLIT_PRODUCT, "letaff.yaml", optimize=False)
    for cell in (dict(PIPELINE)["hoist-inputs"](plain.scan_cell), rnncompile.compile_text(
            LET_OF_A_SPLIT_PRODUCT, "letaff.yaml").scan_cell):
        (named,) = [n for n in cell.g.nodes if cell.node(n).label == "pre" and cell.node(n).op != "output"]
        assert cell.node(named).op == "add"
        (out,) = [n for n in cell.nodes_of("output") if cell.node(n).attr("name") == "pre"]
        assert cell.args(out) == [named]
        assert any(line.split()[1:3] == ["pre", "="] for line in to_text(cell).splitlines())
    _assert_same_run(_run(_with(plain, "", dict(PIPELINE)["hoist-inputs"](plain.scan_cell))), _run(plain))
