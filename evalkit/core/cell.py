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
from typing import Any

from evalkit.util.hashing import sha256_file, sha256_text


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


@functools.lru_cache(maxsize=4096)
def file_digest(path: str) -> str:
    """sha256 of a local data file ("missing:<path>" when absent, so the id still says which file it meant)."""
    p = Path(path)
    if not p.is_file():
        return f"missing:{path}"
    return sha256_file(p)
