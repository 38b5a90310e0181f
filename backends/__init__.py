"""rnncompile's execution backends. Each registers itself through the
`rnncompile.backends` entry-point group in pyproject.toml."""
