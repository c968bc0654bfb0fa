"""What a model x format job has to do: its cells and which of them the results store already holds.

Used before launching (to skip finished jobs and validate every config), inside the job (a requeued or re-run job
starts at the first unfinished cell) and by `evalkit status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from evalkit.core.cell import Cell
from evalkit.core.config import EvalkitConfig, check_known_keys, to_object
from evalkit.core.errors import ConfigError, EvalkitError
from evalkit.core.validate import validate
from evalkit.pipeline.cells import cells_of_job
from evalkit.results.store import CellRecord, CellState, ResultsStore


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
    cfg: DictConfig | EvalkitConfig,
    store: ResultsStore | None = None,
    *,
    check_adapters: bool = True,
    check_runtime: bool = True,
) -> JobPlan:
    """Validate the job's config (schema-level checks Hydra cannot do, and each benchmark adapter's settings, which
    include "is the data there": `prefetch` skips those) and look up its cells in the store. `check_runtime`: also
    refuse a job whose scoring this node cannot do (HumanEval's sandbox); off for reads such as `evalkit status`."""
    from evalkit.benchmarks import get_adapter

    if isinstance(cfg, DictConfig):
        check_known_keys(cfg)  # before `typed`, which would drop keys the schema lacks without a word
    typed_cfg = cfg if isinstance(cfg, EvalkitConfig) else typed(cfg)
    validate(typed_cfg)
    for name in typed_cfg.benchmark if check_adapters else ():
        bench = typed_cfg.benchmarks[name]
        adapter = get_adapter(bench.adapter)
        adapter.validate(dict(bench.settings))
        if check_runtime:
            _check_scoring_runtime(typed_cfg, name, adapter, dict(bench.settings))
    store = store or ResultsStore(results_dir(typed_cfg))
    cells = cells_of_job(typed_cfg)
    return JobPlan(typed_cfg, cells, [store.cell_record(c) for c in cells])


def scores_in_process(cfg: EvalkitConfig) -> bool:
    """Whether the process that runs this job also scores its cells (see evalkit/pipeline/job.py): phase=score, or
    phase=all without split_scoring. A generate-only job needs nothing of what scoring needs."""
    return cfg.phase == "score" or (cfg.phase == "all" and not cfg.split_scoring)


def _check_scoring_runtime(cfg: EvalkitConfig, name: str, adapter: object, settings: dict) -> None:
    """Refuse, before any server starts, a job whose scoring needs what this node lacks (HumanEval: a sandbox for
    this user). An adapter opts in with `check_runtime(settings)`, raising an `EvalkitError` with the fix."""
    check = getattr(adapter, "check_runtime", None)
    if check is None or not scores_in_process(cfg):
        return
    try:
        check(settings)
    except EvalkitError as err:
        raise ConfigError(
            f"benchmark {name} would be scored in this process (phase={cfg.phase}, "
            f"split_scoring={str(cfg.split_scoring).lower()}) but cannot be: {err.what}",
            log=err.log,
            hint=err.hint,
        ) from err


def config_hash(cfg: DictConfig) -> str:
    from evalkit.core.cell import stable_hash

    return stable_hash(OmegaConf.to_container(without_hydra(cfg), resolve=True))[:16]
