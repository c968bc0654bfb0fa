"""What a model x format job has to do: its cells and which of them the results store already holds.

Made once per job where a run starts (the sweeper, or `evalkit run`'s Hydra task) and handed down to the job: locally
in the process, on Slurm pickled into the submitted task. The job does not plan again: its per-cell run lock re-reads
the store (`evalkit.pipeline.job.claim_cells`), which is what a requeued job or a concurrent sweep needs. Also made
by `evalkit status` to read where cells stand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from evalkit.core.cell import Cell, CellKey, stable_hash
from evalkit.core.config import EvalkitConfig, check_known_keys, to_object
from evalkit.core.enums import CellState, Phase
from evalkit.core.errors import ConfigError, EvalkitError
from evalkit.core.validate import validate
from evalkit.pipeline.cells import cell_dir_name, cells_of_job
from evalkit.pipeline.generated import awaits_scoring
from evalkit.results.store import CellRecord, ResultsStore


@dataclass(frozen=True)
class JobPlan:
    cfg: EvalkitConfig
    cells: list[Cell]
    records: list[CellRecord]
    rescore: frozenset[CellKey] = frozenset()
    """Done cells whose newer generation awaits scoring (phase=score only; evalkit/pipeline/generated.py)."""

    @property
    def name(self) -> str:
        return f"{self.cfg.model.name}.{self.cfg.format.name}"

    @property
    def pending(self) -> list[Cell]:
        """Cells to run: all of them when forced, else those not done (missing, failed or stale) and, when scoring,
        those with a newer generation than their committed run."""
        if self.cfg.force:
            return list(self.cells)
        return [
            c
            for c, r in zip(self.cells, self.records, strict=True)
            if r.state is not CellState.DONE or c.key in self.rescore
        ]

    def narrowed(self, cells: list[Cell]) -> JobPlan:
        """The plan of the same job running only these of its cells: what composing it again with the grouped
        `benchmark` override narrowed to them would plan (cell ids do not depend on the other benchmarks)."""
        records = dict(zip(self.cells, self.records, strict=True))
        cfg = dataclasses.replace(self.cfg, benchmark=[c.benchmark for c in cells])
        return JobPlan(cfg, list(cells), [records[c] for c in cells], self.rescore)


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
        get_adapter(bench.adapter).validate(dict(bench.settings))
    if check_adapters and check_runtime:
        check_scoring_runtime(typed_cfg)
    check_adaptive(typed_cfg)
    store = store or ResultsStore(results_dir(typed_cfg))
    cells = cells_of_job(typed_cfg)
    records = [store.cell_record(c) for c in cells]
    return JobPlan(typed_cfg, cells, records, _awaiting_scores(typed_cfg, cells, records))


def _awaiting_scores(cfg: EvalkitConfig, cells: list[Cell], records: list[CellRecord]) -> frozenset[CellKey]:
    """For the score phase: done cells generated again since their commit (`evalkit run ... phase=generate` on a
    complete cell), which scoring must not call complete."""
    if cfg.phase != Phase.score:
        return frozenset()
    job_dir = job_dir_of(cfg)
    return frozenset(
        c.key for c, r in zip(cells, records, strict=True) if awaits_scoring(job_dir / cell_dir_name(c), c, r)
    )


def check_adaptive(cfg: EvalkitConfig) -> None:
    """Refuse adaptive mode where it cannot run, before anything starts: an adapter that cannot run a chunk of its
    documents, or a job that does not score in process (the rule needs each chunk's scores before the next)."""
    from evalkit.benchmarks import get_adapter
    from evalkit.pipeline.adaptive import adaptive_settings

    for name in cfg.benchmark:
        if adaptive_settings(cfg, name, cfg.format.name) is None:
            continue
        adapter = cfg.benchmarks[name].adapter
        if not get_adapter(adapter).chunks:
            raise ConfigError(
                f"benchmark {name}: adaptive mode is on but its adapter {adapter!r} cannot run a chunk of its "
                "documents (only lm_eval suites can)",
                hint=f"set benchmarks.{name}.adaptive.enabled=false (or adaptive.enabled=false for the sweep)",
            )
        if not scores_in_process(cfg):
            raise ConfigError(
                f"benchmark {name}: adaptive mode decides after each chunk's scores, but this job does not score "
                f"in process (phase={cfg.phase}, split_scoring={str(cfg.split_scoring).lower()})",
                hint="run adaptive suites with phase=all and split_scoring=false, or turn adaptive mode off",
            )


def scores_in_process(cfg: EvalkitConfig) -> bool:
    """Whether the process that runs this job also scores its cells (see evalkit/pipeline/job.py): phase=score, or
    phase=all without split_scoring. A generate-only job needs nothing of what scoring needs."""
    return cfg.phase == Phase.score or (cfg.phase == Phase.all and not cfg.split_scoring)


def check_scoring_runtime(cfg: EvalkitConfig) -> None:
    """Refuse, before any server starts, a job whose scoring needs what this node lacks (HumanEval: a sandbox for
    this user): each adapter's `check_runtime(settings)`, raising an `EvalkitError` with the fix. Part of
    planning, and run again by a Slurm job on its node, which may lack what the submitting node had."""
    from evalkit.benchmarks import get_adapter

    if not scores_in_process(cfg):
        return
    for name in cfg.benchmark:
        settings = dict(cfg.benchmarks[name].settings)
        _check_one_runtime(cfg, name, get_adapter(cfg.benchmarks[name].adapter).check_runtime, settings)


def _check_one_runtime(
    cfg: EvalkitConfig, name: str, check: Callable[[dict[str, Any]], None], settings: dict[str, Any]
) -> None:
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
    return stable_hash(OmegaConf.to_container(without_hydra(cfg), resolve=True))[:16]
