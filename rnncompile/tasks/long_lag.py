"""Long-lag benchmark tasks after Hochreiter & Schmidhuber (1997), "Long short-term memory", Neural Computation 9(8).

Each generator is seeded (an int or a `numpy.random.Generator`) and returns the
dict `rnncompile train --input` and `autodiff.train` read: the input `x`
([B, T, I] float32, padded with zeros), `target` and, where sequences differ in
length, `lengths` [B]. Each task's `*_correct` says which sequences a model's
outputs get right, by the paper's criterion for that experiment.

    embedded_reber        experiment 1: next-symbol prediction in strings of the embedded Reber
                          grammar; a string is right when at every step the symbols that may come next
                          are the most probable ones (the hard, long-lag step is the second-last
                          symbol, which repeats the second one)
    noise_free_long_lag   experiment 2a: the two sequences (y, a_1, ..., a_{p-1}, y) and
                          (x, a_1, ..., a_{p-1}, x); the last symbol must be predicted from the first,
                          p steps back; right when every output unit's error is below 0.25
    adding_problem        experiment 4: pairs (value in [-1, 1], marker); at the end, output
                          0.5 + (X1 + X2) / 4 of the two marked values; right when the absolute error
                          is below 0.04
    temporal_order        experiment 6a: E, noise symbols a-d with X or Y at two random times, B; at
                          the end, classify the order (XX, XY, YX, YY); right when every output
                          unit's error is below 0.3

The paper's sizes are the defaults; the benchmark scales some down (see benchmarks/bench_long_lag.py).
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError

REBER_SYMBOLS = "BTPSXVE"
# The Reber grammar (Reber 1967, as in Cleeremans, Servan-Schreiber & McClelland 1989): node -> [(symbol, next)];
# node 6 is the end of the inner string. Each edge out of a node is taken with probability 1/2.
REBER_EDGES = {0: [("T", 1), ("P", 2)], 1: [("S", 1), ("X", 3)], 2: [("T", 2), ("V", 4)],
               3: [("X", 2), ("S", 5)], 4: [("P", 3), ("V", 5)]}
TEMPORAL_SYMBOLS = "EBabcdXY"
TEMPORAL_CLASSES = ("XX", "XY", "YX", "YY")


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _count(n: int) -> int:
    if int(n) != n or n < 1:
        raise UsageError(f"the number of sequences must be a positive integer, not {n!r}")
    return int(n)


def _one_hot(ids: np.ndarray, size: int, lengths: np.ndarray) -> np.ndarray:
    x = np.eye(size, dtype=np.float32)[ids]
    x[np.arange(ids.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return x


# -- experiment 1: the embedded Reber grammar ------------------------------------------------------------------

def reber_string(rng: np.random.Generator) -> str:
    """One string of the (plain) Reber grammar, B ... E."""
    out, node = ["B"], 0
    while node != 5:
        symbol, node = REBER_EDGES[node][rng.integers(2)]
        out.append(symbol)
    return "".join(out) + "E"


def embedded_reber_string(rng: np.random.Generator) -> str:
    """B, T or P, a Reber string, the same T or P again, E."""
    branch = "TP"[rng.integers(2)]
    return "B" + branch + reber_string(rng) + branch + "E"


def embedded_reber(n: int, seed=0) -> dict:
    """`n` embedded Reber strings for next-symbol prediction: inputs the string but its last symbol (one-hot over
    BTPSXVE), target the next symbol's index at every step, lengths the steps of each string."""
    rng = _rng(seed)
    strings = [embedded_reber_string(rng) for _ in range(_count(n))]
    lengths = np.array([len(s) - 1 for s in strings], np.int64)
    steps = int(lengths.max())
    ids = np.zeros((len(strings), steps + 1), np.int64)
    for k, s in enumerate(strings):
        ids[k, :len(s)] = [REBER_SYMBOLS.index(c) for c in s]
    return {"x": _one_hot(ids[:, :-1], len(REBER_SYMBOLS), lengths), "target": ids[:, 1:].copy(), "lengths": lengths}


