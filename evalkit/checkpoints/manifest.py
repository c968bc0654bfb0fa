"""Provenance of a produced checkpoint: a JSON manifest beside its weights, and the identity of a checkpoint dir.

Every directory evalkit produces (a converted GGUF, a quantized checkpoint) carries `evalkit-manifest.json`, saying
what it was made from, with which recipe and tools, and what it cost. Results tables can then name the exact
checkpoint a score came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.core.errors import CheckpointError
from evalkit.util.files import write_text_atomic
from evalkit.util.hashing import sha256_file

MANIFEST_NAME = "evalkit-manifest.json"
MANIFEST_VERSION = 1
IDENTITY_DIR = ".identity"


@dataclass(frozen=True)
class CalibrationRecord:
    """The calibration data a quantized checkpoint was calibrated on."""

    file: str
    """Path the data was read from (informative; `sha256` is what identifies it)."""
    sha256: str
    """Content hash of the calibration file."""
    samples_available: int
    """Samples in the file."""
    samples_used: int
    """Samples actually used: min(num_calibration_samples, samples_available)."""
    tokens: int
    """Calibration tokens after chat templating and truncation (as counted by the worker)."""
    max_seq_length: int
    seed: int


@dataclass(frozen=True)
class QuantizeManifest:
    """How one quantized checkpoint was produced."""

    base: str
    """Directory of the bf16 checkpoint it was produced from."""
    base_identity: str
    """Content hash of that directory (see `dir_identity`)."""
    scheme: str
    """The recipe's scheme, e.g. "W4A16"."""
    recipe: dict[str, Any]
    """The full RecipeConfig, as a dict."""
    recipe_hash: str
    """`recipes.recipe_hash` of the recipe."""
    recipe_yaml: str
    """The llm-compressor recipe that ran (`recipes.render_recipe_yaml`)."""
    calibration: CalibrationRecord | None
    """None for data-free recipes (FP8-dynamic RTN)."""
    cache_key: str
    """sha256 over base identity, recipe hash and calibration hash: names the cache entry."""
    tool_versions: dict[str, str]
    """Versions of python, torch, transformers, llmcompressor, compressed-tensors... in the quantization env."""
    threads: int
    """OMP/torch threads the worker ran with (GPTQ time depends on it)."""
    wall_time_s: float
    """Wall-clock seconds of the worker process (start to exit)."""
    peak_rss_mb: float | None
    """Peak resident memory of the worker, MiB; None when the platform does not report it."""
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    kind: str = "quantized"
    version: int = MANIFEST_VERSION


@dataclass(frozen=True)
class ConversionManifest:
    """How one checkpoint was converted from a GGUF file."""

    source: str
    """The GGUF as configured ("<package>/<file>.gguf" or a path)."""
    source_path: str
    """The file that was read."""
    source_sha256: str
    dtype: str
    """Weights dtype of the output ("bfloat16")."""
    tokenizer_class: str | None
    """tokenizer_class written to tokenizer_config.json (set for readers older than transformers 5)."""
    tool_versions: dict[str, str]
    wall_time_s: float
    peak_rss_mb: float | None
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    kind: str = "gguf_conversion"
    version: int = MANIFEST_VERSION


Manifest = QuantizeManifest | ConversionManifest


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    path = directory / MANIFEST_NAME
    path.write_text(json.dumps(dataclasses.asdict(manifest), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(directory: Path) -> Manifest:
    """The manifest of a produced checkpoint; CheckpointError if it is missing or unreadable."""
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{directory} has no {MANIFEST_NAME}: it was not produced by evalkit") from e
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.msg})", hint=f"delete {directory} to rebuild it") from e
    kind = data.get("kind")
    if kind == "quantized":
        if data.get("calibration") is not None:
            data["calibration"] = CalibrationRecord(**data["calibration"])
        return QuantizeManifest(**data)
    if kind == "gguf_conversion":
        return ConversionManifest(**data)
    raise CheckpointError(f"{path} has unknown kind {kind!r}", hint=f"delete {directory} to rebuild it")


def is_complete(directory: Path) -> bool:
    """A produced directory is complete iff it exists with its manifest (the manifest is written last, and the
    directory only appears under its final name by an atomic rename)."""
    return (directory / MANIFEST_NAME).is_file()


def _stat_key(files: list[Path], root: Path) -> list[list[Any]]:
    return [[str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def dir_identity(directory: Path, memo_root: Path | None = None) -> str:
    """Content hash of a checkpoint directory: every file (weights, config, tokenizer) except evalkit's manifest.

    Content, not path: the same weights copied elsewhere hash the same, and different fine-tunes with identical
    shapes hash differently. Hashing tens of GB is slow, so the result is memoised under `memo_root`, keyed by path,
    sizes and mtimes; touching a file triggers a re-hash.
    """
    directory = directory.resolve()
    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(".")
    )
    if not files:
        raise CheckpointError(f"checkpoint directory {directory} is empty or missing")
    stat_key = _stat_key(files, directory)
    memo = None
    if memo_root is not None:
        memo = memo_root / IDENTITY_DIR / (hashlib.sha256(str(directory).encode()).hexdigest()[:24] + ".json")
        try:
            cached = json.loads(memo.read_text())
            if cached["stat"] == stat_key:
                return str(cached["identity"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.relative_to(directory)}\0{sha256_file(f)}\n".encode())
    identity = digest.hexdigest()
    if memo is not None:
        # concurrent jobs (and threads) may memoise the same directory
        write_text_atomic(memo, json.dumps({"dir": str(directory), "stat": stat_key, "identity": identity}))
    return identity
