"""A CLI that starts at once: what each command leaves unimported (not timed; benchmarks/bench_startup.py
times it). Every check runs in a fresh interpreter, since this one has imported everything already."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncompile
from rnncompile import ops

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "networkx", "pydantic", "yaml")


def loaded_after(code: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has imported after running `code` (cwd: the repository root)."""
    probe = (code + "\nimport json, sys\n"
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def cli_code(*argvs: list[str]) -> str:
    """Run the CLI in-process on each argv, as the console script would; each must exit 0."""
    return ("import contextlib, io\nfrom rnncompile.cli import main\n"
            f"for argv in {[list(a) for a in argvs]!r}:\n"
            "    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
            "        try:\n            main(argv)\n        except SystemExit as e:\n            code = e.code\n"
            "    assert code == 0, (argv, code, out.getvalue())\n")


def test_help_imports_none_of_numpy_networkx_pydantic():
    assert loaded_after(cli_code(["--help"])) == []


def test_every_commands_help_imports_none_of_them():
    """A command's options are built at import: none of them may need the compiler."""
    from rnncompile.cli import cli

    assert loaded_after(cli_code(*([name, "--help"] for name in cli.commands))) == []


def test_import_rnncompile_loads_no_heavy_module():
    assert loaded_after("import rnncompile") == []


def test_validate_does_not_load_numpy():
    """Checking a spec needs pydantic, yaml and networkx (the cell graphs), not NumPy: every shipped spec,
    sequence, tree, memory and vocabulary ones alike."""
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
    assert len(specs) > 10
    loaded = loaded_after(cli_code(*(["validate", spec] for spec in specs)))
    assert "numpy" not in loaded
    assert {"pydantic", "networkx"} <= set(loaded)


def test_run_still_imports_what_it_needs():
    assert {"numpy", "networkx", "pydantic"} <= set(loaded_after(cli_code(["run", "specs/lstm.yaml"])))


@pytest.mark.parametrize("name", rnncompile.__all__)
def test_public_names_resolve_lazily(name):
    value = getattr(rnncompile, name)
    module = __import__(f"rnncompile.{rnncompile._PUBLIC[name]}", fromlist=[name])
    assert value is getattr(module, name)
    assert name in dir(rnncompile)


def test_star_import_and_submodules():
    namespace = {}
    exec("from rnncompile import *", namespace)
    assert set(rnncompile.__all__) <= set(namespace)
    assert rnncompile.registry.available()  # a submodule reached as an attribute, as before
    assert rnncompile.__version__
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        rnncompile.no_such_name


def test_trees_public_names_resolve():
    from rnncompile import trees

    for name in trees.__all__:
        assert getattr(trees, name) is not None
    assert set(trees.__all__) <= set(dir(trees))
    with pytest.raises(AttributeError):
        trees.no_such_name


def test_shape_broadcasting_is_numpys():
    """The shape rules broadcast without NumPy; the rule must be NumPy's, sizes 0 (a tree's K) and 1 included."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        shapes = [tuple(int(n) for n in rng.choice([0, 1, 1, 2, 3], size=rng.integers(0, 4)))
                  for _ in range(rng.integers(1, 4))]
        try:
            want = tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            with pytest.raises(ValueError):
                ops._broadcast_shapes(*shapes)
            continue
        assert ops._broadcast_shapes(*shapes) == want, shapes


def test_meanings_load_numpy_when_first_computed():
    code = ("import sys\nfrom rnncompile.ops import OPS\nassert 'numpy' not in sys.modules\n"
            "assert list(OPS['concat'].meaning([1.0], [2.0])) == [1.0, 2.0]\n"  # a meaning of its own
            "assert OPS['add'].meaning(1.0, 2.0) == 3.0\n"  # numpy.add, looked up
            "import numpy as np\nimport rnncompile.ops as ops\nassert ops.np is np\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
