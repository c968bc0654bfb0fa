"""Produce (once) and cache a quantized checkpoint: bf16 checkpoint + recipe -> compressed-tensors checkpoint.

The cache entry is named by a key over what determines the result: the base checkpoint's content, the recipe hash
and the calibration file's content. A hit returns at once; a miss runs `quantize_worker.py` in the quantization
environment, as a child process, into a temporary directory that is renamed into place only once the checkpoint and
its manifest are complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.checkpoints.atomic import atomic_dir, clear_incomplete, entry_lock, sweep_dead_temps
from evalkit.checkpoints.calibration import (
    Sample,
    load_samples,
    resolve_calibration_file,
    select_samples,
)
from evalkit.checkpoints.manifest import (
    CalibrationRecord,
    QuantizeManifest,
    dir_identity,
    is_complete,
    write_manifest,
)
from evalkit.checkpoints.recipes import (
    calibration_params,
    recipe_hash,
    render_modifiers,
    render_recipe_yaml,
    validate_recipe,
)
from evalkit.checkpoints.runner import TAIL_LINES, StageRun, run_stage, thread_env
from evalkit.core.config import RecipeConfig
from evalkit.core.errors import CheckpointError
from evalkit.util.hashing import sha256_file
from evalkit.util.procs import log_tail

WORKER = Path(__file__).with_name("quantize_worker.py")
WORKER_RESULT = ".worker-result.json"
NO_CALIBRATION = "none"


@dataclass(frozen=True)
class PreparedCalibration:
    """The calibration samples a recipe will use, read and selected in this process."""

    path: Path
    sha256: str
    samples_available: int
    samples: list[Sample]


def prepare_calibration(recipe: RecipeConfig) -> PreparedCalibration | None:
    """Read and select the recipe's calibration samples; None for data-free recipes."""
    if not recipe.needs_calibration:
        return None
    path = resolve_calibration_file(recipe.calibration_file)
    available = load_samples(path)
    samples = select_samples(available, recipe.num_calibration_samples, recipe.calibration_seed)
    return PreparedCalibration(path=path, sha256=sha256_file(path), samples_available=len(available), samples=samples)


def cache_key(base_identity: str, recipe_digest: str, calibration_sha256: str | None) -> str:
    """sha256 naming a cache entry: same base content + same recipe + same calibration data = same checkpoint."""
    blob = f"base={base_identity}\nrecipe={recipe_digest}\ncalibration={calibration_sha256 or NO_CALIBRATION}\n"
    return hashlib.sha256(blob.encode()).hexdigest()


def recipe_identity(recipe: RecipeConfig) -> str:
    """sha256 of everything a recipe-produced checkpoint depends on besides its base: the recipe hash and the
    calibration file's content. Cheap (no base hashing, no sample selection), for cell ids that must change when
    the calibration data changes."""
    calibration = sha256_file(resolve_calibration_file(recipe.calibration_file)) if recipe.needs_calibration else None
    return hashlib.sha256(
        f"recipe={recipe_hash(recipe)}\ncalibration={calibration or NO_CALIBRATION}\n".encode()
    ).hexdigest()


def entry_name(base: Path, recipe: RecipeConfig, key: str) -> str:
    """Directory name of a cache entry: readable prefix, unique key suffix."""
    return f"{base.name}--{recipe.scheme.lower()}--{key[:16]}"


@dataclass(frozen=True)
class CacheEntry:
    """Where the checkpoint of base + recipe lives, and the identities that name it."""

    path: Path
    base_identity: str
    recipe_hash: str
    key: str
    calibration: PreparedCalibration | None


def locate(base: Path, recipe: RecipeConfig, cache_root: Path) -> CacheEntry:
    """The cache entry for base + recipe (whether or not it exists yet). Hashes the base directory on first use."""
    validate_recipe(recipe)
    base = Path(base).resolve()
    if not (base / "config.json").is_file():
        raise CheckpointError(
            f"base checkpoint {base} has no config.json",
            hint="produce the bf16 checkpoint first (gguf conversion or a downloaded model directory)",
        )
    cache_root = Path(cache_root).resolve()
    calibration = prepare_calibration(recipe)
    digest = recipe_hash(recipe)
    identity = dir_identity(base, memo_root=cache_root)
    key = cache_key(identity, digest, calibration.sha256 if calibration else None)
    return CacheEntry(cache_root / entry_name(base, recipe, key), identity, digest, key, calibration)


def find_quantized(base: Path, recipe: RecipeConfig, cache_root: Path) -> Path | None:
    """The cached checkpoint for base + recipe if it is complete (never produces one)."""
    entry = locate(base, recipe, cache_root)
    return entry.path if is_complete(entry.path) else None