def reber_next_symbols(prefix: str) -> set[str]:
    """The symbols the embedded Reber grammar allows after `prefix` (B, T or P, the inner string, the same T or P,
    E); a prefix the grammar cannot make is an error naming the symbol."""
    if not prefix.startswith("B"):
        raise UsageError(f"an embedded Reber string starts with B, not {prefix[:1]!r}")
    if len(prefix) == 1:
        return {"T", "P"}
    branch = prefix[1]
    if branch not in "TP":
        raise UsageError(f"{prefix!r}: the second symbol of an embedded Reber string is T or P, not {branch}")
    phase, node = "inner B", None
    for k, c in enumerate(prefix[2:], start=2):
        allowed = _reber_allowed(phase, node, branch)
        if c not in allowed:
            raise UsageError(f"{prefix!r}: symbol {k} is {c}, but the grammar allows "
                             f"{' or '.join(sorted(allowed)) or 'nothing (the string has ended)'} there")
        if phase == "inner B":
            phase, node = "walk", 0
        elif phase == "walk":
            node = dict(REBER_EDGES[node])[c]
            if node == 5:
                phase = "inner E"
        else:
            phase = {"inner E": "branch", "branch": "E", "E": "done"}[phase]
    return _reber_allowed(phase, node, branch)


def _reber_allowed(phase: str, node, branch: str) -> set[str]:
    if phase == "walk":
        return {symbol for symbol, _ in REBER_EDGES[node]}
    return {"inner B": {"B"}, "inner E": {"E"}, "branch": {branch}, "E": {"E"}, "done": set()}[phase]


def reber_legal(data: dict) -> np.ndarray:
    """[B, T, 7] booleans: the symbols allowed next after each step of `embedded_reber`'s strings."""
    ids = data["x"].argmax(axis=-1)
    lengths = data["lengths"]
    legal = np.zeros(data["x"].shape, bool)
    for k, n in enumerate(lengths):
        s = "".join(REBER_SYMBOLS[i] for i in ids[k, :n])
        for t in range(n):
            for c in reber_next_symbols(s[:t + 1]):
                legal[k, t, REBER_SYMBOLS.index(c)] = True
    return legal


def reber_correct(p: np.ndarray, data: dict, legal: np.ndarray | None = None) -> np.ndarray:
    """[B] booleans: at every real step of the string, the allowed next symbols are the most probable ones
    (each above every symbol that may not come next). `p`: the model's outputs [B, T, 7]."""
    legal = reber_legal(data) if legal is None else legal
    lowest_legal = np.where(legal, p, np.inf).min(axis=-1)
    highest_other = np.where(legal, -np.inf, p).max(axis=-1)
    real = np.arange(p.shape[1])[None, :] < data["lengths"][:, None]
    return np.all((lowest_legal > highest_other) | ~real, axis=1)


# -- experiment 2a: the noise-free long lag --------------------------------------------------------------------

def noise_free_long_lag(n: int, p: int = 100, seed=0) -> dict:
    """`n` sequences, each (y, a_1, ..., a_{p-1}, y) or (x, a_1, ..., a_{p-1}, x) with probability 1/2, over p + 1
    symbols (a_i is index i - 1, x is p - 1, y is p): input the first p symbols one-hot, target the next symbol's
    index at every step. The last target repeats the first input, p steps back."""
    rng = _rng(seed)
    return _long_lag(np.where(rng.integers(2, size=_count(n)) == 1, p, p - 1), p)


def long_lag_sequences(p: int = 100) -> dict:
    """The task's whole data: its two sequences, the x one first."""
    return _long_lag(np.array([p - 1, p]), p)


def _long_lag(first: np.ndarray, p: int) -> dict:
    if int(p) != p or p < 2:
        raise UsageError(f"the lag p must be an integer of at least 2, not {p!r}")
    ids = np.empty((len(first), p + 1), np.int64)
    ids[:, 0] = ids[:, p] = first
    ids[:, 1:p] = np.arange(p - 1)[None, :]
    return {"x": np.eye(p + 1, dtype=np.float32)[ids[:, :-1]], "target": ids[:, 1:].copy()}


