"""`jobs/<sweep>/slurm_jobs.json`: which Slurm jobs a sweep submitted, for which cells. Read by `evalkit status` and
`evalkit cancel`; written once per submission.

Each `evalkit sweep launcher=slurm` appends one Submission, so the file is the sweep's history: a re-launch after a
cancel adds the jobs that run the missing cells, and a cell's current job is the one of the latest submission that
lists it. Written atomically (temporary file, fsync, rename) under an advisory lock, so a reader never sees half a
file and two submissions of the same sweep cannot lose each other's entries.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalkit.core.cell import CellKey
from evalkit.core.errors import SlurmError
from evalkit.util import locks
from evalkit.util.files import write_text_atomic

FILENAME = "slurm_jobs.json"
FORMAT_VERSION = 1

JobKind = Literal["eval", "quantize", "aggregate"]


@dataclass(frozen=True)
class SubmittedJob:
    """One Slurm job (or array task) of a submission."""

    job_id: str
    """"12" for a plain job, "12_3" for task 3 of array 12: the id squeue, sacct and scancel take."""
    kind: JobKind
    """eval: one model x format job running its cells; quantize: produces a checkpoint the eval job waits for;
    aggregate: `evalkit aggregate` after every other job of the submission."""
    name: str
    """"<model>.<format>" (eval, quantize) or "aggregate"."""
    cells: list[str] = field(default_factory=list)
    """Keys of the cells it runs (eval) or produces the checkpoint for (quantize), encoded (`CellKey.encode`)."""
    depends_on: list[str] = field(default_factory=list)
    """Job ids it waits for (sbatch --dependency)."""
    resources: dict[str, int] = field(default_factory=dict)
    """What it asked for (JobResources fields)."""
    job_dir: str = ""
    """The model x format folder: config, job.log, server.log, and links to this job's Slurm logs."""
    stdout: str = ""
    """Its Slurm stdout (a link in job_dir to submitit's log, so a person finds it beside the cell's other logs)."""
    stderr: str = ""


@dataclass(frozen=True)
class Submission:
    submitted_at: str
    """ISO time (UTC) just before the first sbatch; a store record finished after it belongs to one of its jobs."""
    overrides: list[str]
    """The sweep's overrides, to show what was asked."""
    jobs: list[SubmittedJob]


@dataclass(frozen=True)
class SweepRecord:
    sweep: str
    submissions: list[Submission] = field(default_factory=list)

    def job_for_cell(self, key: CellKey) -> tuple[Submission, SubmittedJob] | None:
        """The latest eval job that runs the cell, with its submission (None: never submitted to Slurm)."""
        encoded = key.encode()
        for sub in reversed(self.submissions):
            for job in sub.jobs:
                if job.kind == "eval" and encoded in job.cells:
                    return sub, job
        return None

    def job(self, job_id: str) -> SubmittedJob | None:
        for sub in reversed(self.submissions):
            for job in sub.jobs:
                if job.job_id == job_id:
                    return job
        return None

    def jobs_for(self, keys: set[CellKey] | None) -> list[SubmittedJob]:
        """Jobs concerned by these cells (None: all of them): the eval jobs running any of them, the quantize jobs
        only they wait for, and the aggregate jobs when they are all of the sweep's cells."""
        jobs = [job for sub in self.submissions for job in sub.jobs]
        cells = None if keys is None else {k.encode() for k in keys}
        if cells is None or {c for job in jobs if job.kind == "eval" for c in job.cells} <= cells:
            return jobs
        return [
            job
            for job in jobs
            if (job.kind == "eval" and cells & set(job.cells)) or (job.kind == "quantize" and set(job.cells) <= cells)
        ]

    def job_ids(self) -> list[str]:
        return [job.job_id for sub in self.submissions for job in sub.jobs]

    def with_submission(self, submission: Submission) -> SweepRecord:
        return SweepRecord(self.sweep, [*self.submissions, submission])


def to_json(record: SweepRecord) -> str:
    return json.dumps({"version": FORMAT_VERSION, **asdict(record)}, indent=2) + "\n"


def from_json(text: str, *, where: str = FILENAME) -> SweepRecord:
    try:
        data: dict[str, Any] = json.loads(text)
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
        submissions = [
            Submission(
                submitted_at=s["submitted_at"],
                overrides=list(s["overrides"]),
                jobs=[SubmittedJob(**j) for j in s["jobs"]],
            )
            for s in data["submissions"]
        ]
        return SweepRecord(str(data["sweep"]), submissions)
    except (ValueError, KeyError, TypeError) as exc:
        raise SlurmError(
            f"{where} is not a record of submitted jobs ({type(exc).__name__}: {exc})",
            hint="move it aside: `evalkit status` then shows the store only; cancel its jobs by id with scancel",
        ) from exc


def path_of(sweep_dir: Path) -> Path:
    return sweep_dir / FILENAME


def read(sweep_dir: Path) -> SweepRecord | None:
    """The sweep's record, or None when nothing of it was submitted to Slurm."""
    path = path_of(sweep_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return from_json(text, where=str(path))


def append(sweep_dir: Path, sweep: str, submission: Submission) -> SweepRecord:
    """Add a submission to the sweep's record (created if missing), atomically; returns the new record."""
    path = path_of(sweep_dir)
    with locks.exclusive(sweep_dir / f".{FILENAME}.lock"):
        record = (read(sweep_dir) or SweepRecord(sweep)).with_submission(submission)
        write_text_atomic(path, to_json(record))
    return record
