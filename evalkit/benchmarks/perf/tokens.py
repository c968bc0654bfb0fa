"""What a perf cell asks of the served model, in tokens: the cost estimate's facts (pure).

Exact counts: vLLM's load generator sends random prompts of exactly `prompt_tokens` and, with `--ignore-eos`, gets
exactly `output_tokens` back. Per use case: `repeats` synchronous runs (one request in flight) and `repeats`
throughput runs (every request at once), then up to `sweep_rates` constant-rate runs (counted in full: the sweep
may stop earlier, at the first over-saturated rate), each with its warm-up requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evalkit.benchmarks.perf.settings import parse_settings
from evalkit.core.workload import CellWorkload, Workload

SOURCE = "exact: vllm bench serve, random prompts of the use case's lengths, --ignore-eos"


def workload(settings: Mapping[str, Any]) -> CellWorkload:
    s = parse_settings(dict(settings))
    parts = []
    for case in s.use_cases:
        sync = s.repeats * (s.sync_requests + s.warmup_requests)
        batched = (s.repeats + s.sweep_rates) * (s.sweep_requests + s.warmup_requests)
        parts.append(Workload(case.name, "sync", sync, case.prompt_tokens, case.output_tokens, 1, SOURCE))
        # constant rates below saturation keep fewer in flight; all at once is the throughput runs' batch
        parts.append(
            Workload(case.name, "batched", batched, case.prompt_tokens, case.output_tokens, s.sweep_requests, SOURCE)
        )
    return CellWorkload(tuple(parts))
