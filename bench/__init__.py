"""Benchmarks of mixpeek-infra; `python -m bench` runs them all (see bench/run_all.py and docs/performance.md)."""
