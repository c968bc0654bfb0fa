"""What a Slurm sweep will submit (dry run) and what it submitted, as text for people. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

from evalkit.core.cell import CellKey
from evalkit.launch.base import Request
from evalkit.launch.record import SubmittedJob
from evalkit.util.text import text_table


def resources_text(conf: SlurmQueueConf) -> str:
    if conf.gres:
        gpus = f"{conf.gres}/node x {conf.nodes} node(s)"
    elif conf.gpus_per_node:
        gpus = f"{conf.gpus_per_node} GPU/node x {conf.nodes} node(s)"
    else:
        gpus = "no GPU"
    gpus += f" [{conf.constraint}]" if conf.constraint else ""
    where = f", partition {conf.partition}" if conf.partition else ""
    return f"{conf.cpus_per_task} CPU, {conf.mem_gb} GB, {gpus}, {conf.timeout_min} min{where}"


def render_requests(reqs: Sequence[Request]) -> str:
    """The dry run: one row per job, then each distinct sbatch script once."""
    rows = [
        [f"#{i}", req.kind, name, req.resources, req.after or "-"]
        for i, req in enumerate(reqs, 1)
        for name in req.names
    ]
    parts = [
        f"Slurm: {len(reqs)} submission(s), {len(rows)} job(s)",
        text_table(["sbatch", "kind", "job", "resources", "after"], rows),
    ]
    shown: dict[str, int] = {}
    for i, req in enumerate(reqs, 1):
        if req.script in shown:
            parts.append(f"\n--- sbatch #{i} ({req.kind}): the script of #{shown[req.script]}")
            continue
        shown[req.script] = i
        parts.append(f"\n--- sbatch #{i} ({req.kind}: {', '.join(req.names)}) ---\n{req.script.rstrip()}")
    return "\n".join(parts)


def _resources(job: SubmittedJob) -> str:
    r = job.resources
    gpus = f", {r.get('gpus_per_node')} GPU/node x {r.get('nodes')}" if r.get("gpus_per_node") else ""
    return f"{r.get('cpus_per_task')} CPU, {r.get('mem_gb')} GB{gpus}"


def render_submitted(jobs: Sequence[SubmittedJob], record_path: Path) -> str:
    """After submission: every job with its id, cells, resources, dependency and stdout log."""
    rows = [
        [
            j.job_id,
            j.kind,
            j.name,
            ", ".join(CellKey.decode(c).benchmark for c in j.cells) or "-",
            _resources(j),
            ",".join(j.depends_on) or "-",
            j.stdout,
        ]
        for j in jobs
    ]
    return (
        f"submitted {len(jobs)} Slurm job(s); recorded in {record_path}\n"
        + text_table(["job id", "kind", "job", "cells", "resources", "after", "log (stdout; .err beside it)"], rows)
        + "\nfollow: `evalkit status <same overrides>`; stop: `evalkit cancel <same overrides>`"
    )
