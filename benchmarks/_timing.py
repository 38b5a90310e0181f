"""What every benchmark here shares: interleaved median timing, BLAS thread control and the header
that says on which machine, with which libraries and under which load a run was made."""
from __future__ import annotations

import ctypes
import glob
import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path


def interleaved_ms(peers: dict, warmup: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Each round runs every peer once, so a change of machine load hits all peers alike; the order is
    rotated every round and reversed every other pass of rotations, so no peer always runs right after
    the same one (and inherits its freed memory or its still-spinning threads). Returns peer ->
    (median, min) in ms over the timed rounds."""
    names = list(peers)
    times = {n: [] for n in names}
    for r in range(warmup + repeats):
        k = r % len(names)
        order = names[k:] + names[:k]
        for n in (order[::-1] if (r // len(names)) % 2 else order):
            t0 = time.perf_counter()
            peers[n]()
            if r >= warmup:
                times[n].append((time.perf_counter() - t0) * 1e3)
    return {n: (statistics.median(v), min(v)) for n, v in times.items()}


# ---- the header -----------------------------------------------------------------------

def command_line() -> str:
    return shlex.join([sys.executable] + sys.argv)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> str:
    import numpy as np

    return (f"python {platform.python_version()}, numpy {np.__version__}, "
            f"cpu count {os.cpu_count()} ({cpu_name()})")


def load_line() -> str:
    return f"machine load average before timing: {', '.join(f'{v:.2f}' for v in os.getloadavg())}"


def busy_warning(threads: int = 1) -> str | None:
    """A warning when other work already keeps a core busy."""
    if os.getloadavg()[0] <= 1.0:
        return None
    why = "BLAS threads then wait on each other and " if threads > 1 else ""
    return (f"warning: the machine is busy; {why}timings swing (re-run when idle"
            + (", or compare with --threads 1)" if threads > 1 else ")"))


def timing_parser(description: str, repeats: int, warmup: int, threads_help: str) -> argparse.ArgumentParser:
    """The options every benchmark shares: rounds, warm-up and BLAS threads."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeats", type=int, default=repeats, help="timed rounds per peer (the median is reported)")
    p.add_argument("--warmup", type=int, default=warmup, help="untimed rounds first")
    p.add_argument("--threads", type=int, default=None, help=threads_help)
    return p


def print_medians(rows) -> None:
    """Each size's peers as median (minimum), and which of them were noisy; rows end with {peer: (median, min)}."""
    print("times are medians in ms (min in brackets):")
    for name, *_, times in rows:
        print(f"  {name}: " + ", ".join(f"{k} {v[0]:.2f} ({v[1]:.2f})" for k, v in times.items()))
    noisy = [f"{name}/{k}" for name, *_, times in rows for k, (med, mn) in times.items() if med > 1.3 * mn]
    if noisy:
        print("warning: median more than 1.3x the minimum (noisy) for: " + ", ".join(noisy))


def print_header(lines: list[str], threads: int) -> None:
    """The command, the versions, the script's own lines, the load, and a warning when the machine is busy."""
    print("command:", command_line())
    for line in lines:
        print(line)
    print(load_line())
    warning = busy_warning(threads)
    if warning:
        print(warning)


# ---- BLAS thread control without extra packages --------------------------------------------

class Blas:
    """NumPy's OpenBLAS, through threadpoolctl when installed, else its own C entry points."""

    def __init__(self):
        self.tpc = None
        try:
            import threadpoolctl

            self.tpc = threadpoolctl
        except ImportError:
            pass
        self.lib, self.prefix = self._openblas()

    @staticmethod
    def _openblas():
        import numpy as np

        libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
        for path in sorted(glob.glob(str(libs / "*openblas*.so*"))):
            lib = ctypes.CDLL(path)  # already loaded by numpy: the same handle
            for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
                if hasattr(lib, f"{prefix}_get_num_threads{suffix}"):
                    return lib, (prefix, suffix)
        return None, None

    def _fn(self, name, restype=ctypes.c_int):
        prefix, suffix = self.prefix
        fn = getattr(self.lib, f"{prefix}_{name}{suffix}")
        fn.restype = restype
        return fn

    def threads(self):
        if self.tpc is not None:
            return [(i["internal_api"], i["num_threads"]) for i in self.tpc.threadpool_info()]
        if self.lib is not None:
            return [("openblas", self._fn("get_num_threads")())]
        return []

    def set_threads(self, n):
        if self.tpc is not None:
            self._limit = self.tpc.threadpool_limits(n)  # kept alive for the whole run
        elif self.lib is not None:
            set_threads = self._fn("set_num_threads", None)
            set_threads.argtypes = [ctypes.c_int]
            set_threads(n)
        else:
            print(f"warning: cannot set BLAS threads (no threadpoolctl, no OpenBLAS found); "
                  f"set OPENBLAS_NUM_THREADS={n} instead")

    def describe(self):
        if self.lib is None:
            return "unknown (no OpenBLAS found beside numpy)"
        config = self._fn("get_config", ctypes.c_char_p)().decode()
        core = self._fn("get_corename", ctypes.c_char_p)().decode()
        via = "threadpoolctl" if self.tpc is not None else "OpenBLAS C API (threadpoolctl not installed)"
        return f"{config.strip()} | kernel: {core} | threads read via {via}"

    def header(self) -> list[str]:
        """The BLAS lines of a header: library and kernel, threads, and the environment that steers them."""
        lines = ["BLAS: " + self.describe(),
                 "BLAS threads: " + (", ".join(f"{api}={n}" for api, n in self.threads()) or "unknown")]
        for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            if var in os.environ:
                lines.append(f"note: {var}={os.environ[var]} is set" + (
                    " (pins OpenBLAS's kernel; may slow numpy)" if var == "OPENBLAS_CORETYPE" else ""))
        if "OPENBLAS_CORETYPE" not in os.environ:
            lines.append("OPENBLAS_CORETYPE: not set")
        return lines
