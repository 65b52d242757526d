"""Benchmarks: ``python benchmarks/run.py`` (``nox -s bench``)."""
