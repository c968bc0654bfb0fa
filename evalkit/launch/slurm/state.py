"""Slurm's view of a sweep's jobs: their states, and cancelling them. The I/O edge for `evalkit status` / `cancel`.

squeue answers from slurmctld's memory, the freshest view (sacct lags the controller slightly, and a job just
submitted may not be in the database yet), but only for jobs finished less than MinJobAge ago; sacct answers from
the accounting database for everything older. So: squeue first, sacct for the ids squeue no longer knows. On a
cluster without accounting sacct fails and such ids stay NOT_FOUND.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from evalkit.core.errors import SlurmError
from evalkit.launch.base import JobState
from evalkit.launch.slurm._run import run


def parse_state(text: str) -> JobState:
    """A state as Slurm prints it: sacct says "CANCELLED by 0", squeue "CANCELLED"."""
    word = text.strip().split(" ", 1)[0].rstrip("+")
    try:
        return JobState(word)
    except ValueError as exc:
        raise SlurmError(f"unknown Slurm job state {text!r}", hint="extend evalkit.launch.base.JobState") from exc


# "12", "12_3", and pending array ranges "12_[4-6,9%2]"
_ID_RE = re.compile(r"^(?P<job>\d+)(?:_(?P<task>\d+)|_\[(?P<range>[\d,\-]+)(?:%\d+)?\])?$")


def expand_job_id(text: str) -> list[str]:
    """Job ids a squeue/sacct JobID stands for: "12_[4-6]" -> ["12_4", "12_5", "12_6"]."""
    m = _ID_RE.match(text.strip())
    if m is None:
        raise SlurmError(f"cannot read Slurm job id {text!r}")
    if m["range"] is None:
        return [text.strip()]
    out = []
    for part in m["range"].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{m['job']}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def parse_state_lines(text: str) -> dict[str, JobState]:
    """`<JobID>|<State>` lines (squeue -o '%i|%T', sacct -P -o JobID,State) -> id -> state; a later line wins,
    because sacct lists a requeued job's runs oldest first."""
    states: dict[str, JobState] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        job_id, _, state = line.partition("|")
        if "." in job_id or "+" in job_id:  # steps (12.batch) and heterogeneous components are not jobs
            continue
        for one in expand_job_id(job_id):
            states[one] = parse_state(state)
    return states


def _base(job_id: str) -> str:
    return job_id.split("_", 1)[0]


def _matching(requested: str, states: Mapping[str, JobState]) -> dict[str, JobState]:
    """An array's job id stands for all its tasks; a task id or a plain job id for itself."""
    if requested in states:
        return {requested: states[requested]}
    if "_" in requested:
        return {}
    return {k: v for k, v in states.items() if _base(k) == requested}


def _squeue(ids: list[str]) -> dict[str, JobState]:
    proc = run(["squeue", "--noheader", "--states=all", "--format=%i|%T", "--jobs=" + ",".join(ids)])
    if proc.returncode != 0:
        # squeue exits 1 when *none* of the ids is in slurmctld's memory: that is an answer, not a failure
        if "Invalid job id" in proc.stderr:
            return {}
        raise SlurmError(f"squeue failed: {proc.stderr.strip()}", hint="check that slurmctld is up (`scontrol ping`)")
    return parse_state_lines(proc.stdout)


def _sacct(ids: list[str]) -> dict[str, JobState]:
    argv = ["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State", "--jobs=" + ",".join(ids)]
    proc = run(argv)
    if proc.returncode != 0:
        return {}  # no accounting on this cluster: what squeue did not know stays NOT_FOUND
    return parse_state_lines(proc.stdout)


def job_states(job_ids: Iterable[str]) -> dict[str, JobState]:
    """Slurm's state of each job id ("12", or an array task "12_3").

    An array's own id ("12") is answered by all its tasks ("12_0", "12_1", ...); an id Slurm has no record of maps
    to NOT_FOUND. Raises SlurmError when the controller does not answer.
    """
    wanted = list(dict.fromkeys(str(j) for j in job_ids))
    if not wanted:
        return {}
    for j in wanted:
        expand_job_id(j)  # reject garbage before it reaches a command line
    found: dict[str, JobState] = {}
    live = _squeue(wanted)
    missing = []
    for j in wanted:
        hit = _matching(j, live)
        found.update(hit)
        if not hit:
            missing.append(j)
    if missing:
        old = _sacct(missing)
        for j in missing:
            found.update(_matching(j, old) or {j: JobState.NOT_FOUND})
    return found


def cancel(job_ids: Iterable[str]) -> None:
    """Cancel jobs (an array's id cancels all its tasks). Ids already finished or unknown are not an error."""
    ids = list(dict.fromkeys(str(j) for j in job_ids))
    if not ids:
        return
    for j in ids:
        expand_job_id(j)
    proc = run(["scancel", *ids])
    # scancel reports finished jobs on stderr with exit 0 (or 1 on older releases); anything else is a failure
    benign = ("already completing or completed", "Invalid job id specified")
    errors = [line for line in proc.stderr.splitlines() if line.strip() and not any(b in line for b in benign)]
    if proc.returncode != 0 and errors:
        raise SlurmError(f"scancel {' '.join(ids)} failed: {' '.join(errors)}")
