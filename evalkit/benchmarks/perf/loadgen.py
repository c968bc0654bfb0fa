"""The load generator: vLLM's `vllm bench serve` (random dataset: synthetic prompts of exact token counts made with
the served tokenizer), one subprocess per run, its JSON result read into `RunStats`.

Command rendering and result parsing are pure; `run_bench` is the only process edge.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.benchmarks.perf.names import LATENCIES, PERCENTILES
from evalkit.benchmarks.perf.runs import Run
from evalkit.benchmarks.perf.settings import UseCase
from evalkit.core.errors import BenchmarkError
from evalkit.core.records import Endpoint

CONSTANT_BURSTINESS = 1000.0
"""vLLM bench draws inter-arrival times from a gamma distribution of this shape: 1 is Poisson, 1000 is (within 3%)
a constant rate, GuideLLM's `constant` profile."""


@dataclass(frozen=True)
class RunStats:
    """What one run measured. Latencies in milliseconds, over the successful requests; warm-up excluded."""

    requests: int
    """Requests completed."""
    errors: int
    duration_s: float
    requests_per_s: float
    output_tokens_per_s: float
    latency_ms: dict[str, float]
    """"<ttft|itl|e2el>_p<50|90|99>" -> value."""
    max_concurrency: int | None


def bench_command(
    endpoint: Endpoint, case: UseCase, run: Run, num_prompts: int, warmups: int, result: Path, seed: int
) -> list[str]:
    """The `vllm bench serve` command line of one run (as `python -m evalkit.benchmarks.perf.vllm_bench`)."""
    base = endpoint.base_url.rstrip("/").removesuffix("/v1")
    cmd = [
        sys.executable, "-m", "evalkit.benchmarks.perf.vllm_bench",
        "--backend", "vllm", "--base-url", base, "--endpoint", "/v1/completions",
        "--model", endpoint.model, "--tokenizer", endpoint.tokenizer,
        "--dataset-name", "random", "--random-input-len", str(case.prompt_tokens),
        "--random-output-len", str(case.output_tokens), "--random-range-ratio", "0",
        "--ignore-eos", "--num-prompts", str(num_prompts), "--num-warmups", str(warmups), "--seed", str(seed),
        "--percentile-metrics", ",".join(LATENCIES), "--metric-percentiles", ",".join(map(str, PERCENTILES)),
        "--temperature", "0", "--disable-tqdm", "--save-result",
        "--result-dir", str(result.parent), "--result-filename", result.name,
    ]  # fmt: skip
    if run.mode == "sync":
        cmd += ["--max-concurrency", "1"]
    elif run.mode == "constant":
        cmd += ["--request-rate", str(run.rate), "--burstiness", str(CONSTANT_BURSTINESS)]
    return cmd  # throughput: every request at time 0 (request rate inf), the server's continuous batching decides


def parse_result(doc: dict[str, Any]) -> RunStats:
    """vLLM bench's JSON result -> RunStats. A run with no successful request has no latencies (NaN)."""
    latency = {}
    for name in LATENCIES:
        for p in PERCENTILES:
            value = doc.get(f"p{p}_{name}_ms")
            latency[f"{name}_p{p}"] = float(value) if value is not None and doc.get("completed") else math.nan
    return RunStats(
        requests=int(doc["completed"]),
        errors=int(doc.get("failed", 0)),
        duration_s=float(doc["duration"]),
        requests_per_s=float(doc["request_throughput"]),
        output_tokens_per_s=float(doc["output_throughput"]),
        latency_ms=latency,
        max_concurrency=doc.get("max_concurrency"),
    )


def run_bench(cmd: list[str], result: Path, log_path: Path, timeout_s: float) -> RunStats:
    """Run one load-generator command in this process (its output appended to `log_path`) and read its result file.

    In-process because starting a Python that imports vLLM costs ~10-25 s on a loaded CPU node, more than a demo run
    itself; the command (`python -m evalkit.benchmarks.perf.vllm_bench ...`) is still logged, to rerun by hand.
    """
    from evalkit.benchmarks.perf import vllm_bench

    result.unlink(missing_ok=True)
    args = cmd[cmd.index(vllm_bench.__name__) + 1 :]
    with open(log_path, "a") as log:
        log.write("\n===== " + shlex.join(cmd) + "\n")
        log.flush()
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), _deadline(timeout_s, log_path):
                vllm_bench.main(args)
        except (Exception, SystemExit) as exc:
            if isinstance(exc, BenchmarkError):
                raise
            raise BenchmarkError(
                f"vllm bench serve failed ({type(exc).__name__}: {exc})",
                log=log_path,
                hint="the log shows the command; rerun it by hand against the same server to reproduce",
            ) from exc
    if not result.exists():
        raise BenchmarkError(f"vllm bench serve wrote no result file {result}", log=log_path)
    return parse_result(json.loads(result.read_text()))


@contextlib.contextmanager
def _deadline(timeout_s: float, log_path: Path) -> Iterator[None]:
    """Interrupt the run after `timeout_s` (SIGALRM: only the main thread can take it, elsewhere no deadline)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise BenchmarkError(
            f"the load generator ran longer than {timeout_s:.0f} s",
            log=log_path,
            hint="raise settings.timeout_s of the perf benchmark or lower its request counts",
        )

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
