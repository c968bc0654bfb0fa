"""Does a job keep its server busy? The job's wall time (server start excluded) against the time the same requests
take fired straight at the server at saturation. `make bench` runs it; figures go to bench/job_efficiency.{json,md}.

One server (the demo model, bf16), the demo's lm-eval cells (`demo_leaderboard_v1`, `demo_leaderboard_v2`: 13
lm-eval runs of log-likelihood and generation tasks), three measurements against that running server:
  1. before: cells one at a time, each lm-eval run a harness process of its own (evalkit before issue 10,
     reproduced with `cell_concurrency=1` and EVALKIT_LM_EVAL_SHARED_PROCESS=0);
  2. after: the job as it runs now (`evalkit.pipeline.job.run_cells`: cells overlapped, one harness process
     per suite);
  3. saturated: every request the harness sent in (2), rebuilt from its logged samples (prompt token ids and
     continuation for log-likelihoods, prompt, max tokens and stop strings for generations), fired at the
     server with as many in flight as the job's cells had together, no harness in between.
Each job path commits its cells to a scratch results store, as a sweep does (the commit is part of the job).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bench.figures import header, run_info, write

REPO = Path(__file__).resolve().parents[1]
CELLS = ("demo_leaderboard_v1", "demo_leaderboard_v2")


def run_job_path(cfg: Any, server: Any, work: Path, cell_concurrency: int, shared_process: bool) -> float:
    """Wall time of the job's cells against the running server (the job's own loop, store commits included)."""
    from evalkit.benchmarks.lm_eval.adapter import SHARED_PROCESS_ENV
    from evalkit.pipeline.job import JobSummary, cell_contexts, run_cells
    from evalkit.pipeline.plan import plan_job
    from evalkit.results.store import Provenance, ResultsStore

    cfg = replace(cfg, cell_concurrency=cell_concurrency, paths=replace(cfg.paths, results=str(work / "results")))
    plan = plan_job(cfg)
    store = ResultsStore.open_for_writing(work / "results")
    ctx_of = cell_contexts(cfg, work / "job")

    def ctx_with_mode(cell: Any, endpoint: Any) -> Any:
        ctx = ctx_of(cell, endpoint)
        return replace(ctx, env={**ctx.env, SHARED_PROCESS_ENV: "1" if shared_process else "0"})

    summary = JobSummary("bench")
    prov = Provenance("bench", "bench", "bench", "bench", checkpoint_path="", config_hash="bench")
    t0 = time.monotonic()
    run_cells(plan.pending, cfg, server, ctx_with_mode, store, prov, summary)
    wall = time.monotonic() - t0
    if summary.failed or len(summary.done) != len(plan.pending):
        raise SystemExit(f"bench: cells failed: {summary.failed}; see {work / 'job'}")
    return wall


def harness_requests(job_dir: Path, model: str, tokenizer: Any) -> list[dict[str, Any]]:
    """The requests the lm-eval harness sent, rebuilt from its samples files (one per task)."""
    out: list[dict[str, Any]] = []
    for path in sorted(job_dir.rglob("samples_*.jsonl")):
        seen: set[object] = set()
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            if sample["doc_id"] in seen:  # one line per doc x filter: one set of requests per doc
                continue
            seen.add(sample["doc_id"])
            for args in sample["arguments"].values():
                context, second = args["arg_0"], args["arg_1"]
                if isinstance(second, dict):  # generate_until: (context, gen_kwargs)
                    out.append(
                        {
                            "model": model,
                            "prompt": tokenizer.encode(context, add_special_tokens=False),
                            "max_tokens": int(second.get("max_gen_toks", 256)),
                            "stop": second.get("until", []),
                            "temperature": 0.0,
                        }
                    )
                else:  # loglikelihood: (context, continuation), scored with echo over both
                    ids = tokenizer.encode(context, add_special_tokens=False)
                    ids += tokenizer.encode(second, add_special_tokens=False)
                    out.append(
                        {"model": model, "prompt": ids, "max_tokens": 1, "logprobs": 1, "echo": True, "temperature": 0}
                    )
    return out


def saturated(base_url: str, requests_: list[dict[str, Any]], concurrency: int) -> float:
    url = base_url.rstrip("/") + "/completions"
    with httpx.Client(timeout=600) as client:

        def send(body: dict[str, Any]) -> None:
            client.post(url, json=body).raise_for_status()

        t0 = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(send, requests_))
        return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer

    from evalkit.checkpoints.resolve import resolve_checkpoint
    from evalkit.core.config import register_configs
    from evalkit.pipeline.compose import CONF_DIR
    from evalkit.pipeline.job import harness_env
    from evalkit.pipeline.plan import typed
    from evalkit.serve import VLLMServer

    os.chdir(REPO)  # the demo benchmarks' data paths are relative to the project
    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = typed(compose("config", overrides=["format=bf16", f"benchmark=[{','.join(CELLS)}]"]))
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-bench-job-"))
    checkpoint = resolve_checkpoint(cfg, tmp)
    in_flight = sum(int(cfg.benchmarks[c].settings["num_concurrent"]) for c in CELLS)
    with VLLMServer(
        cfg.server,
        checkpoint,
        log_path=tmp / "server.log",
        max_model_len=cfg.model.max_model_len,
        env=harness_env(cfg),
        work_dir=tmp,
    ) as server:
        # warm-up: the first requests of a fresh server are slower on every path alike
        tok = AutoTokenizer.from_pretrained(str(checkpoint))
        warm = [{"model": server.endpoint.model, "prompt": "Hello " * 50, "max_tokens": 16}] * 16
        saturated(server.endpoint.base_url, warm, 8)
        t_before = run_job_path(cfg, server, tmp / "before", cell_concurrency=1, shared_process=False)
        t_after = run_job_path(cfg, server, tmp / "after", cell_concurrency=cfg.cell_concurrency, shared_process=True)
        reqs = harness_requests(tmp / "after" / "job", server.endpoint.model, tok)
        t_sat = saturated(server.endpoint.base_url, reqs, in_flight)
        vllm = server.vllm_version()
    result: dict[str, Any] = {
        **run_info("bench.job_efficiency", argv),
        "model": f"{cfg.model.name} bf16 on vllm ({vllm})",
        "cells": list(CELLS),
        "requests": len(reqs),
        "saturation_in_flight": in_flight,
        "cell_concurrency_after": cfg.cell_concurrency,
        "wall_s": {"before": round(t_before, 1), "after": round(t_after, 1), "saturated": round(t_sat, 1)},
        "ratio_before": round(t_before / t_sat, 2),
        "ratio_after": round(t_after / t_sat, 2),
    }
    md = [
        *header("Job efficiency: the job's wall time vs the same requests fired straight at the server", result),
        f"{result['model']}; cells {', '.join(CELLS)} (the demo's lm-eval cells); {len(reqs)} requests; "
        f"saturation = {in_flight} in flight (the cells' num_concurrent together). Server start excluded.",
        "",
        "| path | wall (s) | job / saturated |",
        "|---|---:|---:|",
        f"| before: cells one at a time, one lm-eval process per run | {result['wall_s']['before']} | "
        f"{result['ratio_before']}x |",
        f"| after: {cfg.cell_concurrency} cells at once, one lm-eval process per suite | "
        f"{result['wall_s']['after']} | {result['ratio_after']}x |",
        f"| saturated: the same requests, no harness | {result['wall_s']['saturated']} | 1x |",
        "",
        "Target: job / saturated <= 1.25x.",
    ]
    write("job_efficiency", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
