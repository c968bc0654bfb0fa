"""How close evalkit's evaluation of a cell comes to the server's saturated throughput, and how much faster it is
than lm-eval run with its default (one request at a time). `make bench` runs it; figures go to bench/.

One server, one generation task (ARC-Challenge with Meta's prompt and chat template, lm-eval's real task definition),
N documents, three measurements against the same running server:
  1. evalkit: the lm-eval adapter as a sweep runs it (num_concurrent from the benchmark config, 32)
  2. lm-eval default: the same adapter and task with num_concurrent=1 (lm-eval's default for API models)
  3. saturated: the exact prompts lm-eval sent (token ids, same max_tokens and stop strings), fired straight at the
     server at the same concurrency, with no harness in between.
Wall times include lm-eval's start-up (task indexing, tokenizer load): that is what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench"


def make_documents(n: int, dest: Path) -> Path:
    """n ARC-Challenge documents in the dataset's schema, cycled from the shipped demo file with distinct ids and
    lightly varied wording (identical prompts would let prefix caching flatter every measurement alike)."""
    src = [json.loads(x) for x in (REPO / "data/allenai/ai2_arc/ARC-Challenge/test.jsonl").read_text().splitlines()]
    src = [d for d in src if len(d["choices"]["label"]) == 4]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w") as fh:
        for i in range(n):
            doc = dict(src[i % len(src)])
            doc["id"] = f"Bench_{i}"
            doc["question"] = f"Question {i + 1}. {doc['question']}"
            fh.write(json.dumps(doc) + "\n")
    return dest


def settings(concurrency: int, max_gen_toks: int) -> dict[str, object]:
    return {
        "num_concurrent": concurrency,
        "runs": [
            {
                "name": "arc_challenge",
                "tasks": ["arc_challenge_llama"],
                "num_fewshot": 0,
                "apply_chat_template": True,
                "fewshot_as_multiturn": True,
                "max_length": 3940,
                "demo_max_gen_toks": max_gen_toks,
            }
        ],
    }


def run_adapter(endpoint: object, work: Path, data: Path, concurrency: int, max_gen_toks: int) -> tuple[float, Path]:
    from evalkit.benchmarks import RunContext
    from evalkit.benchmarks.lm_eval_suite import LmEvalSuite

    ctx = RunContext(
        endpoint=endpoint,  # type: ignore[arg-type]
        work_dir=work,
        settings=settings(concurrency, max_gen_toks),
        data_overrides={"allenai/ai2_arc:ARC-Challenge": {"test": str(data)}},
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    adapter = LmEvalSuite()
    t0 = time.monotonic()
    adapter.generate(ctx)
    wall = time.monotonic() - t0
    adapter.score(ctx)  # the parsed result must be whole, or the run does not count
    samples = next(work.rglob("samples_arc_challenge_llama_*.jsonl"))
    return wall, samples


def saturated(endpoint: object, samples: Path, concurrency: int, tokenizer_dir: str) -> tuple[float, int, int]:
    """Replay lm-eval's requests (prompt token ids, max tokens, stop strings) at `concurrency`; (wall, requests,
    completion tokens)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    requests_ = []
    for line in samples.read_text().splitlines():
        args = json.loads(line)["arguments"]["gen_args_0"]
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
    p.add_argument("--docs", type=int, default=96)
    p.add_argument("--max-gen-toks", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args(argv)

    from hydra import compose, initialize_config_dir

    from evalkit.app import CONF_DIR
    from evalkit.checkpoints.resolve import resolve_checkpoint
    from evalkit.config import register_configs
    from evalkit.job import harness_env
    from evalkit.plan import typed
    from evalkit.serve import VLLMServer

    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = typed(compose("config", overrides=["format=bf16"]))
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-bench-"))
    checkpoint = resolve_checkpoint(cfg, tmp)
    data = make_documents(args.docs, tmp / "data" / "test.jsonl")
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
        warm = make_documents(8, tmp / "warmup-data" / "test.jsonl")
        saturated(ep, run_adapter(ep, tmp / "warmup", warm, 8, 8)[1], 8, checkpoint)
        t_evalkit, samples = run_adapter(ep, tmp / "evalkit", data, args.concurrency, args.max_gen_toks)
        t_sat, n_req, n_tok = saturated(ep, samples, args.concurrency, checkpoint)
        t_default, _ = run_adapter(ep, tmp / "default", data, 1, args.max_gen_toks)
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "make bench  # " + shlex.join(["python", "-m", "bench.throughput", *(argv or sys.argv[1:])]),
        "machine": f"{platform.node()} {platform.machine()}, {__import__('os').cpu_count()} cores",
        "model": f"{cfg.model.name} bf16 on vllm ({server.vllm_version()})",
        "task": f"arc_challenge_llama, {n_req} docs, max_gen_toks {args.max_gen_toks}, chat template",
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
        "speedup_vs_lm_eval_default": round(t_default / t_evalkit, 2),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# evalkit vs lm-eval default vs saturated server",
        "",
        f"`{result['command']}` on {result['machine']}, {result['when']}",
        "",
        f"{result['model']}; {result['task']}; {n_tok} completion tokens per path.",
        "",
        "| path | wall (s) | completion tok/s |",
        "|---|---:|---:|",
        *(f"| {k} | {result['wall_s'][k]} | {result['tokens_per_s'][k]} |" for k in result["wall_s"]),  # type: ignore[index]
        "",
        f"- evalkit / saturated wall time: **{result['evalkit_vs_saturated']}x** (target <= 1.25x; includes lm-eval's "
        "start-up)",
        f"- lm-eval default / evalkit wall time: **{result['speedup_vs_lm_eval_default']}x** faster",
    ]
    (OUT / "throughput.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
