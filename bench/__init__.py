"""Benchmark harness: instance sizes, solve speed, plan quality (python -m bench)."""
