"""Where a cell's data came from, and whether a local copy of a Hub dataset is complete.

Two records, both small and JSON-serialisable:

- `DataSource`: one dataset (or data file) a cell read: a Hub dataset with the revision `evalkit prefetch` recorded
  (or "unpinned"), or a local file with its sha256 and row count. The job stores a cell's list in the `data_sources`
  column of `scores`, so a reader can tell demo numbers from real ones.
- The prefetch manifest (`datasets_manifest.json` in the Hub cache jobs read, `HF_HOME`, default
  `<paths.cache>/huggingface`, so it travels with the data copied to an offline cluster): per Hub dataset and
  split, the row count and a content hash of what `prefetch` downloaded. A local copy given for a real benchmark
  must match it, or the plan is refused with the numbers ("gsm8k test: 4 rows, expected 1319"): a demo-sized file
  never scores a real cell.

The content hash is over the rows, not the file bytes, so a JSONL export of a Hub split hashes equal to the split
itself: sha256 of one canonical JSON document (sorted keys) per line, in row order.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.core.errors import ConfigError
from evalkit.util.files import parse_jsonl, write_text_atomic
from evalkit.util.hashing import sha256_file

if TYPE_CHECKING:
    from evalkit.core.config import BenchmarkConfig

MANIFEST = "datasets_manifest.json"
"""File name of the prefetch manifest, in the Hub cache (`datasets_home`)."""

UNPINNED = "unpinned"
"""Revision of a Hub dataset that `prefetch` did not record: the cell read whatever the cache or the Hub had."""


@dataclass(frozen=True)
class DataSource:
    """One dataset or data file a cell read."""

    dataset: str
    """Hub dataset id as the task names it ("openai/gsm8k:main"), or what a file is ("humaneval_plus problems")."""
    split: str | None = None
    """Split a local file stands for (None for whole-dataset Hub entries and for non-Hub files)."""
    hub_revision: str | None = None
    """For a Hub dataset read from the Hub cache: the commit `prefetch` recorded, or "unpinned"."""
    path: str | None = None
    """For a local file: its absolute path."""
    sha256: str | None = None
    """For a local file: sha256 of its bytes."""
    rows: int | None = None
    """For a local file: its rows (JSON lines, or entries of a JSON list)."""


def hub_source(dataset: str, revision: str | None) -> DataSource:
    return DataSource(dataset=dataset, hub_revision=revision or UNPINNED)


def local_source(dataset: str, path: str | Path, split: str | None = None) -> DataSource:
    p = Path(path).resolve()
    return DataSource(dataset=dataset, split=split, path=str(p), sha256=sha256_file(p), rows=len(read_rows(p)))


def sources_json(sources: Iterable[DataSource]) -> str:
    """The `data_sources` column value: a JSON list, sorted, so equal sources give equal strings."""
    items = sorted((asdict(s) for s in sources), key=lambda d: json.dumps(d, sort_keys=True))
    return json.dumps(items, sort_keys=True)


def parse_sources(text: str | None) -> list[DataSource]:
    """Inverse of `sources_json` (None or "" for rows written before the column existed: no sources known)."""
    return [DataSource(**d) for d in json.loads(text)] if text else []


# --------------------------------------------------------------------------------------------- row content


def read_rows(path: Path) -> list[Any]:
    """Rows of a local data file: JSON lines (optionally gzipped), or one JSON list."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        text = fh.read()
    if text.lstrip().startswith("["):
        rows = json.loads(text)
        return list(rows) if isinstance(rows, list) else [rows]
    return [row for _, row in parse_jsonl(io.StringIO(text), path)]


def content_hash(rows: Iterable[Mapping[str, Any]]) -> tuple[int, str]:
    """(row count, sha256 over one canonical JSON document per row): equal for a Hub split and its JSONL export."""
    import hashlib

    digest = hashlib.sha256()
    n = 0
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
        n += 1
    return n, digest.hexdigest()


# --------------------------------------------------------------------------------------------- prefetch manifest


@dataclass(frozen=True)
class SplitRecord:
    rows: int
    sha256: str
    """`content_hash` of the split's rows."""


@dataclass(frozen=True)
class DatasetRecord:
    """What `prefetch` downloaded of one Hub dataset."""

    revision: str
    """Hub commit of the dataset repository ("unpinned" if the Hub did not say)."""
    splits: dict[str, SplitRecord] = field(default_factory=dict)


def datasets_home(cache_dir: str | Path) -> Path:
    """The Hub cache jobs read (`HF_HOME` if set, else `<paths.cache>/huggingface`; see
    evalkit.pipeline.job.harness_env)."""
    env = os.environ.get("HF_HOME")
    return Path(env) if env else Path(cache_dir).resolve() / "huggingface"


def manifest_path(cache_dir: str | Path) -> Path:
    """The prefetch manifest of the Hub cache that `paths.cache` (or HF_HOME) names."""
    return datasets_home(cache_dir) / MANIFEST


def dataset_record(revision: str | None, splits: Mapping[str, Iterable[Mapping[str, Any]]]) -> DatasetRecord:
    """The manifest entry of a dataset from its splits' rows (a `datasets.DatasetDict` is such a mapping)."""
    records = {}
    for name, rows in splits.items():
        n, digest = content_hash(rows)
        records[str(name)] = SplitRecord(n, digest)
    return DatasetRecord(revision or UNPINNED, records)


def read_manifest(cache_dir: str | Path) -> dict[str, DatasetRecord]:
    """Dataset id -> record; empty when `prefetch` never ran with this cache."""
    return read_manifest_file(manifest_path(cache_dir))


