"""A run drawn onto the unrolled model: each step's input token below it, its top prediction above it.

    rnncompile render specs/char_predictor.yaml --text "hell" -o hello.png

is the lecture's "hello" picture: the characters h, e, l, l go in, and
above every step stands the character the network rates most likely to come
next, with its probability. The run uses the spec's seeded weights (or a
weights file): with untrained weights the predictions are noise, and the
caption says which weights drew them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import api
from ..errors import UsageError
from ..vocab import Vocab

SHOWN = {" ": "space", "\n": "newline", "\t": "tab"}  # tokens that would draw as nothing (the fonts lack ␣)


@dataclass(frozen=True)
class Annotations:
    inputs: dict[int, str]  # step -> the token read
    outputs: dict[int, tuple[str, float]]  # step -> (the most likely next token, its probability)
    output: str  # the head's output that holds the distribution
    weights: str  # where the weights came from, for the caption
    note: str = ""  # e.g. which characters were read as the unknown token
    matches: set = field(default_factory=set)  # steps whose prediction is the next input token


def shown(token: str) -> str:
    return SHOWN.get(token, token)


def annotate(program, text: str, weights=None, seed: int = 0) -> Annotations:
    """Run `program` on `text` (one sequence) and keep each step's token and top prediction."""
    if program.vocab is None:
        raise UsageError("--text needs a vocabulary, and this spec declares none (add `vocab:`)")
    plan = program.plan
    infos = api.input_infos(program)
    tokens = [n for n, i in infos.items() if i.dtype == "token"]
    if plan.kind != "sequence" or len(tokens) != 1 or len(infos) != 1 or \
            (plan.head is not None and plan.head.at != "every_step"):
        raise UsageError("--text draws a run of a model that reads one token sequence and predicts at every "
                         "step (as specs/char_predictor.yaml or examples/hello/spec.yaml)")
    vocab = Vocab(program.vocab)
    ids = vocab.encode(text)
    params = api.make_params(program, seed, weights)
    result = api.run(program, inputs={tokens[0]: ids[None, :]}, params=params, seed=seed)
    size = len(vocab.tokens)
    dists = [n for n, v in result.outputs.items() if v.ndim == 3 and v.shape[-1] == size]
    if not dists:
        raise UsageError(f"--text shows each step's most likely next token, but no output is a distribution "
                         f"over the {size} tokens")
    p = result.outputs[dists[0]][0]
    top = p.argmax(-1)
    inputs = {t: vocab.tokens[i] for t, i in enumerate(ids.tolist())}
    outputs = {t: (vocab.tokens[int(k)], float(p[t, k])) for t, k in enumerate(top)}
    matches = {t for t in range(len(ids) - 1) if int(top[t]) == int(ids[t + 1])}
    literal = all(info.values is not None for info in program.params.values())
    source = f"weights from {Path(weights).name}" if isinstance(weights, (str, Path)) else \
        "given weights" if weights is not None else "the spec's own weights" if literal else \
        f"seeded random weights (seed {seed}), untrained"
    return Annotations(inputs, outputs, dists[0], source, vocab.unknown_note(), matches)


def input_label(annotations: Annotations, t: int) -> str | None:
    token = annotations.inputs.get(t)
    return None if token is None else shown(token)


def output_label(annotations: Annotations, t: int) -> tuple[str, str] | None:
    if t not in annotations.outputs:
        return None
    token, prob = annotations.outputs[t]
    return shown(token), f"{annotations.output} = {prob:.2f}"
