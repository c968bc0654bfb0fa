"""One model x format job: resolve the checkpoint, serve it once, run every pending benchmark cell against it.

A cell's failure is recorded in the store (status "failed", error, log path) and does not stop the other cells.
A failure that concerns the whole job (the checkpoint cannot be produced, the server cannot start or dies) is
recorded for every cell still pending. Nothing is committed for a cell until its result is whole.

Two processes may run jobs on one results folder at once (two sweeps started together): before the server starts,
the job takes the run lock of each pending cell (`ResultsStore.claim`) and keeps those it got until it ends. A cell
whose lock another process holds is running there: it is skipped, not failed. A cell that another process committed
between planning and the lock is skipped as done.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from evalkit.benchmarks import Endpoint, RunContext, get_adapter
from evalkit.core.cell import Cell, CellKey
from evalkit.core.config import EvalkitConfig
from evalkit.core.datasources import DataSource, datasets_home, read_manifest, resolve_overrides, sources_json
from evalkit.core.enums import CellState, Phase
from evalkit.core.errors import EvalkitError, ServerError
from evalkit.core.provenance import tool_versions
from evalkit.pipeline.adaptive import AdaptiveSettings, adaptive_settings
from evalkit.pipeline.cell_pool import CellPool
from evalkit.pipeline.cells import cell_dir_name, cell_seed, cell_settings
from evalkit.pipeline.generated import clear_marker, read_marker, write_marker
from evalkit.pipeline.plan import JobPlan, results_dir
from evalkit.results.store import CellRecord, Provenance, ResultsStore, RunInfo, new_run_id
from evalkit.util import progress

log = logging.getLogger("evalkit.pipeline.job")

STOPPING = threading.Event()
"""Set when the job is being stopped from outside: Slurm sends SIGTERM to every process of a job it cancels,
requeues or preempts, so the server and the harness die a moment before the job does. The failures that follow are
consequences of the stop, not results: they are not recorded, and the cells stay pending for the requeued job or
the next sweep. (evalkit.launch.slurm.tasks sets it; a local run is stopped by KeyboardInterrupt, which records
nothing.)"""

SETTLING = threading.Lock()
"""Held from a cell's last look at STOPPING until its result is recorded, and by the job's loop while it lists the
cells it leaves pending: a cell is either recorded before that list is made, or sees STOPPING and records nothing.
(Without it a cell past its look could commit after the loop had said it was left pending.)"""


@dataclass
class JobSummary:
    job: str
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    """Cells already done (at planning, or committed by another process before this job took their run lock)."""
    elsewhere: list[str] = field(default_factory=list)
    """Cells another process was running (their run lock was held): left to it, neither run nor failed here."""
    server_starts: int = 0


def harness_env(cfg: EvalkitConfig) -> dict[str, str]:
    """Environment for every subprocess of the job (server, harnesses): caches in the project, Hub offline."""
    env = {"HF_HOME": str(datasets_home(cfg.paths.cache))}
    if cfg.offline:
        env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return env


PROGRESS = "progress"
"""A cell's folder's subfolder for work kept across an interrupted job (`RunContext.progress_dir`), one folder per
cell id: only the running id's is kept, and none once the cell is committed."""


def run_job(plan: JobPlan, job_dir: Path, cfg_hash: str) -> JobSummary:
    """Run a planned job (`plan_job`, made where the run started; not planned again here) in its phase
    (`cfg.phase`, evalkit.core.enums.Phase). `cfg_hash`: `config_hash` of the job's composed config, recorded in the
    provenance of its rows."""
    cfg = plan.cfg
    phase = cfg.phase
    store = ResultsStore.open_for_writing(results_dir(cfg))
    summary = JobSummary(plan.name, skipped=[c.benchmark for c in plan.cells if c not in plan.pending])
    if not plan.pending:
        log.info("%s: all %d cells complete, nothing to run", plan.name, len(plan.cells))
        return summary
    planned = {c.key: r for c, r in zip(plan.cells, plan.records, strict=True)}
    with contextlib.ExitStack() as held:  # the run locks of this job's cells, released when it ends
        pending = claim_cells(plan.pending, planned, store, held, summary)
        if summary.elsewhere:
            log.info("%s: running in another process, left to it: %s", plan.name, ", ".join(summary.elsewhere))
        if not pending:
            log.info("%s: no cell left to run here", plan.name)
            return summary
        job_dir.mkdir(parents=True, exist_ok=True)
        ctx_of = cell_contexts(cfg, job_dir, pending)  # parses their settings: an error raises before the server
        pending = _without_missing_baselines(pending, cfg, cfg_hash, ctx_of, store, summary)
        if not pending:
            return summary
        if phase == Phase.score:
            _score_generated(pending, cfg, ctx_of, store, summary)
            return summary
        split = phase == Phase.generate or cfg.split_scoring
        log.info("%s: %d cell(s) to run: %s", plan.name, len(pending), ", ".join(c.benchmark for c in pending))
        _serve_and_run(pending, cfg, cfg_hash, job_dir, ctx_of, store, summary, generate_only=split)
        if phase == Phase.all and split:
            _score_generated([c for c in pending if c.benchmark not in summary.failed], cfg, ctx_of, store, summary)
    return summary


