"""A perf benchmark's settings (`settings:` of conf/benchmarks/perf*.yaml), typed and validated once (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalkit.core.errors import ConfigError


@dataclass(frozen=True)
class UseCase:
    """A deployment use case of the study: synthetic prompts of `prompt_tokens`, answers of `output_tokens`."""

    name: str
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class PerfSettings:
    use_cases: tuple[UseCase, ...]
    sync_requests: int
    """Requests of the synchronous run (concurrency 1)."""
    sweep_requests: int
    """Requests of the throughput run and of each constant-rate run."""
    sweep_rates: int
    """Constant rates between the synchronous and the throughput run's request rates."""
    warmup_requests: int
    """Requests sent before each measured run and excluded from it (vLLM bench's --num-warmups)."""
    oversaturation: float
    """A constant-rate run is over-saturated when it completes fewer than this fraction of its target rate: the
    sweep stops there (higher rates only queue)."""
    timeout_s: float
    """Wall-clock limit of one load-generator run."""
    repeats: int
    """How many times the synchronous and the throughput runs are made (their spread is reported)."""


_KEYS = {
    "repeats",
    "use_cases",
    "sync_requests",
    "sweep_requests",
    "sweep_rates",
    "warmup_requests",
    "oversaturation",
    "timeout_s",
}


def parse_settings(settings: dict[str, Any]) -> PerfSettings:
    """Raises ConfigError naming the bad key and the valid ones."""
    unknown = sorted(set(settings) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown perf settings {unknown}", hint=f"valid keys: {', '.join(sorted(_KEYS))}")
    raw = settings.get("use_cases") or {}
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("perf settings.use_cases must map use-case names to {prompt_tokens, output_tokens}")
    cases = []
    for name, spec in raw.items():
        try:
            case = UseCase(str(name), int(spec["prompt_tokens"]), int(spec["output_tokens"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"perf use case {name!r} needs integer prompt_tokens and output_tokens (got {spec!r})"
            ) from exc
        if case.prompt_tokens < 1 or case.output_tokens < 1:
            raise ConfigError(f"perf use case {name!r}: token counts must be >= 1")
        cases.append(case)
    out = PerfSettings(
        use_cases=tuple(cases),
        sync_requests=int(settings.get("sync_requests", 20)),
        sweep_requests=int(settings.get("sweep_requests", 200)),
        sweep_rates=int(settings.get("sweep_rates", 8)),
        warmup_requests=int(settings.get("warmup_requests", 2)),
        oversaturation=float(settings.get("oversaturation", 0.9)),
        timeout_s=float(settings.get("timeout_s", 3600)),
        repeats=int(settings.get("repeats", 3)),
    )
    if min(out.sync_requests, out.sweep_requests, out.repeats) < 1 or out.sweep_rates < 0 or out.warmup_requests < 0:
        raise ConfigError(
            "perf settings: request counts and repeats must be >= 1, sweep_rates and warmup_requests >= 0"
        )
    if not 0 < out.oversaturation <= 1:
        raise ConfigError(f"perf settings.oversaturation={out.oversaturation} must be in (0, 1]")
    return out
