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

from evalkit.core.enums import CheckpointSource
from evalkit.util.hashing import sha256_file, sha256_text

KEY_SEP = "__"
"""Joins model, format and benchmark in a cell's file names; names cannot hold it (core.config.NAME_RE)."""


@dataclass(frozen=True)
class CellKey:
    """Which model x format x benchmark a cell is, whatever its settings: names the cell's files and locks."""

    model: str
    format: str
    benchmark: str

    def encode(self) -> str:
        """`<model>__<format>__<benchmark>`: the results layout's file stem (results/scores/<key>.parquet)."""
        return KEY_SEP.join((self.model, self.format, self.benchmark))

    @classmethod
    def decode(cls, text: str) -> CellKey:
        """The key a file stem names. Unambiguous because no name holds "__" or ends in "_" (validated at plan
        time), so every "__" in `text` is a separator."""
        parts = text.split(KEY_SEP)
        if len(parts) != 3 or not all(parts) or any(p.startswith("_") or p.endswith("_") for p in parts):
            raise ValueError(f"{text!r} is not a cell key <model>__<format>__<benchmark>")
        return cls(*parts)

    def __str__(self) -> str:
        return self.encode()


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint's identity as declared: a hub id, a local path, a GGUF in a package, or the hash of the recipe
    (and base) that produces it. The results' `checkpoint` column holds it as "<source>:<id>"."""

    source: CheckpointSource
    id: str

    def encode(self) -> str:
        return f"{self.source}:{self.id}"

    @classmethod
    def decode(cls, text: str) -> CheckpointRef:
        source, sep, ident = text.partition(":")
        if not sep or source not in tuple(CheckpointSource):
            raise ValueError(
                f"{text!r} is not a checkpoint reference <source>:<id> (sources: {', '.join(CheckpointSource)})"
            )
        return cls(CheckpointSource(source), ident)

    def __str__(self) -> str:
        return self.encode()


@dataclass(frozen=True)
class Cell:
    model: str
    format: str
    benchmark: str
    suite: str
    checkpoint: CheckpointRef
    """The checkpoint as declared (hub id, path, GGUF) or the recipe hash that produces it."""
    fingerprint: str
    """sha256 over everything that determines the cell's result."""

    @property
    def key(self) -> CellKey:
        """Unique per model x format x benchmark; names the cell's files."""
        return CellKey(self.model, self.format, self.benchmark)

    @property
    def cell_id(self) -> str:
        return f"{self.key.encode()}{KEY_SEP}{self.fingerprint[:12]}"


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