def claim_cells(
    cells: list[Cell],
    planned: dict[CellKey, CellRecord],
    store: ResultsStore,
    held: contextlib.ExitStack,
    summary: JobSummary,
) -> list[Cell]:
    """The cells this process runs: those whose run lock it takes (kept in `held`), except any another process
    committed after planning (`planned`: the records the plan saw). The others go to `summary.elsewhere` (lock held
    by another process) or `summary.skipped` (done meanwhile). A forced re-run still re-runs a cell that was done
    at planning: only a newer run than the planned one counts as done meanwhile."""
    mine: list[Cell] = []
    for cell in cells:
        with contextlib.ExitStack() as one:
            if not one.enter_context(store.claim(cell)):
                summary.elsewhere.append(cell.benchmark)
                continue
            now = store.cell_record(cell)
            before = planned.get(cell.key)
            if now.state is CellState.DONE and (before is None or now.run_id != before.run_id):
                log.info("    %s: committed by another process meanwhile (run %s), not re-run", cell.key, now.run_id)
                summary.skipped.append(cell.benchmark)
                continue
            held.enter_context(one.pop_all())
            mine.append(cell)
    return mine


def cell_contexts(
    cfg: EvalkitConfig, job_dir: Path, cells: Iterable[Cell] = ()
) -> Callable[[Cell, Endpoint | None], RunContext[Any]]:
    """Each cell's context. Data overrides come from the cell's own benchmark (demo data reaches demo cells only).

    The settings are parsed once per cell into its family's typed record (`Benchmark.parse_settings`): those of
    `cells` here, so that a settings error raises before the job starts its server; any other cell's on first use.
    (`plan_job` validated the benchmarks' settings already; a replicate's differ in their concurrency.)"""
    settings: dict[CellKey, Any] = {}

    def settings_of(cell: Cell) -> Any:
        if cell.key not in settings:  # two threads may both parse it: the same record, no harm
            adapter = get_adapter(cfg.benchmarks[cell.benchmark].adapter)
            # a baseline replicate's differ (evalkit.pipeline.cells)
            settings[cell.key] = adapter.parse_settings(cell_settings(cfg, cell))
        return settings[cell.key]

    for cell in cells:
        settings_of(cell)
    env = harness_env(cfg)
    try:
        revisions = {k: r.revision for k, r in read_manifest(cfg.paths.cache).items()}
    except EvalkitError as err:  # only the recorded revisions are lost: cells then say "unpinned"
        log.warning("%s", err)
        revisions = {}
    overrides = {
        name: resolve_overrides(cfg.benchmarks[name].data, where=f"benchmarks.{name}.data") for name in cfg.benchmark
    }

    def ctx_of(cell: Cell, endpoint: Endpoint | None) -> RunContext[Any]:
        return RunContext(
            endpoint=endpoint,
            work_dir=job_dir / cell_dir_name(cell),
            settings=settings_of(cell),
            data_overrides=overrides[cell.benchmark],
            env=env,
            seed=cell_seed(cfg, cell),
            hub_revisions=revisions,
            progress_dir=job_dir / cell_dir_name(cell) / PROGRESS / cell.fingerprint[:16],
        )

    return ctx_of


@dataclass(frozen=True)
class CellData:
    """A cell's data sources as its rows in `scores` record them (ok and failed rows alike)."""

    sources: str
    """`evalkit.core.datasources.sources_json` of what the cell reads."""
    overridden: bool
    """A demo/smoke benchmark, or local copies of Hub datasets: `aggregate` marks the cell."""


