"""The load profile, the load generator's command line, its result parsing, and the perf table's schema."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pytest

from evalkit.benchmarks.perf.adapter import run_measures, server_command
from evalkit.benchmarks.perf.loadgen import bench_command, parse_result
from evalkit.benchmarks.perf.runs import SYNC, THROUGHPUT, Run, constant_rates, oversaturated
from evalkit.benchmarks.perf.settings import UseCase, parse_settings
from evalkit.core.errors import ConfigError
from evalkit.core.records import Endpoint
from evalkit.perf.table import PERF_SCHEMA, PerfRow

EP = Endpoint("http://127.0.0.1:8123/v1", "demo", "/ckpt", 4096)
CASE = UseCase("rag", 1024, 128)


def test_constant_rates_lie_evenly_between_one_stream_and_saturation() -> None:
    assert constant_rates(1.0, 5.0, 3) == [2.0, 3.0, 4.0]
    assert constant_rates(1.0, 0.9, 3) == []  # no headroom above one stream: no sweep
    assert oversaturated(4.0, 3.0, 0.9) and not oversaturated(4.0, 3.8, 0.9)


def test_run_labels_name_files_both_ways() -> None:
    for run in (SYNC, Run("throughput", None, 3), Run("constant", 2.5), Run("constant", 0.1234, 2)):
        assert Run.of_label(run.label) == run
    assert Run("constant", 2.5, 2).label == "constant@2.5#2"
    with pytest.raises(ValueError):
        Run.of_label("warmup")


def test_sync_run_is_one_request_at_a_time() -> None:
    cmd = bench_command(EP, CASE, SYNC, 20, 2, Path("/w/sync.json"), 7)
    assert cmd[cmd.index("--max-concurrency") + 1] == "1"
    assert cmd[cmd.index("--base-url") + 1] == "http://127.0.0.1:8123"
    assert cmd[cmd.index("--random-input-len") + 1] == "1024" and cmd[cmd.index("--random-output-len") + 1] == "128"
    assert "--ignore-eos" in cmd  # every answer is exactly output_tokens long
    assert cmd[cmd.index("--num-warmups") + 1] == "2"


def test_constant_and_throughput_runs() -> None:
    const = bench_command(EP, CASE, Run("constant", 2.5), 100, 0, Path("/w/c.json"), 7)
    assert const[const.index("--request-rate") + 1] == "2.5" and "--max-concurrency" not in const
    thr = bench_command(EP, CASE, THROUGHPUT, 100, 0, Path("/w/t.json"), 7)
    assert "--request-rate" not in thr and "--max-concurrency" not in thr  # all at once


RESULT = {
    "completed": 10, "failed": 1, "duration": 5.0, "request_throughput": 2.0, "output_throughput": 256.0,
    "max_concurrency": None,
    **{f"p{p}_{m}_ms": float(p) for m in ("ttft", "itl", "e2el") for p in (50, 90, 99)},
}  # fmt: skip


def test_parse_result_and_measures() -> None:
    stats = parse_result(RESULT)
    assert (stats.requests, stats.errors, stats.requests_per_s) == (10, 1, 2.0)
    m = run_measures(SYNC, stats)
    assert m["ttft_p99_ms"] == 99.0 and m["itl_p50_ms"] == 50.0 and m["output_tokens_per_s"] == 256.0
    # every latency the perf table holds comes out of a run
    assert set(m) >= {f.name for f in fields(PerfRow) if f.name.endswith("_ms")}


def test_a_run_with_no_success_has_no_latencies() -> None:
    stats = parse_result({**RESULT, "completed": 0, "failed": 10})
    assert math.isnan(stats.latency_ms["ttft_p50"])


def test_perf_rows_and_schema_in_step() -> None:
    assert [f.name for f in fields(PerfRow)] == PERF_SCHEMA.names


def test_settings_validation_names_the_problem() -> None:
    with pytest.raises(ConfigError, match="unknown perf settings \\['rates'\\]"):
        parse_settings({"use_cases": {"a": {"prompt_tokens": 1, "output_tokens": 1}}, "rates": 3})
    with pytest.raises(ConfigError, match="'a' needs integer prompt_tokens"):
        parse_settings({"use_cases": {"a": {"prompt_tokens": 1}}})
    s = parse_settings({"use_cases": {"a": {"prompt_tokens": 2, "output_tokens": 3}}})
    assert s.use_cases == (UseCase("a", 2, 3),)


def test_server_command_is_the_last_rerun_line(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    header = "===== evalkit t: starting vLLM; to rerun by hand:\n{}\n===== vLLM output follows\nINFO ...\n"
    log.write_text(header.format("old") + header.format("VLLM_X=1 python -m vllm \\\n  --dtype auto \\\n  --port 1"))
    assert server_command(log) == "VLLM_X=1 python -m vllm --dtype auto --port 1"
    assert server_command(tmp_path / "none.log") is None
