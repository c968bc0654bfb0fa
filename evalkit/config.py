"""The configuration schema: one dataclass per config group, registered in Hydra's ConfigStore.

Hydra validates every YAML file in `conf/` and every command-line override against these classes, so a
misspelt key (`format.recpie`) or a value of the wrong type fails before anything starts. Choices that
are not keys (a benchmark name in `benchmark`, a format without a checkpoint source) are checked by
`validate()`, which names the bad value and the valid ones.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from evalkit.checkpoints.recipes import RecipeConfig
from evalkit.errors import ConfigError
from evalkit.serve import ServerConfig

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CHECKPOINT_SOURCES = ("hub", "path", "recipe", "gguf")
DEMO_PREFIXES = ("demo_", "smoke_")
"""Names of benchmarks that run on small shipped data (see BenchmarkConfig.demo)."""


@dataclass
class CheckpointSpec:
    """Where the checkpoint of one model x format comes from."""

    source: str = MISSING
    """hub: a Hugging Face id; path: a local directory; recipe: produced from the model's bf16 checkpoint
    with the format's llm-compressor recipe; gguf: converted from a GGUF file shipped in a Python package."""
    id: str | None = None
    """Hub id (hub), directory (path), or "<python package>/<file>.gguf" (gguf). Unused for recipe."""


@dataclass
class ResourcesConfig:
    """What one model x format job asks the cluster for. Defaults per model size live in conf/model/."""

    gpus_per_node: int = 0
    nodes: int = 1
    cpus_per_task: int = 2
    mem_gb: int = 20
    timeout_min: int = 240


