"""What a model x format job has to do: its cells and which of them the results store already holds.

Used before launching (to skip finished jobs and validate every config), inside the job (a requeued or re-run job
starts at the first unfinished cell) and by `evalkit status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from evalkit.cell import Cell, cells_of_job
from evalkit.config import EvalkitConfig, check_known_keys, to_object, validate
from evalkit.store import CellRecord, CellState, ResultsStore


@dataclass(frozen=True)
class JobPlan:
    cfg: EvalkitConfig
    cells: list[Cell]
    records: list[CellRecord]

    @property
    def name(self) -> str:
        return f"{self.cfg.model.name}.{self.cfg.format.name}"

    @property
    def pending(self) -> list[Cell]:
        """Cells to run: all of them when forced, else those not done (missing, failed or stale)."""
        if self.cfg.force:
            return list(self.cells)
        return [c for c, r in zip(self.cells, self.records, strict=True) if r.state is not CellState.DONE]


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The job's own config: Hydra's `hydra` node removed (its `${hydra:...}` values resolve only inside an app)."""
    if "hydra" not in cfg:
        return cfg
    cfg = cfg.copy()
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def typed(cfg: DictConfig) -> EvalkitConfig:
    """Typed config of a job, without Hydra's own `hydra` node."""
    return to_object(without_hydra(cfg))


def job_dir_of(cfg: EvalkitConfig) -> Path:
    """The job's folder, `paths.jobs/<sweep>/<model>.<format>`: what conf/config.yaml's hydra.sweep.dir/subdir
    make of it (a unit test keeps the two in step), for code that runs without Hydra (Slurm jobs, entry points)."""
    return Path(cfg.paths.jobs).resolve() / cfg.sweep / f"{cfg.model.name}.{cfg.format.name}"


def results_dir(cfg: EvalkitConfig) -> Path:
    return Path(cfg.paths.results).resolve()


def plan_job(
    cfg: DictConfig | EvalkitConfig, store: ResultsStore | None = None, *, check_adapters: bool = True
) -> JobPlan:
    """Validate the job's config (schema-level checks Hydra cannot do, and each benchmark adapter's settings, which
    include "is the data there": `prefetch` skips those) and look up its cells in the store."""
    from evalkit.benchmarks import get_adapter

    if isinstance(cfg, DictConfig):
        check_known_keys(cfg)  # before `typed`, which would drop keys the schema lacks without a word
    typed_cfg = cfg if isinstance(cfg, EvalkitConfig) else typed(cfg)
    validate(typed_cfg)
    for name in typed_cfg.benchmark if check_adapters else ():
        bench = typed_cfg.benchmarks[name]
        get_adapter(bench.adapter).validate(dict(bench.settings))
    store = store or ResultsStore(results_dir(typed_cfg))
    cells = cells_of_job(typed_cfg)
    return JobPlan(typed_cfg, cells, [store.cell_record(c) for c in cells])


def config_hash(cfg: DictConfig) -> str:
    from evalkit.cell import stable_hash

    return stable_hash(OmegaConf.to_container(without_hydra(cfg), resolve=True))[:16]
