"""Central finite differences of a loss, the independent check of every gradient the autodiff computes."""
from __future__ import annotations

import numpy as np


def central_difference(loss, params: dict, key: str, eps: float = 1e-5) -> np.ndarray:
    """d loss / d params[key] by (loss(p + eps) - loss(p - eps)) / (2 eps), one entry at a time (float64)."""
    value = params[key]
    num = np.zeros(np.shape(value))
    for idx in np.ndindex(np.shape(value)):
        hi, lo = dict(params), dict(params)
        hi[key], lo[key] = np.array(value), np.array(value)
        hi[key][idx] += eps
        lo[key][idx] -= eps
        num[idx] = (loss(hi) - loss(lo)) / (2 * eps)
    return num
