"""Which launcher a config names, and every launcher there is.

A launcher is a subpackage of `evalkit.launch` exporting `LAUNCHER` (an object with the `Launcher` protocol's
methods), selected by `launcher=<name>`, which composes conf/launcher/<name>.yaml: the subpackage and the config
file share the name. So a third launcher is one new package and one config file; nothing else names it. The
packages are found the way Python finds them (`evalkit.launch.__path__`), and imported only when asked for, so the
heavy imports of one (submitit) cost nothing to a run that uses another.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path

from omegaconf import DictConfig

from evalkit.core.errors import ConfigError
from evalkit.launch.base import Launcher
from evalkit.launch.record import SweepRecord

DEFAULT = "local"
"""The launcher of a config that names none (conf/config.yaml's default)."""

_METHODS = ("render", "checks", "submit", "submitted", "states", "cancel", "node_checks")


def names() -> list[str]:
    """Every launcher, by name: the subpackages of evalkit.launch."""
    import evalkit.launch

    return sorted(m.name for m in pkgutil.iter_modules(evalkit.launch.__path__) if m.ispkg)


@cache
def get(name: str) -> Launcher:
    """The launcher called `name`; ConfigError listing the known ones when there is none."""
    known = names()
    if name not in known:
        raise ConfigError(
            f"no launcher {name!r}",
            hint=f"use launcher={' or launcher='.join(known)} (a launcher is a package evalkit/launch/<name>/ "
            "with a config conf/launcher/<name>.yaml)",
        )
    module = importlib.import_module(f"evalkit.launch.{name}")
    launcher = getattr(module, "LAUNCHER", None)
    missing = [m for m in _METHODS if not callable(getattr(launcher, m, None))]
    if launcher is None or missing or getattr(launcher, "name", None) != name:
        raise ConfigError(
            f"evalkit.launch.{name} is not a launcher: "
            + ("no LAUNCHER" if launcher is None else f"LAUNCHER lacks {', '.join(missing) or f'name = {name!r}'}"),
            hint="export LAUNCHER, an object with the evalkit.launch.base.Launcher protocol's methods",
        )
    found: Launcher = launcher  # checked above: it has the protocol's methods and this name
    return found


def every() -> list[Launcher]:
    return [get(name) for name in names()]


def submitted_by(sweep_dir: Path) -> tuple[Launcher, SweepRecord] | None:
    """The launcher that submitted jobs of the sweep (jobs/<sweep>) and its record of them; None when none did
    (a local sweep). Asked of every launcher, so `status` and `cancel` need not be told which one ran."""
    for launcher in every():
        rec = launcher.submitted(sweep_dir)
        if rec is not None:
            return launcher, rec
    return None


def name_of(config: DictConfig) -> str:
    """The launcher a composed config (with Hydra's node) selects: its `launcher` group choice."""
    choices = config.get("hydra", {}).get("runtime", {}).get("choices", {})
    return str(choices.get("launcher") or DEFAULT)


def launcher_of(config: DictConfig) -> Launcher:
    """The launcher a composed config (with Hydra's node) selects."""
    return get(name_of(config))
