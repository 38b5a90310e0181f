"""Benchmark tasks as data generators: each returns the dict of arrays `rnncompile train --input` reads."""