def ensure_quantized(
    base: Path,
    recipe: RecipeConfig,
    cache_root: Path,
    python: str,
    log_path: Path,
    *,
    threads: int = 2,
    timeout_s: float | None = None,
) -> Path:
    """The quantized checkpoint of `base` under `recipe`, produced on first use and cached under `cache_root`.

    `python` is the interpreter of the environment with llmcompressor (`quantize.python` in the config); `threads`
    sets OMP_NUM_THREADS and torch's thread count in the worker (set it to the cores this job owns: GPTQ is many
    times slower when threads compete). The worker's output goes to `log_path`. Raises CheckpointError, with the
    log's last lines and what to do next, when the checkpoint cannot be produced.
    """
    base = Path(base).resolve()
    entry = locate(base, recipe, cache_root)
    if is_complete(entry.path):
        return entry.path
    _check_interpreter(python)
    with entry_lock(entry.path):
        if is_complete(entry.path):  # another job produced it while we waited for the lock
            return entry.path
        clear_incomplete(entry.path)
        sweep_dead_temps(entry.path.parent)
        with atomic_dir(entry.path) as tmp:
            run = _run_worker(base, recipe, entry.calibration, tmp, python, Path(log_path), threads, timeout_s)
            result = _read_worker_result(tmp, run, log_path)
            _check_output(tmp, log_path)
            manifest = QuantizeManifest(
                base=str(base),
                base_identity=entry.base_identity,
                scheme=recipe.scheme,
                recipe=dataclasses.asdict(recipe),
                recipe_hash=entry.recipe_hash,
                recipe_yaml=render_recipe_yaml(recipe),
                calibration=_calibration_record(recipe, entry.calibration, result),
                cache_key=entry.key,
                tool_versions={str(k): str(v) for k, v in (result.get("tool_versions") or {}).items()},
                threads=threads,
                wall_time_s=run.wall_time_s,
                peak_rss_mb=run.peak_rss_mb,
            )
            write_manifest(tmp, manifest)  # last: a directory with a manifest is complete
    return entry.path


def _check_interpreter(python: str) -> None:
    if not Path(python).is_file():
        raise CheckpointError(
            f"quantization interpreter {python} does not exist",
            hint="create the quantization environment (.venv-quant with llmcompressor) or set quantize.python",
        )


def _run_worker(
    base: Path,
    recipe: RecipeConfig,
    calibration: PreparedCalibration | None,
    out: Path,
    python: str,
    log_path: Path,
    threads: int,
    timeout_s: float | None,
) -> StageRun:
    params = calibration_params(recipe)
    spec = {
        "base": str(base),
        "output": str(out),
        "threads": threads,
        "result": str(out / WORKER_RESULT),
        "modifiers": [dataclasses.asdict(m) for m in render_modifiers(recipe)],
        "calibration": (
            {"samples": calibration.samples, "max_seq_length": params["max_seq_length"]}
            if calibration is not None and params is not None
            else None
        ),
        "calibration_dtype": recipe.calibration_dtype if calibration is not None else None,
    }
    # beside the log, not in the checkpoint: it is for rerunning by hand, and its calibration copy is bulky
    spec_path = log_path.with_name(log_path.name + ".spec.json")
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec, indent=1, ensure_ascii=False))
    env = {**thread_env(threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    # -I: the worker must not see evalkit (its directory holds a gguf.py that would shadow the gguf package);
    # -u: unbuffered, so the log is current when the run is killed.
    argv = [python, "-I", "-u", str(WORKER), "--spec", str(spec_path)]
    run = run_stage(argv, log_path, env, timeout_s=timeout_s)
    if not run.ok:
        raise CheckpointError(
            f"quantizing {base} with {recipe.scheme} failed ({run.describe_exit()} after {run.wall_time_s:.0f} s); "
            f"last log lines:\n{log_tail(log_path, TAIL_LINES)}",
            log=log_path,
            hint=_failure_hint(log_path, run),
        )
    return run


def _failure_hint(log_path: Path, run: StageRun) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
    if "divisible" in text and "group" in text.lower():
        return (
            "the group size does not divide a layer's input width; set model.recipe_overrides.<format>.group_size "
            "to a divisor of the model's hidden sizes (e.g. 64 for hidden size 576)"
        )
    if run.returncode < 0:
        return "the worker was killed (out of memory? timeout? an operator?); rerun the job, nothing was cached"
    return f"read the log; to debug, rerun the worker by hand (it writes to a temporary dir): {run.command}"


def _read_worker_result(tmp: Path, run: StageRun, log_path: Path) -> dict[str, Any]:
    path = tmp / WORKER_RESULT
    try:
        result = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"the quantization worker exited 0 but wrote no result file ({path})",
            log=log_path,
            hint=f"rerun by hand: {run.command}",
        ) from e
    path.unlink()
    return dict(result)


def _check_output(tmp: Path, log_path: Path) -> None:
    """The worker's output is a compressed-tensors checkpoint vLLM can load (quantization_config in config.json)."""
    try:
        config = json.loads((tmp / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError) as e:
        raise CheckpointError("the quantized checkpoint has no readable config.json", log=log_path) from e
    method = (config.get("quantization_config") or {}).get("quant_method")
    if method != "compressed-tensors":
        raise CheckpointError(
            f"the quantized checkpoint's config.json has quant_method {method!r}, expected 'compressed-tensors'",
            log=log_path,
            hint="check the llmcompressor / compressed-tensors versions in the quantization environment",
        )
    if not any(tmp.glob("*.safetensors")):
        raise CheckpointError("the quantized checkpoint has no .safetensors weights", log=log_path)


def _calibration_record(
    recipe: RecipeConfig, calibration: PreparedCalibration | None, result: dict[str, Any]
) -> CalibrationRecord | None:
    if calibration is None:
        return None
    tokens = result.get("calibration_tokens", 0)
    return CalibrationRecord(
        file=str(calibration.path),
        sha256=calibration.sha256,
        samples_available=calibration.samples_available,
        samples_used=len(calibration.samples),
        tokens=int(tokens) if isinstance(tokens, int) else 0,
        max_seq_length=recipe.max_seq_length,
        seed=recipe.calibration_seed,
    )
