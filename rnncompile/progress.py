"""Progress bars on stderr for long work (tqdm): shown when asked, or by default when stderr is a terminal."""
from __future__ import annotations

import contextlib
import sys


def wanted(flag: bool | None) -> bool:
    """--progress / --no-progress, else whether stderr is a terminal."""
    return sys.stderr.isatty() if flag is None else flag


@contextlib.contextmanager
def bar(total: int, enabled: bool, what: str = "", unit: str = "step"):
    """A tqdm bar of `total` ticks on stderr, or None (nothing shown) when not enabled."""
    if not enabled or total <= 0:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=what, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
              mininterval=0.2) as shown:
        yield shown
