"""The local launcher: the sweep's jobs run one after another in this process, through Hydra's basic launcher."""

from evalkit.launch.local.launcher import LAUNCHER, LocalLauncher

__all__ = ["LAUNCHER", "LocalLauncher"]
