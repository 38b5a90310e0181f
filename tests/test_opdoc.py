"""docs/ops.md, the op reference generated from the op table (rnncompile/opdoc.py): up to date, complete, and
right — its worked examples against hand-computed numbers, its precedence table against Python's grammar
(read with `ast`, for the operators Python shares), its gate activations against what the lowering accepts."""
from __future__ import annotations

import ast
import math
import re

import numpy as np
import pytest

from conftest import ROOT
from rnncompile import expr as E
from rnncompile import opdoc
from rnncompile.lower import BINARY
from rnncompile.ops import OPS, OpDef

DOC = ROOT / "docs" / "ops.md"


def test_docs_ops_md_is_up_to_date_with_the_op_table():
    assert DOC.exists(), f"docs/ops.md is missing; generate it: {opdoc.REGENERATE}"
    assert DOC.read_text(encoding="utf-8") == opdoc.reference("markdown"), (
        f"docs/ops.md is out of date with the op table (rnncompile/ops.py) or the parser; regenerate it: "
        f"{opdoc.REGENERATE}")


def test_every_op_has_a_doc_a_shape_rule_in_words_and_a_section():
    text = DOC.read_text(encoding="utf-8")
    for name, op in OPS.items():
        assert op.doc.strip(), f"op `{name}` has no doc in rnncompile/ops.py"
        assert opdoc.shape_rule(op), f"op `{name}`: its shape function {op.shape.__name__} has no docstring"
        assert f"### `{name}`" in text and f"[`{name}`](#{name})" in text


def test_each_example_is_computed_by_the_shape_rule_and_the_meaning_and_they_agree():
    for name, op in OPS.items():
        ex = opdoc.example(op)
        if op.kind in ("source", "sink"):
            continue
        assert ex is not None, f"no example shapes fit op `{name}`'s shape rule"
        assert tuple(op.shape(list(ex.shapes), {**{k: v for k, v in op.attrs.items()}, **ex.attrs})) == ex.shape
        assert np.shape(ex.value) == ex.shape, f"`{name}`: the meaning gives {np.shape(ex.value)}, the shape " \
                                               f"rule {ex.shape}"


def _value(name):
    return np.asarray(opdoc.example(OPS[name]).value, dtype=float)


