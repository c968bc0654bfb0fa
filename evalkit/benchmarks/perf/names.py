"""What the perf family's results are called and shaped, for the analysis above it (`evalkit.perf.table`): the
latency measures and percentiles each run reports, and the record of the hardware a run was measured on.

Pure and import-light: the one module of the family that code outside `evalkit.benchmarks` may import
(`.importlinter`).
"""

from __future__ import annotations

from dataclasses import dataclass

PERCENTILES = (50, 90, 99)
"""The latency percentiles each run reports (vLLM bench's --metric-percentiles)."""
LATENCIES = ("ttft", "itl", "e2el")
"""The latency measures each run reports: time to first token, inter-token latency, end-to-end latency."""


@dataclass(frozen=True)
class Hardware:
    """What a run was measured on (written by the perf cell to its context.json, read back by the perf table)."""

    kind: str
    """"gpu" or "cpu"."""
    name: str
    """GPU name ("NVIDIA H100 80GB HBM3") or CPU model."""
    count: int
    """GPUs this job may use (CUDA_VISIBLE_DEVICES when set: what Slurm or the user gave the server), or the cores
    this process may use. Cost per query is priced on this many."""

    @property
    def label(self) -> str:
        return f"{self.count}x {self.name}" if self.kind == "gpu" else f"CPU {self.name} ({self.count} cores)"
