"""Watch the NTM of specs/ntm.yaml address its memory: docs/ntm_trace.png.

Random weights leave both heads blurring out from slot 0 to a near-uniform
weighting, which shows little. Here the heads' biases are set by hand, the
rest of the weights stay random:

- the write head ignores content (gate g = 0), shifts one slot forward every
  step (s = [0, 0, 1]) and sharpens hard (gamma ~ 21), erasing the slot fully:
  it writes the controller's add vector into slot 0, 1, 2, ... and wraps around;
- the read head uses content only (g = 1, no shift, gamma = 1) with a strong
  key strength (beta = 30): each step it reads the slot most similar to the
  controller's key, so its weighting jumps between slots.

    python examples/memory/ntm_demo.py [out.png]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from rnncompile.api import make_params, run
from rnncompile.plot import draw
from rnncompile.program import compile

ROOT = Path(__file__).resolve().parents[2]
BIG = 20.0


def demo_params(program, seed: int = 0) -> dict:
    params = make_params(program, seed)
    for name in ("u_g_w0", "W_s_w0", "u_gamma_w0", "W_e_w0", "u_g_r0", "W_s_r0", "u_beta_r0", "u_gamma_r0"):
        params[name] = np.zeros_like(params[name])
    params["b_g_w0"] = np.float32(-BIG)                      # write: ignore content ...
    params["b_s_w0"] = np.array([-BIG, -BIG, BIG], "f")     # ... move one slot forward
    params["b_gamma_w0"] = np.float32(BIG)                  # ... and stay sharp
    params["b_e_w0"] = np.full_like(params["b_e_w0"], BIG)  # replace the slot's contents
    params["b_g_r0"] = np.float32(BIG)                      # read: content only,
    params["b_s_r0"] = np.array([-BIG, BIG, -BIG], "f")     # no shift,
    params["b_gamma_r0"] = np.float32(-BIG)                 # no extra sharpening,
    params["b_beta_r0"] = np.float32(30.0)                  # a sharp key
    return params


def main(out=ROOT / "docs" / "ntm_trace.png", steps: int = 24) -> Path:
    program = compile(ROOT / "specs" / "ntm.yaml", optimize=False)
    result = run(program, params=demo_params(program), steps=steps, seed=1, trace=True)
    return draw(program, result, out)


if __name__ == "__main__":
    print(f"wrote {main(*sys.argv[1:2])}")