def test_worked_examples_match_hand_computed_numbers():
    np.testing.assert_allclose(_value("matmul"), [1 * 1 + 2 * 0.5 + 0 * 2, 0 * 1 + 1 * 0.5 - 1 * 2])
    np.testing.assert_allclose(_value("cosine"), [1 / math.sqrt(2), 2 / (2 * math.sqrt(2)), 1], rtol=1e-7)
    np.testing.assert_allclose(_value("shift"), [0.0, 0.1, 0.6, 0.2, 0.1])  # s[k+1] = 1: one slot forward
    w2 = [0.01, 0.09, 0.36]
    np.testing.assert_allclose(_value("sharpen"), [v / sum(w2) for v in w2])
    np.testing.assert_allclose(_value("mod"), [7 % 3, -7 % 3, 7.5 % -2])  # Python's floor semantics
    np.testing.assert_allclose(_value("floordiv"), [7 // 3, -7 // 3, 7.5 // -2])
    e = [math.exp(v) for v in (1, 2, 3)]
    np.testing.assert_allclose(_value("softmax"), [v / sum(e) for v in e])
    np.testing.assert_allclose(_value("hard_sigmoid"), [min(1, max(0, 0.2 * v + 0.5)) for v in (0.5, -1, 2)])
    np.testing.assert_allclose(_value("chunk"), [3, 4])
    np.testing.assert_allclose(_value("one_hot"), [0, 0, 1, 0])
    if "masked_softmax" in OPS:
        np.testing.assert_allclose(_value("masked_softmax"), [e[0] / (e[0] + e[2]), 0, e[2] / (e[0] + e[2])])
    text = DOC.read_text(encoding="utf-8")
    assert "- example: `[7, -7, 7.5] % [3, 3, -2] = [1, 2, -0.5]` (shapes [3], [3] → [3])" in text
    assert "- example: `[[1, 2, 0], [0, 1, -1]] @ [1, 0.5, 2] = [2, -1.5]` (shapes [2, 3], [3] → [2])" in text


def _python_grouping(x: str, y: str) -> str:
    """How Python's own grammar groups `a x b y c` (parsed with ast, never run)."""
    node = ast.parse(f"a {x} b {y} c", mode="eval").body
    return "left" if isinstance(node.left, ast.BinOp) else "right"


def test_the_precedence_table_agrees_with_python_for_the_operators_it_shares():
    levels = opdoc.precedence()
    rank = {op: k for k, level in enumerate(levels) for op in level.operators}
    cmp = {"<", "<=", ">", ">=", "==", "!="}
    for x in BINARY:
        for y in BINARY:
            if x in cmp or y in cmp:
                continue
            ours = "left" if rank[x] < rank[y] or rank[x] == rank[y] and levels[rank[x]].grouping == "left to right" \
                else "right"
            assert ours == _python_grouping(x, y), f"`a {x} b {y} c`"
    for x in BINARY:  # unary minus: below ** and above the rest, as in Python
        neg_first = isinstance(ast.parse(f"-a {x} b", mode="eval").body, ast.UnaryOp)
        assert neg_first == (rank[x] < rank["-x"]), x
    assert all(rank[c] == len(levels) - 1 for c in cmp & set(BINARY))  # comparisons are loosest, and one level
    assert levels[-1].grouping.startswith("does not chain")
    with pytest.raises(E.ExprSyntaxError, match="do not chain"):
        E.parse("a < b < c")


def _readme_precedence() -> list[set]:
    """The README's `Precedence, tightest first: ...` sentence as levels of operators (`-x` for unary minus)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("Precedence, tightest first:") + len("Precedence, tightest first:")
    levels, current, depth, code, span = [], "", 0, False, ""
    for ch in text[start:]:
        if ch == "`":
            if code and depth == 0:
                current += " `" + span + "`"
            code, span = not code, ""
            continue
        if code:
            span += ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch in ";.":
            levels.append(current)
            current = ""
            if ch == ".":
                break
        elif depth == 0:
            current += ch
    out = []
    for segment in levels:
        ops = set(" ".join(re.findall(r"`([^`]*)`", segment)).split())
        if "unary" in segment:
            ops = {"-x"}
        out.append(ops)
    return out


def test_the_readme_precedence_sentence_matches_the_table():
    ours = [set(level.operators) for level in opdoc.precedence()]
    readme = _readme_precedence()
    assert readme[0] == {".T"} and "x.T" in ours[0]  # calls, indexing and .T
    assert readme[1:] == ours[1:], "README.md's precedence sentence differs from the parser's (docs/ops.md)"


SPEC = """\
rnncompile: 1
name: one_gate
dims: {{I: 3, H: 4, T: 2}}
cells:
  rnn:
    inputs: {{x: I}}
    state: {{h: H}}
    gates:
      z: {{act: {act}, from: [h, x]}}
    update: {{h: z}}
    outputs: {{h: h}}
model: {{scan: rnn, input: {{x: [T, I]}}}}
"""


def test_the_gate_activations_listed_are_the_ones_a_gate_accepts(cli, tmp_path):
    listed = opdoc.gate_activations()
    assert {"sigmoid", "tanh", "relu", "linear"} <= set(listed)
    for act in listed + ["concat", "cosine", "matmul"]:
        spec = tmp_path / f"{act}.yaml"
        spec.write_text(SPEC.format(act=act))
        code, out, err = cli("validate", spec)
        assert (code == 0) == (act in listed), (act, err)
        if act not in listed:
            assert f"`{act}` is not an activation" in err


def test_a_new_op_in_the_table_shows_up_by_itself(monkeypatch):
    def _halve_shape(shapes, attrs):
        """The argument's shape, every axis kept."""
        return shapes[0]

    op = OpDef("halve", (1, 1), _halve_shape, lambda x, scale=0.5: x * scale, attrs={"scale": 0.5},
               kind="elementwise", doc="x * scale")
    monkeypatch.setitem(OPS, "halve", op)
    text = opdoc.reference("markdown")
    assert "### `halve`" in text and "| [`halve`](#halve) |" in text
    assert "- example: `halve([0.5, -1, 2]) = [0.25, -0.5, 1]` (shapes [3] → [3])" in text
    assert "- attributes: `scale` (0.5)" in text


def test_cli_ops_prints_markdown_and_text(cli, tmp_path):
    code, out, err = cli("ops", "--format", "markdown")
    assert code == 0 and out == DOC.read_text(encoding="utf-8")
    code, out, err = cli("ops")
    assert code == 0 and out.startswith("OP REFERENCE\n") and "`" not in out
    assert all(f"\n{name}\n" in out for name in OPS)
    code, out, err = cli("ops", "--format", "markdown", "-o", tmp_path / "ops.md")
    assert code == 0 and (tmp_path / "ops.md").read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")
    code, out, err = cli("ops", "--format", "html")
    assert code == 2 and "'html' is not one of 'markdown', 'text'" in err
