"""Inference performance and cost, the analysis of the perf cells' rows: the `perf` table, cost per query from dated
GPU prices, and the recommendation that joins them with accuracy verdicts. The cells themselves (vLLM's load
generator against the job's server) are the benchmark family `evalkit.benchmarks.perf`."""
