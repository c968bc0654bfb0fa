"""A job's cell loop (`run_cells`) against a running server: cells overlap up to `cell_concurrency`, a cell that
measures the server runs alone and last, and each cell's progress line is logged when it starts. The adapter is a
registered one (ADAPTERS is the registry a config names adapters from) that sleeps instead of talking to a server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from unit.pipeline.test_replicate_cells import plan

import evalkit.pipeline.job as job
from evalkit.benchmarks import ADAPTERS, BenchmarkBase, BenchmarkResult, Endpoint, RunContext
from evalkit.core.datasources import DataSource
from evalkit.core.records import TaskScore
from evalkit.pipeline.job import JobSummary, run_cells
from evalkit.results.store import Provenance, ResultsStore

SPANS: list[tuple[str, float, float]] = []
LOCK = threading.Lock()


class Sleepy(BenchmarkBase[dict[str, Any]]):
    """Occupies the server for a moment; records when."""

    def parse_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        return dict(settings)  # its settings are the mapping itself: it reads none of them

    def validate(self, settings: dict[str, Any]) -> None: ...

    def generate(self, ctx: RunContext[dict[str, Any]]) -> None:
        t0 = time.monotonic()
        time.sleep(0.3)
        with LOCK:
            SPANS.append((ctx.work_dir.name, t0, time.monotonic()))

    def score(self, ctx: RunContext[dict[str, Any]]) -> BenchmarkResult:
        return BenchmarkResult([TaskScore("t", "acc", 50.0, n_samples=1, is_primary=True)], [])

    def data_sources(self, ctx: RunContext[dict[str, Any]]) -> list[DataSource]:
        return []

    def prefetch(self, settings: dict[str, Any]) -> None: ...


class SleepyMeasure(Sleepy):
    """Measures the server: runs alone, after the others."""

    needs_idle_server = True


def contexts(tmp_path: Path) -> Callable[[Any, Endpoint | None], RunContext[dict[str, Any]]]:
    """Each cell's context: its own folder, and the settings of a family that reads none."""

    def ctx_of(cell: Any, endpoint: Endpoint | None) -> RunContext[dict[str, Any]]:
        return RunContext(endpoint, tmp_path / "jobs" / cell.benchmark, Sleepy().parse_settings({}))

    return ctx_of


class Server:
    endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", model="m", tokenizer="t", max_model_len=2048)

    def check_alive(self) -> None: ...


BENCHES = ["smoke_generate", "smoke_loglikelihood", "demo_leaderboard_v1", "demo_leaderboard_v2"]


def test_cells_overlap_up_to_the_limit_and_a_server_measurement_runs_alone_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(ADAPTERS, "sleepy", f"{__name__}:Sleepy")
    monkeypatch.setitem(ADAPTERS, "sleepy_measure", f"{__name__}:SleepyMeasure")
    p = plan(tmp_path, benchmarks=",".join(BENCHES))
    cfg = replace(p.cfg, cell_concurrency=2)
    for name in BENCHES:  # the first benchmark measures the server; listed first, it must still run last
        cfg.benchmarks[name].adapter = "sleepy_measure" if name == BENCHES[0] else "sleepy"
    SPANS.clear()

    ctx_of = contexts(tmp_path)

    summary = JobSummary("j")
    prov = Provenance("0", "c", "l", "v", checkpoint_path="", config_hash="h")
    remaining = list(p.cells)
    store = ResultsStore.open_for_writing(tmp_path / "r")
    with caplog.at_level(logging.INFO, logger="evalkit.progress"):
        t0 = time.monotonic()
        run_cells(p.cells, cfg, Server(), ctx_of, store, prov, summary, False, remaining)
    assert sorted(summary.done) == sorted(BENCHES) and remaining == []
    spans = {name: (start - t0, end - t0) for name, start, end in SPANS}
    shared = [spans[b] for b in BENCHES[1:]]
    peak = max(sum(s <= t < e for s, e in shared) for t, _ in shared)
    assert peak == 2  # overlapped, never more than two
    measure_start, _ = spans[BENCHES[0]]
    assert all(measure_start >= e for _, e in shared)  # alone, after every other cell ended
    # the third cell's progress line comes when it starts (a slot freed), not while it waits
    third = next(r for r in caplog.records if "[3/4]" in r.getMessage())
    assert third.created - (t0 - time.monotonic() + time.time()) >= 0.25


def test_first_cell_has_an_eta_once_the_model_has_run_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(ADAPTERS, "sleepy", f"{__name__}:Sleepy")
    benches = BENCHES[1:3]
    p = plan(tmp_path, benchmarks=",".join(benches))
    cfg = replace(p.cfg, cell_concurrency=1)
    for name in benches:
        cfg.benchmarks[name].adapter = "sleepy"

    ctx_of = contexts(tmp_path)

    prov = Provenance("0", "c", "l", "v", checkpoint_path="", config_hash="h")
    store = ResultsStore.open_for_writing(tmp_path / "r")
    firsts = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="evalkit.progress"):
            run_cells(p.cells, cfg, Server(), ctx_of, store, prov, JobSummary("j"), False, list(p.cells))
        firsts.append(next(r.getMessage() for r in caplog.records if "[1/2]" in r.getMessage()))
    assert firsts[0].endswith("eta ?)")  # nothing ran before
    assert firsts[1].endswith("eta ~1s)")  # two cells of ~0.3 s each last time


