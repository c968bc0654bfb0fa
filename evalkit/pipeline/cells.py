"""The cells of a job: each (model, format, benchmark) with its identity, derived from the job's config.

The id hashes what determines the result (model, format, checkpoint or recipe, benchmark settings, the benchmark's
own data files by content), never time or paths of a run; see `evalkit.core.cell`.
"""

from __future__ import annotations

from evalkit.checkpoints.quantize import recipe_identity
from evalkit.checkpoints.resolve import effective_recipe
from evalkit.core.cell import Cell, CheckpointRef, file_digest, stable_hash
from evalkit.core.config import EvalkitConfig
from evalkit.core.enums import CheckpointSource


def checkpoint_identity(cfg: EvalkitConfig) -> CheckpointRef:
    spec = cfg.model.checkpoints[cfg.format.name]
    recipe = effective_recipe(cfg)
    if spec.source == CheckpointSource.recipe and recipe is not None:
        base = cfg.model.checkpoints[cfg.baseline_format]
        digest = stable_hash({"base": [base.source, base.id], "recipe": recipe_identity(recipe)})[:16]
        return CheckpointRef(CheckpointSource.recipe, digest)
    return CheckpointRef(CheckpointSource(spec.source), str(spec.id))


def make_cell(cfg: EvalkitConfig, benchmark: str) -> Cell:
    bench = cfg.benchmarks[benchmark]
    # The benchmark's own local data counts by content: editing a shipped question changes the result, so it changes
    # the id of the cells that read it, and only theirs (a demo data edit leaves real cells complete).
    data = {
        k: {"path": d.path, "name": d.name, "files": {split: file_digest(f) for split, f in d.data_files.items()}}
        for k, d in sorted(bench.data.items())
    }
    checkpoint = checkpoint_identity(cfg)
    identity = {
        "model": cfg.model.name,
        "format": cfg.format.name,
        "checkpoint": checkpoint.encode(),  # the string ids were hashed from before the type: ids stay valid
        "benchmark": {"name": bench.name, "adapter": bench.adapter, "settings": bench.settings},
        "data": data,
        "seed": cfg.seed,
    }
    return Cell(
        model=cfg.model.name,
        format=cfg.format.name,
        benchmark=bench.name,
        suite=bench.suite,
        checkpoint=checkpoint,
        fingerprint=stable_hash(identity),
    )


def cells_of_job(cfg: EvalkitConfig) -> list[Cell]:
    """The cells one model x format job runs, in the order of `cfg.benchmark`."""
    return [make_cell(cfg, name) for name in cfg.benchmark]
