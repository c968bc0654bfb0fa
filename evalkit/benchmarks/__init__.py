"""Benchmark adapters, listed explicitly. Heavy imports stay inside each adapter module, loaded on first use."""

from __future__ import annotations

import importlib

from evalkit.benchmarks.base import Benchmark, BenchmarkResult, Endpoint, RunContext
from evalkit.core.errors import ConfigError

ADAPTERS: dict[str, str] = {
    "lm_eval": "evalkit.benchmarks.lm_eval.adapter:LmEvalSuite",
    "arena_hard": "evalkit.benchmarks.arena.adapter:ArenaHard",
    "humaneval": "evalkit.benchmarks.humaneval.adapter:HumanEval",
    "divergence": "evalkit.benchmarks.divergence.adapter:Divergence",
    "perf": "evalkit.benchmarks.perf.adapter:Perf",
}
"""Adapter name (the `adapter:` key of conf/benchmarks/*.yaml) -> "module:class"."""

NEEDS_IDLE_SERVER = frozenset({"perf"})
"""Adapters that measure the server itself (latency, throughput): a job runs their cells alone, after the others,
never overlapped with another cell (`EvalkitConfig.cell_concurrency`)."""


def get_adapter(name: str) -> Benchmark:
    if name not in ADAPTERS:
        raise ConfigError(f"unknown benchmark adapter {name!r}", hint=f"valid choices: {', '.join(sorted(ADAPTERS))}")
    module, _, cls = ADAPTERS[name].partition(":")
    adapter: Benchmark = getattr(importlib.import_module(module), cls)()
    return adapter


__all__ = ["ADAPTERS", "NEEDS_IDLE_SERVER", "Benchmark", "BenchmarkResult", "Endpoint", "RunContext", "get_adapter"]
