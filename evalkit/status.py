"""Where each cell of a grid stands: the results store, combined with the launcher's view of the job that runs it
(Slurm's words below: the launcher's job states are Slurm's vocabulary, `evalkit.launch.base.JobState`).

The store is the truth about results (done, failed with its error, stale); Slurm knows what is still to come
(queued, running) and what died without a word to the store (a job killed for memory, a time limit without
requeue, a quantize job that failed so its evaluation job was cancelled). `cell_view` combines the two for one
cell and is pure; `grid_views` gathers the inputs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from evalkit.core.cell import Cell
from evalkit.core.enums import CellState, CellStatus
from evalkit.core.errors import EvalkitError
from evalkit.launch.base import JobState
from evalkit.launch.record import Submission, SubmittedJob, SweepRecord
from evalkit.results.adaptive import AdaptiveRecord
from evalkit.results.store import CellRecord

log = logging.getLogger("evalkit.status")


_RUNNING = frozenset(
    {JobState.RUNNING, JobState.COMPLETING, JobState.CONFIGURING, JobState.STAGE_OUT, JobState.SIGNALING}
)
"""Everything else that has not finished (PENDING, REQUEUED, PREEMPTED, SUSPENDED, ...) will run later: queued."""


@dataclass(frozen=True)
class CellView:
    cell: Cell
    status: CellStatus
    error: str | None = None
    log_path: str | None = None
    job_id: str | None = None
    """The submitted job that runs (or ran) the cell, if the sweep was submitted to a cluster (Slurm)."""
    job_state: JobState | None = None
    adaptive: AdaptiveRecord | None = None
    """An adaptive variant cell's progress and spending (the store's record)."""


def _recorded_by(rec: CellRecord, submission: Submission) -> bool:
    """The store's record is newer than the submission: the submitted job (or a later run) wrote it."""
    if rec.finished_at is None:
        return False
    return rec.finished_at >= datetime.fromisoformat(submission.submitted_at)


def cell_view(
    cell: Cell,
    rec: CellRecord,
    submitted: tuple[Submission, SubmittedJob] | None = None,
    states: Mapping[str, JobState] | None = None,
    record: SweepRecord | None = None,
) -> CellView:
    """The status of one cell from its store record and, when submitted, its latest job and the job states."""
    view = _cell_view(cell, rec, submitted, states, record)
    return dataclasses.replace(view, adaptive=rec.adaptive) if rec.adaptive is not None else view


def _cell_view(
    cell: Cell,
    rec: CellRecord,
    submitted: tuple[Submission, SubmittedJob] | None,
    states: Mapping[str, JobState] | None,
    record: SweepRecord | None,
) -> CellView:
    stored = CellView(cell, CellStatus(rec.state.value), rec.error, rec.log_path)
    if submitted is None:
        return stored
    submission, job = submitted
    state = (states or {}).get(job.job_id, JobState.NOT_FOUND)
    if rec.state is CellState.DONE:
        return CellView(cell, CellStatus.DONE, None, rec.log_path, job.job_id, state)
    if rec.state is CellState.FAILED and _recorded_by(rec, submission):
        return CellView(cell, CellStatus.FAILED, rec.error, rec.log_path, job.job_id, state)
    if state in _RUNNING:
        return CellView(cell, CellStatus.RUNNING, None, job.stdout, job.job_id, state)
    if not state.finished and state is not JobState.NOT_FOUND:
        return CellView(cell, CellStatus.QUEUED, None, job.stdout, job.job_id, state)
    if state is JobState.CANCELLED:
        for dep_id in job.depends_on:
            dep_state = (states or {}).get(dep_id, JobState.NOT_FOUND)
            if dep_state.finished and dep_state is not JobState.COMPLETED:
                dep = record.job(dep_id) if record else None
                error = f"the {dep.kind if dep else ''} job {dep_id} it waited for ended {dep_state.value}"
                return CellView(cell, CellStatus.FAILED, error, dep.stderr if dep else None, job.job_id, state)
        return CellView(cell, stored.status, stored.error, stored.log_path, job.job_id, state)
    if state.finished and state is not JobState.COMPLETED:
        error = f"Slurm job {job.job_id} ended {state.value} before the cell was recorded"
        return CellView(cell, CellStatus.FAILED, error, job.stderr, job.job_id, state)
    return CellView(cell, stored.status, stored.error, stored.log_path, job.job_id, state)


def job_ids(cells: Iterable[Cell], record: SweepRecord) -> list[str]:
    """The job ids whose states the cells' views need: each cell's latest job and what that job waits for."""
    ids: list[str] = []
    for cell in cells:
        found = record.job_for_cell(cell.key)
        if found is not None:
            ids += [found[1].job_id, *found[1].depends_on]
    return list(dict.fromkeys(ids))


def grid_views(cells: Sequence[Cell], records: Sequence[CellRecord], sweep_dir: Path) -> tuple[list[CellView], str]:
    """Views of the cells, with the job states of the launcher that submitted the sweep, if one did; and a note for
    the reader when it could not be asked ("" otherwise)."""
    from evalkit.launch import registry

    found = registry.submitted_by(sweep_dir)
    if found is None:
        return [cell_view(c, r) for c, r in zip(cells, records, strict=True)], ""
    launcher, rec_file = found
    note = ""
    try:
        states = launcher.states(job_ids(cells, rec_file))
    except EvalkitError as err:  # the cluster did not answer (SlurmError on Slurm)
        states = {}
        note = f"{launcher.title} did not answer, job states unknown (store only): {err.what}"
    views = [
        cell_view(c, r, rec_file.job_for_cell(c.key), states, rec_file) for c, r in zip(cells, records, strict=True)
    ]
    return views, note