class Stopped(Sleepy):
    """The first cell's harness sees its server go away as the job is stopped (Slurm's SIGTERM sets STOPPING)."""

    def generate(self, ctx: RunContext[dict[str, Any]]) -> None:
        if ctx.work_dir.name == BENCHES[1]:
            job.STOPPING.set()
            raise RuntimeError("connection refused: the server was stopped")
        super().generate(ctx)


class Interrupting(Server):
    """Ctrl-C reaches the job's main thread while its second cell runs (KeyboardInterrupt where it waits)."""

    calls = 0

    def check_alive(self) -> None:
        Interrupting.calls += 1
        if Interrupting.calls == 3:
            raise KeyboardInterrupt


@pytest.mark.parametrize("how", ["stopping", "ctrl-c"])
def test_the_job_loop_itself_logs_each_cell_it_leaves_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """Issue 19 item 9 and the Slurm requeue test's flake: the "left pending" line came from the worker thread, which
    the process could be killed before; and Ctrl-C left the cells pending without saying which."""
    monkeypatch.setitem(ADAPTERS, "stopped", f"{__name__}:Stopped")
    monkeypatch.setattr(job, "STOPPING", threading.Event())
    p = plan(tmp_path, benchmarks=",".join(BENCHES))
    cfg = replace(p.cfg, cell_concurrency=1 if how == "stopping" else 2)
    for name in BENCHES:
        cfg.benchmarks[name].adapter = "stopped" if how == "stopping" else "sleepy"
    monkeypatch.setitem(ADAPTERS, "sleepy", f"{__name__}:Sleepy")
    Interrupting.calls = 0

    ctx_of = contexts(tmp_path)

    summary = JobSummary("j")
    prov = Provenance("0", "c", "l", "v", checkpoint_path="", config_hash="h")
    store = ResultsStore.open_for_writing(tmp_path / "r")
    server = Server() if how == "stopping" else Interrupting()
    with caplog.at_level(logging.WARNING, logger="evalkit.pipeline.job"):
        if how == "stopping":
            run_cells(p.cells, cfg, server, ctx_of, store, prov, summary)
        else:
            with pytest.raises(KeyboardInterrupt):
                run_cells(p.cells, cfg, server, ctx_of, store, prov, summary)
    lines = [r for r in caplog.records if "left pending" in r.getMessage()]
    pending = [r.getMessage().split()[0] for r in lines]
    # one line per cell not committed, from the job's loop (the main thread), not from a worker
    committed = set(summary.done)
    assert sorted(pending) == sorted(b for b in BENCHES if b not in committed)
    assert len(pending) >= 2 and all(r.threadName == "MainThread" for r in lines)
    assert not summary.failed  # nothing recorded as failed: a stop is not a result
    assert set(store.read_scores()["status"]) <= {"ok"}  # (a cell still running may finish whole and commit)


class Flaky(Sleepy):
    """Fails its first attempt per cell (an adapter bug or a harness hiccup), then succeeds; `broken` cells never do."""

    attempts: ClassVar[dict[str, int]] = {}  # shared by every instance get_adapter makes
    broken: ClassVar[set[str]] = {BENCHES[2]}

    def generate(self, ctx: RunContext[dict[str, Any]]) -> None:
        name = ctx.work_dir.name
        Flaky.attempts[name] = Flaky.attempts.get(name, 0) + 1
        if name in Flaky.broken or Flaky.attempts[name] == 1:
            raise RuntimeError(f"boom {Flaky.attempts[name]}")


def test_a_cell_is_retried_then_committed_or_recorded_failed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One retry loop for every kind of cell (`job._with_retries`): an attempt that raises is tried again up to
    `retries` times; a cell whose every attempt fails gets one failed row with its last error, the others commit."""
    monkeypatch.setitem(ADAPTERS, "flaky", f"{__name__}:Flaky")
    monkeypatch.setattr(job, "STOPPING", threading.Event())
    Flaky.attempts = {}
    benches = BENCHES[1:3]
    p = plan(tmp_path, benchmarks=",".join(benches))
    cfg = replace(p.cfg, cell_concurrency=1, retries=2)
    for name in benches:
        cfg.benchmarks[name].adapter = "flaky"

    ctx_of = contexts(tmp_path)

    summary = JobSummary("j")
    prov = Provenance("0", "c", "l", "v", checkpoint_path="", config_hash="h")
    store = ResultsStore.open_for_writing(tmp_path / "r")
    remaining = list(p.cells)
    run_cells(p.cells, cfg, Server(), ctx_of, store, prov, summary, False, remaining)
    assert Flaky.attempts == {benches[0]: 2, benches[1]: 3} and remaining == []
    assert summary.done == [benches[0]] and list(summary.failed) == [benches[1]]
    assert "RuntimeError: boom 3" in summary.failed[benches[1]]
    rows = store.read_scores()
    assert rows.groupby("benchmark")["status"].agg(set).to_dict() == {benches[0]: {"ok"}, benches[1]: {"failed"}}
    assert rows.groupby("benchmark")["run_id"].nunique().to_dict() == {benches[0]: 1, benches[1]: 1}