def read_manifest_file(path: Path) -> dict[str, DatasetRecord]:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {
            k: DatasetRecord(v["revision"], {s: SplitRecord(**r) for s, r in v["splits"].items()})
            for k, v in raw["datasets"].items()
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"dataset manifest {path} is unreadable ({type(exc).__name__}: {exc})",
            hint="run `evalkit prefetch` again where the Hub is reachable; it rewrites the manifest",
        ) from exc


def write_manifest(path: Path, records: Mapping[str, DatasetRecord]) -> Path:
    """Merge `records` into the manifest file (datasets prefetched earlier stay), atomically."""
    merged = {**read_manifest_file(path), **records}
    body = {"datasets": {k: asdict(v) for k, v in sorted(merged.items())}}
    write_text_atomic(path, json.dumps(body, indent=1, sort_keys=True) + "\n")
    return path


# --------------------------------------------------------------------------------------------- plan-time check


def check_benchmark_data(bench: BenchmarkConfig, cache_dir: str | Path) -> dict[str, dict[str, str]]:
    """A benchmark's local data, checked before anything starts; returns its `RunContext.data_overrides`.

    Every file must exist. A real benchmark (not `demo`) may read a local copy only when `evalkit prefetch` recorded
    that dataset and every split the copy gives has the recorded rows and content hash; otherwise ConfigError lists
    each difference with its numbers.
    """
    where = f"benchmarks.{bench.name}.data"
    overrides = resolve_overrides(bench.data, where=where)
    if bench.demo or not bench.data:
        return overrides
    manifest = read_manifest(cache_dir)
    problems: list[str] = []
    for key, entry in bench.data.items():
        ref = DatasetRef(entry.path, entry.name)
        record = manifest.get(ref.id)
        if record is None:
            problems.append(f"{key} ({ref.id}): no prefetch record of the full dataset")
            continue
        for split, file in overrides[ref.id].items():
            expected = record.splits.get(split)
            if expected is None:
                problems.append(f"{key} {split}: prefetch recorded no split {split!r} (has {', '.join(record.splits)})")
                continue
            rows, digest = content_hash(read_rows(Path(file)))
            if rows != expected.rows:
                problems.append(f"{key} {split}: {rows} rows, expected {expected.rows} ({file})")
            elif digest != expected.sha256:
                problems.append(f"{key} {split}: {rows} rows as expected, but their content differs ({file})")
    if problems:
        raise ConfigError(
            f"{where}: benchmark {bench.name!r} is a real benchmark and its local data is not a complete copy "
            f"of what `evalkit prefetch` recorded in {manifest_path(cache_dir)}:\n    " + "\n    ".join(problems),
            hint=f"remove {where} to read the Hub cache, or copy the prefetched datasets whole "
            "(demo data belongs to the demo_* / smoke_* benchmarks)",
        )
    return overrides


# --------------------------------------------------------------------------------------------- data overrides


@dataclass(frozen=True, order=True)
class DatasetRef:
    """A Hugging Face dataset as a task definition names it (`dataset_path` + `dataset_name`)."""

    path: str
    """Hub id, e.g. "hails/mmlu_no_train"."""
    name: str | None = None
    """Config name, e.g. "astronomy"; None for datasets without configs."""

    @property
    def id(self) -> str:
        """The key used in `RunContext.data_overrides`: "path" or "path:name"."""
        return self.path if self.name is None else f"{self.path}:{self.name}"

    @classmethod
    def parse(cls, dataset_id: str) -> DatasetRef:
        """Inverse of `id` (Hub ids contain "/" but never ":")."""
        path, sep, name = dataset_id.partition(":")
        return cls(path, name if sep else None)


def resolve_overrides(
    entries: Mapping[str, Any], base_dir: Path | None = None, where: str = "data"
) -> dict[str, dict[str, str]]:
    """Config `data:` entries -> `RunContext.data_overrides` ({dataset id: {split: absolute file}}).

    Each entry has `path`, optional `name` and `data_files` (split -> file, relative to `base_dir` unless absolute;
    default: the directory evalkit runs from); it may be a mapping or an object with those attributes (the config
    dataclass). Missing files fail here, before any server starts. `where` is the config key the entries sit under
    (e.g. "benchmarks.demo_leaderboard_v1.data"), for messages.
    """
    base_dir = Path.cwd() if base_dir is None else base_dir
    out: dict[str, dict[str, str]] = {}
    for key, entry in entries.items():
        path, name, files = (_field(entry, "path"), _field(entry, "name"), _field(entry, "data_files") or {})
        if not path:
            raise ConfigError(f"{where}.{key}.path is missing", hint="set it to the Hub dataset id the task reads")
        if not files:
            raise ConfigError(f"{where}.{key}.data_files is empty", hint="map each split the task reads to a file")
        ref = DatasetRef(str(path), None if name is None else str(name))
        resolved: dict[str, str] = {}
        for split, file in files.items():
            p = Path(file) if Path(file).is_absolute() else base_dir / file
            if not p.is_file():
                raise ConfigError(
                    f"{where}.{key}.data_files.{split}: file {p} does not exist",
                    hint="fix the path (relative paths start at the directory evalkit runs from)",
                )
            resolved[str(split)] = str(p.resolve())
        if ref.id in out:
            raise ConfigError(f"{where}.{key} overrides {ref.id} a second time", hint="merge the two entries")
        out[ref.id] = resolved
    return out


def _field(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)
