"""`evalkit sweep launcher=slurm` asks the real cluster before it submits anything: a dry run prints the jobs, their
resources and each sbatch script, checked with `sbatch --test-only`; a request the cluster cannot satisfy fails with
Slurm's own message and nothing is submitted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

REPO = Path(__file__).resolve().parents[2]
GRID = ["launcher=slurm", "model=smollm2-135m-instruct", "format=bf16,fp8", "benchmark=smoke_loglikelihood"]


def evalkit(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    where = [
        f"paths.results={tmp / 'results'}",
        f"paths.jobs={tmp / 'jobs'}",
        f"paths.checkpoints={tmp / 'checkpoints'}",
        "sweep=checks",
    ]
    cmd = [sys.executable, "-m", "evalkit.cli", *args, *where]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def queued_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, timeout=60)
    return set(out.stdout.split())


def test_dry_run_prints_jobs_resources_and_the_checked_scripts(tmp_path: Path) -> None:
    before = queued_ids()
    proc = evalkit(tmp_path, "sweep", "--dry-run", *GRID)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # an empty checkpoint cache: fp8 must be quantized first, in a job of its own that the fp8 job waits for
    assert "quantize   smollm2-135m-instruct.fp8   2 CPU, 8 GB, no GPU, 60 min" in out
    fp8_row = "eval       smollm2-135m-instruct.fp8   2 CPU, 12 GB, no GPU, 120 min  quantize smollm2-135m-instruct.fp8"
    assert fp8_row in out
    assert "aggregate  aggregate" in out
    assert out.count("#!/bin/bash") == 3  # quantize, eval (bf16's script serves fp8 too), aggregate
    assert "#SBATCH --mem=12GB" in out and "#SBATCH --cpus-per-task=2" in out
    assert "sbatch --test-only accepts every request; nothing submitted (dry run)." in out
    assert queued_ids() == before
    assert not (tmp_path / "jobs" / "checks" / "slurm_jobs.json").exists()


@pytest.mark.parametrize(
    ("override", "slurm_says"),
    [
        ("hydra.launcher.partition=nosuch", "invalid partition specified: nosuch"),
        ("model.resources.gpus_per_node=1", "Invalid generic resource (gres) specification"),
    ],
    ids=["partition", "gpus"],
)
def test_impossible_request_fails_before_anything_is_submitted(tmp_path: Path, override: str, slurm_says: str) -> None:
    before = queued_ids()
    proc = evalkit(tmp_path, "sweep", *GRID, override)
    assert proc.returncode == 2, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "evalkit: error: Slurm refuses the" in proc.stderr
    assert slurm_says in proc.stderr
    assert "next: fix the request" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert queued_ids() == before
    assert not (tmp_path / "jobs" / "checks" / "slurm_jobs.json").exists()


def test_the_slurm_launchers_node_check_asks_the_real_controller() -> None:
    """The launcher contract's node check (skipped in tests/unit, which have no cluster): `evalkit doctor
    launcher=slurm` shows one row, ok, listing the partitions this cluster's `sinfo` names."""
    from evalkit.core.checks import Check
    from evalkit.launch import registry

    (row,) = registry.get("slurm").node_checks()
    partitions = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60).stdout.split()
    assert isinstance(row, Check) and row.ok and row.name == "Slurm", row
    assert partitions and all(p in row.detail for p in partitions), (row.detail, partitions)
