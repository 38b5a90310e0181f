"""`<m>_complete`: a predictor's completion loop in C, as `rnncompile complete` runs it.

A predictor is what api.complete accepts (a vocabulary, one token input, no reverse
layer, a head at every step giving one distribution over the vocabulary) whose run
streams (export.ModelWriter.streams). The loop feeds the prompt through <m>_step one
token at a time (a prompt of any length: only the state carries over), then
`steps` times chooses a token from the last distribution (greedy with rng NULL, else
<m>_sample with the temperature and top_k), writes it, stops after the end token,
and feeds it back, as rnncompile.drivers.complete does; so the state ends having
read the prompt and every token but an end token. The distribution lives in the
scratch (`V` numbers): nothing is allocated.
"""
from __future__ import annotations

import textwrap

from rnncompile.errors import UsageError

from .cell import IND
from .names import Namer

OWN = {"state", "prompt_steps", "prompt", "steps", "tokens", "count", "temperature", "top_k", "rng", "scratch", "p",
       "token", "t", "n"}  # the loop's own names: a context input called one of these gets a trailing `_`


def why_not(w, face: dict) -> str | None:
    """Why `w` (export.ModelWriter) gets no <m>_complete (None: it gets one)."""
    from rnncompile.api import _check_language_model

    if w.program.vocab is None:
        return "it has no vocabulary"
    try:
        _check_language_model(w.program)
    except UsageError as e:
        return str(e).split(": ", 1)[-1]
    if not w.streams():
        return "a cell reads the step index or the length, so a step is not a run of one"
    if len(face["inputs"]) != 1 or len(face["outputs"]) != 1 or not face["outputs"][0][2]:
        return "its run does not read one token and write one distribution per step"
    return None


class Completer:
    """The loop of one predictor's file (`w`: its export.ModelWriter, after its run was rendered)."""

    def __init__(self, w, face: dict):
        self.w, self.face = w, face
        (self.pname, self.V, _), = face["outputs"]
        names = Namer(OWN)
        self.ctx = [names.fresh(n) for n, _ in face["context"]]
        self.p = w.buffer("completion_p", self.V, False, f"{self.pname}: the distribution of the next token "
                                                            f"({w.N}_complete)")

    def _params(self) -> list[str]:
        T, N = self.w.c.name, self.w.N
        return ([f"{N}_state *state", "int prompt_steps", "const int32_t *prompt"]
                + [f"const {T} *{c}" for c in self.ctx]
                + ["int steps", "int32_t *tokens", "int *count", "double temperature", "int top_k", f"{N}_rng *rng",
                   f"{N}_scratch *scratch"])

    def function(self) -> list[str]:
        w, N = self.w, self.w.N
        end = w.program.vocab.end
        ctx = "".join(f"{c}, " for c in self.ctx)
        body = [f"{w.c.name} *p = {self.p};",
                "int32_t token;",
                "if (prompt_steps < 1 || steps < 0 || top_k < 0) return -1;",
                "if (rng != NULL && !(temperature >= 1e-6 && temperature <= 1e6)) return -1;",
                "*count = 0;",
                "for (int t = 0; t < prompt_steps; ++t)  /* the prompt, a token at a time */",
                f"{IND}if ({N}_step(state, prompt + t, {ctx}p, scratch)) return 1;",
                "for (int n = 0; n < steps; ++n) {",
                f"{IND}token = rng == NULL ? {N}_greedy(p) : {N}_sample(p, temperature, top_k, rng);",
                f"{IND}tokens[n] = token;",
                f"{IND}*count = n + 1;"]
        if end is not None:
            body.append(f"{IND}if (token == {w.M}_END_TOKEN) break;")
        body += [f"{IND}if ({N}_step(state, &token, {ctx}p, scratch)) return 1;", "}", "return 0;"]
        return w._function(f"int {N}_complete", self._params(), body)

    def header(self) -> list[str]:
        w, N, M = self.w, self.w.N, self.w.M
        ctx = "".join(f", {c}" for c in self.ctx)
        end = w.program.vocab.end
        stop = f", stopping after the end token {end!r} ({M}_END_TOKEN)" if end is not None else ""
        lines = ["",
                 "Completion (what `rnncompile complete` does; the vocabulary and the generator are in the file):",
                 f"    {N}_rng rng;  {N}_seed(&rng, 7);   a seeded generator: PCG32 (pcg-random.org), stream 54",
                 f"    {N}_complete(&state, prompt_steps, prompt{ctx}, steps, tokens, &count, temperature, top_k, "
                 "&rng, &scratch);",
                 f"    {N}_complete(&state, prompt_steps, prompt{ctx}, steps, tokens, &count, 0, 0, NULL, "
                 "&scratch);   greedy",
                 ""]
        text = (f"It feeds the prompt (prompt_steps >= 1 token ids, any number) through {N}_step, then writes up to"
                f" `steps` token ids to tokens{stop}; count is how many. With rng NULL each is the first most likely"
                f" ({N}_greedy, as --greedy); else one drawn by {N}_sample from p ** (1 / temperature) (1e-6..1e6)"
                " over the top_k most likely (0: all). The state has read the prompt and the tokens (not an end"
                " token). Returns 0; -1 for a bad argument; 1 for a token id beyond its table. The same seed draws"
                " the same tokens; they are not `rnncompile complete --seed`'s (NumPy's generator is not in C), but"
                f" they come from the same distributions. {N}_greedy(p) and {N}_sample(p, temperature, top_k, &rng)"
                f" choose one token from any p [{self.V}].")
        return lines + textwrap.wrap(text, 100, initial_indent="    ", subsequent_indent="    ")
