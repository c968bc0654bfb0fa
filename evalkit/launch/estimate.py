"""Cost before submission: per cell the tokens to prefill and decode, the GPU-hours they take on the job's GPUs, and
per job the time limit that holds them (pure).

Tokens come from each benchmark family's own facts (`Benchmark.workload`, in `evalkit/benchmarks/<family>/tokens.py`:
documents, lengths, shots, generation budgets, each with its source); the arithmetic is here:

- prefill: 2 x parameters FLOPs per prompt token in the format's compute type (FP8/INT8 GEMMs where the GPU has the
  units), plus causal attention, 2 x layers x hidden x prompt^2 FLOPs per request in bf16; at the table's prefill
  utilisation of the datasheet peak, over all the job's GPUs (tensor/pipeline parallel: perfect scaling assumed);
- decode: each step reads the weights once for the batch (the harness's concurrency) and each sequence's KV cache
  (bf16, 2 x layers x kv_heads x head_dim x 2 bytes per token of context), at the table's bandwidth utilisation; or
  2 x parameters FLOPs per token when that is slower.

For Llama-3.1-8B, RULER's 128K length alone is 4.3e19 FLOPs (12 H100-hours at peak, as issue 18 computed) and the
study's whole RULER cell about 46 H100-hours at the assumed 30% of peak: the estimate is for planning, good to a
factor of about 2 (the utilisations are assumed; conf/hardware/throughput.yaml says from what).

Time limits: a job's Slurm limit is the larger of its configured `timeout_min` and the estimate (vLLM start-up plus
every cell) times the table's margin, rounded up to 30 minutes. So no job of a sweep is planned to run out of time.
Where the cluster grants less (`model.resources.max_timeout_min`, the partition's MaxTime), the limit is that cap
and the job is planned in attempts: at its limit submitit requeues it, and it resumes where it stopped (its
unfinished cell; an lm-eval cell at its unfinished run, with the requests lm-eval cached), paying the start-up again
each time. The attempts must fit `max_num_timeout` + 1 (checked before submission). A limit longer than the partition
allows is refused by `sbatch --test-only` before anything is submitted, with the fix (see `refusal_hint`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.core.config import ArchitectureConfig, EvalkitConfig
from evalkit.core.errors import ConfigError
from evalkit.core.resources import JobResources, job_resources
from evalkit.core.workload import CellWorkload, Workload
from evalkit.perf.cost import DEFAULT_PRICES, PriceTable, load_prices
from evalkit.perf.gpus import FormatCost, GpuSpec, ThroughputTable, load_throughput

DEFAULT_GPU_TYPE = "H100"
"""Priced when a job names no GPU type (the study's evaluation GPUs); the estimate says it assumed it."""

ROUND_MIN = 30
"""Time limits are rounded up to this many minutes."""

KV_BYTES = 2
"""bf16 KV cache (vLLM's default kv_cache_dtype=auto for these checkpoints)."""


# ============================================================================================= arithmetic


def prefill_seconds(w: Workload, arch: ArchitectureConfig, fmt: FormatCost, gpu: GpuSpec, gpus: int, u: float) -> float:
    """Seconds the job's GPUs spend on `w`'s prompts."""
    linear = 2.0 * arch.params_b * 1e9 * w.prefill_total
    attention = 2.0 * arch.layers * arch.hidden_size * w.prompt_tokens**2 * w.requests
    return (linear / gpu.peak_flops(fmt.compute) + attention / gpu.peak_flops("bf16")) / (gpus * u)


def decode_seconds(
    w: Workload, arch: ArchitectureConfig, fmt: FormatCost, gpu: GpuSpec, gpus: int, u_bandwidth: float, u: float
) -> float:
    """Seconds the job's GPUs spend generating `w`'s answers (memory- or compute-bound, whichever is slower)."""
    if w.decode_total <= 0:
        return 0.0
    batch = max(1, min(w.concurrency, w.requests))
    weights = arch.params_b * 1e9 * fmt.weight_bytes
    kv_per_token = 2 * arch.layers * arch.kv_heads * arch.head_dim * KV_BYTES
    context = w.prompt_tokens + w.decode_tokens / 2  # mean context over a generated answer
    memory = w.decode_total * (weights / batch + kv_per_token * context) / (gpus * gpu.memory_tb_s * 1e12 * u_bandwidth)
    compute = 2.0 * arch.params_b * 1e9 * w.decode_total / (gpus * gpu.peak_flops(fmt.compute) * u)
    return max(memory, compute)


# ============================================================================================= records


@dataclass(frozen=True)
class RunEstimate:
    """One part of a cell (an lm-eval run, a perf use case)."""

    run: str
    requests: int
    prefill_tokens: float
    decode_tokens: float
    seconds: float
    """Wall seconds on the job's GPUs."""


@dataclass(frozen=True)
class CellEstimate:
    benchmark: str
    runs: tuple[RunEstimate, ...]
    gpus: int
    unknown: tuple[str, ...]
    """Tasks without token facts: the estimate is a lower bound."""
    sources: tuple[str, ...]

    @property
    def prefill_tokens(self) -> float:
        return sum(r.prefill_tokens for r in self.runs)

    @property
    def decode_tokens(self) -> float:
        return sum(r.decode_tokens for r in self.runs)

    @property
    def wall_hours(self) -> float:
        return sum(r.seconds for r in self.runs) / 3600

    @property
    def gpu_hours(self) -> float:
        return self.wall_hours * self.gpus


@dataclass(frozen=True)
class JobEstimate:
    gpu_type: str
    gpu_type_assumed: bool
    """The job names no GPU type: priced as `DEFAULT_GPU_TYPE`."""
    gpus: int
    cells: tuple[CellEstimate, ...]
    startup_min: float
    margin: float
    configured_limit_min: int
    usd_per_hour: float | None
    """The job's GPUs at the price table's list price (None: the type is not priced)."""
    prices: str
    """Which price table (its date)."""
    max_limit_min: int | None = None
    """The cluster's longest limit (`JobResources.max_timeout_min`); None: no cap."""

    @property
    def wall_hours(self) -> float:
        return self.startup_min / 60 + sum(c.wall_hours for c in self.cells)

    @property
    def gpu_hours(self) -> float:
        return self.wall_hours * self.gpus

    @property
    def needed_min(self) -> int:
        """The estimate with its margin, rounded up to `ROUND_MIN`."""
        return ROUND_MIN * math.ceil(self.wall_hours * 60 * self.margin / ROUND_MIN)

    @property
    def time_limit_min(self) -> int:
        limit = max(self.configured_limit_min, self.needed_min)
        return limit if self.max_limit_min is None else min(limit, self.max_limit_min)

    @property
    def attempts(self) -> int:
        """How many runs of `time_limit_min` the job needs: 1 unless the cap cut the limit. Each later attempt starts
        the server again (`startup_min`), which the count includes."""
        if self.needed_min <= self.time_limit_min:
            return 1
        startup = self.startup_min * self.margin
        per_attempt = self.time_limit_min - startup
        if per_attempt <= 0:
            return 0  # the limit does not even hold the start-up: no number of attempts finishes
        return math.ceil((self.needed_min - startup) / per_attempt)

    @property
    def raised(self) -> bool:
        """The estimate raised the configured limit."""
        return self.needed_min > self.configured_limit_min

    @property
    def usd(self) -> float | None:
        return None if self.usd_per_hour is None else self.wall_hours * self.usd_per_hour


# ============================================================================================= estimating


def cell_workload(adapter: str, settings: Mapping[str, Any]) -> CellWorkload | None:
    """The family's own token facts for a cell's settings (`Benchmark.workload`); None for a family without any."""
    from evalkit.benchmarks import get_adapter

    return get_adapter(adapter).workload(settings)


def estimate_cell(
    benchmark: str,
    work: CellWorkload,
    arch: ArchitectureConfig,
    fmt: FormatCost,
    gpu: GpuSpec,
    gpus: int,
    table: ThroughputTable,
) -> CellEstimate:
    runs: dict[str, list[tuple[Workload, float]]] = {}
    for w in work.parts:
        seconds = prefill_seconds(w, arch, fmt, gpu, gpus, table.prefill_utilization) + decode_seconds(
            w, arch, fmt, gpu, gpus, table.decode_bandwidth_utilization, table.prefill_utilization
        )
        runs.setdefault(w.run, []).append((w, seconds))
    return CellEstimate(
        benchmark=benchmark,
        runs=tuple(
            RunEstimate(
                run,
                sum(w.requests for w, _ in parts),
                sum(w.prefill_total for w, _ in parts),
                sum(w.decode_total for w, _ in parts),
                sum(s for _, s in parts),
            )
            for run, parts in runs.items()
        ),
        gpus=gpus,
        unknown=work.unknown,
        sources=tuple(sorted({w.source for w in work.parts})),
    )


def estimate_job(
    cfg: EvalkitConfig,
    cells: Sequence[tuple[str, str, Mapping[str, Any]]],
    resources: JobResources,
    table: ThroughputTable,
    prices: PriceTable,
) -> JobEstimate | str:
    """The job's estimate, or why there is none. `cells`: (benchmark, adapter, settings) of each cell it runs."""
    from evalkit.perf.recommend import hardware_type

    if resources.gpus_per_node == 0:
        return "CPU job: not estimated (the estimate is for GPU jobs)"
    arch = cfg.model.architecture
    if arch is None:
        return f"model {cfg.model.name} has no `architecture` (conf/model/): not estimated"
    gpu_type = resources.gpu_type or DEFAULT_GPU_TYPE
    gpu, fmt = table.gpu(gpu_type), table.format(cfg.format.name)
    estimates = []
    for benchmark, adapter, settings in cells:
        work = cell_workload(adapter, settings)
        if work is None:
            work = CellWorkload((), (f"{benchmark} (adapter {adapter} has no token facts)",))
        estimates.append(estimate_cell(benchmark, work, arch, fmt, gpu, resources.gpus, table))
    priced = hardware_type(gpu_type, "gpu")
    usd = prices.price(priced, resources.gpus) if priced in prices.usd_per_hour else None
    return JobEstimate(
        gpu_type=gpu_type,
        gpu_type_assumed=resources.gpu_type is None,
        gpus=resources.gpus,
        cells=tuple(estimates),
        startup_min=table.startup_min,
        margin=table.margin,
        configured_limit_min=resources.timeout_min,
        usd_per_hour=usd,
        prices=prices.date,
        max_limit_min=resources.max_timeout_min,
    )


def with_time_limit(resources: JobResources, estimate: JobEstimate | str) -> JobResources:
    """`resources` with the time limit the estimate needs (unchanged without an estimate)."""
    if isinstance(estimate, str):
        return resources
    return dataclasses.replace(resources, timeout_min=estimate.time_limit_min)


# ============================================================================================= rendering


def _r(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}") if x else 0.0


def cell_json(c: CellEstimate) -> dict[str, Any]:
    return {
        "prefill_tokens": round(c.prefill_tokens),
        "decode_tokens": round(c.decode_tokens),
        "gpu_hours": _r(c.gpu_hours),
        "wall_hours": _r(c.wall_hours),
        "runs": {
            r.run: {
                "requests": r.requests,
                "prefill_tokens": round(r.prefill_tokens),
                "decode_tokens": round(r.decode_tokens),
                "gpu_hours": _r(r.seconds * c.gpus / 3600),
            }
            for r in c.runs
        },
        "unknown": list(c.unknown),
        "sources": list(c.sources),
    }


def job_json(e: JobEstimate | str) -> dict[str, Any]:
    if isinstance(e, str):
        return {"estimated": False, "why": e}
    return {
        "estimated": True,
        "gpu_type": e.gpu_type,
        "gpu_type_assumed": e.gpu_type_assumed,
        "gpus": e.gpus,
        "startup_min": e.startup_min,
        "gpu_hours": _r(e.gpu_hours),
        "wall_hours": _r(e.wall_hours),
        "margin": e.margin,
        "needed_min": e.needed_min,
        "configured_limit_min": e.configured_limit_min,
        "time_limit_min": e.time_limit_min,
        "max_limit_min": e.max_limit_min,
        "attempts": e.attempts,
        "usd": None if e.usd is None else round(e.usd, 2),
        "prices": e.prices,
    }


def sweep_json(estimates: Sequence[JobEstimate | str]) -> dict[str, Any]:
    done = [e for e in estimates if not isinstance(e, str)]
    return {
        "gpu_hours": _r(sum(e.gpu_hours for e in done)),
        "usd": round(sum(e.usd or 0.0 for e in done), 2),
        "jobs_estimated": len(done),
        "jobs_not_estimated": len(estimates) - len(done),
        "unpriced_jobs": sum(e.usd is None for e in done),
        "assumptions": "conf/hardware/throughput.yaml (utilisations assumed: good to about 2x)",
    }


def render_text(names: Sequence[str], estimates: Sequence[JobEstimate | str]) -> str:
    """The dry run's estimate: per job its GPUs, tokens, GPU-hours and time limit; the sweep's totals."""
    from evalkit.util.text import text_table

    rows = []
    for name, e in zip(names, estimates, strict=True):
        if isinstance(e, str):
            rows.append([name, "-", "-", "-", "-", "-", "-", e])
            continue
        biggest = max(e.cells, key=lambda c: c.gpu_hours, default=None)
        assumed = " (assumed)" if e.gpu_type_assumed else ""
        limit = f"{e.configured_limit_min} -> {e.time_limit_min}" if e.raised else f"{e.time_limit_min}"
        rows.append(
            [
                name,
                f"{e.gpus}x {e.gpu_type}{assumed}",
                f"{sum(c.prefill_tokens for c in e.cells):.3g}",
                f"{sum(c.decode_tokens for c in e.cells):.3g}",
                f"{e.gpu_hours:.3g}",
                f"{e.wall_hours:.3g}",
                limit,
                ""
                if biggest is None
                else f"largest: {biggest.benchmark} ({biggest.gpu_hours:.3g} GPU-h)"
                + (
                    "; no token facts for " + ", ".join(u for c in e.cells for u in c.unknown)
                    if any(c.unknown for c in e.cells)
                    else ""
                ),
            ]
        )
    total = sweep_json(estimates)
    prices = next((e.prices for e in estimates if not isinstance(e, str)), None)
    return "\n".join(
        [
            "cost estimate (tokens from each benchmark's facts; GPU-hours from conf/hardware/throughput.yaml, good to "
            "about 2x; a raised time limit: configured -> needed)",
            text_table(["job", "GPUs", "prefill tok", "decode tok", "GPU-h", "wall h", "limit min", "note"], rows),
            f"sweep: {total['gpu_hours']:.4g} GPU-hours, ${total['usd']:,.0f} at the list prices of {prices}"
            + (f" ({total['unpriced_jobs']} job(s) unpriced)" if total["unpriced_jobs"] else ""),
        ]
    )


def limit_note(name: str, e: JobEstimate | str) -> str:
    """ "<job>: 240 -> 4530 min (ruler 46 GPU-h)" when the estimate raised the job's limit, else ""."""
    if isinstance(e, str) or not e.raised:
        return ""
    biggest = max(e.cells, key=lambda c: c.gpu_hours)
    attempts = f", {e.attempts} attempts: capped at the cluster's {e.max_limit_min} min" if e.attempts > 1 else ""
    return (
        f"{name}: {e.configured_limit_min} -> {e.time_limit_min} min ({biggest.benchmark} "
        f"~{biggest.gpu_hours:.3g} GPU-h on {e.gpus}x {e.gpu_type}{attempts})"
    )


def refusal_hint(notes: Sequence[str]) -> str:
    """What to do when Slurm refuses a job whose time limit the estimate raised (longer than the partition allows)."""
    return (
        "the cost estimate raised the time limit of " + "; ".join(notes) + ". If that exceeds the partition's limit: "
        "run the long benchmark in a sweep of its own (`benchmark=ruler ...`) on more GPUs (model.resources_by_format) "
        "or on a partition with a longer limit (hydra.launcher.partition=...), or drop lengths/tasks it does not need; "
        "or cap the limit at the partition's (model.resources.max_timeout_min=<its MaxTime in minutes>): the job then "
        "runs in attempts, requeued at its limit, resuming where it stopped"
    )


def check_attempts(name: str, e: JobEstimate | str, max_num_timeout: int) -> None:
    """Raise ConfigError when a capped job needs more attempts than its requeues at the limit allow (or when its
    limit does not hold even the server's start-up): it would be given up unfinished, GPUs spent for nothing."""
    if isinstance(e, str) or e.attempts == 1:
        return
    if e.attempts == 0:
        raise ConfigError(
            f"{name}: the time limit of {e.time_limit_min} min (model.resources.max_timeout_min) does not hold the "
            f"server's start-up ({e.startup_min * e.margin:.0f} min with margin)",
            hint="raise model.resources.max_timeout_min to the partition's MaxTime",
        )
    if e.attempts > max_num_timeout + 1:
        raise ConfigError(
            f"{name}: the estimate needs {e.needed_min} min, {e.attempts} attempts of the cluster's "
            f"{e.time_limit_min} min, but hydra.launcher.max_num_timeout={max_num_timeout} requeues it only "
            f"{max_num_timeout} time(s) at its limit",
            hint=f"set hydra.launcher.max_num_timeout={e.attempts - 1} (or more), or run the long benchmark in a sweep "
            "of its own on more GPUs (model.resources_by_format)",
        )


def job_estimates(
    plans: Sequence[Any], table: ThroughputTable | None = None, prices: PriceTable | None = None
) -> list[JobEstimate | str]:
    """The estimate of each planned job (`evalkit.pipeline.plan.JobPlan`), from the default throughput and price
    tables unless given."""
    from evalkit.pipeline.cells import cell_settings

    table = table or load_throughput()
    prices = prices or load_prices(DEFAULT_PRICES)
    out: list[JobEstimate | str] = []
    for plan in plans:
        cfg = plan.cfg
        cells = [(c.benchmark, cfg.benchmarks[c.benchmark].adapter, cell_settings(cfg, c)) for c in plan.cells]
        out.append(estimate_job(cfg, cells, job_resources(cfg.model, cfg.format.name), table, prices))
    return out
