"""`evalkit recommend` end to end on a results folder written with evalkit's own store: perf cells scored by the
perf adapter from load-generator result files, and hand-made verdicts."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.perf.adapter import CONTEXT, Perf
from evalkit.cli import main
from evalkit.core.cell import Cell
from evalkit.perf.table import PERF_SCHEMA
from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id

SETTINGS = {"use_cases": {"rag": {"prompt_tokens": 64, "output_tokens": 16}}, "repeats": 1}
PROV = Provenance("0.1.0", "abc", "0.4.13", "0.32.0", "/ckpt", "cfg")


def _result(rps: float, ttft: float) -> dict[str, object]:
    return {
        "completed": 8, "failed": 0, "duration": 8 / rps, "request_throughput": rps, "output_throughput": 16 * rps,
        "max_concurrency": None,
        **{f"p{p}_{m}_ms": (ttft if m == "ttft" else 10.0) for m in ("ttft", "itl", "e2el") for p in (50, 90, 99)},
    }  # fmt: skip


def _perf_cell(store: ResultsStore, tmp: Path, fmt: str, sync_rps: float, peak_rps: float) -> None:
    work = tmp / "jobs" / fmt / "demo_perf"
    (work / "rag").mkdir(parents=True)
    hw = {"kind": "gpu", "name": "NVIDIA RTX A6000", "count": 1}
    (work / CONTEXT).write_text(json.dumps({"hardware": hw, "vllm_command": "python -m vllm --dtype auto"}))
    (work / "rag" / "sync.json").write_text(json.dumps(_result(sync_rps, 50)))
    (work / "rag" / "throughput.json").write_text(json.dumps(_result(peak_rps, 500)))
    (work / "rag" / "constant@2.json").write_text(json.dumps(_result(1.9, 80)))
    res = Perf().score(RunContext(endpoint=None, work_dir=work, settings=Perf().parse_settings(SETTINGS)))
    now = datetime.now(timezone.utc)
    cell = Cell("m8", fmt, "demo_perf", "perf", "hub:x", "f" * 64)
    store.commit_cell(cell, RunInfo(new_run_id(), now, now, str(work), PROV), res.scores, res.samples)


def test_recommend_writes_perf_table_and_never_picks_the_degraded_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    store = ResultsStore.open_for_writing(results)
    for fmt, sync, peak in (("bf16", 1.0, 4.0), ("w8a8", 1.4, 6.0), ("w4a16", 2.4, 5.0)):
        _perf_cell(store, tmp_path, fmt, sync, peak)
    (results / "compare").mkdir()
    pd.DataFrame(
        [
            {"model": "m8", "format": "w8a8", "suite": "v1", "task": "*", "verdict": "recovered"},
            {"model": "m8", "format": "w4a16", "suite": "v1", "task": "*", "verdict": "degraded"},
        ]
    ).to_parquet(results / "compare" / "comparisons.parquet")

    assert main(["recommend", "--results", str(results), "--suites", "v1", "--ttft-ms", "1000"]) == 0
    out = capsys.readouterr().out
    assert "A6000" in out and "degraded on v1" in out

    perf = pd.read_parquet(results / "perf" / "perf.parquet")
    assert list(perf.columns) == PERF_SCHEMA.names
    assert len(perf) == 9 and set(perf["mode"]) == {"sync", "throughput", "constant"}
    assert set(perf["vllm_command"]) == {"python -m vllm --dtype auto"}
    rec = pd.read_csv(results / "perf" / "recommend.csv")
    best = rec[rec["status"] == "recommended"].set_index("deployment")["format"].to_dict()
    assert best == {"sync": "w8a8", "async": "w8a8"}  # w4a16 is faster synchronously but degraded
    w8 = rec[(rec["format"] == "w8a8") & (rec["deployment"] == "sync")].iloc[0]
    assert w8["queries_per_dollar"] == pytest.approx(1.4 * 3600 / 0.80) and w8["cost_reduction"] == pytest.approx(1.4)


def test_recommend_without_verdicts_says_to_run_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ResultsStore.open_for_writing(tmp_path)
    assert main(["recommend", "--results", str(tmp_path), "--suites", "v1"]) == 2
    assert "evalkit compare" in capsys.readouterr().err
