"""The vocabulary in C: its token strings, and text to token ids and back.

    <M>_VOCAB                 the number of tokens; <M>_END_TOKEN / <M>_UNKNOWN_TOKEN where the spec has them
    <m>_tokens[id]            each token as a C string literal (UTF-8; names.string escapes it: nothing in a
                              token can end the literal, start a trigraph or splice a line)
    <m>_token_bytes[id]       its length in bytes (a token holding a NUL still comes out whole)
    <m>_token(id)             the string, NULL for an id beyond the table
    <m>_tokens_to_text        ids -> text: the tokens joined as Vocab.decode joins them ("" for char level,
                              " " for word level), NUL-terminated
    <m>_text_to_tokens        (char level) UTF-8 text -> ids, as Vocab.encode reads it: one id per character,
                              lowercased first when the spec says `lowercase` (every character whose lowercase
                              is one character, from Python's str.lower at export time: a table of those that
                              matter for this vocabulary), the unknown token for any other character. Two
                              readings differ from Python's: U+0130 (its lowercase is two characters) is read
                              as itself, and a capital sigma is always σ (str.lower writes ς at a word's end)

Word-level text is split by a Unicode regex (Vocab.split), which is not written in C: a word
model's file takes token ids in and gives strings out.
"""
from __future__ import annotations

import functools

from rnncompile.errors import UsageError

from .cell import IND
from .names import comment, string

MAX_LITERAL = 4095  # bytes in one string literal that a C99 compiler must accept (5.2.4.1)
NOT_A_CHAR = 0xFFFFFFFF  # the code point of a token that is not one character: no text character matches it


@functools.lru_cache(maxsize=1)
def _changed_by_lower() -> tuple[tuple[str, str], ...]:
    """Every character whose lowercase is another single character (U+0130, whose lowercase is two, is not)."""
    out = []
    for c in map(chr, range(0x110000)):
        low = c.lower()
        if low != c and len(low) == 1:
            out.append((c, low))
    return tuple(out)


