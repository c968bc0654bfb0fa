"""The Hydra application: composes `conf/` and runs one model x format job per Hydra job.

`evalkit sweep` runs it in multirun mode with the evalkit sweeper (conf/config.yaml selects it), which groups
benchmarks per model x format and skips finished cells; `evalkit run` runs one job directly.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from evalkit.core.config import register_configs
from evalkit.pipeline.compose import CONF_DIR
from evalkit.pipeline.job import JobSummary


def task(cfg: DictConfig) -> JobSummary:
    """The Hydra task function (module-level, so submitit can pickle it for Slurm jobs)."""
    from hydra.core.hydra_config import HydraConfig

    from evalkit.pipeline.job import run_job

    return run_job(cfg, Path(HydraConfig.get().runtime.output_dir), phase=cfg.phase)


def hydra_main(argv: list[str]) -> None:
    """Run the Hydra app with these command-line arguments (overrides, -m, --cfg job, ...)."""
    import hydra

    register_configs()
    sys.argv = ["evalkit", *argv]
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)()


if __name__ == "__main__":
    hydra_main(sys.argv[1:])
