"""Throwaway Hydra app for tests/slurm: a multirun through conf/launcher/slurm.yaml and Hydra's submitit launcher.

It stands in for evalkit's app with the few keys the launcher config interpolates (sweep, paths.jobs,
model.resources); run it with `hydra.searchpath=[file://<repo>/conf]` so that `launcher: slurm` is the real file.
Each job returns x * 10, which the launcher collects from the job's result pickle.
"""

from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig


@dataclass
class Resources:
    gpus_per_node: int = 0
    nodes: int = 1
    cpus_per_task: int = 1
    mem_gb: int = 1
    timeout_min: int = 5


@dataclass
class Model:
    resources: Resources = field(default_factory=Resources)


@dataclass
class Paths:
    jobs: str = "jobs"


@dataclass
class Smoke:
    defaults: list[Any] = field(default_factory=lambda: [{"launcher": "slurm"}, "_self_"])
    sweep: str = "smoke"
    paths: Paths = field(default_factory=Paths)
    model: Model = field(default_factory=Model)
    x: int = 0


ConfigStore.instance().store(name="smoke", node=Smoke)


@hydra.main(version_base=None, config_name="smoke")
def main(cfg: DictConfig) -> int:
    import submitit

    print(f"x={cfg.x} in Slurm job {submitit.JobEnvironment().job_id}", flush=True)
    return int(cfg.x) * 10


if __name__ == "__main__":
    main()
