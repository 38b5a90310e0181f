"""Vocabularies: turning text into token indices and back."""
from __future__ import annotations

import re

import numpy as np

from .errors import DataError
from .spec import VocabSpec


class Vocab:
    def __init__(self, spec: VocabSpec):
        self.tokens = list(spec.tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.level, self.unknown, self.end = spec.level, spec.unknown, spec.end
        self.lowercase = spec.lowercase

    def unknown_note(self) -> str:
        """A note for the tokens the last encode() read as the unknown token."""
        if not getattr(self, "unknown_seen", None):
            return ""
        shown = ", ".join(repr(t) for t in dict.fromkeys(self.unknown_seen))
        return f"note: not in the vocabulary, read as {self.unknown!r}: {shown}"

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.level == "char":
            return list(text)
        return re.findall(r"\w+|[^\w\s]", text)

    def encode(self, text: str) -> np.ndarray:
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
