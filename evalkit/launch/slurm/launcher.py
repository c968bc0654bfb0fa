"""The Slurm launcher behind the `Launcher` protocol: each method hands over to the module that does the work.
Those modules import submitit, so they are imported when a method runs, not when the launcher is looked up."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evalkit.core.checks import Check
from evalkit.launch import record
from evalkit.launch.base import JobState, Launcher, Request, SweepJobs
from evalkit.launch.record import SweepRecord


class SlurmLauncher:
    name = "slurm"
    title = "Slurm"
    gpus_from_allocation = True
    """A login node has no GPU; the jobs' GPU requests are checked by `sbatch --test-only` at submission."""

    def render(self, sweep: SweepJobs) -> list[Request] | None:
        """The sbatch requests, in submission order. No in-flight query and no sbatch --test-only: it renders
        without a cluster."""
        from evalkit.launch.slurm.submission import requests, slurm_submission

        if not sweep.todo:
            return []
        slurm_sweep, plan, _ = slurm_submission(sweep, sweep.todo)
        return requests(plan, slurm_sweep)

    def checks(self, requests: Sequence[Request]) -> None:
        from evalkit.launch.slurm.submission import check

        check(requests)

    def submit(self, sweep: SweepJobs, *, dry_run: bool, wait: bool) -> list[Any]:
        from evalkit.launch.slurm.submission import submit_sweep

        submit_sweep(sweep, dry_run=dry_run, wait=wait)
        return []

    def submitted(self, sweep_dir: Path) -> SweepRecord | None:
        return record.read(sweep_dir)

    def states(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        from evalkit.launch.slurm.state import job_states

        return job_states(job_ids)

    def cancel(self, job_ids: Iterable[str]) -> None:
        from evalkit.launch.slurm.state import cancel

        cancel(job_ids)

    def node_checks(self) -> list[Check]:
        answered, detail = sinfo_answers()
        if answered:
            return [Check("Slurm", True, detail)]
        return [
            Check("Slurm", False, detail, "run on a node of the cluster where `sinfo` answers, or use launcher=local")
        ]


def sinfo_answers() -> tuple[bool, str]:
    """Does the controller answer this node (`sinfo`)? With the partitions it lists."""
    if not shutil.which("sinfo"):
        return False, "sinfo not found"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"sinfo failed: {exc}"
    if out.returncode != 0:
        return False, f"sinfo exited {out.returncode}: {out.stderr.strip()[:200]}"
    return True, f"partitions: {' '.join(out.stdout.split()[::2]) or '(none)'}"


LAUNCHER: Launcher = SlurmLauncher()
