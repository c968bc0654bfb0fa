"""The `perf` benchmark: vLLM's load generator against the job's server, per use case a synchronous run, a
throughput run and a constant-rate sweep (see adapter.py). Its rows are analysed above it, in `evalkit.perf`."""
