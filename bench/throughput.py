"""How close evalkit's evaluation of a cell comes to the server's saturated throughput, and how much faster it is
than lm-eval run with its default (one request at a time). `make bench` runs it; figures go to bench/.

One server, one generation task (default GSM8K-CoT 8-shot, or ARC-Challenge, with Meta's prompts and chat template:
lm-eval's real task definitions), N documents, three measurements against the same running server:
  1. evalkit: the lm-eval adapter as a sweep runs it (num_concurrent from the benchmark config, 32)
  2. lm-eval default: the same adapter and task with num_concurrent=1 (lm-eval's default for API models)
  3. saturated: the exact prompts lm-eval sent (token ids, same max_tokens and stop strings), fired straight at the
     server at the same concurrency, with no harness in between.
Wall times include lm-eval's start-up (task indexing, tokenizer load): that is what a user waits for. The start-up
alone is measured too (one document, one token), and the ratio is also given without it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.figures import header, run_info, write

REPO = Path(__file__).resolve().parents[1]


TASKS = ("gsm8k", "arc_challenge")
"""Generation runs of conf/benchmarks/leaderboard_v1.yaml the bench can use; each reads the same-named dataset of
conf/data/demo.yaml."""


@dataclass(frozen=True)
class BenchTask:
    """One leaderboard_v1 run as the study configures it, and the dataset it reads."""

    run: dict[str, Any]
    """The run's settings (tasks, shots, chat template, max_length) from the benchmark config."""
    dataset_id: str
    """The key of RunContext.data_overrides, e.g. "openai/gsm8k:main"."""
    source: Path
    """The shipped demo file the documents are cycled from."""

    @property
    def lm_task(self) -> str:
        return str(self.run["tasks"][0])


def bench_task(cfg: Any, name: str) -> BenchTask:
    from omegaconf import OmegaConf

    from evalkit.core.datasources import DatasetRef

    runs: list[dict[str, Any]] = OmegaConf.to_container(  # type: ignore[assignment]
        OmegaConf.create(cfg.benchmarks["leaderboard_v1"].settings["runs"]), resolve=True
    )
    run = next(r for r in runs if r["name"] == name)
    data = cfg.benchmarks["demo_leaderboard_v1"].data[name]  # the demo data is bound to the demo benchmark
    return BenchTask(run, DatasetRef(data.path, data.name).id, REPO / data.data_files["test"])


def make_documents(task: BenchTask, n: int, dest: Path) -> Path:
    """n documents of `task` in the dataset's schema, cycled from the shipped demo file with distinct ids and
    lightly varied wording (identical prompts would let prefix caching flatter every measurement alike)."""
    src = [json.loads(x) for x in task.source.read_text().splitlines()]
    if "choices" in src[0]:  # ARC: the task's prompt expects four options
        src = [d for d in src if len(d["choices"]["label"]) == 4]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w") as fh:
        for i in range(n):
            doc = dict(src[i % len(src)])
            if "id" in doc:
                doc["id"] = f"Bench_{i}"
            doc["question"] = f"Question {i + 1}. {doc['question']}"
            fh.write(json.dumps(doc) + "\n")
    return dest


def settings(task: BenchTask, concurrency: int, max_gen_toks: int) -> dict[str, object]:
    return {"num_concurrent": concurrency, "runs": [task.run | {"demo_max_gen_toks": max_gen_toks}]}


