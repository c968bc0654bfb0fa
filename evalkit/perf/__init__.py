"""Inference performance and cost: perf cells (vLLM's load generator against the job's server), the `perf` table,
cost per query from dated GPU prices, and the recommendation that joins them with accuracy verdicts."""
