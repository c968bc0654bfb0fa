"""A vLLM server over several nodes of one Slurm allocation: the Ray bootstrap around the server's command. Pure.

vLLM's pipeline parallelism across nodes needs a Ray cluster spanning them (`--distributed-executor-backend ray`).
The job's single evalkit task runs on the allocation's first node; `ray_cluster.sh` (shipped beside this module)
starts the Ray head there, the workers on the other nodes with `srun`, waits until the cluster has every node and
GPU, and only then runs the server's command. evalkit runs the wrapped command exactly as it runs vLLM alone (one
process group, one log, stopped the same way), and the script stops Ray when the server ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("ray_cluster.sh")
"""The bootstrap (bash); its header documents every variable `bootstrap_env` sets."""


@dataclass(frozen=True)
class RayCluster:
    """The Ray cluster a multi-node server needs."""

    nodes: int
    """Nodes of the allocation, head included."""
    gpus: int
    """GPUs the cluster must report before vLLM starts (gpus_per_node x nodes); 0: not checked."""
    worker_log: Path
    """Output of the workers (and of srun): where the error points when they do not join."""
    port: int = 6379
    """GCS port of the head; the job holds its nodes, so Ray's default does not collide."""
    timeout_s: float = 600.0
    """How long the workers may take to join."""


def bootstrap_env(cluster: RayCluster, python: str) -> dict[str, str]:
    """The variables `ray_cluster.sh` reads. `python` is the server's interpreter (it must have `ray`, as vLLM's
    Ray backend does); its `ray` console script starts head and workers."""
    return {
        "EVALKIT_RAY_NODES": str(cluster.nodes),
        "EVALKIT_RAY_GPUS": str(cluster.gpus),
        "EVALKIT_RAY_PYTHON": python,
        "EVALKIT_RAY_PORT": str(cluster.port),
        "EVALKIT_RAY_TIMEOUT_S": f"{cluster.timeout_s:g}",
        "EVALKIT_RAY_WORKER_LOG": str(cluster.worker_log),
    }


def wrap_command(argv: Sequence[str], script: Path | str = SCRIPT) -> list[str]:
    """`argv` run by the bootstrap once the cluster is complete."""
    return ["bash", str(script), *argv]
