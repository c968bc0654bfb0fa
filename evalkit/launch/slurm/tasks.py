"""What runs inside evalkit's Slurm jobs: an evaluation job, a quantize job, the aggregate job.

submitit pickles these objects at submission and calls them in the job. They carry plain data (override lists,
paths, hashes) and, for an evaluation job, the plan the sweeper made (`JobPlan`), so the job does not plan again.
The job still composes its config from `conf/` with the overrides, exactly as the sweeper composed it, and refuses
to run when its hash differs (conf/ or the code changed while the job queued): the plan then no longer holds.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import submitit

from evalkit.core.errors import ConfigError
from evalkit.launch.slurm.groups import EvalJobSpec, QuantizeSpec
from evalkit.pipeline.plan import JobPlan, check_scoring_runtime, config_hash, typed

log = logging.getLogger("evalkit.slurm")


def _log_to(job_log: Path | None) -> None:
    """evalkit's log lines to the job's stderr (submitit's .err log) and to `job_log`: an evaluation job writes the
    job folder's job.log, as a local run's Hydra logging does, so a cell's log is in one place however it ran."""
    fmt = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if job_log is not None:
        job_log.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(job_log))
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)


def _note_stop_signal() -> None:
    """Mark the job as stopping on SIGTERM, then let submitit's own handler run (it ignores SIGTERM so that a
    preempted job can finish checkpointing; Slurm kills the job KillWait seconds later)."""
    from evalkit.pipeline.job import STOPPING

    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: FrameType | None) -> None:
        STOPPING.set()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)


def _compose_checked(name: str, overrides: tuple[str, ...], expected_hash: str) -> Any:
    from evalkit.pipeline.compose import compose_job

    cfg = compose_job(overrides)
    found = config_hash(cfg)
    if found != expected_hash:
        raise ConfigError(
            f"{name}: the config composed in the job (hash {found}) is not the one validated at submission "
            f"({expected_hash}); conf/ or evalkit changed while the job was queued",
            hint="re-launch the sweep (`evalkit sweep ...`): it validates again and runs the cells still missing",
        )
    return cfg


def _announce(what: str) -> None:
    env = submitit.JobEnvironment()
    log.info("Slurm job %s on %s: %s", env.job_id, env.hostname, what)


class EvalTask(submitit.helpers.Checkpointable):
    """One model x format job: serve its checkpoint once, run its pending cells (evalkit.pipeline.job.run_job).

    Checkpointable, so when Slurm preempts the job or its time limit nears, submitit requeues it (time-outs at most
    `max_num_timeout` times); a requeue by Slurm itself (`scontrol requeue`, a failed node) restarts it the same way.
    Nothing needs saving at that point: every finished cell is already committed to the store, and the restarted
    job, reading the store again, starts at the first unfinished cell.
    """

    def __init__(self, spec: EvalJobSpec, plan: JobPlan, cwd: str) -> None:
        self.spec = spec
        self.plan = plan
        """The job's plan as the sweeper made it at submission. The store may have moved since (a requeue, another
        sweep): the job's per-cell run lock re-reads it before running a cell."""
        self.cwd = cwd
        """The directory the sweep was submitted from: relative paths in the config are relative to it."""

    def __call__(self) -> Any:
        from evalkit.pipeline.job import run_job

        os.chdir(self.cwd)
        job_dir = Path(self.spec.job_dir)
        _log_to(job_dir / "job.log")
        _note_stop_signal()
        _announce(f"{self.spec.name}, cells {', '.join(self.spec.cells)}")
        _compose_checked(self.spec.name, self.spec.overrides, self.spec.config_hash)
        check_scoring_runtime(self.plan.cfg)  # this node may lack what the submitting one had (a sandbox)
        return run_job(self.plan, job_dir, self.spec.config_hash)


class QuantizeTask:
    """Produce the checkpoint an evaluation job waits for (afterok). A failure fails this Slurm job, so Slurm
    cancels the jobs waiting for it, and `evalkit status` shows their cells failed with this job's log."""

    def __init__(self, spec: QuantizeSpec, cwd: str) -> None:
        self.spec = spec
        self.cwd = cwd

    def __call__(self) -> str:
        from evalkit.checkpoints.resolve import resolve_checkpoint

        os.chdir(self.cwd)
        job_dir = Path(self.spec.job_dir)
        _log_to(None)  # the stage logs (convert-*.log, quantize-*.log) go to the job folder
        _announce(f"quantize for {self.spec.name} ({self.spec.checkpoint})")
        cfg = typed(_compose_checked(self.spec.name, self.spec.overrides, self.spec.config_hash))
        path = resolve_checkpoint(cfg, job_dir)
        log.info("checkpoint ready: %s", path)
        return path


class AggregateTask:
    """`evalkit aggregate` over the sweep's results, after every other job of the submission ended."""

    def __init__(self, results: str, baseline: str, cwd: str) -> None:
        self.results = results
        self.baseline = baseline
        self.cwd = cwd

    def __call__(self) -> str:
        from evalkit.compare.recovery import aggregate_results

        os.chdir(self.cwd)
        _log_to(None)
        from evalkit.report import write_sweep_report

        report = aggregate_results(Path(self.results), self.baseline)
        print(report, flush=True)
        print(write_sweep_report(Path(self.results)), flush=True)
        return report
