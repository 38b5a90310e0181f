"""Time how fast the CLI starts: each command in fresh processes, and where its import time goes.

    python benchmarks/bench_startup.py [--repeats 15] [--warmup 2] [--top 12] [--baseline DIR]

Timed as a user runs them, each a new process through the installed
`rnncompile` script (the one beside this Python, run by this Python; `python
-m rnncompile.cli` when there is none): `--help`, `validate specs/lstm.yaml`
and `run specs/lstm.yaml`, with `python -c pass` and `python -c "import
click"` beside them as the floor no command can go under. Rounds are
interleaved, so a change of machine load hits every command alike. Each
process's wall time and CPU time (user + system, from the kernel's count for
the child) are reported as medians; wall time is what the targets of issue
#13 are about (--help 0.3 s, validate 0.5 s), and CPU time shows how much of a
slow figure is other work on a shared machine rather than ours.

--baseline DIR times an older tree in the same rounds, e.g. the last commit:

    git archive HEAD rnncompile backends | tar -x -C /tmp/before
    python benchmarks/bench_startup.py --baseline /tmp/before

(its rows run `python -P -c "from rnncompile.cli import main; main()"` with
PYTHONPATH=DIR: the console script's two lines, without its file).

When the `rnncompile` found on PATH is not that script (a pyenv shim, which
runs bash and `pyenv exec` first), --help and validate are also timed through
it: what a person typing `rnncompile` waits for there.

Then each command once more under `python -X importtime`: the import time
per top-level package (the sum of its modules' own times) and the modules
with the largest cumulative import time, medians over three runs.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from _timing import print_header, timing_parser

ROOT = Path(__file__).resolve().parents[1]
SPEC = "specs/lstm.yaml"
COMMANDS = {  # name -> arguments of rnncompile
    "--help": ["--help"],
    "validate": ["validate", SPEC],
    "run": ["run", SPEC],
}
TARGETS_MS = {"--help": 300, "validate": 500}  # issue #13, item 4
LAUNCH = "import sys; from rnncompile.cli import main; sys.exit(main())"
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


def parse_args(argv=None):
    p = timing_parser(__doc__.splitlines()[0], repeats=15, warmup=2, threads_help="unused (no BLAS work is timed)")
    p.add_argument("--top", type=int, default=12, help="modules to list by cumulative import time")
    p.add_argument("--baseline", type=Path, metavar="DIR",
                   help="a tree holding an older rnncompile/ (and backends/) to time in the same rounds")
    return p.parse_args(argv)


def entry_point() -> list[str]:
    """The console script of this Python's environment, run by this Python (a pyenv shim or a wrapper
    on PATH would add its own start-up to every figure)."""
    script = Path(sys.executable).parent / "rnncompile"
    return [sys.executable, str(script)] if script.is_file() else [sys.executable, "-m", "rnncompile.cli"]


def with_path(first: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(first), os.environ.get("PYTHONPATH")) if p)}


def run_quietly(argv: list[str], env) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stderr}")
    return done


def timed(argv: list[str], env) -> tuple[float, float]:
    """(wall ms, CPU ms) of one process; the CPU time is the kernel's for the waited-for child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    run_quietly(argv, env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1e3, cpu * 1e3


