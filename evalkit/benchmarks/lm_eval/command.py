"""The `lm-eval run` command of one run (pure, golden-tested): its argv and its `--model_args`.

Dict arguments are JSON, which lm-eval's CLI accepts, so values never need quoting or comma escaping.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalkit.benchmarks.lm_eval import ruler
from evalkit.benchmarks.lm_eval.settings import LmEvalRun, LmEvalSuiteSettings
from evalkit.core.records import Endpoint


def request_timeout(run: LmEvalRun, settings: LmEvalSuiteSettings) -> int:
    """lm-eval's per-request timeout for `run`: `request_timeout_s`, or when None, a bound on the run's work. A request
    can wait behind `num_concurrent - 1` others, each with up to `max_length` tokens of prompt (prefilled one after
    the other), then decodes with them for up to its generation budget (the run's cap; `max_length` if none is
    known, as a loglikelihood run's one token is below it anyway). At the slowest rates the server is waited for."""
    if settings.request_timeout_s is not None:
        return settings.request_timeout_s
    gen = run.demo_max_gen_toks or run.gen_kwargs.get("max_gen_toks") or run.max_length
    prefill = settings.num_concurrent * run.max_length / settings.slowest_prefill_tokens_per_s
    return math.ceil(prefill + int(gen) / settings.slowest_decode_steps_per_s)


def render_model_args(run: LmEvalRun, settings: LmEvalSuiteSettings, endpoint: Endpoint, seed: int) -> dict[str, Any]:
    """lm-eval `--model_args` for a run (pure)."""
    base = endpoint.base_url.rstrip("/")
    common = {
        "model": endpoint.model,
        "num_concurrent": settings.num_concurrent,
        "max_retries": settings.max_retries,
        "timeout": request_timeout(run, settings),
        "seed": seed,
    }
    if run.model == "local-chat-completions":
        # The server applies the template and tokenizes; nothing is tokenized client-side.
        return {**common, "base_url": f"{base}/chat/completions"}
    # Why local-completions (+ --apply_chat_template) for chat-formatted tasks: lm-eval renders the template with the
    # checkpoint's HF tokenizer (a Llama-3.1 prompt then *starts with the text* "<|begin_of_text|>"), tokenizes it
    # client-side with add_special_tokens = add_bos_token (False here), so the template's BOS maps to the single BOS
    # id, and sends the token ids (tokenized_requests) to /v1/completions, where the server adds nothing. A text
    # prompt would instead be re-tokenized by the server with add_special_tokens=True: a second BOS. The pinned
    # "huggingface" backend also avoids lm-eval's "auto" probe switching to the server's /tokenize endpoint.
    return {
        **common,
        "base_url": f"{base}/completions",
        "tokenizer": endpoint.tokenizer,
        "tokenizer_backend": "huggingface",
        "tokenized_requests": True,
        "max_length": run.max_length,
        "add_bos_token": run.add_bos_token,
    }


def render_command(
    run: LmEvalRun,
    settings: LmEvalSuiteSettings,
    *,
    endpoint: Endpoint,
    output_dir: Path,
    include_path: Path | None = None,
    seed: int = 1234,
    python: str = "python",
    samples: Mapping[str, Sequence[int]] | None = None,
) -> list[str]:
    """The exact `lm-eval run` argv for one run (pure). `samples`: run only these documents, {task: [doc ids]}
    (lm-eval's `--samples`: the same prompts as a full run; adaptive mode's chunks, evalkit/pipeline/adaptive.py)."""
    argv = [
        python, "-m", "lm_eval", "run",
        "--model", run.model,
        "--model_args", json.dumps(render_model_args(run, settings, endpoint, seed), sort_keys=True),
        "--tasks", ",".join(run.tasks),
    ]  # fmt: skip
    if run.num_fewshot is not None:
        argv += ["--num_fewshot", str(run.num_fewshot)]
    if run.apply_chat_template:
        # lm-eval turns multiturn on by itself with a chat template; say it explicitly either way
        argv += ["--apply_chat_template", "--fewshot_as_multiturn", "true" if run.fewshot_as_multiturn else "false"]
    gen_kwargs = dict(run.gen_kwargs)
    if run.demo_max_gen_toks is not None:
        gen_kwargs["max_gen_toks"] = run.demo_max_gen_toks
    if gen_kwargs:
        argv += ["--gen_kwargs", json.dumps(gen_kwargs, sort_keys=True)]
    metadata = ruler.render_metadata(run.max_seq_lengths, endpoint.tokenizer)
    if metadata is not None:
        argv += ["--metadata", json.dumps(metadata, sort_keys=True)]
    if include_path is not None:
        argv += ["--include_path", str(include_path)]
    if samples is not None:
        argv += ["--samples", json.dumps({t: sorted(map(int, ids)) for t, ids in samples.items()}, sort_keys=True)]
    # python's random stays at lm-eval's default 0: GPQA shuffles its choices with it, so the leaderboard's order holds
    argv += ["--output_path", str(output_dir), "--log_samples", "--seed", f"0,{seed},{seed},{seed}"]
    return argv