def cell_data(cfg: EvalkitConfig, cell: Cell, ctx: RunContext[Any]) -> CellData:
    """Ask the cell's adapter what it reads. Provenance never fails a cell: what cannot be resolved says so."""
    bench = cfg.benchmarks[cell.benchmark]
    try:
        sources = get_adapter(bench.adapter).data_sources(ctx)
    except Exception as err:
        log.warning("    %s: data sources not resolved: %s", cell.benchmark, err)
        sources = [DataSource(dataset=f"unresolved ({type(err).__name__}: {err})")]
        sources += [DataSource(dataset=d, split=s, path=p) for d, f in ctx.data_overrides.items() for s, p in f.items()]
    return CellData(sources_json(sources), bench.demo or bool(bench.data))


def _serve_and_run(
    cells: list[Cell],
    cfg: EvalkitConfig,
    cfg_hash: str,
    job_dir: Path,
    ctx_of: Callable[[Cell, Endpoint | None], RunContext[Any]],
    store: ResultsStore,
    summary: JobSummary,
    generate_only: bool,
) -> None:
    from evalkit.checkpoints.resolve import resolve_checkpoint
    from evalkit.core.resources import job_resources
    from evalkit.serve import VLLMServer
    from evalkit.serve.ray_cluster import RayCluster

    def fail_all(failed: list[Cell], err: EvalkitError, log_path: str) -> None:
        if STOPPING.is_set():
            log.warning("%s: stopped from outside; %d cell(s) left pending, not failed", summary.job, len(failed))
            return
        now = datetime.now(timezone.utc)
        prov = Provenance(*tool_versions(vllm_version="unknown"), checkpoint_path="", config_hash=cfg_hash)
        for cell in failed:
            data = cell_data(cfg, cell, ctx_of(cell, None))
            run = RunInfo(new_run_id(), now, now, log_path, prov, data.sources, data.overridden)
            store.record_failure(cell, run, err.message)
            summary.failed[cell.benchmark] = err.message

    try:
        checkpoint = resolve_checkpoint(cfg, job_dir)
    except EvalkitError as err:
        log.error("%s: checkpoint unavailable:\n  %s", summary.job, err)
        fail_all(cells, err, str(err.log or job_dir / "job.log"))
        return
    remaining = list(cells)
    server_log = job_dir / "server.log"
    resources = job_resources(cfg.model, cfg.format.name)
    # Over several nodes, vLLM runs on a Ray cluster of the allocation's nodes, started by this (only) task
    ray = (
        RayCluster(nodes=resources.nodes, gpus=resources.gpus, worker_log=job_dir / "ray-workers.log")
        if resources.nodes > 1
        else None
    )
    try:
        with VLLMServer(
            cfg.server,
            checkpoint,
            log_path=server_log,
            extra_args=cfg.format.vllm_args,
            tensor_parallel_size=cfg.model.tp_by_format.get(cfg.format.name, cfg.model.tensor_parallel_size),
            pipeline_parallel_size=resources.pipeline_parallel_size,
            max_model_len=cfg.model.max_model_len,
            env=harness_env(cfg),
            work_dir=job_dir,
            ray_cluster=ray,
        ) as server:
            summary.server_starts += 1
            prov = Provenance(
                *tool_versions(vllm_version=server.vllm_version()),
                checkpoint_path=str(checkpoint),
                config_hash=cfg_hash,
                # what a CPU server chose for server.dtype=cpu_native (float32 without native bf16), else as configured
                served_dtype=server.dtype.dtype if server.dtype is not None else cfg.server.dtype,
            )
            run_cells(cells, cfg, server, ctx_of, store, prov, summary, generate_only, remaining)
    except ServerError as err:
        log.error("%s: server failed:\n  %s", summary.job, err)
        fail_all(remaining, err, str(err.log or server_log))
    except (KeyboardInterrupt, SystemExit):
        if not STOPPING.is_set():  # Ctrl-C before any cell started (the server was starting): run_cells did not say
            STOPPING.set()
            for cell in remaining:
                log.warning("    %s interrupted by the job's stop; left pending", cell.benchmark)
        raise


