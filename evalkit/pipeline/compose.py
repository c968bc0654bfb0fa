"""Composing job configs from `conf/` with Hydra's compose API, where no Hydra app runs: in a Slurm job (which must
see the config the sweeper validated), by the CLI's checks and reads (`status`, `doctor`, ...), and by the
checkpoint entry point. The Hydra application itself is `evalkit.app`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from evalkit.core.config import register_configs

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


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

    from evalkit.core import grid
    from evalkit.core.errors import ConfigError

    register_configs()
    jobs = grid.expand(overrides)
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return [compose("config", overrides=job, return_hydra_config=with_hydra) for job in jobs]
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(
            f"cannot compose the config for {' '.join(overrides)}: {_reason(exc)}",
            hint="fix the override; keys and choices are in conf/ and evalkit/core/config.py, the syntax is Hydra's "
            "(https://hydra.cc/docs/advanced/override_grammar/basic/)",
        ) from exc


def _reason(exc: BaseException) -> str:
    """Hydra's message, with OmegaConf's underneath when Hydra wraps it: "Error merging override phase=later" alone
    hides the "expected one of [all, generate, score]" that says what to write instead."""
    cause = exc.__cause__
    if cause is None or str(cause) in str(exc):
        return str(exc)
    return f"{exc}: {str(cause).splitlines()[0]}"
