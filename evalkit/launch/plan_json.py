"""The sweep plan as one JSON document (`evalkit sweep --dry-run --json`): every job and cell, to read and to diff.

Pure: built from the planned jobs (`JobPlan`) and, on Slurm, the sbatch requests the sweep would submit
(the launcher's `render`). Everything is rendered by the code that runs it: the vLLM command by
`evalkit.serve.render`, each cell's harness by its family (`Benchmark.describe`: lm-eval's argv), the sbatch scripts
by `render_sbatch` (via the requests). Nothing here reads the machine (no sandbox probe, no Hugging Face cache, no
Slurm), so the study grid's plan is golden-tested (tests/unit/golden/study/) and checked against the protocol
(tests/unit/launch/test_protocol.py).

Machine paths are replaced by placeholders (`<project>`: the directory evalkit runs from; `<python>`: the
interpreter the jobs run), so the same plan renders the same text in any checkout; the document's `placeholders`
says what they stand for here.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evalkit.benchmarks import ADAPTERS, Endpoint, PlanContext, get_adapter
from evalkit.core.cell import Cell
from evalkit.core.config import EvalkitConfig, ServerConfig
from evalkit.core.resources import job_resources
from evalkit.launch.base import Request
from evalkit.launch.estimate import JobEstimate, cell_json, job_estimates, job_json, sweep_json, with_time_limit
from evalkit.pipeline.cells import cell_dir_name, cell_seed, cell_settings, checkpoint_identity
from evalkit.pipeline.plan import JobPlan, job_dir_of
from evalkit.serve.render import Device, render_command, render_env, served_name, server_tmpdir
from evalkit.util.hashing import sha256_text

FORMAT_VERSION = 1
"""Bumped when the document's shape changes (keys renamed or moved), so diffs across versions are read as such."""

PORT = "<port>"
"""The server's port is picked free at start (server.port=0): not part of the plan."""

TMPDIR = "<job dir>/tmp, or /tmp/evalkit-<hash> where that path is too long for a socket path"
"""The server's default TMPDIR (`server_tmpdir`): which of the two depends on the length of the checkout's path."""

LONG_TEXT = 200
"""Settings longer than this (judge prompts) are shown by their sha256: the plan says whether they changed."""


@dataclasses.dataclass(frozen=True)
class Placeholders:
    """Machine paths the document does not show literally (longest first when replacing)."""

    project: str
    """The directory evalkit runs from (relative config paths start there)."""
    python: str
    """The interpreter the jobs and harnesses run."""
    jobs: str = ""
    """paths.jobs, absolute: job folders and logs."""
    results: str = ""
    """paths.results, absolute."""

    def as_dict(self) -> dict[str, str]:
        return {"<python>": self.python, "<jobs>": self.jobs, "<results>": self.results, "<project>": self.project}


# ============================================================================================= per cell


def data_sources(cfg: EvalkitConfig, benchmark: str, catalog: Any) -> list[dict[str, Any]]:
    """Where each dataset of the cell will come from, as configured (the results record what was read, with hashes:
    `evalkit.core.datasources`), as the benchmark's family plans it (`Benchmark.planned_sources`). `catalog`: the
    planning index (`task_catalog`), None where it is unavailable."""
    bench = cfg.benchmarks[benchmark]
    plan = PlanContext(dict(bench.settings), _overridden(cfg, benchmark), bench.demo, catalog)
    return get_adapter(bench.adapter).planned_sources(plan)


def _shown(value: Any) -> Any:
    """Long strings (prompt templates) by their hash; everything else as it is."""
    if isinstance(value, str) and len(value) > LONG_TEXT:
        return {"sha256": sha256_text(value)[:16], "chars": len(value)}
    return value


def _overridden(cfg: EvalkitConfig, benchmark: str) -> dict[str, dict[str, str]]:
    """The benchmark's own local data (only demo/smoke benchmarks have any by default) as dataset id -> {split: file
    as configured}."""
    return {
        (d.path if d.name is None else f"{d.path}:{d.name}"): dict(sorted(d.data_files.items()))
        for d in cfg.benchmarks[benchmark].data.values()
    }


def harness(cfg: EvalkitConfig, cell: Cell, endpoint: Endpoint, python: str, catalog: Any) -> dict[str, Any]:
    """How the cell's harness will be invoked, as its family describes it (`Benchmark.describe`: commands, or the
    resolved settings, long strings shown by their hash)."""
    bench = cfg.benchmarks[cell.benchmark]
    plan = PlanContext(
        cell_settings(cfg, cell),  # a baseline replicate's concurrency differs
        _overridden(cfg, cell.benchmark),
        bench.demo,
        catalog,
        work_dir=job_dir_of(cfg) / cell_dir_name(cell),
        endpoint=endpoint,
        seed=cell_seed(cfg, cell),
        python=python,
    )
    described = get_adapter(bench.adapter).describe(plan)
    if "settings" in described:
        described["settings"] = {k: _shown(v) for k, v in described["settings"].items()}
    return {"adapter": bench.adapter, **described}


