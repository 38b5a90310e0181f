"""`@` shares a precedence level with `*` and `/`: an unbracketed mix validates, so it gets a located warning."""
from __future__ import annotations

import pytest

import rnncompile
from rnncompile import expr

SPEC = """\
rnncompile: 1
name: mix
dims: {{I: 4, H: 4, T: 3}}
cells:
  mlstm:
    inputs: {{x: I}}
    state: {{h: H}}
    params:
      W_mx: {{shape: [H, I]}}
      W_mh: {{shape: [H, H]}}
    let:
      m: {m}
    update: {{h: tanh(m)}}
    outputs: {{y: h}}
model: {{scan: mlstm, input: {{x: [T, I]}}}}
"""


def test_the_footgun_is_a_located_warning_with_the_reading(cli, tmp_path):
    spec = tmp_path / "mix.yaml"
    spec.write_text(SPEC.format(m="W_mx @ x * W_mh @ h"))
    code, out, err = cli("validate", spec)
    assert code == 0 and out.strip().endswith("ok (1 warning)")
    assert err.splitlines() == [
        f"{spec}:12:19: warning: `@` and `*` or `/` share one precedence level and group left to right "
        "[cells.mlstm.let.m]",
        "          m: W_mx @ x * W_mh @ h",
        "                      ^",
        "    hint: `W_mx @ x * W_mh @ h` reads as `((W_mx @ x) * W_mh) @ h`; add brackets to say which you mean"]


@pytest.mark.parametrize("text", ["(W_mx @ x) * (W_mh @ h)", "W_mh @ h + W_mx @ x", "W_mh @ (2 * h)", "h * h / 2",
                                  "(W_mh @ h) / 2"])
def test_bracketed_or_unmixed_chains_are_quiet(text):
    assert expr.parse_noting(text)[1] == []


@pytest.mark.parametrize("text, reading", [("A @ x * B @ h", "((A @ x) * B) @ h"), ("h / 2 @ W", "(h / 2) @ W"),
                                           ("f(A @ x / 2)", "(A @ x) / 2")])
def test_each_unbracketed_mix_is_found_once_with_how_it_parses(text, reading):
    (mix,) = expr.parse_noting(text)[1]
    assert f"reads as `{reading}`" in mix.hint(text)


def test_the_warning_reaches_the_python_api(tmp_path):
    spec = tmp_path / "mix.yaml"
    spec.write_text(SPEC.format(m="W_mx @ x * W_mh @ h"))
    (w,) = rnncompile.check_file(spec).warnings
    assert (w.loc.line, w.loc.col, w.path) == (12, 19, "cells.mlstm.let.m")
