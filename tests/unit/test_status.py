"""A cell's status from the store and Slurm's job states, and the matrix `evalkit status` prints."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from evalkit.core.cell import Cell
from evalkit.core.enums import CellState
from evalkit.launch.base import JobState
from evalkit.launch.record import Submission, SubmittedJob, SweepRecord
from evalkit.results.store import CellRecord
from evalkit.status import CellStatus, CellView, cell_view, job_ids
from evalkit.tables import render_failures, render_grid_status

SUBMITTED = "2026-11-23T18:00:00+00:00"
BEFORE = datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc)
AFTER = datetime(2026, 11, 23, 18, 30, tzinfo=timezone.utc)


def cell(fmt: str = "fp8", bench: str = "smoke") -> Cell:
    return Cell("demo", fmt, bench, "smoke", "recipe:x", "f" * 64)


QUANT = SubmittedJob("7", "quantize", "demo.fp8", ["demo__fp8__smoke"], [], {}, "/j/demo.fp8", "/q.out", "/q.err")
EVAL = SubmittedJob("8_1", "eval", "demo.fp8", ["demo__fp8__smoke"], ["7"], {}, "/j/demo.fp8", "/e.out", "/e.err")
SUB = Submission(SUBMITTED, [], [QUANT, EVAL])
RECORD = SweepRecord("s", [SUB])
MISSING = CellRecord(CellState.MISSING)


def view(rec: CellRecord, state: JobState | None, quant: JobState = JobState.COMPLETED) -> CellView:
    states = {} if state is None else {"8_1": state, "7": quant}
    return cell_view(cell(), rec, (SUB, EVAL), states, RECORD)


def test_without_slurm_the_store_decides() -> None:
    assert cell_view(cell(), MISSING).status is CellStatus.MISSING
    failed = CellRecord(CellState.FAILED, error="boom", log_path="/l", finished_at=AFTER)
    v = cell_view(cell(), failed)
    assert (v.status, v.error, v.log_path, v.job_id) == (CellStatus.FAILED, "boom", "/l", None)
    assert cell_view(cell(), CellRecord(CellState.STALE)).status is CellStatus.STALE


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (JobState.PENDING, CellStatus.QUEUED),
        (JobState.REQUEUED, CellStatus.QUEUED),
        (JobState.PREEMPTED, CellStatus.QUEUED),
        (JobState.RUNNING, CellStatus.RUNNING),
        (JobState.COMPLETING, CellStatus.RUNNING),
        (JobState.COMPLETED, CellStatus.MISSING),
        (JobState.CANCELLED, CellStatus.MISSING),
        (JobState.NOT_FOUND, CellStatus.MISSING),
        (JobState.TIMEOUT, CellStatus.FAILED),
        (JobState.OUT_OF_MEMORY, CellStatus.FAILED),
        (JobState.FAILED, CellStatus.FAILED),
    ],
)
def test_a_missing_cell_takes_its_jobs_state(state: JobState, expected: CellStatus) -> None:
    v = view(MISSING, state)
    assert v.status is expected and v.job_id == "8_1" and v.job_state is state


def test_a_job_that_died_unrecorded_points_at_its_slurm_log() -> None:
    v = view(MISSING, JobState.OUT_OF_MEMORY)
    assert v.error == "Slurm job 8_1 ended OUT_OF_MEMORY before the cell was recorded" and v.log_path == "/e.err"


def test_cancelled_because_the_quantize_job_failed_is_a_failure_with_its_log() -> None:
    v = view(MISSING, JobState.CANCELLED, quant=JobState.FAILED)
    assert v.status is CellStatus.FAILED
    assert v.error == "the quantize job 7 it waited for ended FAILED" and v.log_path == "/q.err"


def test_done_wins_over_any_job_state() -> None:
    assert view(CellRecord(CellState.DONE, finished_at=BEFORE), JobState.RUNNING).status is CellStatus.DONE


def test_an_old_failure_is_superseded_by_the_job_that_reruns_it() -> None:
    old = CellRecord(CellState.FAILED, error="old", finished_at=BEFORE)
    assert view(old, JobState.RUNNING).status is CellStatus.RUNNING
    assert view(old, JobState.PENDING).status is CellStatus.QUEUED
    new = CellRecord(CellState.FAILED, error="new", log_path="/cell", finished_at=AFTER)
    v = view(new, JobState.RUNNING)  # the job goes on with its other cells; this one failed
    assert (v.status, v.error, v.log_path) == (CellStatus.FAILED, "new", "/cell")


def test_slurm_ids_are_the_cells_jobs_and_their_dependencies() -> None:
    assert job_ids([cell(), cell("bf16")], RECORD) == ["8_1", "7"]


def test_matrix_rows_columns_job_column_and_counts() -> None:
    views = [
        CellView(cell("bf16", "a"), CellStatus.DONE, job_id="8_0", job_state=JobState.RUNNING),
        CellView(cell("bf16", "b"), CellStatus.RUNNING, job_id="8_0", job_state=JobState.RUNNING),
        CellView(cell("fp8", "a"), CellStatus.QUEUED, job_id="8_1", job_state=JobState.PENDING),
        CellView(cell("fp8", "b"), CellStatus.FAILED, error="boom", log_path="/l", job_id="8_1"),
    ]
    assert render_grid_status(views).splitlines() == [
        "model/format  a       b        slurm job",
        "------------  ------  -------  -----------",
        "demo/bf16     done    running  8_0 RUNNING",
        "demo/fp8      queued  FAILED   8_1 PENDING",
        "4 cell(s): 1 done, 1 running, 1 queued, 1 failed",
    ]
    assert render_failures(views).splitlines()[:3] == [
        "FAILED demo__fp8__b (Slurm job 8_1)",
        "  error: boom",
        "  log:   /l",
    ]


def test_matrix_without_slurm_has_no_job_column() -> None:
    out = render_grid_status([CellView(cell("bf16", "a"), CellStatus.MISSING)])
    assert out.splitlines()[0].split() == ["model/format", "a"] and "demo/bf16     -" in out
    assert render_failures([CellView(cell(), CellStatus.DONE)]) == ""