def long_lag_correct(probs: np.ndarray, data: dict, tolerance: float = 0.25) -> np.ndarray:
    """[B] booleans: at every step every output unit is within `tolerance` of its target (the one-hot next
    symbol), the paper's stopping criterion."""
    hot = np.eye(probs.shape[-1])[data["target"]]
    return np.all(np.abs(probs - hot).max(axis=-1) < tolerance, axis=1)


# -- experiment 4: the adding problem --------------------------------------------------------------------------

def adding_problem(n: int, steps: int = 100, seed=0) -> dict:
    """`n` sequences of random length steps .. steps + steps // 10 of pairs (value uniform in [-1, 1], marker).
    One of the first ten pairs is marked 1 (X1; set to 0 when it is the first pair), one of the first
    steps / 2 - 1 still unmarked pairs is marked 1 (X2); the first and last pairs are otherwise marked -1. The
    target at each sequence's end: 0.5 + (X1 + X2) / 4, in [0, 1]."""
    if int(steps) != steps or steps < 10:
        raise UsageError(f"the adding problem needs at least 10 steps (X1 is one of the first ten), not {steps!r}")
    rng, n, steps = _rng(seed), _count(n), int(steps)
    lengths = rng.integers(steps, steps + steps // 10 + 1, size=n)
    width = int(lengths.max())
    x = np.zeros((n, width, 2), np.float32)
    target = np.zeros((n, 1), np.float32)
    for k, length in enumerate(lengths):
        x[k, :length, 0] = rng.uniform(-1.0, 1.0, length)
        x[k, 0, 1] = x[k, length - 1, 1] = -1.0
        first = rng.integers(10)
        rest = [t for t in range(steps // 2 - 1) if t != first]
        second = rest[rng.integers(len(rest))]
        if first == 0:
            x[k, 0, 0] = 0.0
        x[k, [first, second], 1] = 1.0
        target[k, 0] = 0.5 + (x[k, first, 0] + x[k, second, 0]) / 4.0
    return {"x": x, "target": target, "lengths": lengths.astype(np.int64)}


def adding_correct(y: np.ndarray, data: dict, tolerance: float = 0.04) -> np.ndarray:
    """[B] booleans: the output at the sequence's end is within `tolerance` of the target."""
    return np.abs(np.asarray(y).reshape(len(data["target"]), -1)[:, 0] - data["target"][:, 0]) < tolerance


# -- experiment 6a: temporal order -----------------------------------------------------------------------------

def temporal_order(n: int, length: int = 100, seed=0) -> dict:
    """`n` sequences of random length length .. length + length // 10 over EBabcdXY: E first, B last, a-d at
    random in between except at two times t1 in [length / 10, length / 5] and t2 in [length / 2, 0.6 length],
    which hold X or Y. The target at the end: the class of (symbol at t1, symbol at t2), XX 0, XY 1, YX 2, YY 3.
    The paper's 6a: length 100 (t1 in 10..20, t2 in 50..60)."""
    if int(length) != length or length < 10:
        raise UsageError(f"temporal order needs sequences of at least 10 steps, not {length!r}")
    rng, n, length = _rng(seed), _count(n), int(length)
    lengths = rng.integers(length, length + length // 10 + 1, size=n)
    ids = np.zeros((n, int(lengths.max())), np.int64)
    target = np.zeros(n, np.int64)
    for k, size in enumerate(lengths):
        ids[k, :size] = rng.integers(2, 6, size)  # a, b, c, d
        ids[k, 0], ids[k, size - 1] = 0, 1  # E ... B
        t1 = rng.integers(length // 10, length // 5 + 1)
        t2 = rng.integers(length // 2, (6 * length) // 10 + 1)
        first, second = rng.integers(2, size=2)
        ids[k, t1], ids[k, t2] = 6 + first, 6 + second
        target[k] = 2 * first + second
    return {"x": _one_hot(ids, len(TEMPORAL_SYMBOLS), lengths), "target": target, "lengths": lengths.astype(np.int64)}


def temporal_order_correct(probs: np.ndarray, data: dict, tolerance: float = 0.3) -> np.ndarray:
    """[B] booleans: every output unit is within `tolerance` of the one-hot class."""
    hot = np.eye(probs.shape[-1])[data["target"]]
    return np.abs(np.asarray(probs) - hot).max(axis=-1) < tolerance