class LiveServer(Protocol):
    """What the cells need of the job's server (`evalkit.serve.VLLMServer`)."""

    @property
    def endpoint(self) -> Endpoint: ...

    def check_alive(self) -> None: ...


def run_cells(
    cells: list[Cell],
    cfg: EvalkitConfig,
    server: LiveServer,
    ctx_of: Callable[[Cell, Endpoint | None], RunContext[Any]],
    store: ResultsStore,
    prov: Provenance,
    summary: JobSummary,
    generate_only: bool = False,
    remaining: list[Cell] | None = None,
) -> None:
    """Run the cells against a running server, `cfg.cell_concurrency` at once, cells that measure the server alone
    and last. Each finished cell (committed or failed) leaves `remaining`. Raises ServerError when the server fails:
    the caller records it for the cells still in `remaining`."""
    lock = threading.Lock()
    settled: set[CellKey] = set()
    """Cells committed, recorded failed or generated: every other cell this call was given is left pending."""

    def run_cell(cell: Cell) -> None:
        ctx = ctx_of(cell, server.endpoint)
        data = cell_data(cfg, cell, ctx)
        adapter = cfg.benchmarks[cell.benchmark].adapter

        def settle() -> None:
            with lock:
                settled.add(cell.key)

        adaptive = adaptive_settings(cfg, cell.benchmark, cell.format)
        if adaptive is None:
            _attempt(cell, adapter, ctx, data, store, prov, cfg.retries, summary, generate_only, settle=settle)
        elif _attempt_adaptive(cell, adapter, ctx, data, store, prov, cfg, adaptive, summary):
            settle()
        if remaining is not None:
            with lock:
                remaining.remove(cell)

    alone = [c for c in cells if get_adapter(cfg.benchmarks[c.benchmark].adapter).needs_idle_server]
    ordered = [c for c in cells if c not in alone] + alone

    def when_it_may_start(pool: CellPool) -> Iterator[Cell]:
        """Each cell once it may start (so its progress line says when it really starts)."""
        for cell in ordered:
            if cell in alone:
                pool.drain()  # it measures the server: nothing else may run meanwhile
            else:
                pool.wait_for_slot()
            yield cell

    def left_pending() -> None:
        """One line per cell this job leaves pending, logged by the job's loop itself the moment it stops (a worker
        thread may never get to say it: the process can be killed first)."""
        with SETTLING, lock:
            STOPPING.set()  # (already set, unless Ctrl-C landed here first): no cell records anything after this
            left = [c for c in cells if c.key not in settled]
        for cell in left:
            log.warning("    %s interrupted by the job's stop; left pending", cell.benchmark)

    try:
        with CellPool(cfg.cell_concurrency, on_interrupt=STOPPING.set) as pool:
            starts = when_it_may_start(pool)
            expected = last_run_seconds(store, cfg.model.name, cells, cfg.cell_concurrency)
            what = f"cells of {summary.job}"
            for cell in progress.track(starts, what, len(cells), lambda c: c.benchmark, expected_s=expected):
                if STOPPING.is_set():
                    left_pending()
                    return  # leaving the pool waits for the running cells, which record nothing now
                server.check_alive()
                if cell in alone:
                    run_cell(cell)
                else:
                    pool.submit(run_cell, cell)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, wherever the loop was (also while the pool waited)
        STOPPING.set()  # the cells still running record nothing
        left_pending()
        stop_harnesses(server)
        raise
    if STOPPING.is_set():
        left_pending()


def stop_harnesses(server: LiveServer) -> None:
    """After Ctrl-C: stop the running cells' harnesses (each its own process group, out of the terminal's reach)
    before the server. Left running, they hold connections that vLLM's graceful shutdown waits for (it needed SIGKILL
    after `server.shutdown_timeout_s`), and keep the process alive after the interrupt, as its worker threads wait
    for them."""
    from evalkit.util.procs import child_groups, stop_groups

    server_group = getattr(server, "pid", None)
    stop_groups([g for g in child_groups() if g != server_group], timeout_s=10.0)


