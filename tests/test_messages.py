"""Messages that say what to do next."""
from __future__ import annotations

from rnncompile.render.plan import make_plan
from conftest import SPECS

TWO_AXES = """\
rnncompile: 1
name: two
dims: {I: 2, H: 3, S: 4, T: 5}
cells:
  rnn:
    inputs: {x: I, y: I}
    state: {h: H}
    params: {W: {shape: [H, H + I + I]}}
    update:
      h: tanh(W @ concat(h, x, y))
    outputs: {o: h}
model: {scan: rnn, input: {x: [S, I], y: [T, I]}}
"""


def test_two_time_axes_get_a_way_forward(cli, tmp_path):
    spec = tmp_path / "two.yaml"
    spec.write_text(TWO_AXES)
    code, out, err = cli("validate", spec)
    assert code == 1
    first = err.splitlines()[0]
    assert first.startswith(f"{spec}:12:") and "error: cell `rnn` reads `x` [S, ...], `y` [T, ...]: the inputs " \
                                                "of one scan share one time axis [model.input.y.0]" in first
    assert "hint: give them the same time dim and each its own real length at run time (`lengths.<input>`); an " \
           "encoder's source and a decoder's target may each have their own time axis" in err


def test_one_elided_step_is_named_as_one():
    assert make_plan("3..5", {}, "T", 5).gap_notes() == ["step 3 not drawn"]
    assert make_plan("3..10", {}, "T", 10).gap_notes() == ["steps 3–8 not drawn"]


def test_the_model_view_caption_of_a_short_elision(cli, tmp_path):
    out = tmp_path / "d.svg"
    code, _, err = cli("render", SPECS / "deep_lstm.yaml", "--view", "model", "--dim", "T=5", "-o", out)
    assert code == 0, err
    text = out.read_text()
    assert "step 3 not drawn" in text and "steps 3–3" not in text
