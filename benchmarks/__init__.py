"""taskflow's benchmark: `python -m benchmarks.run` (see benchmarks/README.md)."""
