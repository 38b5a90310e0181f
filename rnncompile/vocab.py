"""Vocabularies: turning text into token indices and back."""
from __future__ import annotations

import re

from .errors import DataError
from .files import read_text
from .spec import VocabSpec

MAX_VOCAB_BYTES = 64 * 2**20  # a vocabulary file: one token a line


def read_vocab_file(path) -> list[str]:
    """The tokens of a vocabulary file, one a line (blank lines skipped). Raises FileReadError (with `reason`)
    for a missing, special (FIFO, /dev/zero) or oversize file."""
    text = read_text(path, MAX_VOCAB_BYTES)
    return [line.rstrip("\r\n") for line in text.splitlines() if line.strip()]


def unknown_note(unknown: str | None, seen) -> str:
    """The one note every command prints for words read as the unknown token (empty when there were none)."""
    if not seen:
        return ""
    shown = ", ".join(repr(t) for t in dict.fromkeys(seen))
    return f"note: not in the vocabulary, read as {unknown!r}: {shown}"


class Vocab:
    def __init__(self, spec: VocabSpec):
        self.tokens = list(spec.tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.level, self.unknown, self.end = spec.level, spec.unknown, spec.end
        self.lowercase = spec.lowercase

    def unknown_note(self) -> str:
        """A note for the tokens the last encode() read as the unknown token."""
        return unknown_note(self.unknown, getattr(self, "unknown_seen", ()))

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.level == "char":
            return list(text)
        return re.findall(r"\w+|[^\w\s]", text)

    def encode(self, text: str) -> "numpy.ndarray":
        import numpy as np  # here, not above: `validate` reads vocabularies and never loads NumPy

        if not text:
            raise DataError("the text is empty; give at least one token")
        ids = []
        self.unknown_seen = []
        for i, tok in enumerate(self.split(text)):
            if tok in self.index:
                ids.append(self.index[tok])
            elif self.unknown is not None:
                ids.append(self.index[self.unknown])
                self.unknown_seen.append(tok)
            else:
                shown = " ".join(repr(t) for t in self.tokens[:40]) + (" …" if len(self.tokens) > 40 else "")
                raise DataError(f"{tok!r} (token {i + 1} of the text) is not in the vocabulary: {shown}")
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids) -> str:
        sep = "" if self.level == "char" else " "
        return sep.join(self.tokens[int(i)] for i in ids)
