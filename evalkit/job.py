"""One model x format job: resolve the checkpoint, serve it once, run every pending benchmark cell against it.

A cell's failure is recorded in the store (status "failed", error, log path) and does not stop the other cells.
A failure that concerns the whole job (the checkpoint cannot be produced, the server cannot start or dies) is
recorded for every cell still pending. Nothing is committed for a cell until its result is whole.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig

from evalkit.benchmarks import RunContext, get_adapter
from evalkit.cell import Cell
from evalkit.config import EvalkitConfig
from evalkit.errors import EvalkitError, ServerError
from evalkit.plan import config_hash, plan_job
from evalkit.provenance import tool_versions
from evalkit.store import Provenance, ResultsStore, RunInfo, new_run_id

log = logging.getLogger("evalkit.job")


@dataclass
class JobSummary:
    job: str
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    server_starts: int = 0


def harness_env(cfg: EvalkitConfig) -> dict[str, str]:
    """Environment for every subprocess of the job (server, harnesses): caches in the project, Hub offline."""
    cache = Path(cfg.paths.cache).resolve()
    env = {"HF_HOME": os.environ.get("HF_HOME", str(cache / "huggingface"))}
    if cfg.offline:
        env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return env


def run_job(dcfg: DictConfig, job_dir: Path) -> JobSummary:
    from evalkit.checkpoints.resolve import resolve_checkpoint
    from evalkit.offline import resolve_overrides
    from evalkit.serve import VLLMServer

    store = ResultsStore(Path(dcfg.paths.results).resolve())
    plan = plan_job(dcfg, store)
    cfg = plan.cfg
    summary = JobSummary(plan.name, skipped=[c.benchmark for c in plan.cells if c not in plan.pending])
    if not plan.pending:
        log.info("%s: all %d cells complete, nothing to run", plan.name, len(plan.cells))
        return summary
    job_dir.mkdir(parents=True, exist_ok=True)
    env = harness_env(cfg)
    job_log = str(job_dir / "job.log")
    log.info("%s: %d cell(s) to run: %s", plan.name, len(plan.pending), ", ".join(c.benchmark for c in plan.pending))
    cfg_hash = config_hash(dcfg)

    def fail_all(cells: list[Cell], err: EvalkitError | str, log_path: str) -> None:
        now = datetime.now(timezone.utc)
        prov = Provenance(*tool_versions(vllm_version="unknown"), checkpoint_path="", config_hash=cfg_hash)
        for cell in cells:
            store.record_failure(cell, RunInfo(new_run_id(), now, now, log_path, prov), str(err))
            summary.failed[cell.benchmark] = str(err)

    try:
        checkpoint = resolve_checkpoint(cfg, job_dir)
    except EvalkitError as err:
        log.error("%s: checkpoint unavailable:\n  %s", plan.name, err)
        fail_all(plan.pending, err, str(err.log or job_log))
        return summary

    remaining = list(plan.pending)
    server_log = job_dir / "server.log"
    try:
        with VLLMServer(
            cfg.server,
            checkpoint,
            log_path=server_log,
            extra_args=cfg.format.vllm_args,
            tensor_parallel_size=cfg.model.tp_by_format.get(cfg.format.name, cfg.model.tensor_parallel_size),
            max_model_len=cfg.model.max_model_len,
            env=env,
            work_dir=job_dir,
        ) as server:
            summary.server_starts += 1
            prov = Provenance(
                *tool_versions(vllm_version=server.vllm_version()),
                checkpoint_path=str(checkpoint),
                config_hash=cfg_hash,
            )
            overrides = resolve_overrides(cfg.data)
            for i, cell in enumerate(plan.pending, 1):
                log.info("[%d/%d] %s: %s", i, len(plan.pending), plan.name, cell.benchmark)
                server.check_alive()
                bench = cfg.benchmarks[cell.benchmark]
                ctx = RunContext(
                    endpoint=server.endpoint,
                    work_dir=job_dir / cell.benchmark,
                    settings=dict(bench.settings),
                    data_overrides=overrides,
                    env=env,
                    seed=cfg.seed,
                )
                _run_cell(cell, bench.adapter, ctx, store, prov, cfg.retries, summary)
                remaining.remove(cell)
    except ServerError as err:
        log.error("%s: server failed:\n  %s", plan.name, err)
        fail_all(remaining, err, str(err.log or server_log))
    return summary


def _run_cell(
    cell: Cell,
    adapter_name: str,
    ctx: RunContext,
    store: ResultsStore,
    prov: Provenance,
    retries: int,
    summary: JobSummary,
) -> None:
    adapter = get_adapter(adapter_name)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    error, log_path = "", str(ctx.work_dir)
    for attempt in range(retries + 1):
        started = datetime.now(timezone.utc)
        t0 = time.monotonic()
        try:
            adapter.generate(ctx)
            result = adapter.score(ctx)
            run = RunInfo(new_run_id(), started, datetime.now(timezone.utc), log_path, prov)
            store.commit_cell(cell, run, result.scores, result.samples)
            log.info(
                "    %s done in %.0fs: %d scores, %d samples",
                cell.benchmark,
                time.monotonic() - t0,
                len(result.scores),
                len(result.samples),
            )
            summary.done.append(cell.benchmark)
            return
        except ServerError:
            raise
        except EvalkitError as err:
            error, log_path = err.message, str(err.log or ctx.work_dir)
        except Exception as err:  # an adapter bug must not take the other cells down
            error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}"
        log.warning("    %s attempt %d/%d failed: %s", cell.benchmark, attempt + 1, retries + 1, error)
    now = datetime.now(timezone.utc)
    store.record_failure(cell, RunInfo(new_run_id(), now, now, log_path, prov), error)
    summary.failed[cell.benchmark] = error
