"""The model-level flow: its printed text for every shipped spec (diffed against tests/golden/flow/), its
well-formedness (every bundle an op reads is written before it), and the interpreter covering every op.

After an intended change to the flow or its printer:  RNNCOMPILE_REGENERATE=1 python3 -m pytest tests/test_flow.py
"""
import os
from pathlib import Path

import pytest

import rnncompile
from rnncompile import flow
from rnncompile.drivers import INTERPRETER

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "specs").glob("cells/*.yaml"))
GOLDEN = Path(__file__).parent / "golden" / "flow"


@pytest.fixture(scope="module", params=SPECS, ids=lambda p: p.stem)
def program(request):
    return rnncompile.compile(str(request.param))


def test_flow_text_matches_golden(program):
    text = flow.format_flow(program.flow)
    golden = GOLDEN / f"{program.name}.txt"
    if os.environ.get("RNNCOMPILE_REGENERATE"):
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden flow for {program.name}: RNNCOMPILE_REGENERATE=1 pytest tests/test_flow.py"
    assert text == golden.read_text(encoding="utf-8")


def test_every_bundle_is_written_before_it_is_read(program):
    written = {flow.INPUT, flow.CONTEXT}
    for op in program.flow:
        missing = [b for b in op.reads() if b not in written]
        assert not missing, f"{op.op} at {op.path} reads {missing} before any op writes it"
        clash = [b for b in op.writes() if b in written]
        assert not clash, f"{op.op} at {op.path} writes {clash} again"
        written |= set(op.writes())
    assert program.flow.ops[-1].op == "output"


def test_each_op_carries_the_spec_path_it_came_from(program):
    for op in program.flow:
        assert op.path and op.path[0] == "model", op


def test_every_scanned_use_starts_from_one_start_state_op(program):
    starts = {op.out: op for op in program.flow.of("start_state")}
    for op in program.flow.of("scan"):
        assert starts[op.state].use is op.use


def test_the_interpreter_runs_every_flow_op():
    assert set(INTERPRETER) == set(flow.OP_NAMES) == set(flow.OP_TYPES)


def test_inspect_flow_prints_the_flow(cli):
    code, out, err = cli("inspect", str(ROOT / "specs" / "sentiment.yaml"), "--flow")
    assert code == 0, err
    assert out == (GOLDEN / "sentiment.txt").read_text(encoding="utf-8")


def test_inspect_flow_as_json(cli):
    import json

    code, out, err = cli("inspect", str(ROOT / "specs" / "seq2seq.yaml"), "--flow", "--format", "json")
    data = json.loads(out)
    assert [op["op"] for op in data["ops"]] == ["start_state", "scan", "start_state", "decode", "output"]
    assert data["ops"][3]["reads"][0] == "decoder.start" and data["ops"][1]["path"] == "model.encoder"