class VocabTable:
    def __init__(self, N: str, vocab):
        self.N, self.M, self.vocab = N, N.upper(), vocab
        self.tokens = list(vocab.tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        for i, t in enumerate(self.tokens):
            size = len(t.encode("utf-8", "surrogatepass"))
            if size > MAX_LITERAL:
                raise UsageError(f"vocab token {i} is {size:,} bytes long; exported C holds each token as a string "
                                 f"literal, and C99 compilers need accept only {MAX_LITERAL:,} bytes in one")
        self.encodes = vocab.level == "char"

    def ids(self, name: str | None) -> int | None:
        return None if name is None else self.index[name]

    def declarations(self) -> list[str]:
        N, M, V = self.N, self.M, len(self.tokens)
        lines = [f"#define {M}_VOCAB {V}  /* tokens in the vocabulary ({self.vocab.level} level) */"]
        for what, name in (("END", self.vocab.end), ("START", self.vocab.start), ("UNKNOWN", self.vocab.unknown)):
            if name is not None:
                lines.append(f"#define {M}_{what}_TOKEN {self.index[name]}  {comment(f'the id of {name!r}')}")
        lines += ["", f"extern const char *const {N}_tokens[{M}_VOCAB];",
                  f"extern const uint32_t {N}_token_bytes[{M}_VOCAB];",
                  f"const char *{N}_token(int32_t id);",
                  f"int {N}_tokens_to_text(const int32_t *ids, int count, char *text, size_t size);"]
        if self.encodes:
            lines.append(f"int {N}_text_to_tokens(const char *text, size_t bytes, int32_t *ids, int size);")
        return lines

    def data_bytes(self) -> int:
        """The bytes of the tables besides the pointers: the strings (with their NULs), their lengths and, for
        char level, the code points and the lowercase table."""
        strings = sum(len(t.encode("utf-8", "surrogatepass")) + 1 for t in self.tokens) + 4 * len(self.tokens)
        if self.encodes:
            strings += 4 * len(self.tokens) + 8 * max(1, len(self.aliases()))
        return strings

    def aliases(self) -> list[tuple[int, int]]:
        """(code point, id) for each character that lowercasing turns into another (id -1: into one not in the
        vocabulary, though the character itself is): only those whose reading the lowercasing changes."""
        if not self.vocab.lowercase:
            return []
        out = []
        for c, low in _changed_by_lower():
            if low in self.index:
                out.append((ord(c), self.index[low]))
            elif c in self.index:
                out.append((ord(c), -1))
        return out

    def functions(self) -> list[str]:
        N, M = self.N, self.M
        sep = "" if self.vocab.level == "char" else " "
        table = [f"{IND}{string(t)},  /* {i} */" for i, t in enumerate(self.tokens)]
        sizes = [f"{IND}{len(t.encode('utf-8', 'surrogatepass'))},  /* {i} */" for i, t in enumerate(self.tokens)]
        lines = [comment(f"The vocabulary ({self.vocab.level} level), in id order, as UTF-8."),
                 f"const char *const {N}_tokens[{M}_VOCAB] = {{"] + table + ["};", "",
                 f"const uint32_t {N}_token_bytes[{M}_VOCAB] = {{  /* each token's bytes */"] + sizes + ["};", "",
                 f"const char *{N}_token(int32_t id)  /* NULL for an id beyond the table */",
                 "{", f"{IND}return id >= 0 && id < {M}_VOCAB ? {N}_tokens[id] : NULL;", "}", "",
                 f"/* The tokens ids[0..count) as text, joined by {sep!r} (as Vocab.decode joins them) and NUL-terminated",
                 " * in text[0..size). Returns its bytes (the NUL not counted); -1 for an id beyond the table; -2 when",
                 " * it does not fit (text then holds as many whole tokens as fit). */",
                 f"int {N}_tokens_to_text(const int32_t *ids, int count, char *text, size_t size)",
                 "{",
                 f"{IND}size_t at = 0;",
                 f"{IND}if (size == 0) return -2;",
                 f"{IND}text[0] = 0;",
                 f"{IND}for (int n = 0; n < count; ++n) {{",
                 f"{IND * 2}const size_t sep = n > 0 ? {len(sep)} : 0;",
                 f"{IND * 2}if (ids[n] < 0 || ids[n] >= {M}_VOCAB) return -1;",
                 f"{IND * 2}if (at + sep > size - 1 || {N}_token_bytes[ids[n]] > size - 1 - at - sep) return -2;"]
        if sep:
            lines.append(f"{IND * 2}if (sep) text[at++] = {sep!r};")
        lines += [f"{IND * 2}memcpy(text + at, {N}_tokens[ids[n]], {N}_token_bytes[ids[n]]);",
                  f"{IND * 2}at += {N}_token_bytes[ids[n]];",
                  f"{IND * 2}text[at] = 0;",
                  f"{IND}}}",
                  f"{IND}return (int)at;",
                  "}"]
        if self.encodes:
            lines += [""] + self._encoder()
        return lines

    def _encoder(self) -> list[str]:
        N, M = self.N, self.M
        points = []
        for i, t in enumerate(self.tokens):
            c = ord(t) if len(t) == 1 else NOT_A_CHAR
            points.append(f"{IND}0x{c:X}u,  /* {i} */")
        aliases = self.aliases()
        unknown = self.index[self.vocab.unknown] if self.vocab.unknown is not None else -1
        lines = [f"static const uint32_t {N}_token_points[{M}_VOCAB] = {{  /* each token's code point "
                 "(0xFFFFFFFF: not one character) */"] + points + ["};", ""]
        if aliases:
            lines += ["/* Characters that lowercasing (Python's str.lower) reads as another: code point, id (-1: not in",
                      " * the vocabulary). Only those this vocabulary needs. */",
                      f"static const uint32_t {N}_lowercase[{len(aliases)}][2] = {{"]
            lines += _wrap_pairs([f"{{0x{c:X}u, {'0xFFFFFFFFu' if i < 0 else f'{i}u'}}}" for c, i in aliases])
            lines += ["};", ""]
        lines += [
            "/* One UTF-8 character from s[0..n): its code point, and its bytes in *used (0xFFFFFFFF for a byte that",
            " * starts no well-formed character: an overlong form, a surrogate, beyond U+10FFFF; *used is then 1). */",
            f"static uint32_t {N}_utf8(const unsigned char *s, size_t n, size_t *used)",
            "{",
            f"{IND}static const uint32_t least[5] = {{0, 0, 0x80u, 0x800u, 0x10000u}};",
            f"{IND}uint32_t c;",
            f"{IND}size_t k, len;",
            f"{IND}*used = 1;",
            f"{IND}if (s[0] < 0x80u) return s[0];",
            f"{IND}if ((s[0] & 0xE0u) == 0xC0u) {{ len = 2; c = s[0] & 0x1Fu; }}",
            f"{IND}else if ((s[0] & 0xF0u) == 0xE0u) {{ len = 3; c = s[0] & 0x0Fu; }}",
            f"{IND}else if ((s[0] & 0xF8u) == 0xF0u) {{ len = 4; c = s[0] & 0x07u; }}",
            f"{IND}else return 0xFFFFFFFFu;",
            f"{IND}if (len > n) return 0xFFFFFFFFu;",
            f"{IND}for (k = 1; k < len; ++k) {{",
            f"{IND * 2}if ((s[k] & 0xC0u) != 0x80u) return 0xFFFFFFFFu;",
            f"{IND * 2}c = (c << 6) | (s[k] & 0x3Fu);",
            f"{IND}}}",
            f"{IND}if (c < least[len] || c > 0x10FFFFu || (c >= 0xD800u && c <= 0xDFFFu)) return 0xFFFFFFFFu;",
            f"{IND}*used = len;",
            f"{IND}return c;",
            "}",
            "",
            "/* UTF-8 text[0..bytes) as token ids, one per character, as Vocab.encode reads it"
            + (" (lowercased first)" if self.vocab.lowercase else "") + ": into ids[0..size).",
            " * A character not in the vocabulary (or a byte that is not UTF-8) is "
            + (f"the unknown token ({unknown})." if unknown >= 0 else "refused: there is no unknown token."),
            " * Returns how many ids it wrote; -1 for a character it cannot read; -2 when there are more than size. */",
            f"int {N}_text_to_tokens(const char *text, size_t bytes, int32_t *ids, int size)",
            "{",
            f"{IND}const unsigned char *s = (const unsigned char *)text;",
            f"{IND}size_t at = 0, used;",
            f"{IND}int n = 0;",
            f"{IND}while (at < bytes) {{",
            f"{IND * 2}const uint32_t c = {N}_utf8(s + at, bytes - at, &used);",
            f"{IND * 2}int32_t id = -1, i;",
            f"{IND * 2}int aliased = 0;",
        ]
        if aliases:
            lines += [f"{IND * 2}for (i = 0; i < {len(aliases)}; ++i)",
                      f"{IND * 3}if ({N}_lowercase[i][0] == c) {{",
                      f"{IND * 4}aliased = 1;",
                      f"{IND * 4}id = {N}_lowercase[i][1] == 0xFFFFFFFFu ? -1 : (int32_t){N}_lowercase[i][1];",
                      f"{IND * 4}break;",
                      f"{IND * 3}}}"]
        lines += [f"{IND * 2}for (i = 0; !aliased && c != 0xFFFFFFFFu && i < {M}_VOCAB; ++i)",
                  f"{IND * 3}if ({N}_token_points[i] == c) {{",
                  f"{IND * 4}id = i;",
                  f"{IND * 4}break;",
                  f"{IND * 3}}}",
                  *([f"{IND * 2}if (id < 0) id = {unknown};  /* the unknown token */"] if unknown >= 0 else []),
                  f"{IND * 2}if (id < 0) return -1;",
                  f"{IND * 2}if (n >= size) return -2;",
                  f"{IND * 2}ids[n++] = id;",
                  f"{IND * 2}at += used;",
                  f"{IND}}}",
                  f"{IND}return n;",
                  "}"]
        return lines


def _wrap_pairs(items: list[str], width: int = 110) -> list[str]:
    lines, line = [], IND
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = IND
        line += piece + " "
    return lines + [line.rstrip()]