def interleaved(processes: dict, warmup: int, repeats: int) -> dict[str, tuple[float, float, float]]:
    """name -> (median wall, min wall, median CPU) in ms. Each round runs every process once, the order
    rotated every round and reversed every other pass (as _timing.interleaved_ms)."""
    names = list(processes)
    walls, cpus = defaultdict(list), defaultdict(list)
    for r in range(warmup + repeats):
        k = r % len(names)
        order = names[k:] + names[:k]
        for n in (order[::-1] if (r // len(names)) % 2 else order):
            wall, cpu = timed(*processes[n])
            if r >= warmup:
                walls[n].append(wall)
                cpus[n].append(cpu)
    return {n: (statistics.median(walls[n]), min(walls[n]), statistics.median(cpus[n])) for n in names}


def import_times(argv: list[str], env) -> dict[str, tuple[int, int]]:
    """module -> (own µs, cumulative µs) of one `python -X importtime` run."""
    done = run_quietly([argv[0], "-X", "importtime", *argv[1:]], env)
    return {m[4]: (int(m[1]), int(m[2])) for m in map(IMPORT_LINE.match, done.stderr.splitlines()) if m}


def breakdown(argv: list[str], env, rounds: int = 3):
    """Medians over `rounds` runs: total import ms, package -> own ms, module -> cumulative ms."""
    runs = [import_times(argv, env) for _ in range(rounds)]
    per_package, cumulative, totals = defaultdict(list), defaultdict(list), []
    for times in runs:
        totals.append(sum(own for own, _ in times.values()) / 1e3)
        packages = defaultdict(int)
        for module, (own, cum) in times.items():
            packages[module.split(".")[0]] += own
            cumulative[module].append(cum / 1e3)
        for package, own in packages.items():
            per_package[package].append(own / 1e3)

    def median(values):  # a module missing from a run counts as 0 there
        return statistics.median(values + [0.0] * (rounds - len(values)))
    return (statistics.median(totals), {k: median(v) for k, v in per_package.items()},
            {k: median(v) for k, v in cumulative.items()})


def print_breakdown(name: str, argv: list[str], env, top: int) -> None:
    total, packages, cumulative = breakdown(argv, env)
    print(f"\n{name}: {total:.0f} ms of imports (sum of own times, median of 3 runs)")
    shown = [(p, ms) for p, ms in sorted(packages.items(), key=lambda kv: -kv[1]) if ms >= 1.0][:top]
    print("  by package (own times, ms): " + ", ".join(f"{p} {ms:.0f}" for p, ms in shown))
    print(f"  top {top} modules by cumulative ms:")
    for module, ms in sorted(cumulative.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {ms:7.1f}  {module}")
    heavy = [p for p in ("numpy", "networkx", "pydantic", "yaml") if packages.get(p, 0) > 0]
    print("  imports " + (", ".join(heavy) if heavy else "none of numpy, networkx, pydantic, yaml"))


def main(argv=None):
    args = parse_args(argv)
    script, env = entry_point(), with_path(ROOT)
    processes = {"python -c pass": ([sys.executable, "-c", "pass"], env),
                 "python -c 'import click'": ([sys.executable, "-c", "import click"], env),
                 **{name: (script + cmd, env) for name, cmd in COMMANDS.items()}}
    on_path = shutil.which("rnncompile")
    if on_path and Path(on_path).resolve() != Path(script[-1]).resolve():
        processes.update({f"{name} via PATH": ([on_path, *COMMANDS[name]], env) for name in ("--help", "validate")})
    if args.baseline:
        base = with_path(args.baseline.resolve())
        processes.update({f"baseline {name}": ([sys.executable, "-P", "-c", LAUNCH, *cmd], base)
                          for name, cmd in COMMANDS.items()})
    for argv_, env_ in processes.values():  # fail before timing, not in the middle of it
        run_quietly(argv_, env_)
    lines = [f"python {sys.version.split()[0]}, cpu count {os.cpu_count()}",
             "each figure is a whole fresh process, interpreter start-up included",
             f"the CLI as run: {' '.join(script)}"]
    if "--help via PATH" in processes:
        lines.append(f"`rnncompile` on PATH: {on_path} (a wrapper: its rows say `via PATH`)")
    if args.baseline:
        lines.append(f"baseline: rnncompile from {args.baseline.resolve()}")
    print_header(lines, threads=1)
    times = interleaved(processes, args.warmup, args.repeats)
    print(f"\n{'process':<28} {'wall ms':>8} {'(min)':>7} {'CPU ms':>7} {'target':>7}  met")
    for name, (med, low, cpu) in times.items():
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else ("yes" if med <= target else "NO")
        print(f"  {name:<26} {med:8.0f} {f'({low:.0f})':>7} {cpu:7.0f} {target or '':>7}  {verdict}")
    noisy = [n for n, (med, low, _) in times.items() if med > 1.3 * low]
    if noisy:
        print("warning: median more than 1.3x the minimum (noisy) for: " + ", ".join(noisy))
    for name, cmd in COMMANDS.items():
        print_breakdown(name, script + cmd, env, args.top)


if __name__ == "__main__":
    main()