@dataclass
class ModelConfig:
    """A model of a family, with one checkpoint per quantization format."""

    name: str = MISSING
    """Short id used in cell ids, file names and tables, e.g. "llama-3.1-8b-instruct"."""
    family: str = MISSING
    """e.g. "Llama-3.1-Instruct"."""
    size: str = MISSING
    """e.g. "8B"; picks cluster resources."""
    checkpoints: dict[str, CheckpointSpec] = field(default_factory=dict)
    """Format name -> checkpoint source. Every format in a sweep must have an entry."""
    max_model_len: int = 4096
    """Context length the server is started with (the longest any benchmark of the study needs)."""
    tensor_parallel_size: int = 1
    """GPUs one vLLM server spans."""
    recipe_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Format name -> recipe fields this model needs changed (e.g. the demo model's hidden size 576 is not
    divisible by the study's W4A16 group size 128, so it uses 64)."""
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    resources_by_format: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Format name -> resource fields to change for it (e.g. a W4A16 70B fits on fewer GPUs)."""
    tp_by_format: dict[str, int] = field(default_factory=dict)
    """Format name -> tensor_parallel_size for it, when it differs from `tensor_parallel_size`."""
    pp_by_format: dict[str, int] = field(default_factory=dict)
    """Format name -> vLLM pipeline-parallel size (default 1). tensor x pipeline parallel must equal the job's GPUs
    (gpus_per_node x nodes): BF16 405B is TP 8 x PP 2 over two 8-GPU nodes, served over Ray."""


@dataclass
class FormatConfig:
    """A quantization format of the study."""

    name: str = MISSING
    """bf16 | fp8 | w8a8 | w4a16 (file-name safe)."""
    label: str = MISSING
    """How the study names it: BF16, W8A8-FP, W8A8-INT, W4A16-INT."""
    recipe: RecipeConfig | None = None
    """llm-compressor recipe that produces this format from the bf16 checkpoint; None for the baseline."""
    vllm_args: dict[str, Any] = field(default_factory=dict)
    """Extra vLLM server arguments this format needs ({"kv-cache-dtype": "fp8"}); they win over `server`."""


@dataclass
class DatasetOverride:
    """A Hugging Face dataset served from local files (offline data)."""

    path: str = MISSING
    """The dataset id the task definition names, e.g. "cais/mmlu"."""
    name: str | None = None
    """Dataset config name, e.g. "abstract_algebra"."""
    data_files: dict[str, str] = field(default_factory=dict)
    """Split -> local JSONL file (one JSON object per line, in the Hub dataset's schema)."""


@dataclass
class BenchmarkConfig:
    """A benchmark (a suite of tasks) and its adapter settings."""

    name: str = MISSING
    """Cell-level benchmark name, e.g. "leaderboard_v1" or "demo_leaderboard_v1"."""
    adapter: str = MISSING
    """Key in `evalkit.benchmarks.ADAPTERS`: lm_eval, arena_hard, humaneval, ruler."""
    suite: str = MISSING
    """What `aggregate` groups by, e.g. "leaderboard_v1" (a demo variant shares its suite)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Adapter-specific settings, validated by the adapter before anything starts."""
    demo: bool = False
    """A demo or smoke benchmark (name `demo_*` / `smoke_*`): it runs on small shipped data, so its local data is
    not checked for completeness. Its scores say only that the pipeline works."""
    data: dict[str, DatasetOverride] = field(default_factory=dict)
    """Hub datasets this benchmark reads from local files instead (key -> files), and only this benchmark. Demo
    benchmarks take conf/data/demo.yaml through their defaults list; a real benchmark has none unless a user names
    complete local copies (offline clusters), which `evalkit prefetch`'s manifest must vouch for
    (evalkit/datasources.py)."""


@dataclass
class PathsConfig:
    """Where things live. Relative paths are relative to the directory evalkit is started from."""

    results: str = "results"
    """Parquet tables (scores/, samples/) and aggregates."""
    jobs: str = "jobs"
    """Per-sweep job folders: logs, server logs, resolved configs, harness outputs."""
    checkpoints: str = "checkpoints"
    """Produced checkpoints (converted and quantized), cached by recipe hash."""
    cache: str = ".cache"
    """Caches of the harnesses and the server (HF, vLLM), kept out of $HOME."""


@dataclass
class QuantizeConfig:
    """The quantization stage (llm-compressor runs in its own environment; see README)."""

    python: str = ".venv-quant/bin/python"
    """Interpreter of the environment that has llmcompressor."""
    threads: int = 1
    """OMP/torch threads for GPTQ. Part of what a checkpoint is (GPTQ output differs between 1 and 2 threads), so keep
    it fixed per deployment; 1 was fastest on 2 shared cores (w8a8 1:20 vs 1:50)."""
    resources: ResourcesConfig = field(
        default_factory=lambda: ResourcesConfig(gpus_per_node=0, cpus_per_task=2, mem_gb=8, timeout_min=60)
    )
    """What the quantize job asks Slurm for (launcher=slurm), when a sweep needs a checkpoint not cached yet.
    Sized for the demo model; a 70B GPTQ run needs far more memory (and time)."""


@dataclass
class EvalkitConfig:
    """Root config: one model x format job and the benchmarks it runs."""

    model: ModelConfig = MISSING
    format: FormatConfig = MISSING
    server: ServerConfig = field(default_factory=ServerConfig)
    benchmarks: dict[str, BenchmarkConfig] = field(default_factory=dict)
    """The catalogue: every benchmark defined in conf/benchmarks/, by name."""
    benchmark: list[str] = field(default_factory=list)
    """The benchmarks this job runs (names in the catalogue). A multirun over `benchmark` groups them into one
    job per model x format, so one server serves them all."""
    baseline_format: str = "bf16"
    """Recovery tables divide by this format."""
    sweep: str = "default"
    """Sweep name: job folders go to `paths.jobs/<sweep>/`."""
    paths: PathsConfig = field(default_factory=PathsConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    offline: bool = True
    """Run jobs with the Hub offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE); `prefetch` caches first."""
    force: bool = False
    """Re-run cells even when complete (`evalkit run` sets it to replace one cell's rows)."""
    split_scoring: bool = False
    """Score after the server is gone: the job only generates (GPU time is spent on generation alone) and scoring
    (judges, sandboxed code, parsing) runs afterwards without a server: in the same process locally, as a CPU
    step on a cluster (`evalkit score`). Off: each cell is scored right after its generation."""
    phase: str = "all"
    """What a job does: all | generate (server up, outputs and a marker per cell) | score (no server). Set by the
    launchers and `evalkit score`; see evalkit/job.py."""
    retries: int = 1
    """How many times a failed cell is retried within a job before it is recorded as failed."""
    seed: int = 1234


def register_configs() -> None:
    """Register the schema so YAML files and overrides are validated against it."""
    cs = ConfigStore.instance()
    # Only the root: it types every group (model: ModelConfig, ...), so group files are validated on merge, and
    # no "*_schema" entries show up among a group's choices in error messages.
    cs.store(name="evalkit_schema", node=EvalkitConfig)


def to_object(cfg: DictConfig) -> EvalkitConfig:
    """The typed config (dataclass instances) from Hydra's DictConfig, with interpolations resolved."""
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, EvalkitConfig)
    return obj


ROOT_EXTRA_KEYS = ("hydra",)
"""Root keys allowed beside the schema's: Hydra's own node (present while a Hydra app runs)."""


def _declared(node: Any) -> list[str] | None:
    """Field names of the dataclass a config node is typed with; None for free-form nodes (dicts, settings)."""
    schema = OmegaConf.get_type(node)
    if isinstance(schema, type) and dataclasses.is_dataclass(schema):
        return [f.name for f in dataclasses.fields(schema)]
    return None


def unknown_keys(node: Any, where: str = "") -> list[str]:
    """Dotted keys of `node` that its schema does not declare. Hydra lets `+key=value` add keys even to a structured
    config, and `to_object` then drops them silently: `+servr.port=8000` would be accepted and do nothing."""
    if not isinstance(node, DictConfig):
        return []
    found: list[str] = []
    declared = _declared(node)
    for key in node:
        name = str(key)
        path = f"{where}.{name}" if where else name
        if not where and name in ROOT_EXTRA_KEYS:
            continue  # Hydra's node has its own schema, checked by Hydra
        if declared is not None and name not in declared:
            found.append(path)
            continue
        found += unknown_keys(node._get_node(name), path)  # the node, not its value: no interpolation is resolved
    return found


def check_known_keys(cfg: DictConfig) -> None:
    """Raise ConfigError for keys the schema does not declare (see `unknown_keys`), listing the valid ones."""
    unknown = unknown_keys(cfg)
    if not unknown:
        return
    parent = unknown[0].rpartition(".")[0]
    node = OmegaConf.select(cfg, parent, throw_on_resolution_failure=False) if parent else cfg
    valid = _declared(node) or []
    where = f" of {parent}" if parent else ""
    raise ConfigError(
        f"unknown config key(s) {', '.join(unknown)} (added with `+`, so Hydra accepted them)",
        hint=f"remove them or fix the spelling; valid keys{where}: {', '.join(sorted(valid))}",
    )


def _check_name(kind: str, name: str) -> None:
    if not NAME_RE.match(name):
        raise ConfigError(
            f"{kind} name {name!r} is not usable in file names and cell ids",
            hint="use letters, digits, '.', '_' and '-' only",
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
    if spec.source not in CHECKPOINT_SOURCES:
        raise ConfigError(
            f"model.checkpoints.{cfg.format.name}.source={spec.source!r} is not a checkpoint source",
            hint=f"valid choices: {', '.join(CHECKPOINT_SOURCES)}",
        )
    if spec.source == "recipe" and cfg.format.recipe is None:
        raise ConfigError(
            f"model.checkpoints.{cfg.format.name} asks for a recipe but format {cfg.format.name!r} has none",
            hint="use source: hub or path for this format",
        )
    if spec.source in ("hub", "path", "gguf") and not spec.id:
        raise ConfigError(f"model.checkpoints.{cfg.format.name} (source {spec.source}) needs an id")
    if spec.source == "recipe" and cfg.baseline_format not in cfg.model.checkpoints:
        raise ConfigError(
            f"format {cfg.format.name!r} is produced from the {cfg.baseline_format} checkpoint, "
            f"but model {cfg.model.name!r} declares none",
            hint=f"add model.checkpoints.{cfg.baseline_format}",
        )
    _check_parallelism(cfg.model)
    for fmt in dict.fromkeys([cfg.format.name, *([cfg.baseline_format] if spec.source == "recipe" else [])]):
        _check_local_checkpoint(fmt, cfg.model.checkpoints.get(fmt))
    # tensor x pipeline parallel against the job's GPUs, before anything is resolved, served or submitted
    from evalkit.launch.resources import job_resources  # evalkit.launch imports this module

    job_resources(cfg.model, cfg.format.name)
    if cfg.phase not in ("all", "generate", "score"):
        raise ConfigError(f"phase={cfg.phase!r} is not a job phase", hint="valid choices: all, generate, score")
    for fmt in cfg.model.recipe_overrides:
        if fmt not in cfg.model.checkpoints:
            raise ConfigError(
                f"model.recipe_overrides names format {fmt!r}, which the model has no checkpoint for",
                hint=f"formats: {', '.join(sorted(cfg.model.checkpoints))}",
            )
    # Local data is checked here, at plan time: missing files, and for a real benchmark, a copy that differs from
    # what `evalkit prefetch` recorded (a demo-sized file would otherwise score a real cell on 4 documents).
    from evalkit.datasources import check_benchmark_data

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
    if spec is None or spec.source != "path" or not spec.id:
        return
    path = Path(spec.id).expanduser()
    if not (path / "config.json").is_file():
        what = "does not exist" if not path.exists() else "is not a checkpoint directory (no config.json)"
        raise ConfigError(
            f"model.checkpoints.{fmt}.id={spec.id!r} (source: path) {what}",
            hint="point it at a directory saved with save_pretrained (absolute, or relative to where evalkit runs), "
            "or use source: hub with a Hugging Face id",
        )