def last_run_seconds(store: ResultsStore, model: str, cells: list[Cell], concurrency: int) -> float | None:
    """What the cells' benchmarks took when they last ran for this model (any format: a demo job's first cell gets an
    ETA from the baseline's job), shared by the cells run at once; None when one of them never ran. Only a progress
    line depends on it, so any problem reading the store gives None."""
    try:
        cols = ["model", "benchmark", "status", "run_id", "started_at", "finished_at"]
        df = store.read_scores(required=cols)[cols]
        runs = df[(df.model == model) & (df.status == "ok")].drop_duplicates("run_id").sort_values("finished_at")
        last = runs.groupby("benchmark").last()
        seconds = (last.finished_at - last.started_at).dt.total_seconds()
        return float(sum(seconds[c.benchmark] for c in cells)) / max(1, concurrency)
    except Exception:  # a missing history (KeyError) or an unreadable store: no estimate
        return None


def _without_missing_baselines(
    cells: list[Cell],
    cfg: EvalkitConfig,
    cfg_hash: str,
    ctx_of: Callable[[Cell, Endpoint | None], RunContext[Any]],
    store: ResultsStore,
    summary: JobSummary,
) -> list[Cell]:
    """Adaptive variant cells run their baseline's committed documents: one whose baseline cell is not committed is
    recorded failed with what to run first, before any server starts for it."""
    from evalkit.pipeline.adaptive_run import read_baseline

    keep = []
    for cell in cells:
        if adaptive_settings(cfg, cell.benchmark, cell.format) is None:
            keep.append(cell)
            continue
        try:
            read_baseline(store, cell, cfg.baseline_format)
        except EvalkitError as err:
            log.error("    %s: %s\n      %s", cell.benchmark, err.message, err.hint)
            now = datetime.now(timezone.utc)
            prov = Provenance(*tool_versions(vllm_version="unknown"), checkpoint_path="", config_hash=cfg_hash)
            data = cell_data(cfg, cell, ctx_of(cell, None))
            run = RunInfo(new_run_id(), now, now, str(ctx_of(cell, None).work_dir), prov, data.sources, data.overridden)
            store.record_failure(cell, run, f"{err.message} ({err.hint})")
            summary.failed[cell.benchmark] = err.message
            continue
        keep.append(cell)
    return keep


def _score_generated(
    cells: list[Cell],
    cfg: EvalkitConfig,
    ctx_of: Callable[[Cell, Endpoint | None], RunContext[Any]],
    store: ResultsStore,
    summary: JobSummary,
) -> None:
    """The CPU step: score cells whose generation finished (their folder has the marker for this cell id)."""
    for cell in cells:
        ctx = ctx_of(cell, None)
        marker = read_marker(ctx.work_dir, cell)
        if marker is None:
            log.info("    %s: not generated yet, nothing to score", cell.benchmark)
            continue
        prov = Provenance(**marker["provenance"])
        log.info("    scoring %s (no server)", cell.benchmark)
        data = cell_data(cfg, cell, ctx)
        adapter = cfg.benchmarks[cell.benchmark].adapter
        _attempt(cell, adapter, ctx, data, store, prov, cfg.retries, summary, score_only=True)


def _attempt(
    cell: Cell,
    adapter_name: str,
    ctx: RunContext[Any],
    data: CellData,
    store: ResultsStore,
    prov: Provenance,
    retries: int,
    summary: JobSummary,
    generate_only: bool = False,
    score_only: bool = False,
    settle: Callable[[], None] = lambda: None,
) -> bool:
    """Run one phase (or both) of a cell with retries; commit on success, record the failure otherwise; `settle` is
    called once the outcome is recorded, under SETTLING. False: the job is stopping (`STOPPING`) and the cell was left
    pending, with nothing recorded."""
    adapter = get_adapter(adapter_name)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    _discard_progress(ctx, keep_own=True)  # another id's work (settings changed since) must never be resumed

    def once() -> bool:
        started = datetime.now(timezone.utc)
        t0 = time.monotonic()
        if not score_only:
            clear_marker(ctx.work_dir)
            adapter.generate(ctx)
            if generate_only:
                write_marker(ctx.work_dir, cell, prov, started)
                settle()
                log.info(
                    "    %s generated in %.0fs; scoring follows without the server",
                    cell.benchmark,
                    time.monotonic() - t0,
                )
                return True
        result = adapter.score(ctx)
        with SETTLING:
            if STOPPING.is_set():  # the job's loop has said this cell is left pending: keep to it
                return False
            run = RunInfo(
                new_run_id(),
                started,
                datetime.now(timezone.utc),
                str(ctx.work_dir),
                prov,
                data.sources,
                data.overridden,
            )
            store.commit_cell(cell, run, result.scores, result.samples)
            settle()
        _discard_progress(ctx)  # committed: a forced re-run must run again, not resume
        log.info(
            "    %s done in %.0fs: %d scores, %d samples",
            cell.benchmark,
            time.monotonic() - t0,
            len(result.scores),
            len(result.samples),
        )
        summary.done.append(cell.benchmark)
        return True

    return _with_retries(
        cell,
        ctx,
        retries,
        once,
        lambda error, where: _record_failure(cell, error, where, prov, data, store, summary, settle),
    )


