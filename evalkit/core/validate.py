"""The checks Hydra's schema cannot express, run on a job's typed config before anything starts.

`validate` names the bad key, its value and the valid choices or the fix: every value in the range its schema field
declares (`evalkit.core.config.bounded`), names usable in file names and folder names, selected benchmarks in the
catalogue (once each), server settings the job would replace, a loopback server, a checkpoint source per format,
local checkpoints present, parallel sizes that use the job's GPUs, and each benchmark's local data (present, and
complete copies for real benchmarks). `check_overrides` refuses command-line overrides a later layer would replace.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.core import grid
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


FOLDER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""Names that become one folder (the sweep's): no separator, no "..", nothing hidden."""

REPLACED_OVERRIDES = {
    f"hydra.launcher.{k}": f"model.resources.{k} (or model.resources_by_format.<format>.{k})"
    for k in ("gpus_per_node", "nodes", "cpus_per_task", "mem_gb", "timeout_min")
}
"""Command-line overrides a later layer replaces: evalkit submits each Slurm job with its model's resources
(conf/launcher/slurm.yaml), so these would be ignored. Key -> what to set instead."""

REPLACED_SERVER = {
    "tensor_parallel_size": (1, "model.tensor_parallel_size (or model.tp_by_format.<format>)"),
    "pipeline_parallel_size": (1, "model.pp_by_format.<format>"),
    "max_model_len": (None, "model.max_model_len"),
}
"""`server` fields the job replaces with the model's value (evalkit/pipeline/job.py): field -> (default, the key
to set instead)."""


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse overrides that a later layer would replace (so they would do nothing), naming what to set instead."""
    for ov in grid.parse(overrides):
        instead = REPLACED_OVERRIDES.get(ov.key_or_group)
        if instead is not None:
            raise ConfigError(
                f"{ov.input_line}: evalkit replaces {ov.key_or_group} with each job's model resources, so this "
                "override would be ignored",
                hint=f"set {instead} instead",
            )


def check_bounds(node: Any, where: str = "") -> None:
    """Every field declared with `bounded` in range, through nested configs and dicts of them (`model.checkpoints`,
    `benchmarks`, ...). Raises ConfigError naming the key, the value, the range and the default."""
    if isinstance(node, dict):
        for key, value in node.items():
            check_bounds(value, f"{where}.{key}" if where else str(key))
        return
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        key = f"{where}.{f.name}" if where else f.name
        bounds = f.metadata.get("bounds")
        if bounds:
            for item in value if isinstance(value, list) else [value]:
                _check_bound(key, item, value, bounds, f)
        else:
            check_bounds(value, key)


def _check_bound(key: str, item: Any, value: Any, bounds: dict[str, float], f: dataclasses.Field[Any]) -> None:
    if item is None:
        return
    ok = (
        ("ge" not in bounds or item >= bounds["ge"])
        and ("gt" not in bounds or item > bounds["gt"])
        and ("le" not in bounds or item <= bounds["le"])
    )
    if ok:
        return
    words = {"ge": ">=", "gt": ">", "le": "<="}
    rule = " and ".join(f"{words[k]} {v:g}" for k, v in bounds.items())
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    shown = f"[{','.join(map(str, default))}]" if isinstance(default, list) else default
    raise ConfigError(
        f"{key}={value!r} is out of range: {'each value' if isinstance(value, list) else 'it'} must be {rule}",
        hint=f"set {key} to a value {rule} (the default is {key}={shown})",
    )


def _check_server(cfg: EvalkitConfig) -> None:
    for name, (default, instead) in REPLACED_SERVER.items():
        value = getattr(cfg.server, name)
        if value != default:
            raise ConfigError(
                f"server.{name}={value!r} would be ignored: each job passes {instead} to the server",
                hint=f"set {instead} instead, and leave server.{name} unset",
            )
    host = cfg.server.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"server.host={host!r} is not a loopback address: vLLM would serve the model to anyone who can reach "
            "that interface, without authentication",
            hint="a non-loopback host needs an API key (vLLM --api-key), which evalkit's benchmark clients do not "
            "send; they run on the job's node, so keep server.host=127.0.0.1 (the default)",
        )


def validate(cfg: EvalkitConfig) -> None:
    """Checks Hydra's schema cannot express. Raises ConfigError naming the bad value and the valid ones."""
    _check_name("model", cfg.model.name)
    _check_name("format", cfg.format.name)
    if not FOLDER_NAME_RE.match(cfg.sweep):
        raise ConfigError(
            f"sweep={cfg.sweep!r} is not a folder name: the sweep's jobs go to paths.jobs/<sweep>/",
            hint="use letters, digits, '.', '_' and '-' only, starting with a letter or digit (no '/', no '..'); "
            "to put the jobs elsewhere, set paths.jobs",
        )
    if not cfg.benchmark:
        raise ConfigError(
            "no benchmark selected",
            hint=f"pass benchmark=<name>[,<name>...]; defined: {', '.join(sorted(cfg.benchmarks)) or '(none)'}",
        )
    repeated = sorted({b for b in cfg.benchmark if cfg.benchmark.count(b) > 1})
    if repeated:
        raise ConfigError(
            f"benchmark={cfg.benchmark} names {', '.join(repeated)} more than once",
            hint="name each benchmark once",
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
    check_bounds(cfg)
    _check_server(cfg)
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
