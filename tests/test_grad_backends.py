"""Every backend's gradients equal the interpreter's (the numpy backend's) on every shipped spec: the backward
cells run by the generated Python module and by the generated C give the same loss, the same gradient of
every param and, for sequence models, the same gradient with respect to every state at every step."""
from __future__ import annotations

import numpy as np
import pytest

from rnncompile.backends.c.build import find_compiler

from conftest import SPECS

SHIPPED = sorted([*SPECS.glob("*.yaml"), *SPECS.glob("cells/*.yaml")])
BACKENDS = ["python"] + (["c"] if find_compiler() else [])
OPTIONS = {"memn2n": ["--output-name", "answer"]}  # a model with several outputs names the one the loss reads


def _grad(cli, spec, backend, out, wrt_state):
    args = ["grad", spec, "--backend", backend, "--seed", "3", "-o", out] + (["--wrt-state"] if wrt_state else [])
    args += OPTIONS.get(spec.stem, [])
    return cli(*args)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", SHIPPED, ids=lambda p: p.relative_to(SPECS).with_suffix("").as_posix())
def test_every_backend_differentiates_every_shipped_spec_as_the_interpreter(cli, tmp_path, spec, backend):
    wrt_state = "fold:" not in spec.read_text()  # trees have no steps to take d/d state at
    code, _, err = _grad(cli, spec, "numpy", tmp_path / "numpy.npz", wrt_state)
    if code != 0:
        assert "not differentiable" in err, err  # refused with its reason (a decoder feeding back its tokens)
        pytest.skip(err.strip().splitlines()[-1])
    code, _, err = _grad(cli, spec, backend, tmp_path / f"{backend}.npz", wrt_state)
    assert code == 0, err
    want, got = np.load(tmp_path / "numpy.npz"), np.load(tmp_path / f"{backend}.npz")
    assert sorted(got.files) == sorted(want.files)
    assert len([k for k in want.files if k.startswith("grad.")]) > 0
    for key in want.files:
        scale = max(float(np.abs(want[key]).max()), 1.0)
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-12 * scale, err_msg=key)
