"""The cells of a job: each (model, format, benchmark) with its identity, derived from the job's config.

The id hashes what determines the result (model, format, checkpoint or recipe, benchmark settings, the benchmark's
own data files by content), never time or paths of a run; see `evalkit.core.cell`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from evalkit.benchmarks import get_adapter
from evalkit.checkpoints.quantize import recipe_identity
from evalkit.checkpoints.resolve import effective_recipe
from evalkit.core.cell import Cell, CheckpointRef, file_digest, stable_hash
from evalkit.core.config import EvalkitConfig, replicate_label, replicate_of
from evalkit.core.enums import CheckpointSource
from evalkit.core.errors import ConfigError
from evalkit.pipeline.adaptive import adaptive_settings


def checkpoint_identity(cfg: EvalkitConfig) -> CheckpointRef:
    spec = cfg.model.checkpoints[cfg.format.name]
    recipe = effective_recipe(cfg)
    if spec.source == CheckpointSource.recipe and recipe is not None:
        base = cfg.model.checkpoints[cfg.baseline_format]
        digest = stable_hash({"base": [base.source, base.id], "recipe": recipe_identity(recipe)})[:16]
        return CheckpointRef(CheckpointSource.recipe, digest)
    return CheckpointRef(CheckpointSource(spec.source), str(spec.id))


def make_cell(cfg: EvalkitConfig, benchmark: str, replicate: int = 0) -> Cell:
    """The cell of `benchmark` in this job; `replicate` i > 0: the baseline's i-th replicate (format `bf16~r<i>`),
    whose identity adds the index and the settings and seed it varies."""
    bench = cfg.benchmarks[benchmark]
    # The benchmark's own local data counts by content: editing a shipped question changes the result, so it changes
    # the id of the cells that read it, and only theirs (a demo data edit leaves real cells complete).
    data = {
        k: {"path": d.path, "name": d.name, "files": {split: file_digest(f) for split, f in d.data_files.items()}}
        for k, d in sorted(bench.data.items())
    }
    checkpoint = checkpoint_identity(cfg)
    fmt = replicate_label(cfg.format.name, replicate) if replicate else cfg.format.name
    identity: dict[str, Any] = {
        "model": cfg.model.name,
        "format": fmt,
        "checkpoint": checkpoint.encode(),  # the string ids were hashed from before the type: ids stay valid
        "benchmark": {"name": bench.name, "adapter": bench.adapter, "settings": _settings(cfg, benchmark, replicate)},
        "data": data,
        "seed": _seed(cfg, benchmark, replicate),
    }
    if replicate:
        identity["replicate"] = replicate
    adaptive = adaptive_settings(cfg, benchmark, fmt)
    if adaptive is not None:  # a stopped cell holds a subset of the documents: not the result of a full run
        identity["adaptive"] = dataclasses.asdict(adaptive)
    return Cell(
        model=cfg.model.name,
        format=fmt,
        benchmark=bench.name,
        suite=bench.suite,
        checkpoint=checkpoint,
        fingerprint=stable_hash(identity),
    )


def selected_benchmarks(cfg: EvalkitConfig) -> list[str]:
    """The sweep's benchmarks this model runs: `model.skip_benchmarks` left out (e.g. RULER for 405B, opt-in)."""
    return [b for b in cfg.benchmark if b not in cfg.model.skip_benchmarks]


def cells_of_job(cfg: EvalkitConfig) -> list[Cell]:
    """The cells one model x format job runs, in the order of `cfg.benchmark`; the baseline's job then adds its
    replicates (`cfg.replicates`), after every ordinary cell so they never delay a result."""
    cells = [make_cell(cfg, name) for name in selected_benchmarks(cfg)]
    if cfg.format.name != cfg.baseline_format or cfg.replicates.k <= 0:
        return cells
    replicated = _replicated(cfg)
    return cells + [make_cell(cfg, name, r) for r in range(1, cfg.replicates.k + 1) for name in replicated]


def _replicated(cfg: EvalkitConfig) -> list[str]:
    rep = cfg.replicates
    unknown = [b for b in rep.benchmarks if b not in cfg.benchmarks]
    if unknown:
        raise ConfigError(
            f"replicates.benchmarks names {unknown}, not in the benchmark catalogue",
            hint=f"valid choices: {', '.join(sorted(cfg.benchmarks))}",
        )
    names = [b for b in selected_benchmarks(cfg) if not rep.benchmarks or b in rep.benchmarks]
    for name in names:
        if _concurrency_key(cfg, name) is None:
            raise ConfigError(
                f"benchmark {name} cannot be replicated: its adapter {cfg.benchmarks[name].adapter!r} has no "
                "request-concurrency setting to vary",
                hint="leave it out of replicates.benchmarks",
            )
    if not rep.concurrency or min(rep.concurrency) < 1:
        raise ConfigError(f"replicates.concurrency={rep.concurrency} needs at least one value >= 1")
    return names


def _settings(cfg: EvalkitConfig, benchmark: str, replicate: int) -> dict[str, Any]:
    settings = dict(cfg.benchmarks[benchmark].settings)
    if replicate:
        key = _concurrency_key(cfg, benchmark)
        assert key is not None, "_replicated refuses a benchmark without a concurrency setting"
        settings[key] = cfg.replicates.concurrency[(replicate - 1) % len(cfg.replicates.concurrency)]
    return settings


def _concurrency_key(cfg: EvalkitConfig, benchmark: str) -> str | None:
    """The setting holding the benchmark's requests in flight (`Benchmark.concurrency_key`): what a baseline
    replicate changes."""
    return get_adapter(cfg.benchmarks[benchmark].adapter).concurrency_key


def _seed(cfg: EvalkitConfig, benchmark: str, replicate: int) -> int:
    return cfg.seed + replicate if cfg.benchmarks[benchmark].adapter in cfg.replicates.seed_adapters else cfg.seed


def _replicate_index(cell: Cell) -> int:
    of = replicate_of(cell.format)
    return of[1] if of else 0


def cell_settings(cfg: EvalkitConfig, cell: Cell) -> dict[str, Any]:
    """The settings a cell runs with: its benchmark's, with a replicate's concurrency."""
    return _settings(cfg, cell.benchmark, _replicate_index(cell))


def cell_seed(cfg: EvalkitConfig, cell: Cell) -> int:
    return _seed(cfg, cell.benchmark, _replicate_index(cell))


def cell_dir_name(cell: Cell) -> str:
    """The cell's folder in its job's: the benchmark name, `<benchmark>~r<i>` for a replicate (its own harness
    outputs beside the baseline's)."""
    index = _replicate_index(cell)
    return f"{cell.benchmark}~r{index}" if index else cell.benchmark
