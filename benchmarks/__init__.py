"""Benchmarks: `make bench` (or `python -m benchmarks.ingest`). Not part of the installed package."""