# ============================================================================================= per job


def checkpoint_source(cfg: EvalkitConfig) -> dict[str, Any]:
    """The checkpoint as its identity says: hub id, local path, GGUF, or the recipe and the base it quantizes."""
    from evalkit.checkpoints.resolve import effective_recipe

    spec = cfg.model.checkpoints[cfg.format.name]
    out: dict[str, Any] = {"identity": checkpoint_identity(cfg), "source": spec.source}
    if spec.source == "recipe":
        base = cfg.model.checkpoints[cfg.baseline_format]
        recipe = effective_recipe(cfg)
        out["base"] = {"format": cfg.baseline_format, "source": base.source, "id": base.id}
        out["recipe"] = asdict(recipe) if recipe is not None else None
    else:
        out["id"] = spec.id
    return out


def served_checkpoint(cfg: EvalkitConfig) -> str:
    """What `--model` names: the hub id or path as declared; a produced checkpoint (converted, quantized) by its
    identity, since its cache path exists only once it is produced."""
    spec = cfg.model.checkpoints[cfg.format.name]
    if spec.source in ("hub", "path") and spec.id is not None:
        return str(spec.id)
    return f"<cache:{checkpoint_identity(cfg)}>"


def server(cfg: EvalkitConfig, python: str) -> tuple[dict[str, Any], Endpoint]:
    """The vLLM server the job starts (evalkit.pipeline.job._serve_and_run's settings), and the endpoint harnesses
    use."""
    from evalkit.serve.ray_cluster import RayCluster, bootstrap_env, wrap_command

    resources = job_resources(cfg.model, cfg.format.name)
    multi_node = resources.nodes > 1  # as evalkit.pipeline.job starts it: over a Ray cluster of the allocation's nodes
    scfg: ServerConfig = dataclasses.replace(
        cfg.server,
        tensor_parallel_size=resources.tensor_parallel_size,
        pipeline_parallel_size=resources.pipeline_parallel_size,
        max_model_len=cfg.model.max_model_len,
        python=cfg.server.python or python,
        distributed_executor_backend="ray" if multi_node else cfg.server.distributed_executor_backend,
    )
    checkpoint = served_checkpoint(cfg)
    argv = render_command(scfg, checkpoint, scfg.port, cfg.format.vllm_args)
    if not scfg.port:
        argv[argv.index("--port") + 1] = PORT
    ray_env: dict[str, str] = {}
    if multi_node:
        ray = RayCluster(resources.nodes, resources.gpus, worker_log=job_dir_of(cfg) / "ray-workers.log")
        ray_env = bootstrap_env(ray, scfg.python or python)
        argv = wrap_command(argv)
    # `auto` is decided by probing the interpreter's vLLM at start; the plan does not probe (CPU-only checks differ)
    device: Device = "cpu" if scfg.device == "cpu" else "gpu"
    env = render_env(scfg, device=device, work_dir=job_dir_of(cfg), base_env={}) | ray_env
    if env.get("TMPDIR") == server_tmpdir(job_dir_of(cfg)):
        env["TMPDIR"] = TMPDIR  # its value depends on how long the checkout's path is
    endpoint = Endpoint(
        base_url=f"http://{scfg.host}:{scfg.port or PORT}/v1",
        model=served_name(scfg, checkpoint),
        tokenizer=checkpoint,
        max_model_len=cfg.model.max_model_len or 0,
    )
    return {"device": scfg.device, "argv": argv, "env": dict(sorted(env.items()))}, endpoint


def job_document(plan: JobPlan, python: str, catalog: Any, estimate: JobEstimate | str | None = None) -> dict[str, Any]:
    """One job; `estimate`: its cost estimate (`evalkit.launch.estimate`), which also sets its time limit."""
    cfg = plan.cfg
    srv, endpoint = server(cfg, python)
    estimate = estimate if estimate is not None else job_estimates([plan])[0]
    by_cell = {} if isinstance(estimate, str) else dict(zip(plan.cells, estimate.cells, strict=True))
    cells = []
    for cell, rec in zip(plan.cells, plan.records, strict=True):
        bench = cfg.benchmarks[cell.benchmark]
        cells.append(
            {
                "benchmark": cell.benchmark,
                "suite": cell.suite,
                "cell_id": cell.cell_id,
                "state": rec.state.value,
                "harness": harness(cfg, cell, endpoint, python, catalog),
                "data_sources": data_sources(cfg, cell.benchmark, catalog),
                "adapter": bench.adapter,
                "estimate": cell_json(by_cell[cell]) if cell in by_cell else None,
            }
        )
    return {
        "name": plan.name,
        "model": cfg.model.name,
        "format": cfg.format.name,
        "format_label": cfg.format.label,
        "checkpoint": checkpoint_source(cfg),
        # the time limit as the estimate sets it (what the sbatch script asks for)
        "resources": asdict(with_time_limit(job_resources(cfg.model, cfg.format.name), estimate)),
        "estimate": job_json(estimate),
        "skipped_benchmarks": [
            {"benchmark": b, "why": f"model.skip_benchmarks of {cfg.model.name} (opt in: model.skip_benchmarks=[])"}
            for b in cfg.benchmark
            if b in cfg.model.skip_benchmarks
        ],
        "server": srv,
        "job_dir": str(job_dir_of(cfg)),
        "cells": cells,
    }


