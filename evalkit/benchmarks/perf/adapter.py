"""The `perf` benchmark adapter: for each use case a synchronous run, a throughput run and a constant-rate sweep
against the job's running server, with vLLM's load generator.

`generate` keeps each run's result file under `<work_dir>/<use case>/`, so a cell killed mid-sweep resumes at its
first missing run; `score` turns the files into rows: one `scores` row per run x measure (suite "perf", none
primary, so `aggregate` and `compare` ignore them) and one `samples` row per run whose `metrics` hold the run's
measures and whose `response` holds the run's description (hardware, vLLM command): the `perf` table's source.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evalkit.benchmarks.base import BenchmarkBase, BenchmarkResult, PlanContext, RunContext
from evalkit.benchmarks.perf import hardware, tokens
from evalkit.benchmarks.perf.loadgen import RunStats, bench_command, parse_result, run_bench
from evalkit.benchmarks.perf.runs import Run, constant_rates, oversaturated
from evalkit.benchmarks.perf.settings import PerfSettings, UseCase, parse_settings
from evalkit.core.datasources import DataSource
from evalkit.core.errors import BenchmarkError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.core.workload import CellWorkload
from evalkit.util.files import write_text_atomic

CONTEXT = "context.json"
LOG = "loadgen.log"
RERUN_MARK = "to rerun by hand:"
HEADER_END = "===== vLLM output follows"


class Perf(BenchmarkBase[PerfSettings]):
    """Adapter `perf` (see the module docstring)."""

    needs_idle_server = True

    def parse_settings(self, settings: Mapping[str, Any]) -> PerfSettings:
        return parse_settings(dict(settings))

    def validate(self, settings: dict[str, Any]) -> None:
        parse_settings(settings)

    def planned_sources(self, plan: PlanContext) -> list[dict[str, Any]]:
        # prompts are random token ids of the served tokenizer, drawn by the load generator from the job's seed
        return [{"dataset": "synthetic prompts (vllm bench serve, random dataset)", "source": "generated"}]

    def workload(self, settings: Mapping[str, Any]) -> CellWorkload:
        return tokens.workload(settings)

    def data_sources(self, ctx: RunContext[PerfSettings]) -> list[DataSource]:
        # prompts are synthetic: random token ids of the served tokenizer, drawn from the job's seed
        return [DataSource(dataset="synthetic prompts (vllm bench serve, random dataset)")]

    def prefetch(self, settings: dict[str, Any]) -> None:
        """Nothing to download: prompts are generated from the served tokenizer."""

    def generate(self, ctx: RunContext[PerfSettings]) -> None:
        if ctx.endpoint is None:
            raise BenchmarkError("perf needs the running server (generate phase)", log=ctx.work_dir)
        s = ctx.settings
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        context = {
            "hardware": asdict(hardware.detect()),
            "vllm_command": server_command(ctx.work_dir.parent / "server.log"),
        }
        write_text_atomic(ctx.work_dir / CONTEXT, json.dumps(context, indent=1) + "\n")
        for case in s.use_cases:
            self._sweep(ctx, s, case)

    def _sweep(self, ctx: RunContext[PerfSettings], s: PerfSettings, case: UseCase) -> None:
        endpoint = ctx.endpoint  # a local, so the check below holds inside `run` too
        assert endpoint is not None
        folder = ctx.work_dir / case.name
        folder.mkdir(exist_ok=True)

        def run(r: Run, n: int) -> RunStats:
            result = folder / f"{r.label}.json"
            if result.exists():  # measured by an earlier, interrupted attempt of this cell
                return parse_result(json.loads(result.read_text()))
            partial = folder / f".{r.label}.json"
            cmd = bench_command(endpoint, case, r, n, s.warmup_requests, partial, ctx.seed)
            stats = run_bench(cmd, partial, ctx.work_dir / LOG, s.timeout_s)
            partial.replace(result)
            return stats

        sync = [run(Run("sync", None, k), s.sync_requests) for k in range(1, s.repeats + 1)]
        peak = [run(Run("throughput", None, k), s.sweep_requests) for k in range(1, s.repeats + 1)]
        one_stream = statistics.median(r.requests_per_s for r in sync)
        saturation = statistics.median(r.requests_per_s for r in peak)
        for rate in constant_rates(one_stream, saturation, s.sweep_rates):
            got = run(Run("constant", rate), s.sweep_requests)
            if oversaturated(rate, got.requests_per_s, s.oversaturation):
                break

    def score(self, ctx: RunContext[PerfSettings]) -> BenchmarkResult:
        s = ctx.settings
        context = json.loads((ctx.work_dir / CONTEXT).read_text())
        scores: list[TaskScore] = []
        samples: list[SampleRecord] = []
        for case in s.use_cases:
            for run, stats in read_runs(ctx.work_dir / case.name):
                task = f"{case.name}/{run.label}"
                measures = run_measures(run, stats)
                scores += [
                    TaskScore(task, m, v, n_samples=stats.requests, higher_is_better=_higher_is_better(m))
                    for m, v in measures.items()
                ]
                description = {
                    "use_case": asdict(case), "mode": run.mode, "rate": run.rate, "repeat": run.repeat, **context
                }  # fmt: skip
                samples.append(
                    SampleRecord(
                        task=task,
                        doc_id=len(samples),
                        prompt_hash=f"{case.name}:{case.prompt_tokens}:{case.output_tokens}:{run.label}",
                        target="",
                        response=json.dumps(description, sort_keys=True),
                        metrics=measures,
                    )
                )
        if not scores:
            raise BenchmarkError("the perf cell has no measured run", log=ctx.work_dir / LOG, hint="re-run the cell")
        return BenchmarkResult(scores, samples)


def _higher_is_better(measure: str) -> bool:
    return measure in ("requests_per_s", "output_tokens_per_s", "requests")


def run_measures(run: Run, stats: RunStats) -> dict[str, float]:
    """A run's measures under the names the `perf` table uses (pure)."""
    return {
        "requests": float(stats.requests),
        "errors": float(stats.errors),
        "duration_s": stats.duration_s,
        "requests_per_s": stats.requests_per_s,
        "output_tokens_per_s": stats.output_tokens_per_s,
        **{f"{k}_ms": v for k, v in stats.latency_ms.items()},
    }


def read_runs(folder: Path) -> list[tuple[Run, RunStats]]:
    """The finished runs of one use case, in sweep order: sync, throughput, then constant rates ascending."""
    runs: list[tuple[Run, RunStats]] = []
    for path in folder.glob("*.json"):
        if path.name.startswith("."):  # a run in progress
            continue
        runs.append((Run.of_label(path.stem), parse_result(json.loads(path.read_text()))))
    order = {"sync": 0, "throughput": 1, "constant": 2}
    return sorted(runs, key=lambda rs: (order[rs[0].mode], rs[0].rate or 0.0, rs[0].repeat))


def server_command(server_log: Path) -> str | None:
    """The vLLM command of the job's server: the last rerun command evalkit wrote into its log's header
    (evalkit.serve: the command, continued over lines with backslashes, up to the "vLLM output follows" line)."""
    if not server_log.exists():
        return None
    lines = server_log.read_text(errors="replace").splitlines()
    marks = [i for i, line in enumerate(lines) if line.endswith(RERUN_MARK)]
    if not marks:
        return None
    command = []
    for line in lines[marks[-1] + 1 :]:
        if line.startswith(HEADER_END):
            break
        command.append(line.rstrip("\\").strip())
    return " ".join(command) or None
