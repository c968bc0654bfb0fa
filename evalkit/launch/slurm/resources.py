"""What a job of a Slurm sweep asks the cluster for: its resources (`evalkit.core.resources`) as launcher options.
Pure."""

from __future__ import annotations

import dataclasses

from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

from evalkit.core.config import ResourcesConfig
from evalkit.core.resources import JobResources


def launcher_conf(base: SlurmQueueConf, resources: JobResources) -> SlurmQueueConf:
    """The launcher config for a job with `resources`: `base` (partition, account, setup, ...), sizes replaced."""
    gpus: dict[str, object] = {"gpus_per_node": resources.gpus_per_node or None}
    if resources.gpus_per_node and resources.gpu_type:
        name = resources.gpu_type.lower()  # sites name gres types and node features in lower case ("h100")
        if resources.gpu_request == "gres":
            # typed GPUs replace the untyped count: both options would ask for GPUs twice
            gpus = {"gpus_per_node": None, "gres": f"gpu:{name}:{resources.gpus_per_node}"}
        else:
            # a node feature joins the site's own constraint, if any ("&": both must hold)
            gpus["constraint"] = f"({base.constraint})&{name}" if base.constraint else name
    return dataclasses.replace(
        base,
        # a CPU job carries no GPU option at all, rather than --gpus-per-node=0
        nodes=resources.nodes,
        cpus_per_task=resources.cpus_per_task,
        mem_gb=resources.mem_gb,
        timeout_min=resources.timeout_min,
        **gpus,
    )


def plain_resources(resources: ResourcesConfig) -> JobResources:
    """Resources of a job that serves no model (quantize, aggregate): no parallelism to derive."""
    return JobResources(**dataclasses.asdict(resources), tensor_parallel_size=1, pipeline_parallel_size=1)


AGGREGATE_RESOURCES = JobResources(
    gpus_per_node=0,
    nodes=1,
    cpus_per_task=1,
    mem_gb=2,
    timeout_min=30,
    tensor_parallel_size=1,
    pipeline_parallel_size=1,
)
"""`evalkit aggregate` reads Parquet tables and writes a small one: seconds, little memory."""
