"""The Hydra application: composes `conf/` and runs one model x format job per Hydra job.

`evalkit sweep` runs it in multirun mode with the evalkit sweeper (conf/config.yaml selects it), which groups
benchmarks per model x format and skips finished cells; `evalkit run` runs one job directly.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from evalkit.config import register_configs
from evalkit.job import JobSummary

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def task(cfg: DictConfig) -> JobSummary:
    """The Hydra task function (module-level, so submitit can pickle it for Slurm jobs)."""
    from hydra.core.hydra_config import HydraConfig

    from evalkit.job import run_job

    return run_job(cfg, Path(HydraConfig.get().runtime.output_dir), phase=cfg.phase)


def compose_job(overrides: Sequence[str]) -> DictConfig:
    """The job config for these overrides, composed as Hydra's sweeper composes a job (without the `hydra` node).

    Used where no Hydra app runs: in a Slurm job (which must see the config the sweeper validated; the caller
    compares `plan.config_hash`), by `evalkit status` / `cancel`, and by the checkpoint entry point.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    if GlobalHydra.instance().is_initialized():  # inside a running Hydra app: compose with its search path
        return compose("config", overrides=list(overrides))
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def compose_grid(overrides: Sequence[str], *, with_hydra: bool = False) -> list[DictConfig]:
    """The composed config of every job of the grid the overrides describe (comma lists sweep, benchmarks grouped).

    Hydra's own errors (unknown group choice, bad override syntax, a key that cannot be overridden) become
    ConfigError, so that every configuration error exits 2. `with_hydra`: keep Hydra's node (e.g. `hydra.launcher`).
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from evalkit import grid
    from evalkit.errors import ConfigError

    register_configs()
    jobs = grid.expand(overrides)
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return [compose("config", overrides=job, return_hydra_config=with_hydra) for job in jobs]
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(
            f"cannot compose the config for {' '.join(overrides)}: {exc}",
            hint="fix the override; keys and choices are in conf/ and evalkit/config.py, the syntax is Hydra's "
            "(https://hydra.cc/docs/advanced/override_grammar/basic/)",
        ) from exc


def hydra_main(argv: list[str]) -> None:
    """Run the Hydra app with these command-line arguments (overrides, -m, --cfg job, ...)."""
    import hydra

    register_configs()
    sys.argv = ["evalkit", *argv]
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)()


if __name__ == "__main__":
    hydra_main(sys.argv[1:])
