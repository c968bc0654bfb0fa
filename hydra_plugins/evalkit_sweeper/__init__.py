"""Hydra sweeper that expands evalkit's grid into one job per model x format (benchmarks grouped)."""