def run_adapter(
    endpoint: object, task: BenchTask, work: Path, data: Path, concurrency: int, max_gen_toks: int
) -> tuple[float, Path]:
    from evalkit.benchmarks import RunContext
    from evalkit.benchmarks.lm_eval.adapter import LmEvalSuite

    adapter = LmEvalSuite()
    ctx = RunContext(
        endpoint=endpoint,  # type: ignore[arg-type]
        work_dir=work,
        settings=adapter.parse_settings(settings(task, concurrency, max_gen_toks)),
        data_overrides={task.dataset_id: {"test": str(data)}},
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    t0 = time.monotonic()
    adapter.generate(ctx)
    wall = time.monotonic() - t0
    adapter.score(ctx)  # the parsed result must be whole, or the run does not count
    samples = next(work.rglob(f"samples_{task.lm_task}_*.jsonl"))
    return wall, samples


def saturated(endpoint: object, samples: Path, concurrency: int, tokenizer_dir: str) -> tuple[float, int, int]:
    """Replay lm-eval's requests (prompt token ids, max tokens, stop strings) at `concurrency`; (wall, requests,
    completion tokens)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    requests_ = []
    seen: set[object] = set()
    for line in samples.read_text().splitlines():
        sample = json.loads(line)
        if sample["doc_id"] in seen:  # one line per doc x filter (gsm8k has two filters): one request per doc
            continue
        seen.add(sample["doc_id"])
        args = sample["arguments"]["gen_args_0"]
        prompt, gen = args["arg_0"], args["arg_1"]
        requests_.append(
            {
                "model": endpoint.model,  # type: ignore[attr-defined]
                "prompt": tok.encode(prompt, add_special_tokens=False),
                "max_tokens": gen.get("max_gen_toks", 64),
                "stop": gen.get("until", []),
                "temperature": 0.0,
                "seed": 1234,
            }
        )
    url = endpoint.base_url.rstrip("/") + "/completions"  # type: ignore[attr-defined]

    def send(body: dict[str, object]) -> int:
        r = requests.post(url, json=body, timeout=600)
        r.raise_for_status()
        return int(r.json()["usage"]["completion_tokens"])

    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        tokens = sum(pool.map(send, requests_))
    return time.monotonic() - t0, len(requests_), tokens


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--task", choices=TASKS, default="gsm8k")
    p.add_argument("--docs", type=int, default=64)
    p.add_argument("--max-gen-toks", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args(argv)

    from hydra import compose, initialize_config_dir

    from evalkit.checkpoints.resolve import resolve_checkpoint
    from evalkit.core.config import register_configs
    from evalkit.pipeline.compose import CONF_DIR
    from evalkit.pipeline.job import harness_env
    from evalkit.pipeline.plan import typed
    from evalkit.serve import VLLMServer

    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = typed(compose("config", overrides=["format=bf16"]))
    task = bench_task(cfg, args.task)
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-bench-"))
    checkpoint = resolve_checkpoint(cfg, tmp)
    data = make_documents(task, args.docs, tmp / "data" / "test.jsonl")
    with VLLMServer(
        cfg.server,
        checkpoint,
        log_path=tmp / "server.log",
        max_model_len=cfg.model.max_model_len,
        env=harness_env(cfg),
        work_dir=tmp,
    ) as server:
        ep = server.endpoint
        # warm-up: the first requests of a fresh server are slower on every path alike
        warm = make_documents(task, 8, tmp / "warmup-data" / "test.jsonl")
        saturated(ep, run_adapter(ep, task, tmp / "warmup", warm, 8, 8)[1], 8, checkpoint)
        # the harness's fixed cost (process start, task indexing, tokenizer load): one document, one token
        one = make_documents(task, 1, tmp / "one-data" / "test.jsonl")
        t_startup, _ = run_adapter(ep, task, tmp / "startup", one, 1, 1)
        t_evalkit, samples = run_adapter(ep, task, tmp / "evalkit", data, args.concurrency, args.max_gen_toks)
        t_sat, n_req, n_tok = saturated(ep, samples, args.concurrency, checkpoint)
        t_default, _ = run_adapter(ep, task, tmp / "default", data, 1, args.max_gen_toks)
    result: dict[str, Any] = {
        **run_info("bench.throughput", argv),
        "model": f"{cfg.model.name} bf16 on vllm ({server.vllm_version()})",
        "task": f"{task.lm_task} ({task.run['num_fewshot']}-shot), {n_req} docs, max_gen_toks {args.max_gen_toks}, "
        "chat template",
        "harness_startup_s": round(t_startup, 1),
        "completion_tokens": n_tok,
        "wall_s": {
            "evalkit": round(t_evalkit, 1),
            "lm_eval_default": round(t_default, 1),
            "saturated": round(t_sat, 1),
        },
        "tokens_per_s": {
            "evalkit": round(n_tok / t_evalkit, 1),
            "lm_eval_default": round(n_tok / t_default, 1),
            "saturated": round(n_tok / t_sat, 1),
        },
        "evalkit_vs_saturated": round(t_evalkit / t_sat, 2),
        "evalkit_minus_startup_vs_saturated": round(max(t_evalkit - t_startup, 0.0) / t_sat, 2),
        "speedup_vs_lm_eval_default": round(t_default / t_evalkit, 2),
    }
    md = [
        *header("evalkit vs lm-eval default vs saturated server", result),
        f"{result['model']}; {result['task']}; {n_tok} completion tokens per path.",
        "",
        "| path | wall (s) | completion tok/s |",
        "|---|---:|---:|",
        *(f"| {k} | {result['wall_s'][k]} | {result['tokens_per_s'][k]} |" for k in result["wall_s"]),
        "",
        f"- evalkit / saturated wall time: **{result['evalkit_vs_saturated']}x** (target <= 1.25x), including "
        f"lm-eval's start-up of {result['harness_startup_s']} s (one document, one token: process start, "
        "task indexing, tokenizer load)",
        f"- the same without that start-up: **{result['evalkit_minus_startup_vs_saturated']}x**",
        f"- lm-eval default / evalkit wall time: **{result['speedup_vs_lm_eval_default']}x** faster",
    ]
    write("throughput", result, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
