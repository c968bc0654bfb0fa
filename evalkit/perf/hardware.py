"""What the numbers were measured on: GPU name and count (nvidia-smi), or CPU model and usable cores."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Hardware:
    kind: str
    """"gpu" or "cpu"."""
    name: str
    """GPU name ("NVIDIA H100 80GB HBM3") or CPU model."""
    count: int
    """GPUs, or the cores this process may use."""

    @property
    def label(self) -> str:
        return f"{self.count}x {self.name}" if self.kind == "gpu" else f"CPU {self.name} ({self.count} cores)"


def detect() -> Hardware:
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
        names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
        if out.returncode == 0 and names:
            return Hardware("gpu", names[0], len(names))
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return Hardware("cpu", model, len(os.sched_getaffinity(0)))
