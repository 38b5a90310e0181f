"""Hostile specs (issue 16): each once ended in `internal error` (exit 3); each now gets a located
error at check time (exit 1, or 2 for a bad option), or works.

The limits they meet: an expression nests at most expr.MAX_DEPTH (64) levels and is at most
expr.MAX_EXPR_CHARS long, while chains of one precedence (`h+h+...`, `W.T.T`, `h[0:8][0:8]`)
may be as long as that allows; a spec file nests at most source.MAX_NESTING (64) levels; a size
is at most dims.MAX_SIZE (2**31 - 1) and a shape has at most dims.MAX_RANK (8) axes.
"""
from __future__ import annotations

import re

import pytest

from conftest import SPECS

ELMAN = (SPECS / "elman.yaml").read_text()
LSTM = (SPECS / "lstm.yaml").read_text()
SEQ2SEQ = (SPECS / "seq2seq.yaml").read_text()
CAPTIONER = (SPECS / "captioner.yaml").read_text()
RVNN = (SPECS / "rvnn.yaml").read_text()
SENTIMENT = (SPECS / "sentiment.yaml").read_text()

DEEP = "(" * 300 + "{}" + ")" * 300


def edited(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def write(tmp_path, name: str, text: str, data_from=None):
    path = tmp_path / name
    path.write_text(text)
    if data_from is not None:  # a vocabulary file beside the spec
        (tmp_path / "data").symlink_to(data_from)
    return path


def located(err: str, path) -> tuple[int, int]:
    """The line and column of the first diagnostic, which must name the file, and show a caret."""
    m = re.search(re.escape(str(path)) + r":(\d+):(\d+): error: ", err)
    assert m, err
    assert "^" in err and "internal error" not in err and "Traceback" not in err, err
    return int(m.group(1)), int(m.group(2))


def validate(cli, path, *args):
    code, out, err = cli("validate", path, *args)
    assert "internal error" not in err and "Traceback" not in err, err
    return code, out, err


# ---- deep nesting: every expression key ---------------------------------------------------

DEEP_CASES = {
    "update": (ELMAN, "h: tanh(W_xh @ x + W_hh @ h + b_h)", "h: tanh(W_xh @ x + W_hh @ " + DEEP.format("h") + " + b_h)",
               "cells.elman.update.h"),
    "let": (LSTM, "c_next: f * c + i * g", "c_next: f * " + DEEP.format("c") + " + i * g", "cells.lstm.let.c_next"),
    "outputs": (ELMAN, "y: W_hy @ h + b_y", "y: W_hy @ " + DEEP.format("h") + " + b_y", "cells.elman.outputs.y"),
    "decoder init": (CAPTIONER, "init: {h: tanh(W_img @ img + b_img)}",
                     "init: {h: \"tanh(W_img @ " + DEEP.format("img") + " + b_img)\"}", "model.decoder.init.h"),
    "head": (SEQ2SEQ, "p: softmax(W_p @ h + b_p)", "p: softmax(W_p @ " + DEEP.format("h") + " + b_p)",
             "model.decoder.head.outputs.p"),
    "tree rule": (RVNN, "h: embed(word, L)", "h: " + DEEP.format("embed(word, L)"), "cells.compose.leaf.h"),
    "param shape": (ELMAN, "W_hh: {shape: [H, H]}", "W_hh: {shape: [H, \"" + DEEP.format("H") + "\"]}",
                    "cells.elman.params.W_hh.shape.1"),
    "unary minus": (ELMAN, "@ h + b_h)", "@ h + " + "-" * 800 + "b_h)", "cells.elman.update.h"),
    "unary plus": (ELMAN, "@ h + b_h)", "@ h + " + "+" * 800 + "b_h)", "cells.elman.update.h"),
    "calls": (ELMAN, "@ h + b_h)", "@ h + " + "tanh(" * 300 + "b_h" + ")" * 300 + ")", "cells.elman.update.h"),
    "indexes": (ELMAN, "y: W_hy @ h + b_y", "y: W_hy @ h" + "[h" * 300 + "]" * 300 + " + b_y", "cells.elman.outputs.y"),
    "powers": (ELMAN, "@ h + b_h)", "@ h + b_h" + "**b_h" * 400 + ")", "cells.elman.update.h"),
}


@pytest.mark.parametrize("case", DEEP_CASES, ids=str)
def test_deep_expressions_are_refused_with_the_limit(cli, tmp_path, case):
    text, old, new, key = DEEP_CASES[case]
    spec = write(tmp_path, "deep.yaml", edited(text, old, new), SPECS / "data")
    code, _, err = validate(cli, spec)
    assert code == 1, err
    located(err, spec)
    assert "expression nested deeper than 64 levels" in err and f"[{key}]" in err, err


def test_the_nesting_limit_still_allows_64_levels(cli, tmp_path):
    spec = write(tmp_path, "ok.yaml", edited(ELMAN, "y: W_hy @ h + b_y", "y: W_hy @ " + "(" * 63 + "h" + ")" * 63))
    code, out, err = validate(cli, spec)
    assert code == 0, err


# ---- long flat chains validate and run -------------------------------------------------------

CHAINS = {
    "h+h+...": "y: W_hy @ (" + "+".join(["h"] * 3000) + ") + b_y",
    "h*h*...": "y: W_hy @ (" + "*".join(["h"] * 3000) + ") + b_y",
    "h-h-...": "y: W_hy @ (" + "-".join(["h"] * 3000) + ") + b_y",
    "-h--h...": "y: W_hy @ (" + "-".join(["-h"] * 1500) + ") + b_y",
    "W.T.T...": "y: W_hy" + ".T.T" * 1000 + " @ h + b_y",
    "h[0:8][0:8]...": "y: W_hy @ concat(h" + "[0:8]" * 1500 + ", h[8:16]) + b_y",
}


@pytest.mark.parametrize("case", CHAINS, ids=str)
def test_long_chains_validate_and_run(cli, tmp_path, case):
    spec = write(tmp_path, "chain.yaml", edited(ELMAN, "y: W_hy @ h + b_y", CHAINS[case]))
    code, out, err = validate(cli, spec)
    assert code == 0, err
    code, out, err = cli("run", spec, "--steps", "2")
    assert code == 0, err
    assert "internal error" not in err


def test_a_long_chain_in_a_size_and_an_attribute(cli, tmp_path):
    text = edited(ELMAN, "W_hh: {shape: [H, H]}", "W_hh: {shape: [H, \"" + "+".join(["1"] * 16) + "\"]}")
    text = edited(text, "y: W_hy @ h + b_y", "y: W_hy @ softmax(h, axis=" + "+".join(["0"] * 2000) + ") + b_y")
    code, out, err = validate(cli, write(tmp_path, "chain.yaml", text))
    assert code == 0, err


def test_an_expression_longer_than_the_limit(cli, tmp_path):
    spec = write(tmp_path, "long.yaml", edited(ELMAN, "y: W_hy @ h + b_y", "y: " + " + ".join(["h"] * 3000)))
    code, _, err = validate(cli, spec)
    assert code == 1 and "expression longer than 10000 characters" in err, err
    located(err, spec)


# ---- deep documents ---------------------------------------------------------------------------

def test_yaml_block_mappings_600_deep(cli, tmp_path):
    text = "rnncompile: 1\nname: d\nx:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(600)) + "  " * 601 + "v: 1\n"
    spec = write(tmp_path, "deep.yaml", text)
    code, _, err = validate(cli, spec)
    assert code == 1, err
    assert located(err, spec)[0] == 3 + 64  # the 65th level
    assert "error: the spec nests deeper than 64 levels" in err, err


def test_yaml_flow_lists_3000_deep(cli, tmp_path):
    spec = write(tmp_path, "deep.yaml", "rnncompile: 1\nname: d\nx: " + "[" * 3000 + "]" * 3000 + "\n")
    code, _, err = validate(cli, spec)
    assert code == 1 and "the spec nests deeper than 64 levels" in err, err
    assert located(err, spec) == (3, 4 + 63)  # the root mapping is the first level


@pytest.mark.parametrize("text", ['{"a": ' * 5000 + "1" + "}" * 5000, "[" * 5000 + "]" * 5000], ids=["objects", "arrays"])
def test_json_5000_deep(cli, tmp_path, text):
    spec = write(tmp_path, "deep.json", text)
    code, _, err = validate(cli, spec)
    assert code == 1 and "the spec nests deeper than 64 levels" in err, err
    assert located(err, spec)[0] == 1


# ---- sizes ----------------------------------------------------------------------------------

def test_a_size_that_overflows_a_float(cli, tmp_path):
    spec = write(tmp_path, "big.yaml", edited(ELMAN, "W_hh: {shape: [H, H]}", "W_hh: {shape: [H * 1e308, H]}"))
    code, _, err = validate(cli, spec)
    assert code == 1, err
    assert located(err, spec) == (14, 26)
    assert "size a 309-digit number is too large; sizes are at most 2,147,483,647 [cells.elman.params.W_hh.shape.0]" \
        in err, err


def test_a_dim_of_400_digits(cli, tmp_path):
    spec = write(tmp_path, "big.yaml", edited(ELMAN, "H: 16", "H: 1" + "0" * 400))
    code, _, err = validate(cli, spec)
    assert code == 1, err
    located(err, spec)
    assert "dim `H` is a 401-digit number; sizes are at most 2,147,483,647 [dims.H]" in err, err


def test_a_layer_dim_beyond_the_limit(cli, tmp_path):
    text = (SPECS / "deep_lstm.yaml").read_text()
    text = edited(text, "- {scan: lstm}", "- {scan: lstm, dims: {H: 99999999999}}")
    spec = write(tmp_path, "big.yaml", text)
    code, _, err = validate(cli, spec)
    assert code == 1 and "dim `H` must be a positive integer of at most 2,147,483,647" in err, err
    located(err, spec)


def test_a_shape_of_5000_axes(cli, tmp_path):
    spec = write(tmp_path, "axes.yaml", edited(ELMAN, "W_hh: {shape: [H, H]}",
                                              "W_hh: {shape: [" + ", ".join(["1"] * 5000) + "]}"))
    code, _, err = validate(cli, spec)
    assert code == 1, err
    located(err, spec)
    assert "a shape of 5000 axes; shapes have at most 8 [cells.elman.params.W_hh.shape]" in err, err


def test_a_model_input_of_20_axes(cli, tmp_path):
    spec = write(tmp_path, "axes.yaml", edited(ELMAN, "input: {x: [T, I]}", "input: {x: [T" + ", 1" * 20 + "]}"))
    code, _, err = validate(cli, spec)
    assert code == 1 and "a shape of 20 axes; shapes have at most 8" in err, err
    located(err, spec)


def test_an_attribute_too_large(cli, tmp_path):
    spec = write(tmp_path, "attr.yaml", edited(ELMAN, "y: W_hy @ h + b_y", "y: W_hy @ h[0:1e300] + b_y"))
    code, _, err = validate(cli, spec)
    assert code == 1 and "1e+300 is too large here; the limit is 2,147,483,647" in err, err
    located(err, spec)


# ---- structure ------------------------------------------------------------------------------

def test_a_gate_from_nothing(cli, tmp_path):
    spec = write(tmp_path, "gate.yaml", edited(LSTM, "i: {act: sigmoid, from: [h, x]}", "i: {act: sigmoid, from: []}"))
    code, _, err = validate(cli, spec)
    assert code == 1, err
    assert located(err, spec) == (12, 31)
    assert "a gate needs at least one input in `from:` [cells.lstm.gates.i.from]" in err, err


def test_an_encoder_given_self_for_scan(cli, tmp_path):
    spec = write(tmp_path, "enc.yaml", edited(SEQ2SEQ, "encoder: {scan: encoder_lstm", "encoder: {self: encoder_lstm"))
    code, _, err = validate(cli, spec)
    assert code == 1, err
    located(err, spec)
    assert "unknown key `self` [model.encoder.self]" in err
    assert "nothing to scan: give `scan: <cell>` or `layers:` [model.encoder]" in err
    assert "no encoder to start from" not in err  # not a second error for the same slip
    assert err.rstrip().endswith("2 errors"), err


def test_an_empty_cell_with_a_null_head(cli, tmp_path):
    spec = write(tmp_path, "empty.yaml", "rnncompile: 1\nname: e\ncells:\n  c: {}\nmodel:\n  scan: c\n  head: null\n")
    code, _, err = validate(cli, spec)
    assert code == 1, err
    assert located(err, spec) == (5, 1)
    assert "cell `c` reads no input, so there is no sequence to scan [model]" in err, err
    code, _, err = cli("run", spec)
    assert code == 1 and "internal error" not in err, err


VALUES = {
    "a mapping": ("{a: 1}", (14, 37), "literal values hold `{...}` at values, where a list of 2 belongs "
                                      "[cells.elman.params.W_hh.values]"),
    "ragged": ("[[1, 2], [3]]", (14, 46), "literal values have 1 entry at values[1], where the shape [2, 2] needs 2 "
                                          "[cells.elman.params.W_hh.values.1]"),
    "strings": ("[[a, b], [c, d]]", (14, 39), "literal values hold `a` at values[0][0], where a number belongs "
                                              "[cells.elman.params.W_hh.values.0.0]"),
    "too deep": ("[[[1, 2], [3, 4]], [[1, 2], [3, 4]]]", (14, 39), "literal values hold a list at values[0][0], "
                                                                   "where a number belongs"),
    "booleans": ("[[true, 1], [1, 1]]", (14, 39), "literal values hold `True` at values[0][0]"),
    "a huge int": ("[[1" + "0" * 400 + ", 1], [1, 1]]", (14, 39), "literal values hold `10000000000000000...` at "
                                                                  "values[0][0]"),
}


@pytest.mark.parametrize("case", VALUES, ids=str)
def test_literal_values_of_the_wrong_kind(cli, tmp_path, case):
    values, where, message = VALUES[case]
    text = edited(ELMAN, "W_hh: {shape: [H, H]}", f"W_hh: {{shape: [2, 2], values: {values}}}")
    spec = write(tmp_path, "values.yaml", edited(text, "H: 16", "H: 2"))
    code, _, err = validate(cli, spec)
    assert code == 1, err
    assert located(err, spec) == where
    assert message in err, err
    code, _, err = cli("run", spec)
    assert code == 1 and "internal error" not in err, err


def test_literal_values_that_fit(cli, tmp_path):
    text = edited(ELMAN, "W_hh: {shape: [H, H]}", "W_hh: {shape: [2, 2], values: [[1, 0.5], [-2, 0]]}")
    text = edited(text, "b_h: {shape: [H], init: zeros}", "b_h: {shape: [H], values: [0.25]}")  # one for all
    code, out, err = cli("run", write(tmp_path, "values.yaml", edited(text, "H: 16", "H: 2")), "--steps", "2")
    assert code == 0, err


# ---- --dim ----------------------------------------------------------------------------------

@pytest.mark.parametrize("option,message", [
    ("h=4", "--dim h=4: {spec} has no dim `h`; did you mean `H`?"),
    ("HH=4", "--dim HH=4: {spec} has no dim `HH`; did you mean `H`?"),
    ("Q=4", "--dim Q=4: {spec} has no dim `Q`; known dim names: H, I, O, T"),
    ("H=99999999999", "--dim H=99,999,999,999: sizes are at most 2,147,483,647"),
])
def test_an_unknown_or_huge_dim_option_is_refused(cli, option, message):
    code, _, err = cli("validate", SPECS / "elman.yaml", "--dim", option)
    assert code == 2, err
    assert message.format(spec=SPECS / "elman.yaml") in err, err


def test_the_vocabulary_dim_is_not_an_option(cli):
    code, _, err = cli("validate", SPECS / "sentiment.yaml", "--dim", "V=4")
    assert code == 2 and "`V` is the vocabulary's size, set by `vocab:`" in err, err


def test_a_time_dim_not_declared_may_be_set(cli, tmp_path):
    spec = write(tmp_path, "t.yaml", edited(ELMAN, ", T: 10}", "}"))
    code, out, err = cli("validate", spec, "--dim", "T=3")
    assert code == 0, err


@pytest.mark.parametrize("name,text", [
    ("big.yaml", edited(ELMAN, "H: 16", "H: 1" + "0" * 5000)),
    ("big.json", '{"rnncompile": 1, "name": "x", "dims": {"H": 1' + "0" * 5000 + "}}"),
], ids=["yaml", "json"])
def test_an_int_too_long_for_python_to_read(cli, tmp_path, name, text):
    spec = write(tmp_path, name, text)  # Python refuses to convert an int of more than 4,300 digits
    code, _, err = validate(cli, spec)
    assert code == 1 and "a number of 5,001 digits is too long to read" in err, err
    located(err, spec)


def test_a_tree_arity_of_400_digits(cli, tmp_path):
    spec = write(tmp_path, "arity.yaml", edited(RVNN, "arity: 2", "arity: 1" + "0" * 400), SPECS / "data")
    code, _, err = validate(cli, spec)
    assert code == 1, err
    located(err, spec)
    assert "expected less than or equal to 2147483647, got `a 401-digit number` [cells.compose.arity]" in err, err


def test_a_dim_that_is_a_list(cli, tmp_path):
    spec = write(tmp_path, "dims.yaml", edited(ELMAN, "dims: {I: 8,", "dims: {I: [T, I],"))
    code, _, err = validate(cli, spec)
    assert code == 1 and "dim `I` must be a positive integer [dims.I]" in err, err
    located(err, spec)
    code, _, err = cli("run", spec, "--steps", "3")
    assert code == 1 and "internal error" not in err, err
