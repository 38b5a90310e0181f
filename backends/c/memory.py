"""The memory an exported model needs, computed at export and stated in its header.

    <M>_STATE_BYTES     sizeof(<m>_state): the state, kept between calls (RAM)
    <M>_SCRATCH_BYTES   sizeof(<m>_scratch): one call's working memory (RAM); an expression in
                        <M>_MAX_STEPS where the run keeps a layer's values at every step
    <M>_WEIGHTS_BYTES   the const data: each use's packed weights and the params a state starts from

The file checks each against sizeof with a typedef that only compiles when they are equal, so
a figure cannot drift from the structs. Every struct holds numbers of one type (or one char, for
an empty one), so there is no padding to guess.
"""
from __future__ import annotations

import math
import textwrap

from .names import comment, identifier


def _started_from_params(w) -> list[tuple[str, int]]:
    """(state key, numbers) of each state that starts from a param (its start values are const data)."""
    return [(key, max(1, math.prod(u.cell.states[s].shape))) for key, (_, u, s) in w.state.items()
            if isinstance(u.cell.states[s].init, str) and not u.cell.states[s].from_context]


def footprint(w) -> dict[str, int]:
    """Bytes of `w`'s (export.ModelWriter) file: state, scratch (its fixed part and what each step of
    <M>_MAX_STEPS adds), weights, and the vocabulary's strings and tables (without the pointers)."""
    item = w.dtype.itemsize
    return {"state": sum(max(1, size) for _, size in w.state_face()) * item or 1,  # `char none`
            "scratch": (sum(c.v_size for c in w.codes.values())
                        + sum(n for *_, n, every in w.buffers if not every)) * item,
            "scratch_per_step": sum(n for *_, n, every in w.buffers if every) * item,
            "weights": sum(w.code(u).k_size * item if w.code(u).consts else 1  # `char none`
                           for u in w._uses()) + sum(n for _, n in _started_from_params(w)) * item,
            "vocab": w.vocab.data_bytes() if w.vocab is not None else 0}


def defines(w, mem: dict) -> list[str]:
    M, N, per = w.M, w.N, mem["scratch_per_step"]
    scratch = f"((size_t){mem['scratch']} + (size_t){per} * ({M}_MAX_STEPS))" if per else f"((size_t){mem['scratch']})"
    return [f"/* The memory {N} needs, in bytes (computed at export; the compiler checks them against sizeof). */",
            f"#define {M}_STATE_BYTES ((size_t){mem['state']})  /* {N}_state: RAM, kept between calls */",
            f"#define {M}_SCRATCH_BYTES {scratch}  /* {N}_scratch: RAM, one call's working memory */",
            f"#define {M}_WEIGHTS_BYTES ((size_t){mem['weights']})  /* the weights: const data (flash) */"]


def checks(w) -> list[str]:
    return [f"typedef char {w.N}_state_bytes_ok[sizeof({w.N}_state) == {w.M}_STATE_BYTES ? 1 : -1];",
            f"typedef char {w.N}_scratch_bytes_ok[sizeof({w.N}_scratch) == {w.M}_SCRATCH_BYTES ? 1 : -1];"]


def weights_check(w) -> str:
    """After the weights' definitions: their sizes add up to <M>_WEIGHTS_BYTES."""
    names = [f"sizeof({w.weights_name(u)})" for u in w._uses()]
    names += [f"sizeof({w.N}_start_{identifier(key)})" for key, _ in _started_from_params(w)]
    return "\n".join([comment(f"{w.M}_WEIGHTS_BYTES is what the weights take:"),
                      f"typedef char {w.N}_weights_bytes_ok[" + " + ".join(names) + f" == {w.M}_WEIGHTS_BYTES ? 1 : -1];"])


def text(w, mem: dict) -> list[str]:
    """The head comment's paragraph: the figures at the default <M>_MAX_STEPS."""
    M, per = w.M, mem["scratch_per_step"]
    inputs = [n for n, _, _ in w.face.get("inputs", [])]
    scratch = mem["scratch"] + per * (w.max_steps(inputs[0]) if inputs else 0)
    how = f" ({mem['scratch']:,} + {per:,} per step of {M}_MAX_STEPS)" if per else ""
    body = (f"state {mem['state']:,} (RAM, kept between calls); scratch {scratch:,}{how} (RAM, one call's"
            f" working memory); weights {mem['weights']:,} (const data: flash).")
    if w.vocab is not None:
        body += f" The vocabulary: {mem['vocab']:,} bytes of const strings and tables, and {M}_VOCAB pointers."
    body += (" Nothing is allocated; no function recurses or puts an array on the stack. The caller owns the"
             " state, the scratch and the inputs and outputs listed above.")
    return (["", f"Memory in bytes ({M}_STATE_BYTES, {M}_SCRATCH_BYTES, {M}_WEIGHTS_BYTES; checked against sizeof):"]
            + textwrap.wrap(body, 100, initial_indent="    ", subsequent_indent="    "))
