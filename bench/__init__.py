"""`make bench`: Pleno's telemetry overhead, measured against bare FastAPI in the same run.

Not a test suite: it measures and prints ratios, and exits 0 even when a budget is missed.
Entry point: ``python -m bench.run`` (see bench/run.py and docs/benchmarks.md).
"""
