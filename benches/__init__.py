"""Benchmarks: each module exposes ``run() -> list[Row]``; ``python -m benches``
runs them all and writes BENCHMARKS.md."""
