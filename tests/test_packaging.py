"""The installed distribution owns only the `rnncompile` import name: the repository's backends/ folder
installs as `rnncompile.backends` (a different package called `backends` exists on PyPI)."""
import os
import subprocess
import sys
from importlib.metadata import distribution, entry_points


def _outside_repo(code: str, tmp_path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_backends_install_under_the_rnncompile_namespace(tmp_path):
    found = _outside_repo("import importlib.util as u; print(u.find_spec('backends') is None, "
                          "u.find_spec('rnncompile.backends.c') is not None)", tmp_path)
    assert found == "True True"


def test_entry_points_name_the_namespaced_backends():
    values = {ep.name: ep.value for ep in entry_points(group="rnncompile.backends")}
    assert values["numpy"] == "rnncompile.backends.numpy:NumpyBackend"
    assert values["c"] == "rnncompile.backends.c:CBackend"
    assert values["python"] == "rnncompile.backends.python:PythonBackend"


def test_the_distribution_declares_one_top_level_name():
    top = distribution("rnncompile").read_text("top_level.txt")
    assert top is None or top.split() == ["rnncompile"]


def test_every_package_folder_is_listed_for_installation():
    """pyproject lists the packages (the backends/ folder maps to rnncompile.backends), so a new subpackage
    must be added there or a wheel would install without it."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for base, name in ((root / "rnncompile", "rnncompile"), (root / "backends", "rnncompile.backends")):
        for init in base.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            found.add(".".join((name,) + parts))
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"
