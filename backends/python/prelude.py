"""Helper functions a generated module may call, as source text.

The writer copies in only the helpers its emitters asked for, in the order
below, so a module stays short and its text depends on the spec alone. Each
computes what the NumPy backend's kernel of the same name computes, on arrays
with or without a leading batch axis.
"""
from __future__ import annotations

HELPERS = {
    "sigmoid": '''
def sigmoid(x):
    """1 / (1 + exp(-x)), as 0.5 * tanh(x / 2) + 0.5: the same function, it never overflows, and it is
    several times faster than exp with a guard for large |x|."""
    return 0.5 * np.tanh(0.5 * x) + 0.5
''',
    "softmax": '''
def softmax(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
''',
    "masked_softmax": '''
def masked_softmax(x, mask):
    """softmax over the last axis of the entries where mask != 0; masked entries are 0, and so is a row with
    every entry masked. The max subtracted is the unmasked entries' own."""
    keep = mask != 0
    if keep.shape != x.shape:
        shape = np.broadcast_shapes(x.shape, keep.shape)
        x, keep = np.broadcast_to(x, shape), np.broadcast_to(keep, shape)
    top = np.max(np.where(keep, x, -np.inf), axis=-1, keepdims=True)
    e = np.exp(np.where(keep, x - np.where(np.isfinite(top), top, 0), -np.inf))
    total = e.sum(axis=-1, keepdims=True)
    return (e / np.where(total > 0, total, 1)).astype(x.dtype, copy=False)
''',
    "cosine": '''
def cosine(m, k, eps):
    """Cosine similarity of the key k [(B,) W] with every row of the memory m [(B,) N, W]."""
    dots = (m @ k[..., None])[..., 0]
    norms = np.sqrt((m * m).sum(axis=-1)) * np.sqrt((k * k).sum(axis=-1))[..., None]
    return dots / (norms + np.asarray(eps, dots.dtype))
''',
    "shift": '''
def shift(w, s):
    """Circular convolution of a weighting w [(B,) N] with a shift weighting s [(B,) 2k+1]."""
    k = (s.shape[-1] - 1) // 2
    return sum(s[..., j + k:j + k + 1] * np.roll(w, j, axis=-1) for j in range(-k, k + 1))
''',
    "sharpen": '''
def sharpen(w, gamma):
    """w^gamma / sum(w^gamma), computed on w / max(w); negative entries count as 0."""
    w = np.maximum(w, 0)
    top = w.max(axis=-1, keepdims=True)
    u = (w / np.where(top > 0, top, 1)) ** gamma
    return u / np.where(top > 0, u.sum(axis=-1, keepdims=True), 1)
''',
    # -- used by the scan loops ----------------------------------------------------------
    "time_major": '''
def time_major(x):
    """[B, T, ...] -> [T * B, ...]: one row per (step, sequence), each step a contiguous block."""
    x = np.swapaxes(x, 0, 1)
    return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])
''',
    "by_step": '''
def by_step(v, steps, batch):
    """[T * B, ...] -> [T, B, ...]."""
    return np.broadcast_to(v, (steps * batch,) + v.shape[1:]).reshape((steps, batch) + v.shape[1:])
''',
    "stack_steps": '''
def stack_steps(values, reverse):
    """A list of per-step {name: [B, ...]} (in loop order) -> {name: [B, T, ...]}."""
    values = values[::-1] if reverse else values
    return {n: np.stack([v[n] for v in values], axis=1) for n in (values[0] if values else {})}
''',
}

ORDER = list(HELPERS)


def render(names) -> str:
    """The helpers in `names`, in a fixed order, as source."""
    return "".join("\n" + HELPERS[n].strip("\n") + "\n\n" for n in ORDER if n in names)
