"""Benchmark adapters, listed explicitly. Heavy imports stay inside each adapter module, loaded on first use.

A family outside this list (a package of its own) is named by its config directly: `adapter: "package.module:Class"`
in conf/benchmarks/<name>.yaml; nothing else needs editing (README, "Adding a benchmark").
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

from evalkit.benchmarks.base import (
    Benchmark,
    BenchmarkBase,
    BenchmarkResult,
    NodeContext,
    PlanContext,
    RunContext,
)
from evalkit.core.errors import ConfigError
from evalkit.core.records import Endpoint

ADAPTERS: dict[str, str] = {
    "lm_eval": "evalkit.benchmarks.lm_eval.adapter:LmEvalSuite",
    "arena_hard": "evalkit.benchmarks.arena.adapter:ArenaHard",
    "humaneval": "evalkit.benchmarks.humaneval.adapter:HumanEval",
    "divergence": "evalkit.benchmarks.divergence.adapter:Divergence",
    "perf": "evalkit.benchmarks.perf.adapter:Perf",
}
"""Adapter name (the `adapter:` key of conf/benchmarks/*.yaml) -> "module:class"."""


def get_adapter(name: str) -> Benchmark[Any]:
    """The adapter `name` names: a key of `ADAPTERS`, or "package.module:Class" (a family outside evalkit). Its
    settings record is `Any` here: code above the families passes it from `parse_settings` to `RunContext` as is."""
    module, _, cls = ADAPTERS.get(name, name).partition(":")
    if not cls:
        raise ConfigError(
            f"unknown benchmark adapter {name!r}",
            hint=f"valid choices: {', '.join(sorted(ADAPTERS))}, or a family of your own as 'package.module:Class'",
        )
    try:
        family = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"benchmark adapter {name!r} cannot be loaded: {exc}",
            hint="name a class importable here as 'package.module:Class' (its package on PYTHONPATH)",
        ) from exc
    try:
        adapter: Benchmark[Any] = family()
    except TypeError as exc:  # a method of `BenchmarkBase` left abstract: the message names it
        raise ConfigError(
            f"benchmark adapter {name!r} cannot be made: {exc}",
            hint="fill every method the protocol asks of a family (README, 'Adding a benchmark')",
        ) from exc
    return adapter


@functools.cache
def report_sections() -> Mapping[str, str]:
    """Suite -> report section, as the listed families declare them (`Benchmark.sections`)."""
    return {suite: section for name in ADAPTERS for suite, section in get_adapter(name).sections.items()}


__all__ = [
    "ADAPTERS",
    "Benchmark",
    "BenchmarkBase",
    "BenchmarkResult",
    "Endpoint",
    "NodeContext",
    "PlanContext",
    "RunContext",
    "get_adapter",
    "report_sections",
]
