"""An adaptive variant cell, run chunk by chunk (the I/O shell around evalkit/pipeline/adaptive.py).

The baseline's cell must be committed first: the chunks are planned from its documents. Within one sweep the
baseline and its variants are separate jobs; a local sweep runs them in the grid's order (list the baseline format
first, as the default grid does), and on Slurm a variant job that starts before its baseline's cell is committed
refuses with a message saying so (the cell is recorded failed and the next sweep runs it).

Each chunk is one harness run of the chunk's documents (the adapter's `RunContext.samples`) in its own folder
`<cell>/chunk-<i>/`, and then one commit of the cell's rows so far (the chunks' samples, scores merged over them)
with the rule's state in the scores file's metadata (evalkit/results/adaptive.py): a job killed at any point loses
at most the chunk it was running, and the next run resumes at the first chunk not committed. Within a chunk the
lm-eval adapter's own per-run resume applies (its progress folder is per chunk).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from evalkit.benchmarks import RunContext, get_adapter
from evalkit.core.cell import Cell, CellKey
from evalkit.core.enums import CellState
from evalkit.core.errors import BenchmarkError, ConfigError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.pipeline.adaptive import (
    AdaptiveSettings,
    AdaptiveStatus,
    committed_results,
    merge_scores,
    plan_chunks,
    status,
    suite_documents,
)
from evalkit.results.adaptive import AdaptiveRecord
from evalkit.results.store import ResultsStore, RunInfo, cell_rows, new_run_id

log = logging.getLogger("evalkit.pipeline.job")


@dataclasses.dataclass(frozen=True)
class Baseline:
    scores: pd.DataFrame
    samples: pd.DataFrame
    run_id: str
    seconds: float


def read_baseline(store: ResultsStore, cell: Cell, baseline_format: str) -> Baseline:
    """The baseline's committed cell of the same model and benchmark, or a refusal that says what to run first."""
    key = CellKey(cell.model, baseline_format, cell.benchmark)
    found = store.read_cell(key)
    ok = found is not None and bool((found[0]["status"] == "ok").all()) and len(found[1]) > 0
    if not ok or found is None:
        raise BenchmarkError(
            f"adaptive mode: {cell.key} runs the documents of its baseline's cell {key}, which has not been "
            "committed (with samples) yet",
            hint=f"run the baseline first (evalkit sweep model={cell.model} format={baseline_format} "
            f"benchmark={cell.benchmark}), then this sweep again; in one sweep, list the baseline format first",
        )
    scores, samples = found
    first = scores.iloc[0]
    seconds = (pd.Timestamp(first["finished_at"]) - pd.Timestamp(first["started_at"])).total_seconds()
    return Baseline(scores, samples, str(first["run_id"]), float(seconds))


def run_adaptive_cell(
    cell: Cell,
    adapter_name: str,
    ctx: RunContext[Any],
    settings: AdaptiveSettings,
    baseline_format: str,
    store: ResultsStore,
    run_info: RunInfo,
    stopping: object,
) -> AdaptiveRecord | None:
    """Run the cell's chunks from the first one not committed until the rule stops or the documents run out; each
    chunk commits. Returns the last record (None when the job was stopped before a chunk committed). `run_info`:
    the provenance, log and data of the cell's rows (run id and times are set per chunk). `stopping`: the job's
    stop event (a chunk that ends after it is set commits nothing)."""
    adapter = get_adapter(adapter_name)
    if not adapter.chunks:
        raise ConfigError(
            f"adaptive mode: {cell.benchmark}'s adapter {adapter_name!r} cannot run a chunk of its documents",
            hint=f"turn adaptive mode off for it (benchmarks.{cell.benchmark}.adaptive.enabled=false)",
        )
    base = read_baseline(store, cell, baseline_format)
    rec = store.cell_record(cell)
    prev_scores: list[TaskScore] = []
    prev_samples: list[SampleRecord] = []
    seconds = 0.0
    if rec.state is CellState.PARTIAL and rec.adaptive is not None and rec.adaptive.baseline_run == base.run_id:
        committed = store.read_cell(cell.key)
        if committed is not None:
            prev_scores, prev_samples = committed_results(*committed)
            seconds = rec.adaptive.seconds
    elif rec.state is CellState.PARTIAL:
        log.info("    %s: the baseline was re-run since its chunks were planned: starting over", cell.key)

    def decide(
        scores: list[TaskScore], samples: list[SampleRecord], run: RunInfo
    ) -> tuple[AdaptiveStatus, pd.DataFrame]:
        v_scores, v_samples = cell_rows(cell, run, scores, samples)
        base_docs, var_docs = suite_documents(
            pd.concat([base.scores, v_scores], ignore_index=True),
            pd.concat([base.samples, v_samples], ignore_index=True),
            baseline_format,
            cell.format,
        )
        return status(plan, base_docs, var_docs, settings), base_docs

    base_docs, _ = suite_documents(base.scores, base.samples, baseline_format, cell.format)
    plan = plan_chunks(base_docs, settings)
    now, _ = decide(prev_scores, prev_samples, run_info)
    n_chunks = len(plan.ends)
    if now.chunks_done:
        log.info(
            "    %s: resuming adaptive run at chunk %d/%d (%d documents committed)",
            cell.benchmark,
            now.chunks_done + 1,
            n_chunks,
            now.documents,
        )
    last: AdaptiveRecord | None = None
    for index in range(now.chunks_done, n_chunks):
        name = f"chunk-{index + 1:04d}"
        chunk_ctx = dataclasses.replace(
            ctx,
            work_dir=ctx.work_dir / name,
            samples=plan.chunk_samples(index),
            progress_dir=None if ctx.progress_dir is None else ctx.progress_dir / name,
        )
        chunk_ctx.work_dir.mkdir(parents=True, exist_ok=True)
        started = datetime.now(timezone.utc)
        t0 = time.monotonic()
        adapter.generate(chunk_ctx)
        result = adapter.score(chunk_ctx)
        seconds += time.monotonic() - t0
        if getattr(stopping, "is_set", lambda: False)():
            return last
        scores = merge_scores([prev_scores, result.scores])
        samples = [*prev_samples, *result.samples]
        run = dataclasses.replace(
            run_info, run_id=new_run_id(), started_at=started, finished_at=datetime.now(timezone.utc)
        )
        st, _ = decide(scores, samples, run)
        if st.chunks_done != index + 1:
            raise BenchmarkError(
                f"adaptive chunk {index + 1} of {cell.key} did not return every document it was given "
                f"({st.documents} of the first {int(plan.ends[index])} documents committed)",
                log=chunk_ctx.work_dir,
                hint="look at the chunk's lm-eval log; rerun the sweep to try the chunk again",
            )
        finished = st.decision.stops or st.complete
        last = AdaptiveRecord(
            baseline_run=base.run_id,
            chunk=settings.chunk,
            chunks_done=st.chunks_done,
            chunks_total=n_chunks,
            documents=st.documents,
            total=st.total,
            decision=st.decision.value,
            finished=finished,
            stopped_early=st.stopped_early,
            lower=st.lower,
            upper=st.upper,
            margin_points=settings.margin_points,
            alpha=settings.alpha,
            seconds=round(seconds, 3),
            baseline_seconds=round(base.seconds, 3),
            why=st.why,
        )
        store.commit_cell(cell, run, scores, samples, adaptive=last)
        log.info("    %s chunk %d/%d committed: %s", cell.benchmark, index + 1, n_chunks, last.line())
        prev_scores, prev_samples = scores, samples
        if finished:
            break
    return last
