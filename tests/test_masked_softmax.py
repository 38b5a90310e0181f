"""masked_softmax(x, mask) on every backend, on the inputs that make a naive version fail: entries far from 0,
a huge (or infinite, or NaN) entry where the mask is 0, a row with every entry masked, float32. The random
cases against the op table's meaning are in test_kernels.py (and, through its CASES, for the python and c
backends in test_backend_python.py and test_backend_c.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import rnncompile
from rnncompile import registry
from rnncompile.errors import SpecError
from rnncompile.ops import OPS

SPEC = """\
rnncompile: 1
name: masked
dims: {N: 4, R: 2, T: 3}
cells:
  attend:
    inputs: {x: [R, N], m: N}
    outputs:
      a: masked_softmax(x, m)
model:
  scan: attend
  input: {x: [T, R, N], m: [T, N]}
"""


def _by_hand(x, m):
    """exp over the kept entries, each divided by their sum: written out, with the max taken by hand."""
    out = np.zeros(len(x))
    kept = [j for j in range(len(x)) if m[j] != 0]
    if kept:
        top = max(x[j] for j in kept)
        e = {j: np.exp(x[j] - top) for j in kept}
        for j in kept:
            out[j] = e[j] / sum(e.values())
    return out


def _inputs():
    big = 1e4
    x = np.array([[[big, big + 1, big - 2, 1e30], [-big, -big - 1, 0.5, np.inf]],
                  [[3.0, np.nan, -1.0, 2.0], [0.1, 0.2, 0.3, 0.4]],
                  [[-1e30, 0.0, 5.0, 1.0], [1.0, 2.0, 3.0, 4.0]]])[None]  # [B=1, T, R, N]
    m = np.array([[1, 1, 1, 0], [1, 0, 1, 1], [0, 0, 0, 0]], float)[None]  # the last step: every entry masked
    return x, m


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numpy", "python", "c"])
def test_masked_entries_are_exactly_zero_and_nothing_overflows(backend, dtype):
    if getattr(registry.get(backend), "unsupported", lambda p: None)(None):
        pytest.skip("no C compiler")
    prog = rnncompile.compile_text(SPEC, file="masked.yaml")
    x, m = _inputs()
    if dtype == "float32":
        x = np.where(np.abs(x) > 1e30, np.sign(x) * 1e30, x)  # float32 holds 1e30 but not more
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warning on the numpy-based backends
        got = rnncompile.run(prog, inputs={"x": x, "m": m}, dtype=dtype, backend=backend).outputs["a"][0]
    tol = 1e-12 if dtype == "float64" else 1e-6
    for t in range(3):
        for r in range(2):
            want = _by_hand(x[0, t, r], m[0, t])
            np.testing.assert_allclose(got[t, r], want, rtol=tol, atol=tol, err_msg=f"step {t}, row {r}")
            assert np.all(got[t, r][m[0, t] == 0] == 0.0)
    assert np.all(got[2] == 0.0), "a row with every entry masked is all zeros"
    np.testing.assert_allclose(got[:2].sum(-1), 1, rtol=tol)


def test_the_shape_rule_and_its_errors():
    rule = OPS["masked_softmax"].shape
    assert rule([(7,), (7,)], {}) == (7,)
    assert rule([(2, 7), (7,)], {}) == (2, 7)
    assert rule([(2, 7), ()], {}) == (2, 7)
    bad = SPEC.replace("masked_softmax(x, m)", "masked_softmax(m, x)")
    with pytest.raises(SpecError, match=r"cannot apply masked_softmax to \[4\] and \[2, 4\] in `masked_softmax\(m, x\)`"
                                         r": the mask \[2, 4\] does not broadcast to x's shape \[4\]"):
        rnncompile.compile_text(bad, file="masked.yaml")
    scalar = SPEC.replace("masked_softmax(x, m)", "masked_softmax(x[0][0], m)")
    with pytest.raises(SpecError, match="masked_softmax of a scalar is always 1 or 0; it needs a vector"):
        rnncompile.compile_text(scalar, file="masked.yaml")
