"""From config to a servable checkpoint: the one place that reads `model.checkpoints.<format>`.

hub: served by id (jobs run with the Hub offline, so `evalkit prefetch` must have cached it);
path: a local directory; gguf: converted once to bf16 and cached; recipe: the baseline format's checkpoint
quantized once with the format's recipe (and this model's overrides) and cached by recipe and calibration hash.

`python -m evalkit.pipeline.checkpoint model=M format=F` produces one job's checkpoint and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.checkpoints.gguf import converted_name, ensure_converted, resolve_gguf
from evalkit.checkpoints.manifest import is_complete
from evalkit.checkpoints.quantize import ensure_quantized, find_quantized
from evalkit.checkpoints.recipes import apply_overrides
from evalkit.core.config import EvalkitConfig, RecipeConfig
from evalkit.core.errors import CheckpointError
from evalkit.util.hashing import sha256_file


def effective_recipe(cfg: EvalkitConfig, format_name: str | None = None) -> RecipeConfig | None:
    """The format's recipe with this model's overrides applied: what the quantizer really runs."""
    fmt = format_name or cfg.format.name
    if cfg.format.recipe is None:
        return None
    return apply_overrides(cfg.format.recipe, cfg.model.recipe_overrides.get(fmt))


def resolve_checkpoint(cfg: EvalkitConfig, job_dir: Path) -> str:
    """Local directory (or hub id) that vLLM serves for this job's model x format; produces it when needed."""
    return _resolve(cfg, cfg.format.name, job_dir)


def _resolve(cfg: EvalkitConfig, fmt: str, job_dir: Path) -> str:
    spec = cfg.model.checkpoints[fmt]
    cache_root = Path(cfg.paths.checkpoints).resolve() / cfg.model.name
    assert spec.source == "recipe" or spec.id is not None  # evalkit.core.validate guarantees it
    if spec.source == "hub":
        return str(spec.id)
    if spec.source == "path":
        path = Path(str(spec.id)).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"model.checkpoints.{fmt}: {path} is not a checkpoint directory (no config.json)",
                hint="point it at a directory saved with save_pretrained, or use source: hub",
            )
        return str(path)
    if spec.source == "gguf":
        log = job_dir / f"convert-{fmt}.log"
        return str(ensure_converted(str(spec.id), cache_root, log, threads=cfg.quantize.threads))
    recipe = effective_recipe(cfg, fmt)
    assert recipe is not None
    base = _local_dir(_resolve(cfg, cfg.baseline_format, job_dir), fmt)
    log = job_dir / f"quantize-{fmt}.log"
    python = str(Path(cfg.quantize.python).expanduser().absolute())
    return str(ensure_quantized(base, recipe, cache_root, python, log, threads=cfg.quantize.threads))


def cached_checkpoint(cfg: EvalkitConfig, format_name: str | None = None) -> str | None:
    """What `resolve_checkpoint` would return, if it can without producing anything; None when a conversion or a
    quantization would have to run first. Looks only at local files (a hub id counts as available: jobs read it
    from the Hugging Face cache that `evalkit prefetch` fills)."""
    fmt = format_name or cfg.format.name
    spec = cfg.model.checkpoints[fmt]
    cache_root = Path(cfg.paths.checkpoints).resolve() / cfg.model.name
    if spec.source == "hub":
        return str(spec.id)
    if spec.source == "path":
        return str(Path(str(spec.id)).expanduser().resolve())
    if spec.source == "gguf":
        gguf = resolve_gguf(str(spec.id))
        entry = cache_root / converted_name(gguf, sha256_file(gguf))
        return str(entry) if is_complete(entry) else None
    base = cached_checkpoint(cfg, cfg.baseline_format)
    recipe = effective_recipe(cfg, fmt)
    if base is None or recipe is None or not Path(base).is_dir():
        return None
    found = find_quantized(Path(base), recipe, cache_root)
    return str(found) if found is not None else None


def needs_quantization(cfg: EvalkitConfig) -> bool:
    """Whether this job's checkpoint comes from a recipe and is not cached yet (so a quantize step must run first)."""
    return cfg.model.checkpoints[cfg.format.name].source == "recipe" and cached_checkpoint(cfg) is None


def _local_dir(checkpoint: str, fmt: str) -> Path:
    """The quantizer reads a directory: a hub id is looked up in the local Hugging Face cache (no download)."""
    path = Path(checkpoint)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(checkpoint, local_files_only=True))
    except Exception as exc:
        raise CheckpointError(
            f"format {fmt} is produced from {checkpoint}, which is not in the local Hugging Face cache",
            hint="run `evalkit prefetch` with the same overrides on a machine with internet",
        ) from exc
