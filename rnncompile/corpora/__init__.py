"""Generators of small corpora for the lecture's experiments (long_range: the born-in / speaks example)."""
