"""Mutation fuzzing of the shipped specs: whatever a person (or a typo) does to a spec,
`validate` and `run` end with "ok" or a located error, never an internal error, and soon.

Each case takes one shipped spec (specs/ and examples/), mutates it (a key deleted,
duplicated or renamed, a value replaced by a random scalar, list, mapping, deep nesting,
huge number, string or expression, two values swapped, the text cut short) and runs the
CLI in-process on the result.

The test runs a modest number of cases; a campaign runs many and prints the figures:

    python tests/test_fuzz_specs.py --validate 3000 --run 300 [--seed 0]
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rnncompile.cli import main  # noqa: E402

SEEDS = sorted(p for d in ("specs", "examples") for p in (ROOT / d).rglob("*.yaml"))
TIME_LIMIT = 20  # seconds per case
EXAMPLES = int(os.environ.get("RNNCOMPILE_FUZZ_EXAMPLES", "60"))
NAMES = ["h", "x", "c", "H", "I", "T", "W", "b", "scan", "lstm", "sigmoid", "tanh", "shape", "init", "from",
         "values", "x_next", "children", "encoder", "self", "", "é", "1a", "a b", "__class__"]


# ---- random values --------------------------------------------------------------

def random_expression(rng: random.Random, depth: int = 0) -> str:
    """Expressions a person might write, or mistype: names, calls, chains, deep nestings."""
    roll = rng.random()
    if roll < 0.08:
        return "(" * rng.choice([10, 70, 300]) + rng.choice(NAMES[:8]) + ")" * rng.choice([10, 70, 300])
    if roll < 0.14:
        op = rng.choice(["+", "*", "-", "/", "@", "**", ".T", "[0:4]", "[0]"])
        n = rng.choice([50, 1000, 3000])
        name = rng.choice(["h", "x", "W", "H", "1"])
        return name + (op * n if op.startswith((".", "[")) else (op + name) * n)
    if roll < 0.18:
        return rng.choice(["-", "+"]) * rng.choice([5, 100, 1000]) + "h"
    if roll < 0.22:
        return "tanh(" * rng.choice([5, 70, 500]) + "h" + ")" * rng.choice([5, 70, 500])
    if depth > 3 or roll < 0.45:
        return rng.choice(NAMES + ["1", "0", "-1", "1e308", "1e-320", "10" * 200, "2.5", "H * 1e308", "nan"])
    a, b = random_expression(rng, depth + 1), random_expression(rng, depth + 1)
    return rng.choice([f"{a} + {b}", f"{a} @ {b}", f"{a} * {b}", f"-{a}", f"({a})", f"tanh({a})",
                       f"concat({a}, {b})", f"softmax({a}, axis={b})", f"{a}[{b}]", f"{a}[:{b}]", f"{a}.T",
                       f"{a}.{b}", f"sum({a}, axis=0)", f"one_hot({a}, {b})", f"{a}(", f"{a} {b}", f"{a}^{b}",
                       f"embed({a}, {b})", f"outer({a}, {b})", f"{a}**{b}"])


def random_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if roll < 0.25:
        return rng.choice([0, 1, -1, 2, 7, 3.5, -0.0, 1e308, float("inf"), float("nan"), 10**400, -(10**30),
                           True, False, None, 2**31, 2**63])
    if roll < 0.5:
        return random_expression(rng)
    if roll < 0.6:
        return rng.choice(NAMES) * rng.choice([1, 1, 2, 500])
    if roll < 0.7 and depth < 3:
        return [random_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 2, 3, 5000 if depth == 0 else 3]))]
    if roll < 0.8 and depth < 3:
        return {rng.choice(NAMES) or "k": random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if roll < 0.85:
        deep: object = rng.choice([1, "h", None])
        for _ in range(rng.choice([10, 70])):  # deeper ones are written as text (see mutate)
            deep = [deep] if rng.random() < 0.5 else {"k": deep}
        return deep
    if roll < 0.9:
        return [[rng.choice([1, 2.5, "a", None, [1]]) for _ in range(rng.randint(0, 3))] for _ in range(rng.randint(0, 3))]
    return {"shape": rng.choice([[], ["H"], ["H", "H"], [0], [-1], ["H * 1e308"], [1] * 5000, "H"]),
            rng.choice(["init", "values", "act", "from", "scan"]): random_value(rng, depth + 1)}


# ---- mutations ---------------------------------------------------------------------

def _paths(data, path=()):
    yield path
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data[:50]):
            yield from _paths(v, path + (i,))


def _parent(data, path):
    for p in path[:-1]:
        data = data[p]
    return data


def mutate(text: str, rng: random.Random) -> str:
    """One to three random changes to a spec's text."""
    roll = rng.random()
    if roll < 0.08:
        return text[:rng.randrange(len(text))]
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    if roll < 0.14:
        lines.insert(i, lines[i])  # a duplicated key (or list item)
        return "".join(lines)
    if roll < 0.18:  # a nesting too deep for any recursive reader: flow brackets, or block mappings
        n = rng.choice([100, 700, 5000])
        head = lines[i].split(":")[0] if ":" in lines[i] else "x"
        if rng.random() < 0.5:
            lines[i] = f"{head}: " + "[" * n + "1" + "]" * n + "\n"
        else:
            indent = len(head) - len(head.lstrip())
            lines[i] = f"{head}:\n" + "".join(" " * (indent + 2 * (d + 1)) + f"k{d}:\n" for d in range(n // 8)) \
                + " " * (indent + 2 * (n // 8 + 1)) + "v: 1\n"
        return "".join(lines)
    data = yaml.safe_load(text)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        paths = [p for p in _paths(data) if p]
        path = rng.choice(paths)
        parent, key = _parent(data, path), path[-1]
        kind = rng.random()
        if kind < 0.2:
            del parent[key]
        elif kind < 0.3 and isinstance(parent, dict):
            new = rng.choice(NAMES + [key + "s", key[:-1], key.upper()]) or "k"
            parent[new] = parent.pop(key)
        elif kind < 0.38:
            other = rng.choice(paths)
            if other[:len(path)] != path and path[:len(other)] != other:
                oparent = _parent(data, other)
                parent[key], oparent[other[-1]] = oparent[other[-1]], parent[key]
        else:
            parent[key] = random_value(rng)
    if rng.random() < 0.2:
        return json.dumps(data, allow_nan=True)  # JSON is YAML: the same loader reads it
    return yaml.safe_dump(data, sort_keys=False, width=10**6, allow_unicode=True)


# ---- running ------------------------------------------------------------------------

class _Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(*_):
        raise _Timeout()
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_cli(args: list[str]) -> tuple[int, str, float]:
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            with time_limit(TIME_LIMIT):
                main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except _Timeout:
            code = "timeout"
    return code, err.getvalue() + out.getvalue(), time.monotonic() - start


def write_case(seed: Path, text: str, folder: Path) -> Path:
    """The mutated spec in a folder beside links to the seed's neighbours (vocabularies, data)."""
    folder.mkdir(parents=True, exist_ok=True)
    for sibling in seed.parent.iterdir():
        link = folder / sibling.name
        if sibling != seed and not link.exists():
            link.symlink_to(sibling)
    path = folder / (seed.stem + (".json" if text.startswith("{") else seed.suffix))  # mutate may write JSON
    path.write_text(text, encoding="utf-8")
    return path


def problem(command: str, path: Path, code, text: str) -> str:
    """Why a result is not clean ("" when it is)."""
    if code == "timeout":
        return f"took more than {TIME_LIMIT} s"
    if "internal error" in text or "Traceback" in text:
        return "internal error: " + text.split("internal error:")[-1].strip().splitlines()[0][:200]
    if code not in (0, 1):
        return f"exit {code}: {text.strip()[:200]}"
    if code == 1 and str(path) not in text and path.name not in text:
        return "error names no file: " + text.strip()[:200]
    return ""


def check_case(command: str, seed: Path, text: str, folder: Path) -> tuple[str, str, float]:
    path = write_case(seed, text, folder)
    short = command == "run" and "fold" not in text  # a tree model runs over trees, not steps
    args = [command, str(path)] + (["--steps", "3"] if short else [])
    code, out, seconds = run_cli(args)
    return problem(command, path, code, out), out, seconds


@pytest.mark.slow  # a fuzz test: RNNCOMPILE_FUZZ_EXAMPLES sets its size
@pytest.mark.parametrize("command", ["validate", "run"])
def test_mutated_specs_end_cleanly(command, tmp_path_factory):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    folder = tmp_path_factory.mktemp(command)
    counter = iter(range(10**9))

    @hypothesis.settings(max_examples=EXAMPLES if command == "validate" else max(5, EXAMPLES // 8),
                         deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(seed=st.sampled_from(SEEDS), rng=st.randoms(use_true_random=False))
    def case(seed, rng):
        text = mutate(seed.read_text(encoding="utf-8"), rng)
        why, out, _ = check_case(command, seed, text, folder / str(next(counter)))
        assert not why, f"{command} of a mutated {seed.name}: {why}\n--- spec ---\n{text[:3000]}\n--- output ---\n{out[:3000]}"

    case()


# ---- a campaign ---------------------------------------------------------------------

def campaign(n_validate: int, n_run: int, seed: int, folder: Path) -> int:
    rng = random.Random(seed)
    failures = 0
    for command, n in (("validate", n_validate), ("run", n_run)):
        kinds: dict[str, int] = {}
        clean = 0
        for i in range(n):
            spec = rng.choice(SEEDS)
            text = mutate(spec.read_text(encoding="utf-8"), rng)
            why, _, seconds = check_case(command, spec, text, folder / f"{command}{i}")
            if seconds > 5:
                print(f"  slow: {command} {i} ({spec.name}) {seconds:.1f} s", flush=True)
            if why:
                kind = re.sub(r"\d+", "N", why.split(":")[0] + ":" + why.split(":")[1] if ":" in why else why)[:90]
                kinds[kind] = kinds.get(kind, 0) + 1
                (folder / "failures").mkdir(exist_ok=True)
                (folder / "failures" / f"{command}{i}_{spec.name}").write_text(f"# {why}\n{text}")
            else:
                clean += 1
        failures += n - clean
        print(f"{command}: {clean}/{n} clean", flush=True)
        for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"  {count:5d}  {kind}")
    return failures


if __name__ == "__main__":
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description="a mutation-fuzzing campaign over the shipped specs")
    ap.add_argument("--validate", type=int, default=3000)
    ap.add_argument("--run", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="a folder to keep the cases (and failures/) in")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(opts.keep or tmp)
        sys.exit(1 if campaign(opts.validate, opts.run, opts.seed, out) else 0)
