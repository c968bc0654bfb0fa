"""What every launcher offers the rest of evalkit: the `Launcher` protocol and the records it speaks in.

A launcher decides where a sweep's jobs run (here, in this process; on Slurm, as sbatch jobs; on another cluster,
as that cluster's jobs). The sweeper, `evalkit status`, `evalkit cancel` and `evalkit doctor` talk to it only
through this protocol (`evalkit.launch.registry` finds the one a config names), so none of them knows which one
runs: as submitit's executors each fill a few hooks of one `Executor`, each launcher fills the methods below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evalkit.core import grid
from evalkit.core.cell import Cell
from evalkit.core.checks import Check

if TYPE_CHECKING:  # the protocol's vocabulary, kept light to import: launchers are looked up on every command
    from omegaconf import DictConfig

    from evalkit.launch.record import SweepRecord
    from evalkit.pipeline.plan import JobPlan


class JobState(str, Enum):
    """The state of a submitted job, in Slurm's words (`squeue -o %T`, `sacct -o State`), the richest vocabulary of
    the launchers; another cluster maps its own states onto these. NOT_FOUND: the launcher has no record of the id."""

    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    PREEMPTED = "PREEMPTED"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    REQUEUED = "REQUEUED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    REQUEUE_FED = "REQUEUE_FED"
    RESIZING = "RESIZING"
    REVOKED = "REVOKED"
    SIGNALING = "SIGNALING"
    SPECIAL_EXIT = "SPECIAL_EXIT"
    STAGE_OUT = "STAGE_OUT"
    STOPPED = "STOPPED"
    SUSPENDED = "SUSPENDED"
    NOT_FOUND = "NOT_FOUND"
    """The launcher knows nothing of the id (purged, another cluster, or never submitted)."""

    @property
    def finished(self) -> bool:
        """The job will not run again by itself (a requeued or preempted job still may)."""
        return self in _FINISHED


_FINISHED = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.NODE_FAIL,
        JobState.OUT_OF_MEMORY,
        JobState.BOOT_FAIL,
        JobState.DEADLINE,
        JobState.SPECIAL_EXIT,
        JobState.REVOKED,
    }
)


@dataclass(frozen=True)
class Request:
    """One submission a launcher would make (a job array or a single job) and what it submits, rendered without a
    cluster: what a dry run prints, what `checks` asks the cluster about, what the JSON plan shows."""

    kind: str
    """"eval", "quantize" or "aggregate"."""
    names: list[str]
    """The jobs in it: "<model>.<format>" (one array task each), or "aggregate"."""
    resources: str
    """What it asks for, in words ("4 CPU, 12 GB, no GPU, 120 min")."""
    script: str
    """What the cluster is handed (an sbatch script, a manifest), without dependencies on jobs not submitted yet."""
    after: str = ""
    """What it waits for, in words ("quantize <model>.<format>", "all")."""
    limit_notes: tuple[str, ...] = ()
    """Jobs in it whose time limit the cost estimate raised, and why (`EvalJobSpec.limit_note`)."""


@dataclass(frozen=True)
class SweepJobs:
    """What the sweeper hands a launcher: the sweep's config and the jobs that have cells left to run."""

    config: DictConfig
    """The sweep's config with Hydra's node (`hydra.launcher`: the site settings; `hydra.sweep.dir`: jobs/<sweep>)."""
    plans: Sequence[JobPlan]
    """Every job's plan, pending or not (the sweep-level facts: results path, baseline, quantize resources)."""
    todo: Sequence[tuple[list[str], JobPlan]]
    """Each job with pending cells: its overrides as the grid expanded them, and its plan narrowed to those cells
    (`job_overrides` makes the overrides that run only them)."""
    compose: Callable[[list[str]], DictConfig]
    """A job's config from its overrides, exactly as the job will compose it (its hash is checked there)."""
    run_here: Callable[[list[list[str]], Sequence[JobPlan]], list[Any]] | None = None
    """Run jobs (their overrides, their plans) in this process through Hydra's launcher, returning Hydra's job
    returns; None where nothing may run (the JSON dry run)."""


def job_overrides(job: Sequence[str], cells: Iterable[Cell]) -> list[str]:
    """The job's overrides, running only these cells (its pending ones)."""
    kept = [o for o in job if not o.startswith(f"{grid.GROUPED_KEY}=")]
    # a benchmark once, though a baseline replicate is a cell of the same benchmark: the job adds its replicates
    return [*kept, grid.grouped_override(list(dict.fromkeys(c.benchmark for c in cells)))]


class Launcher(Protocol):
    """Where a sweep's jobs run. One instance per launcher package (`evalkit.launch.<name>.LAUNCHER`), stateless."""

    name: str
    """The config's name for it: `launcher=<name>` selects conf/launcher/<name>.yaml."""
    title: str
    """How messages name it ("Slurm")."""
    gpus_from_allocation: bool
    """The jobs get their GPUs from the launcher's allocation, not from the node the sweep is started on (doctor)."""

    def render(self, sweep: SweepJobs) -> list[Request] | None:
        """What would be submitted, rendered without a cluster and without submitting. None: nothing is
        submitted, the jobs run in this process."""
        ...

    def checks(self, requests: Sequence[Request]) -> None:
        """Ask the cluster whether it accepts every request, before anything is submitted; raises SubmissionError
        with the cluster's own message at the first refusal."""
        ...

    def submit(self, sweep: SweepJobs, *, dry_run: bool, wait: bool) -> list[Any]:
        """Run or submit the sweep's pending jobs (`dry_run`: check and print, run nothing; `wait`: follow submitted
        jobs until they end). Returns what Hydra's sweep returns (the local jobs' returns, [] when submitted)."""
        ...

    def submitted(self, sweep_dir: Path) -> SweepRecord | None:
        """The jobs this launcher submitted for the sweep (jobs/<sweep>), None when it submitted none."""
        ...

    def states(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        """The state of each job id; an id the launcher has no record of maps to NOT_FOUND. Raises an EvalkitError
        when the cluster does not answer."""
        ...

    def cancel(self, job_ids: Iterable[str]) -> None:
        """Cancel the jobs; ids already finished or unknown are not an error."""
        ...

    def node_checks(self) -> list[Check]:
        """Can this node use the launcher (the cluster answers)? For `evalkit doctor`."""
        ...
