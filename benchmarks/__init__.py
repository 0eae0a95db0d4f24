"""The benchmark suite of issue 4: ``python benchmarks/run.py`` (see README.md here)."""