def _with_retries(
    cell: Cell, ctx: RunContext[Any], retries: int, once: Callable[[], bool], fail: Callable[[str, str], bool]
) -> bool:
    """`once()` up to `retries + 1` times, until it returns; `fail(error, log_path)` (`_record_failure`) when every
    attempt raised. A server failure is not the cell's: it propagates at once (the caller records it for every cell
    still pending). An attempt that fails while the job is stopping is a consequence of the stop, not a result: False
    at once, nothing recorded, the job's loop says the cell is left pending."""
    error, log_path = "", str(ctx.work_dir)
    for attempt in range(retries + 1):
        try:
            return once()
        except ServerError:
            raise
        except EvalkitError as err:
            error, log_path = err.message, str(err.log or ctx.work_dir)
        except Exception as err:  # an adapter bug must not take the other cells down
            error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}"
        if STOPPING.is_set():
            return False
        log.warning("    %s attempt %d/%d failed: %s", cell.benchmark, attempt + 1, retries + 1, error)
    return fail(error, log_path)


def _record_failure(
    cell: Cell,
    error: str,
    log_path: str,
    prov: Provenance,
    data: CellData,
    store: ResultsStore,
    summary: JobSummary,
    settle: Callable[[], None] = lambda: None,
) -> bool:
    """Record the cell failed after its last attempt, unless the job is stopping (then nothing: False). Under
    SETTLING, as a commit is, so the job's loop never lists a cell as left pending that then records a failure."""
    now = datetime.now(timezone.utc)
    run = RunInfo(new_run_id(), now, now, log_path, prov, data.sources, data.overridden)
    with SETTLING:
        if STOPPING.is_set():
            return False
        store.record_failure(cell, run, error)
        settle()
    summary.failed[cell.benchmark] = error
    return True


def _attempt_adaptive(
    cell: Cell,
    adapter_name: str,
    ctx: RunContext[Any],
    data: CellData,
    store: ResultsStore,
    prov: Provenance,
    cfg: EvalkitConfig,
    settings: AdaptiveSettings,
    summary: JobSummary,
) -> bool:
    """An adaptive variant cell (evalkit/pipeline/adaptive_run.py): its chunks until the rule stops, each chunk
    committed; a retry resumes at the next chunk. A failure is recorded without touching committed chunks. False:
    the job is stopping and the cell was left as it was (pending or partial)."""
    from evalkit.pipeline.adaptive_run import run_adaptive_cell

    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    _discard_progress(ctx, keep_own=True)

    def once() -> bool:
        now = datetime.now(timezone.utc)
        run = RunInfo("", now, now, str(ctx.work_dir), prov, data.sources, data.overridden)
        record = run_adaptive_cell(cell, adapter_name, ctx, settings, cfg.baseline_format, store, run, STOPPING)
        if STOPPING.is_set():
            return False
        if record is not None and record.finished:
            _discard_progress(ctx)
            summary.done.append(cell.benchmark)
        return True

    return _with_retries(
        cell,
        ctx,
        cfg.retries,
        once,
        lambda error, where: _record_failure(cell, error, where, prov, data, store, summary),
    )


def _discard_progress(ctx: RunContext[Any], keep_own: bool = False) -> None:
    """Remove the cell's kept work: every cell id's, or every other id's (`keep_own`)."""
    if ctx.progress_dir is None or not ctx.progress_dir.parent.is_dir():
        return
    if not keep_own:
        shutil.rmtree(ctx.progress_dir.parent, ignore_errors=True)
        return
    for folder in ctx.progress_dir.parent.iterdir():
        if folder != ctx.progress_dir:
            shutil.rmtree(folder, ignore_errors=True)
