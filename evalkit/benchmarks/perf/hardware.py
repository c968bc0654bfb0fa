"""What the numbers were measured on: GPU name and count (nvidia-smi), or CPU model and usable cores (the record:
`names.Hardware`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from evalkit.benchmarks.perf.names import Hardware


def visible_gpus(cuda_visible_devices: str | None, installed: int) -> int:
    """GPUs a process may use: the entries of CUDA_VISIBLE_DEVICES when set (nvidia-smi lists every GPU of the node
    unless cgroups hide them), else all installed."""
    if cuda_visible_devices is None:
        return installed
    return min(installed, len([d for d in cuda_visible_devices.split(",") if d.strip()]))


def detect() -> Hardware:
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
        names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
        if out.returncode == 0 and names:
            return Hardware("gpu", names[0], visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), len(names)))
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return Hardware("cpu", model, len(os.sched_getaffinity(0)))
