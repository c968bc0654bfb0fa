"""The evalkit sweeper: Hydra multirun where benchmarks are grouped per model x format and finished cells skipped.

Hydra requires sweepers to live in the `hydra_plugins` namespace; the logic is in `evalkit.core.grid` /
`evalkit.pipeline.plan`,
this module only connects it to a launcher: Hydra's (basic) locally; on Slurm (`launcher=slurm`) evalkit.launch
submits with submitit itself, reading Hydra's launcher config for the site settings (see README, "Slurm").
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
        from evalkit.app import plan_key
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
        if self._slurm():
            try:
                self._submit_to_slurm(todo, sweep_dir)
            except EvalkitError as err:
                print(f"evalkit: error: {err.message}", file=sys.stderr)
                raise SystemExit(2) from err
            return []
        if self.dry_run or not todo:
            return []
        batch = [_job_overrides(job, plan.cells) for job, plan in todo]
        self.planned.plans.update({plan_key(o): plan for o, (_, plan) in zip(batch, todo, strict=True)})
        names = [plan.name for _, plan in todo]
        # one job per launch call, so the sweep's progress (elapsed, ETA) moves as each job ends
        self.returns = []
        for i, job in progress.track(list(enumerate(batch)), "jobs of the sweep", len(batch), lambda x: names[x[0]]):
            self.returns += self.launcher.launch([job], initial_job_idx=i)
        for ret in self.returns:
            if ret.status is JobStatus.FAILED:
                # A job fails as a whole only when something outside its cells broke; cells record their own errors.
                log.error("job %s failed: %r", ret.overrides, ret._return_value)
        return [self.returns]

    def _slurm(self) -> bool:
        from evalkit.launch.sweep import is_slurm

        assert self.config is not None
        return is_slurm(self.config.hydra.launcher)

    def _submit_to_slurm(self, todo: list[tuple[list[str], Any]], sweep_dir: Path) -> None:
        from evalkit.launch.sweep import in_flight, launch

        # a cell whose job is still queued or running is not submitted again: two jobs would write it
        busy = in_flight(sweep_dir.resolve(), [c.key for _, plan in todo for c in plan.cells])
        if busy:
            print(
                f"Slurm: {len(busy)} cell(s) already queued or running, not submitted again: "
                + ", ".join(f"{key} (job {job_id})" for key, job_id in busy.items()),
                flush=True,
            )
        todo = [
            (job, plan.narrowed(left)) for job, plan in todo if (left := [c for c in plan.cells if c.key not in busy])
        ]
        if not todo:
            print("Slurm: nothing to submit.", flush=True)
            return
        sweep, submission, compose, job_plans = self._slurm_submission(todo)
        launch(sweep, submission, compose, job_plans, dry_run=self.dry_run, wait=self.wait)

    def _slurm_submission(self, todo: list[tuple[list[str], Any]]) -> tuple[Any, Any, Any, dict[str, Any]]:
        """What submitting these jobs' cells means: the sweep's site facts, the submission plan (quantize jobs,
        arrays per resources, aggregate), the composer each Slurm job's config comes from, and each job's plan
        (by job name) for its task to carry."""
        import os

        from evalkit.launch.groups import plan_submission
        from evalkit.launch.resources import AGGREGATE_RESOURCES, plain_resources
        from evalkit.launch.sweep import SlurmSweep, job_spec, launcher_base

        assert self.config is not None and self.hydra_context is not None
        batch = [_job_overrides(job, plan.cells) for job, plan in todo]
        config, loader = self.config, self.hydra_context.config_loader

        def compose(overrides: list[str]) -> DictConfig:
            # the JSON plan composed these jobs a moment ago (all cells pending: the same overrides, in another order)
            return self._composed.get(tuple(sorted(overrides))) or loader.load_sweep_config(config, overrides)

        specs = []
        job_plans = {}
        for overrides, (_, job_plan) in zip(batch, todo, strict=True):
            cfg = compose(overrides)  # exactly the config the Slurm job will compose: its hash is checked there
            specs.append(job_spec(job_plan, overrides, cfg))
            job_plans[job_plan.name] = job_plan
        primary = self.plans[0].cfg
        cwd = os.getcwd()
        sweep = SlurmSweep(
            name=primary.sweep,
            sweep_dir=Path(config.hydra.sweep.dir).resolve(),
            base=launcher_base(config.hydra.launcher, cwd),
            cwd=cwd,
            overrides=list(config.hydra.overrides.task),
            results=str(Path(primary.paths.results).resolve()),
            baseline=primary.baseline_format,
        )
        plan = plan_submission(specs, plain_resources(primary.quantize.resources), AGGREGATE_RESOURCES)
        return sweep, plan, compose, job_plans

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
        from evalkit.launch.sweep import requests
        from evalkit.pipeline.plan import plan_job

        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        try:
            for job in jobs:
                self._composed[tuple(sorted(job))] = loader.load_sweep_config(self.config, job)
            self.plans = [plan_job(self._composed[tuple(sorted(job))], check_adapters=False) for job in jobs]
            reqs = None
            if self._slurm():
                # no in-flight query and no sbatch --test-only: the plan renders without a cluster
                todo = [
                    (job, plan.narrowed(plan.pending))
                    for job, plan in zip(jobs, self.plans, strict=True)
                    if plan.pending
                ]
                reqs = []
                if todo:
                    sweep, submission, _, _ = self._slurm_submission(todo)
                    reqs = requests(submission, sweep)
            checks = adapter_checks(self.plans)
            placeholders = placeholders_of(self.plans, os.getcwd())
            doc = plan_document(self.plans, reqs, placeholders=placeholders, catalog=task_catalog(), checks=checks)
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


def _job_overrides(job: list[str], cells: list[Any]) -> list[str]:
    """The job's overrides, running only these cells (its pending ones)."""
    from evalkit.core import grid

    kept = [o for o in job if not o.startswith(f"{grid.GROUPED_KEY}=")]
    # a benchmark once, though a baseline replicate is a cell of the same benchmark: the job adds its replicates
    return [*kept, grid.grouped_override(list(dict.fromkeys(c.benchmark for c in cells)))]
