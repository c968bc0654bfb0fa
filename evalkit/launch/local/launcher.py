"""The local launcher behind the `Launcher` protocol. Nothing is submitted, so nothing is recorded: there are no
job ids to ask about or to cancel (a local run is stopped with Ctrl-C, and the store says where each cell stands)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evalkit.core.checks import Check
from evalkit.core.errors import ConfigError
from evalkit.launch.base import JobState, Launcher, Request, SweepJobs, job_overrides
from evalkit.launch.record import SweepRecord


class LocalLauncher:
    name = "local"
    title = "local"
    gpus_from_allocation = False
    """The jobs use this node's GPUs."""

    def render(self, sweep: SweepJobs) -> list[Request] | None:
        return None  # nothing is submitted: the JSON plan's jobs carry no submission

    def checks(self, requests: Sequence[Request]) -> None:
        """Nothing to ask: `evalkit doctor` checks this node, and each cell checks its own runtime."""

    def submit(self, sweep: SweepJobs, *, dry_run: bool, wait: bool) -> list[Any]:
        """Run the pending jobs here (`wait` changes nothing: they have ended when this returns). A dry run prints
        what the GPU jobs would cost."""
        if dry_run and sweep.todo:
            from evalkit.launch.estimate import job_estimates, render_text

            estimates = job_estimates([plan for _, plan in sweep.todo])
            if any(not isinstance(e, str) for e in estimates):  # GPU jobs: what they will cost
                print(render_text([plan.name for _, plan in sweep.todo], estimates), flush=True)
        if dry_run or not sweep.todo:
            return []
        if sweep.run_here is None:
            raise ConfigError("the local launcher was given no way to run jobs", hint="run it from the evalkit sweeper")
        batch = [job_overrides(job, plan.cells) for job, plan in sweep.todo]
        return sweep.run_here(batch, [plan for _, plan in sweep.todo])

    def submitted(self, sweep_dir: Path) -> SweepRecord | None:
        return None

    def states(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        return {str(j): JobState.NOT_FOUND for j in job_ids}

    def cancel(self, job_ids: Iterable[str]) -> None:
        """Nothing was submitted, so nothing to cancel."""

    def node_checks(self) -> list[Check]:
        return []  # the doctor's own rows (GPUs, versions, paths) are this node's


LAUNCHER: Launcher = LocalLauncher()
