"""Choosing a token from a distribution, in C: greedy, or drawn with a seeded generator defined in the file.

    <m>_rng        PCG32 (M. E. O'Neill 2014, pcg-random.org: the XSH RR output of a 64-bit LCG; the
                   "minimal C implementation"'s pcg32_random_r and pcg32_srandom_r, stream 54)
    <m>_seed       seeds it: pcg32_srandom_r(rng, seed, 54), so seed 42 gives 0xa15c02b7 0x7b47f409 ...
    <m>_random     its next 32 bits
    <m>_uniform    a double in (0, 1): 53 bits from two outputs, plus half a step (never 0, never 1)
    <m>_greedy     the first most likely token (np.argmax's choice)
    <m>_sample     a token drawn from p ** (1 / temperature) over the top_k most likely, one <m>_uniform each

`<m>_sample` follows rnncompile.drivers.sample_tokens for a given uniform number u:
log(max(p, 1e-300)) / temperature in double, the tokens at or above the top_k-th largest
(ties with it kept, as np.sort's threshold keeps them), exp(l - max) normalised, and the
first token whose running sum reaches u. Its generator is not NumPy's, so the same seed
draws other tokens than `rnncompile complete --seed`; the distribution drawn from is the
same. The top_k-th largest costs top_k passes over p (no buffer, no sort).
"""
from __future__ import annotations

from .cell import IND

PCG_MULTIPLIER = 6364136223846793005
PCG_STREAM = 54  # pcg32-demo's initseq: the published first outputs (0xa15c02b7, ...) are seed 42's


def declarations(N: str) -> list[str]:
    """The generator's struct and the functions' prototypes (the file's declarations part)."""
    return [f"/* A seeded generator: PCG32 (pcg-random.org), stream {PCG_STREAM}. Seed it with {N}_seed. */",
            "typedef struct {", f"{IND}uint64_t state;", f"{IND}uint64_t inc;", f"}} {N}_rng;", "",
            f"void {N}_seed({N}_rng *rng, uint64_t seed);",
            f"uint32_t {N}_random({N}_rng *rng);",
            f"double {N}_uniform({N}_rng *rng);"]


def prototypes(N: str, T: str) -> list[str]:
    return [f"int32_t {N}_greedy(const {T} *p);",
            f"int32_t {N}_sample(const {T} *p, double temperature, int top_k, {N}_rng *rng);"]


def functions(N: str, T: str, V: int) -> list[str]:
    """The generator and the two ways of choosing a token from p [V]."""
    return [
        f"uint32_t {N}_random({N}_rng *rng)  /* pcg32_random_r: the XSH RR output of the old state */",
        "{",
        f"{IND}const uint64_t old = rng->state;",
        f"{IND}const uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);",
        f"{IND}const uint32_t rot = (uint32_t)(old >> 59);",
        f"{IND}rng->state = old * UINT64_C({PCG_MULTIPLIER}) + rng->inc;",
        f"{IND}return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));",
        "}",
        "",
        f"void {N}_seed({N}_rng *rng, uint64_t seed)  /* pcg32_srandom_r(rng, seed, {PCG_STREAM}) */",
        "{",
        f"{IND}rng->state = 0;",
        f"{IND}rng->inc = (UINT64_C({PCG_STREAM}) << 1) | 1u;",
        f"{IND}(void){N}_random(rng);",
        f"{IND}rng->state += seed;",
        f"{IND}(void){N}_random(rng);",
        "}",
        "",
        f"double {N}_uniform({N}_rng *rng)  /* (0, 1): 27 + 26 bits, plus half a step */",
        "{",
        f"{IND}const uint32_t a = {N}_random(rng) >> 5, b = {N}_random(rng) >> 6;",
        f"{IND}return ((double)a * 67108864.0 + (double)b + 0.5) / 9007199254740992.0;",
        "}",
        "",
        f"int32_t {N}_greedy(const {T} *p)  /* the first most likely of the {V} tokens */",
        "{",
        f"{IND}int32_t best = 0;",
        f"{IND}for (int32_t i = 1; i < {V}; ++i)",
        f"{IND * 2}if (p[i] > p[best]) best = i;",
        f"{IND}return best;",
        "}",
        "",
        f"static double {N}_logit(const {T} *p, int32_t i, double temperature)  /* log(max(p, 1e-300)) / T */",
        "{",
        f"{IND}const double q = (double)p[i];",
        f"{IND}return log(q > 1e-300 ? q : 1e-300) / temperature;",
        "}",
        "",
        "/* A token drawn from p ** (1 / temperature) (1e-6 <= temperature <= 1e6) over the top_k most likely",
        f" * (top_k 0 or >= {V}: all), with one {N}_uniform; ties with the top_k-th are kept. */",
        f"int32_t {N}_sample(const {T} *p, double temperature, int top_k, {N}_rng *rng)",
        "{",
        f"{IND}double lowest = 0, best, total = 0, sum = 0, u;  /* kept: p[i] >= lowest */",
        f"{IND}int32_t i, last = 0;",
        f"{IND}if (top_k > 0 && top_k < {V}) {{  /* the top_k-th largest p, counted with its ties */",
        f"{IND * 2}double below = HUGE_VAL;",
        f"{IND * 2}int seen = 0;",
        f"{IND * 2}while (seen < top_k) {{",
        f"{IND * 3}double next = -1;",
        f"{IND * 3}for (i = 0; i < {V}; ++i)",
        f"{IND * 4}if ((double)p[i] < below && (double)p[i] > next) next = (double)p[i];",
        f"{IND * 3}if (next < 0) break;  /* no value left below (a NaN in p) */",
        f"{IND * 3}for (i = 0; i < {V}; ++i)",
        f"{IND * 4}seen += (double)p[i] == next;",
        f"{IND * 3}below = lowest = next;",
        f"{IND * 2}}}",
        f"{IND}}}",
        f"{IND}best = -HUGE_VAL;",
        f"{IND}for (i = 0; i < {V}; ++i)",
        f"{IND * 2}if ((double)p[i] >= lowest && {N}_logit(p, i, temperature) > best) best = {N}_logit(p, i, temperature);",
        f"{IND}for (i = 0; i < {V}; ++i)",
        f"{IND * 2}if ((double)p[i] >= lowest) total += exp({N}_logit(p, i, temperature) - best);",
        f"{IND}u = {N}_uniform(rng);",
        f"{IND}for (i = 0; i < {V}; ++i) {{",
        f"{IND * 2}if (!((double)p[i] >= lowest)) continue;",
        f"{IND * 2}sum += exp({N}_logit(p, i, temperature) - best) / total;",
        f"{IND * 2}last = i;",
        f"{IND * 2}if (sum >= u) return i;",
        f"{IND}}}",
        f"{IND}return last;  /* rounding left the sum just below u: the last kept token */",
        "}",
    ]
