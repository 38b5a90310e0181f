"""Write the input file of preloaded.yaml: a knowledge base M0 of known facts, the
first free slot, and a sequence that tells two new facts and asks four questions.

    python examples/memory/preload.py kb.npz
    rnncompile run examples/memory/preloaded.yaml --input kb.npz
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
KNOWN = [("france", "paris"), ("japan", "tokyo"), ("kenya", "nairobi")]  # in the memory from the start
TOLD = [("italy", "rome"), ("peru", "lima")]  # written during the run
ASKED = ["kenya", "peru", "france", "italy"]


def knowledge_base(tokens: list[str], slots: int, known=KNOWN) -> tuple[np.ndarray, np.ndarray]:
    """M0 [slots, 2V] with one fact per row ([key one-hot | value one-hot]), and the one-hot free slot."""
    ids, v = {t: i for i, t in enumerate(tokens)}, len(tokens)
    memory = np.zeros((slots, 2 * v), np.float32)
    for row, (key, value) in enumerate(known):
        memory[row, ids[key]] = memory[row, v + ids[value]] = 1
    free = np.eye(slots, dtype=np.float32)[len(known)]
    return memory, free


def sequence(tokens: list[str], told=TOLD, asked=ASKED) -> tuple[np.ndarray, np.ndarray]:
    ids = {t: i for i, t in enumerate(tokens)}
    key = [ids[k] for k, _ in told] + [ids[k] for k in asked]
    value = [ids[v] for _, v in told] + [ids["?"]] * len(asked)
    return np.array([key]), np.array([value])


def main(out: str) -> None:
    import rnncompile

    program = rnncompile.compile(HERE / "preloaded.yaml")
    tokens = program.vocab.tokens
    memory, free = knowledge_base(tokens, program.dims["N"])
    key, value = sequence(tokens)
    np.savez(out, key=key, value=value, M0=memory[None], free=free[None])
    print(f"wrote {out}: {len(KNOWN)} known facts in M0, {len(TOLD)} told, {len(ASKED)} questions")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "kb.npz")