def request_document(index: int, req: Request) -> dict[str, Any]:
    return {
        "sbatch": index,
        "kind": req.kind,
        "jobs": list(req.names),
        "after": req.after or None,
        "resources": req.resources,
        "script": req.script,
    }


def plan_document(
    plans: Sequence[JobPlan],
    requests: Sequence[Request] | None,
    *,
    placeholders: Placeholders,
    catalog: Any,
    checks: Sequence[Mapping[str, str]] = (),
    launcher: str = "local",
) -> dict[str, Any]:
    """The whole plan. `requests`: the submissions `launcher` would make (its `render`), None when it runs the jobs
    here. Each job carries the submission that runs it (`slurm`), so one job's part of the document stands on its
    own."""
    estimates = job_estimates(plans)
    jobs = [job_document(p, placeholders.python, catalog, e) for p, e in zip(plans, estimates, strict=True)]
    submissions = [request_document(i, r) for i, r in enumerate(requests or [], 1)]
    by_job = {name: s for s in submissions if s["kind"] == "eval" for name in s["jobs"]}
    quantize = {name: s for s in submissions if s["kind"] == "quantize" for name in s["jobs"]}
    for job in jobs:
        if requests is None:
            job["slurm"] = None
            continue
        sub = by_job.get(job["name"])
        job["slurm"] = None if sub is None else {
            "sbatch": sub["sbatch"],
            "array_index": sub["jobs"].index(job["name"]),
            "array_size": len(sub["jobs"]),
            "after": sub["after"],
            "quantize_sbatch": quantize[job["name"]]["sbatch"] if job["name"] in quantize else None,
            "script": sub["script"],
        }  # fmt: skip
    doc: dict[str, Any] = {
        "evalkit_plan": FORMAT_VERSION,
        "sweep": plans[0].cfg.sweep if plans else None,
        "launcher": launcher,
        "placeholders": placeholders.as_dict(),
        "jobs": jobs,
        "submissions": [{k: v for k, v in s.items() if k != "script" or s["kind"] != "eval"} for s in submissions],
        # the sweep's GPU-hours and list-price cost (evalkit.launch.estimate); per job and cell under `estimate`
        "estimate": sweep_json(estimates),
        # what the adapters refused (`adapter_checks`): a plan that cannot run as it is says so
        "checks": [dict(c) for c in checks],
    }
    portable: dict[str, Any] = _replace_paths(doc, placeholders)
    return portable


def _replace_paths(value: Any, placeholders: Placeholders) -> Any:
    """Every machine path in strings replaced by its placeholder (`placeholders` itself kept literal)."""
    pairs = sorted(placeholders.as_dict().items(), key=lambda kv: -len(kv[1]))

    def walk(v: Any, top: bool = False) -> Any:
        if isinstance(v, str):
            for name, path in pairs:
                if path:
                    v = v.replace(path, name)
            return v
        if isinstance(v, Mapping):
            return {k: (x if top and k == "placeholders" else walk(x)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        return v

    return walk(value, top=True)


def render_plan_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=False, default=str) + "\n"


def placeholders_of(plans: Sequence[JobPlan], cwd: str | Path, python: str = sys.executable) -> Placeholders:
    """The placeholders of a sweep run from `cwd` (its jobs share paths; the first job's are taken)."""
    cfg = plans[0].cfg if plans else None
    return Placeholders(
        project=str(Path(cwd)),
        python=python,
        jobs=str(Path(cfg.paths.jobs).resolve()) if cfg else "",
        results=str(Path(cfg.paths.results).resolve()) if cfg else "",
    )


def task_catalog() -> Any:
    """The planning index the families read (`Benchmark.planning_index`: lm-eval's task index, which dataset each
    task reads), or None where no family has one here (lm-eval not installed)."""
    found = (get_adapter(name).planning_index() for name in ADAPTERS)
    return next((index for index in found if index is not None), None)


def adapter_checks(plans: Sequence[JobPlan]) -> list[dict[str, str]]:
    """Each benchmark adapter's own checks (`validate`: data files present, task names known, ...), as findings
    instead of a first failure: the plan shows every problem of the grid at once."""
    from evalkit.core.errors import EvalkitError

    found = []
    for plan in plans:
        for name in plan.cfg.benchmark:
            bench = plan.cfg.benchmarks[name]
            try:
                get_adapter(bench.adapter).validate(dict(bench.settings))
            except EvalkitError as err:
                found.append({"job": plan.name, "benchmark": name, "error": err.message})
    return found
