"""Fixed point: formats, the quant file, which node holds which format, activation tables, calibration.

    from rnncompile import quant
    config = quant.load("quant.yaml")            # or quant.load("q15")
    with quant.using(config, program):
        result = rnncompile.run(program, backend="fixed")      # or "fixed_c": the same integers, in C

The arithmetic is stated in formats.py (round half away from zero, saturation, 64-bit intermediates), the
activation tables and their measured errors in tables.py, the node classes in assign.py.
"""
from __future__ import annotations

from contextlib import contextmanager

from .config import CLASSES, QuantConfig, load, uniform
from .formats import QFormat, parse

FIXED_BACKENDS = ("fixed", "fixed_c")

__all__ = ["CLASSES", "QuantConfig", "QFormat", "load", "parse", "uniform", "using", "FIXED_BACKENDS"]


@contextmanager
def using(config: QuantConfig, program=None):
    """Run the fixed-point backends with `config` inside the block (and drop what `program` planned for them
    with other formats, before and after)."""
    from rnncompile import registry

    if program is not None:
        from .assign import check_tensors

        check_tensors(config, [program.cell(u) for u in program.plan.uses()])
    backends = [registry.get(n) for n in FIXED_BACKENDS if n in registry.available()]
    before = [b.config for b in backends]

    def forget():
        if program is not None:
            for key in [k for k in program.executables if k[0] in FIXED_BACKENDS]:
                del program.executables[key]
    forget()
    for b in backends:
        b.config = config
    try:
        yield config
    finally:
        for b, old in zip(backends, before):
            b.config = old
        forget()
