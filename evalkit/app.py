"""The Hydra application: composes `conf/` and runs one model x format job per Hydra job.

`evalkit sweep` runs it in multirun mode with the evalkit sweeper (conf/config.yaml selects it), which groups
benchmarks per model x format, skips finished cells, and hands each job the plan it made (`PlannedTask`);
`evalkit run` runs one job directly, planning it in `task`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from evalkit.core.config import register_configs
from evalkit.pipeline.compose import CONF_DIR
from evalkit.pipeline.job import JobSummary, run_job
from evalkit.pipeline.plan import JobPlan, config_hash, plan_job

log = logging.getLogger("evalkit.app")


def task(cfg: DictConfig) -> JobSummary:
    """The Hydra task function (module-level, so submitit can pickle it for Slurm jobs): plans the job, runs it."""
    return run_planned(cfg, plan_job(cfg))


def run_planned(cfg: DictConfig, plan: JobPlan) -> JobSummary:
    """Run a job Hydra composed as `cfg` with its plan, in Hydra's job folder."""
    from hydra.core.hydra_config import HydraConfig

    return run_job(plan, Path(HydraConfig.get().runtime.output_dir), config_hash(cfg))


def plan_key(overrides: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """How `PlannedTask` finds a job's plan: the overrides Hydra's launcher composes the job from, in any order."""
    return tuple(sorted(overrides))


@dataclass
class PlannedTask:
    """The task function the evalkit sweeper gives Hydra's launcher: each job runs with the plan the sweeper made
    when it validated the grid (keyed by `plan_key` of the job's overrides) instead of validating it and reading the
    store again. A job it has no plan for is planned by `fallback` (the app's own task function)."""

    fallback: Callable[[DictConfig], object]
    plans: dict[tuple[str, ...], JobPlan] = field(default_factory=dict)

    def __call__(self, cfg: DictConfig) -> object:
        from hydra.core.hydra_config import HydraConfig

        plan = self.plans.get(plan_key(list(HydraConfig.get().overrides.task)))
        if plan is None:
            log.warning("no plan handed over for this job; planning it here")
            return self.fallback(cfg)
        return run_planned(cfg, plan)


def hydra_main(argv: list[str]) -> None:
    """Run the Hydra app with these command-line arguments (overrides, -m, --cfg job, ...)."""
    import hydra

    register_configs()
    sys.argv = ["evalkit", *argv]
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)()


if __name__ == "__main__":
    hydra_main(sys.argv[1:])
