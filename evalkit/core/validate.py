"""The checks Hydra's schema cannot express, run on a job's typed config before anything starts.

`validate` names the bad key, its value and the valid choices or the fix: names usable in file names, selected
benchmarks in the catalogue, a checkpoint source per format, local checkpoints present, parallel sizes that use the
job's GPUs, and each benchmark's local data (present, and complete copies for real benchmarks).
"""

from __future__ import annotations

from pathlib import Path

from evalkit.core.config import DEMO_PREFIXES, NAME_RE, CheckpointSpec, EvalkitConfig, ModelConfig
from evalkit.core.datasources import check_benchmark_data
from evalkit.core.enums import CheckpointSource
from evalkit.core.errors import ConfigError
from evalkit.core.resources import job_resources


def _check_name(kind: str, name: str) -> None:
    if not NAME_RE.match(name):
        raise ConfigError(
            f"{kind} name {name!r} is not usable in file names and cell ids",
            hint="use letters, digits, '.', '_' and '-' only, with no '__' and no '_' at the end "
            "('__' joins model, format and benchmark in the cell's file names)",
        )


def validate(cfg: EvalkitConfig) -> None:
    """Checks Hydra's schema cannot express. Raises ConfigError naming the bad value and the valid ones."""
    _check_name("model", cfg.model.name)
    _check_name("format", cfg.format.name)
    if not cfg.benchmark:
        raise ConfigError(
            "no benchmark selected",
            hint=f"pass benchmark=<name>[,<name>...]; defined: {', '.join(sorted(cfg.benchmarks)) or '(none)'}",
        )
    for name in cfg.benchmark:
        if name not in cfg.benchmarks:
            raise ConfigError(
                f"unknown benchmark {name!r}",
                hint=f"valid choices: {', '.join(sorted(cfg.benchmarks))}",
            )
    for key, bench in cfg.benchmarks.items():
        _check_name("benchmark", bench.name)
        if bench.name != key:
            raise ConfigError(f"benchmark {key!r} declares name {bench.name!r}", hint="make them equal")
        # the demo mark exempts local data from the completeness check, so only demo/smoke names may carry it
        if bench.demo != bench.name.startswith(DEMO_PREFIXES):
            raise ConfigError(
                f"benchmarks.{key}.demo={bench.demo} does not match its name",
                hint=f"benchmarks named {'/'.join(p + '*' for p in DEMO_PREFIXES)} (and only those) set demo: true",
            )
    spec = cfg.model.checkpoints.get(cfg.format.name)
    if spec is None:
        raise ConfigError(
            f"model {cfg.model.name!r} has no checkpoint for format {cfg.format.name!r}",
            hint=f"add model.checkpoints.{cfg.format.name} (it has: {', '.join(sorted(cfg.model.checkpoints))})",
        )
    if spec.source == CheckpointSource.recipe and cfg.format.recipe is None:
        raise ConfigError(
            f"model.checkpoints.{cfg.format.name} asks for a recipe but format {cfg.format.name!r} has none",
            hint="use source: hub or path for this format",
        )
    if spec.source != CheckpointSource.recipe and not spec.id:
        raise ConfigError(f"model.checkpoints.{cfg.format.name} (source {spec.source}) needs an id")
    if spec.source == CheckpointSource.recipe and cfg.baseline_format not in cfg.model.checkpoints:
        raise ConfigError(
            f"format {cfg.format.name!r} is produced from the {cfg.baseline_format} checkpoint, "
            f"but model {cfg.model.name!r} declares none",
            hint=f"add model.checkpoints.{cfg.baseline_format}",
        )
    _check_parallelism(cfg.model)
    for fmt in dict.fromkeys(
        [cfg.format.name, *([cfg.baseline_format] if spec.source == CheckpointSource.recipe else [])]
    ):
        _check_local_checkpoint(fmt, cfg.model.checkpoints.get(fmt))
    # tensor x pipeline parallel against the job's GPUs, before anything is resolved, served or submitted
    job_resources(cfg.model, cfg.format.name)
    for fmt in cfg.model.recipe_overrides:
        if fmt not in cfg.model.checkpoints:
            raise ConfigError(
                f"model.recipe_overrides names format {fmt!r}, which the model has no checkpoint for",
                hint=f"formats: {', '.join(sorted(cfg.model.checkpoints))}",
            )
    # Local data is checked here, at plan time: missing files, and for a real benchmark, a copy that differs from
    # what `evalkit prefetch` recorded (a demo-sized file would otherwise score a real cell on 4 documents).
    for name in cfg.benchmark:
        check_benchmark_data(cfg.benchmarks[name], cfg.paths.cache)


def _check_parallelism(model: ModelConfig) -> None:
    """vLLM needs at least one GPU per replica; 0 or -1 would otherwise fail only at server start (after the checkpoint
    was produced) or, on Slurm, plan a negative pipeline or divide by zero."""
    sizes = {"model.tensor_parallel_size": model.tensor_parallel_size}
    sizes |= {f"model.tp_by_format.{fmt}": tp for fmt, tp in model.tp_by_format.items()}
    for key, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"{key}={value!r} is not a tensor-parallel size (GPUs one vLLM server spans, >= 1)",
                hint=f"set {key}=1, or the number of GPUs of a node one replica needs (e.g. 8)",
            )


def _check_local_checkpoint(fmt: str, spec: CheckpointSpec | None) -> None:
    """A `source: path` checkpoint must exist now: nothing produces it later."""
    if spec is None or spec.source != CheckpointSource.path or not spec.id:
        return
    path = Path(spec.id).expanduser()
    if not (path / "config.json").is_file():
        what = "does not exist" if not path.exists() else "is not a checkpoint directory (no config.json)"
        raise ConfigError(
            f"model.checkpoints.{fmt}.id={spec.id!r} (source: path) {what}",
            hint="point it at a directory saved with save_pretrained (absolute, or relative to where evalkit runs), "
            "or use source: hub with a Hugging Face id",
        )
