"""An operator that broadcasts a vector against a matrix (`M * h`, M [H, H], h [H]) validates, as NumPy would,
and is almost always a slip for `M @ h`: it gets a located warning whose hint names both ways out."""
from __future__ import annotations

import pytest

import rnncompile

SPEC = """\
rnncompile: 1
name: stretch
dims: {{I: 3, H: 4, T: 5}}
cells:
  c:
    inputs: {{x: I}}
    state: {{h: H}}
    params:
      W_x: {{shape: [H, I]}}
      M: {{shape: [H, H]}}
    update:
      h: {update}
    outputs: {{y: h}}
model: {{scan: c, input: {{x: [T, I]}}}}
"""


def _spec(tmp_path, update):
    path = tmp_path / "stretch.yaml"
    path.write_text(SPEC.format(update=update))
    return path


def test_a_vector_times_a_matrix_is_a_located_warning_naming_the_fix(cli, tmp_path):
    spec = _spec(tmp_path, "tanh(W_x @ x + sum(M * h, axis=1))")
    code, out, err = cli("validate", spec)
    assert code == 0 and out.strip().endswith("ok (1 warning)")
    assert err.splitlines() == [
        f"{spec}:12:31: warning: `M * h` broadcasts the vector `h` [4] against the matrix `M` [4, 4] "
        "[cells.c.update.h]",
        "          h: tanh(W_x @ x + sum(M * h, axis=1))",
        "                                  ^",
        "    hint: each row of `M` meets `h` elementwise; for the matrix-vector product write `M @ h`; "
        "if the broadcast is meant, write `mul(M, h)`"]


@pytest.mark.parametrize("update", ["tanh(W_x @ x + sum(mul(M, h), axis=1))",  # the call form says it is meant
                                    "tanh(W_x @ x + M @ h)", "tanh(W_x @ x + h * h)", "tanh(W_x @ x + 2 * h)",
                                    "tanh(W_x @ x + sum(M * M, axis=1))"])
def test_the_call_form_and_same_rank_operands_are_quiet(tmp_path, update):
    warnings = rnncompile.check_file(_spec(tmp_path, update)).warnings
    assert not [w for w in warnings if "broadcasts" in w.message]


def test_the_warning_is_the_same_for_every_elementwise_operator_and_either_order(tmp_path):
    for update, shown in [("tanh(W_x @ x + sum(h + M, axis=0))", "`h + M`"),
                          ("tanh(W_x @ x + sum(M / h, axis=0))", "`M / h`")]:
        (w,) = rnncompile.check_file(_spec(tmp_path, update)).warnings
        assert w.message.startswith(f"{shown} broadcasts the vector `h` [4] against the matrix `M` [4, 4]")
        assert "@" not in w.hint  # only `*` has a matrix-vector product to suggest


def test_an_unbracketed_mix_gets_one_warning_not_two(tmp_path):
    # ((W_x @ x) * M) @ h broadcasts too, but the precedence warning already says how it reads
    (w,) = rnncompile.check_file(_spec(tmp_path, "tanh(W_x @ x * M @ h)")).warnings
    assert "share one precedence level" in w.message


def test_shipped_specs_say_when_they_mean_a_broadcast():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in sorted([*root.glob("specs/*.yaml"), *root.glob("specs/cells/*.yaml")]):
        assert not [w for w in rnncompile.check_file(path).warnings if "broadcasts the vector" in w.message], path
