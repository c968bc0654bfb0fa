"""A cell of the grid: one model x format x benchmark, and its stable identity.

The id is derived from what determines the result (model, format, checkpoint, recipe, benchmark settings, data),
never from time, ports or paths of a particular run. Changing a benchmark setting therefore changes the id, and
the store treats the old rows of that model x format x benchmark as stale.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.hashing import sha256_file, sha256_text

if TYPE_CHECKING:
    from evalkit.config import EvalkitConfig


@dataclass(frozen=True)
class Cell:
    model: str
    format: str
    benchmark: str
    suite: str
    checkpoint: str
    """Checkpoint identity as declared: "hub:<id>", "path:<dir>", "gguf:<pkg/file>", or "recipe:<hash>"."""
    fingerprint: str
    """sha256 over everything that determines the cell's result."""

    @property
    def key(self) -> str:
        """Human-readable key, unique per model x format x benchmark; names the cell's files."""
        return f"{self.model}__{self.format}__{self.benchmark}"

    @property
    def cell_id(self) -> str:
        return f"{self.key}__{self.fingerprint[:12]}"


def _canonical(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _canonical(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


def stable_hash(obj: Any) -> str:
    """sha256 of a canonical JSON rendering (sorted keys), so equal configs hash equal across runs and machines."""
    blob = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), default=str)
    return sha256_text(blob)


def checkpoint_identity(cfg: EvalkitConfig) -> str:
    from evalkit.checkpoints.quantize import recipe_identity
    from evalkit.checkpoints.resolve import effective_recipe

    spec = cfg.model.checkpoints[cfg.format.name]
    recipe = effective_recipe(cfg)
    if spec.source == "recipe" and recipe is not None:
        base = cfg.model.checkpoints[cfg.baseline_format]
        return f"recipe:{stable_hash({'base': [base.source, base.id], 'recipe': recipe_identity(recipe)})[:16]}"
    return f"{spec.source}:{spec.id}"


@functools.lru_cache(maxsize=4096)
def file_digest(path: str) -> str:
    """sha256 of a local data file ("missing:<path>" when absent, so the id still says which file it meant)."""
    p = Path(path)
    if not p.is_file():
        return f"missing:{path}"
    return sha256_file(p)


def make_cell(cfg: EvalkitConfig, benchmark: str) -> Cell:
    bench = cfg.benchmarks[benchmark]
    # The benchmark's own local data counts by content: editing a shipped question changes the result, so it changes
    # the id of the cells that read it, and only theirs (a demo data edit leaves real cells complete).
    data = {
        k: {"path": d.path, "name": d.name, "files": {split: file_digest(f) for split, f in d.data_files.items()}}
        for k, d in sorted(bench.data.items())
    }
    identity = {
        "model": cfg.model.name,
        "format": cfg.format.name,
        "checkpoint": checkpoint_identity(cfg),
        "benchmark": {"name": bench.name, "adapter": bench.adapter, "settings": bench.settings},
        "data": data,
        "seed": cfg.seed,
    }
    return Cell(
        model=cfg.model.name,
        format=cfg.format.name,
        benchmark=bench.name,
        suite=bench.suite,
        checkpoint=str(identity["checkpoint"]),
        fingerprint=stable_hash(identity),
    )


def cells_of_job(cfg: EvalkitConfig) -> list[Cell]:
    """The cells one model x format job runs, in the order of `cfg.benchmark`."""
    return [make_cell(cfg, name) for name in cfg.benchmark]
