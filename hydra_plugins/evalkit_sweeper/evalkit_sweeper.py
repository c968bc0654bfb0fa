"""The evalkit sweeper: Hydra multirun where benchmarks are grouped per model x format and finished cells skipped.

Hydra requires sweepers to live in the `hydra_plugins` namespace; the logic is in `evalkit.core.grid` /
`evalkit.pipeline.plan`, and this module only hands the planned jobs to the launcher the config names
(`launcher=<name>`, evalkit.launch.registry): the local one runs them here through Hydra's (basic) launcher, the
Slurm one submits them with submitit itself, reading Hydra's launcher config for the site settings (README, "Slurm").
"""

# No `from __future__ import annotations`: Hydra execs plugin modules outside sys.modules, where dataclasses
# cannot resolve string annotations.
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from evalkit.util import progress

log = logging.getLogger(__name__)


@dataclass
class EvalkitSweeperConf:
    _target_: str = "hydra_plugins.evalkit_sweeper.evalkit_sweeper.EvalkitSweeper"
    dry_run: bool = False
    """Print the jobs (and their cells and resources) without launching anything."""
    json: bool = False
    """With dry_run: print the plan as one JSON document on stdout instead (every job, cell, server command, harness
    invocation, data source and, on Slurm, sbatch script; evalkit.launch.plan_json). sbatch --test-only is not run,
    so it renders without a cluster; adapter checks that fail are listed in it and make the exit code 2."""
    wait: bool = False
    """launcher=slurm: after submitting, follow the jobs until all have ended (otherwise the sweep returns as soon
    as Slurm has accepted them)."""


ConfigStore.instance().store(group="hydra/sweeper", name="evalkit", node=EvalkitSweeperConf, provider="evalkit")


class EvalkitSweeper(Sweeper):
    def __init__(self, dry_run: bool = False, wait: bool = False, json: bool = False) -> None:
        self.dry_run = dry_run
        self.json = json
        self.wait = wait
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.plans: list[Any] = []
        self.returns: list[JobReturn] = []
        self._composed: dict[tuple[str, ...], DictConfig] = {}
        self.planned: Any = None
        """The task function given to Hydra's launcher (evalkit.app.PlannedTask): it hands each job its plan."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        from evalkit.app import PlannedTask

        self.hydra_context = hydra_context
        self.config = config
        self.planned = PlannedTask(task_function)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=self.planned, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from evalkit.core import grid
        from evalkit.core.errors import EvalkitError
        from evalkit.core.validate import check_overrides
        from evalkit.pipeline.plan import plan_job
        from evalkit.tables import render_plan

        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        jobs = grid.expand(arguments)
        if self.json:
            return self._print_json(jobs)
        # Compose and validate every job before launching any: a typo fails the sweep before it half-submits.
        try:
            # launcher sizes evalkit replaces per job (also when the Hydra app is run without the evalkit CLI)
            check_overrides(list(self.config.hydra.overrides.hydra))
            self.plans = [plan_job(loader.load_sweep_config(self.config, job)) for job in jobs]
        except EvalkitError as err:
            # Our errors already say what and what next; Hydra would bury them under a traceback.
            print(f"evalkit: error: {err.message}", file=sys.stderr)
            raise SystemExit(2) from err
        print(render_plan(self.plans), flush=True)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        # each job runs its pending cells only, with this plan narrowed to them: the job does not plan again
        todo = [(job, plan.narrowed(plan.pending)) for job, plan in zip(jobs, self.plans, strict=True) if plan.pending]
        try:
            return self._launcher().submit(self._jobs(todo, self.plans), dry_run=self.dry_run, wait=self.wait)
        except EvalkitError as err:
            print(f"evalkit: error: {err.message}", file=sys.stderr)
            raise SystemExit(2) from err

    def _launcher(self) -> Any:
        from evalkit.launch.registry import launcher_of

        assert self.config is not None
        return launcher_of(self.config)

    def _jobs(self, todo: list[tuple[list[str], Any]], plans: list[Any], *, runnable: bool = True) -> Any:
        """The sweep as its launcher takes it (evalkit.launch.base.SweepJobs)."""
        from evalkit.launch.base import SweepJobs

        assert self.config is not None and self.hydra_context is not None
        config, loader = self.config, self.hydra_context.config_loader

        def compose(overrides: list[str]) -> DictConfig:
            # the JSON plan composed these jobs a moment ago (all cells pending: the same overrides, in another order)
            return self._composed.get(tuple(sorted(overrides))) or loader.load_sweep_config(config, overrides)

        return SweepJobs(config, plans, todo, compose, self._run_here if runnable else None)

    def _run_here(self, batch: list[list[str]], plans: list[Any]) -> list[Any]:
        """Run the jobs in this process through Hydra's launcher, each with the plan made for it."""
        from evalkit.app import plan_key

        self.planned.plans.update({plan_key(o): plan for o, plan in zip(batch, plans, strict=True)})
        names = [plan.name for plan in plans]
        # one job per launch call, so the sweep's progress (elapsed, ETA) moves as each job ends
        self.returns = []
        for i, job in progress.track(list(enumerate(batch)), "jobs of the sweep", len(batch), lambda x: names[x[0]]):
            self.returns += self.launcher.launch([job], initial_job_idx=i)
        for ret in self.returns:
            if ret.status is JobStatus.FAILED:
                # A job fails as a whole only when something outside its cells broke; cells record their own errors.
                log.error("job %s failed: %r", ret.overrides, ret._return_value)
        return [self.returns]

    def _print_json(self, jobs: list[list[str]]) -> list[Any]:
        """The dry run as JSON (stdout holds only the document). Planning reads no machine state beyond the results
        store: adapter checks (data files present, ...) run afterwards and are reported in the document, so the plan
        renders on a machine that could not run it, and says why not."""
        import os

        from evalkit.core.errors import EvalkitError
        from evalkit.launch.plan_json import (
            adapter_checks,
            placeholders_of,
            plan_document,
            render_plan_json,
            task_catalog,
        )
        from evalkit.pipeline.plan import plan_job

        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        try:
            for job in jobs:
                self._composed[tuple(sorted(job))] = loader.load_sweep_config(self.config, job)
            self.plans = [plan_job(self._composed[tuple(sorted(job))], check_adapters=False) for job in jobs]
            todo = [
                (job, plan.narrowed(plan.pending)) for job, plan in zip(jobs, self.plans, strict=True) if plan.pending
            ]
            # what the launcher would submit, rendered without a cluster (None: the jobs run here)
            launcher = self._launcher()
            reqs = launcher.render(self._jobs(todo, self.plans, runnable=False))
            checks = adapter_checks(self.plans)
            placeholders = placeholders_of(self.plans, os.getcwd())
            doc = plan_document(
                self.plans,
                reqs,
                placeholders=placeholders,
                catalog=task_catalog(),
                checks=checks,
                launcher=launcher.name,
            )
        except EvalkitError as err:
            print(f"evalkit: error: {err.message}", file=sys.stderr)
            raise SystemExit(2) from err
        sys.stdout.write(render_plan_json(doc))
        sys.stdout.flush()
        if checks:
            for c in checks:
                print(f"evalkit: error: {c['job']} {c['benchmark']}: {c['error']}", file=sys.stderr)
            raise SystemExit(2)
        return []
