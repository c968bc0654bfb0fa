"""Recovery = ratio of averages over the tasks both formats have; v2 uses normalised scores."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evalkit.benchmarks import report_sections
from evalkit.core.errors import StoreError
from evalkit.results.aggregate import recovery_table, render_recovery


def hand_table(rows: list[tuple[str, str, str, str, float, float | None]]) -> pd.DataFrame:
    """(model, format, suite, task, value, normalized) -> a minimal table in the contract."""
    return pd.DataFrame(
        [
            {
                "model": m,
                "format": f,
                "suite": s,
                "task": t,
                "metric": "acc",
                "value": v,
                "normalized": n,
                "is_primary": True,
                "status": "ok",
            }
            for m, f, s, t, v, n in rows
        ]
    )


def test_ratio_of_averages_not_average_of_ratios() -> None:
    df = hand_table(
        [
            ("m", "bf16", "leaderboard_v1", "a", 80.0, None),
            ("m", "bf16", "leaderboard_v1", "b", 20.0, None),
            ("m", "w4a16", "leaderboard_v1", "a", 78.0, None),
            ("m", "w4a16", "leaderboard_v1", "b", 12.0, None),
        ]
    )
    t = recovery_table(df, sections=report_sections()).set_index("format")
    assert t.loc["w4a16", "recovery"] == pytest.approx(90.0)  # (78+12)/(80+20)
    # the average of ratios would be (97.5 + 60) / 2 = 78.75
    assert t.loc["bf16", "recovery"] == pytest.approx(100.0)
    assert t.loc["w4a16", "n_tasks"] == 2


def test_v2_uses_normalised_scores_and_common_tasks() -> None:
    df = hand_table(
        [
            ("m", "bf16", "leaderboard_v2", "gpqa", 30.0, 6.67),
            ("m", "bf16", "leaderboard_v2", "ifeval", 70.0, 70.0),
            ("m", "bf16", "leaderboard_v2", "musr", 40.0, 10.0),
            ("m", "fp8", "leaderboard_v2", "gpqa", 28.0, 4.0),
            ("m", "fp8", "leaderboard_v2", "ifeval", 69.0, 69.0),
        ]
    )
    t = recovery_table(df, sections=report_sections()).set_index("format")
    assert t.loc["fp8", "n_tasks"] == 2  # musr missing for fp8: excluded from both averages
    assert t.loc["fp8", "recovery"] == pytest.approx((4.0 + 69.0) / (6.67 + 70.0) * 100)


def test_failed_and_non_primary_rows_ignored_and_missing_baseline_visible() -> None:
    df = hand_table([("m", "bf16", "s", "a", 50.0, None), ("m", "fp8", "s", "a", 40.0, None)])
    extra = df.iloc[[0]].assign(metric="acc_norm", value=99.0, is_primary=False)
    failed = df.iloc[[1]].assign(status="failed", value=None, task="")
    other = hand_table([("n", "fp8", "s", "a", 10.0, None)])
    t = recovery_table(pd.concat([df, extra, failed, other]), sections=report_sections())
    m = t[t.model == "m"].set_index("format")
    assert m.loc["fp8", "recovery"] == pytest.approx(80.0)
    n = t[t.model == "n"].iloc[0]
    assert n["format"] == "fp8" and math.isnan(n["recovery"])


def test_two_primary_metrics_for_a_task_is_an_error() -> None:
    df = hand_table([("m", "bf16", "s", "a", 50.0, None)])
    with pytest.raises(StoreError, match="more than one primary"):
        recovery_table(pd.concat([df, df.assign(metric="acc_norm")]), sections=report_sections())


def test_missing_contract_columns_named() -> None:
    with pytest.raises(StoreError, match="is_primary"):
        recovery_table(pd.DataFrame({"model": ["m"], "format": ["bf16"]}), sections=report_sections())


def test_render_has_scores_and_recoveries() -> None:
    df = hand_table([("m", "bf16", "leaderboard_v1", "a", 50.0, None), ("m", "fp8", "leaderboard_v1", "a", 45.0, None)])
    text = render_recovery(recovery_table(df, sections=report_sections()), "bf16")
    assert "50.0" in text and "45.0 (90.0%)" in text and "academic" in text


def test_humaneval_and_humaneval_plus_are_separate_lines() -> None:
    """One humaneval cell scores both; the study reports them separately, each with its own recovery."""
    df = hand_table(
        [
            ("m", "bf16", "humaneval", "humaneval", 60.0, None),
            ("m", "bf16", "humaneval", "humaneval_plus", 50.0, None),
            ("m", "w4a16", "humaneval", "humaneval", 57.0, None),
            ("m", "w4a16", "humaneval", "humaneval_plus", 40.0, None),
        ]
    )
    t = recovery_table(df, sections=report_sections()).set_index(["suite", "format"])
    assert t.loc[("humaneval", "w4a16"), "recovery"] == pytest.approx(95.0)
    assert t.loc[("humaneval_plus", "w4a16"), "recovery"] == pytest.approx(80.0)
    assert t.loc[("humaneval_plus", "w4a16"), "section"] == "real-world"
    text = render_recovery(recovery_table(df, sections=report_sections()), "bf16")
    assert "57.0 (95.0%)" in text and "40.0 (80.0%)" in text


def test_cells_on_overridden_data_are_marked() -> None:
    real = hand_table(
        [("m", "bf16", "leaderboard_v1", "a", 50.0, None), ("m", "fp8", "leaderboard_v1", "a", 45.0, None)]
    )
    demo = hand_table(
        [("m", "bf16", "arena_hard", "arena", 40.0, None), ("m", "fp8", "arena_hard", "arena", 20.0, None)]
    )
    df = pd.concat([real.assign(data_overridden=False), demo.assign(data_overridden=[False, True])])
    t = recovery_table(df, sections=report_sections()).set_index(["suite", "format"])
    assert not t.loc[("leaderboard_v1", "fp8"), "data_overridden"]
    # the fp8 row ran on demo data; the baseline row of that suite did not, but the fp8 recovery used demo numbers
    assert t.loc[("arena_hard", "fp8"), "data_overridden"] and not t.loc[("arena_hard", "bf16"), "data_overridden"]
    text = render_recovery(recovery_table(df, sections=report_sections()), "bf16")
    assert "20.0 (50.0%)*" in text and "45.0 (90.0%)*" not in text
    assert "* ran on local data overrides" in text
    assert "ran on local data overrides" not in render_recovery(
        recovery_table(real, sections=report_sections()), "bf16"
    )


def aggregate_cli(results: Path) -> str:
    """What `evalkit aggregate --results RESULTS` prints (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-m", "evalkit.cli", "aggregate", "--results", str(results)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_aggregate_cli_carries_the_override_flag_from_a_real_store(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from evalkit.core.cell import Cell
    from evalkit.core.records import TaskScore
    from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id

    store = ResultsStore.open_for_writing(tmp_path)
    now = datetime.now(timezone.utc)
    prov = Provenance("0", "c", "0.4.13", "0.32", "/ckpt", "h")
    for fmt, value, demo in (("bf16", 50.0, True), ("fp8", 40.0, True)):
        cell = Cell("m", fmt, "demo_leaderboard_v1", "leaderboard_v1", "hub:x", "f" * 64)
        run = RunInfo(new_run_id(), now, now, "log", prov, '[{"dataset": "x"}]', demo)
        store.commit_cell(cell, run, [TaskScore("gsm8k_llama", "exact_match", value, None, 4, is_primary=True)], [])
    out = aggregate_cli(tmp_path)
    assert "40.0 (80.0%)*" in out and "* ran on local data overrides" in out
    for written in (
        pd.read_parquet(tmp_path / "aggregate" / "recovery.parquet"),
        pd.read_csv(tmp_path / "aggregate" / "recovery.csv"),
    ):
        assert written["data_overridden"].tolist() == [True, True]


def test_aggregate_cli_on_hand_written_parquet(tmp_path: Path) -> None:
    """`evalkit aggregate --results DIR` on a hand-written Parquet (published numbers beside our own)."""
    (tmp_path / "scores").mkdir()
    hand_table(
        [
            ("llama-3.1-8b-instruct", "bf16", "leaderboard_v1", "mmlu", 68.0, None),
            ("llama-3.1-8b-instruct", "bf16", "leaderboard_v1", "gsm8k", 80.0, None),
            ("llama-3.1-8b-instruct", "w8a8", "leaderboard_v1", "mmlu", 67.0, None),
            ("llama-3.1-8b-instruct", "w8a8", "leaderboard_v1", "gsm8k", 81.0, None),
        ]
    ).to_parquet(tmp_path / "scores" / "published.parquet")
    out = aggregate_cli(tmp_path)
    assert "148" not in out  # sanity: not sums
    assert "(100.0%)" in out  # (67+81)/(68+80) = 100.0
    written = pd.read_parquet(tmp_path / "aggregate" / "recovery.parquet")
    assert written.set_index("format").loc["w8a8", "recovery"] == pytest.approx(100.0)


def test_aggregate_carries_the_ci_and_verdict_of_compare(tmp_path: Path) -> None:
    """`evalkit aggregate` on a store with per-document samples: each recovery gets compare's CI and verdict (the
    same numbers `evalkit compare` writes), a baseline replicate its CI and no verdict."""
    from datetime import datetime, timezone

    from evalkit.compare.table import SUITE
    from evalkit.core.cell import Cell
    from evalkit.core.records import SampleRecord, TaskScore
    from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id

    store = ResultsStore.open_for_writing(tmp_path)
    now = datetime.now(timezone.utc)
    prov = Provenance("0", "c", "0.4.13", "0.32", "/ckpt", "h")
    right = [i % 10 < 7 for i in range(400)]  # 70% right
    formats = {
        "bf16": right,
        "bf16~r1": right,
        "w8a8": [(not r) if i in (0, 7) else r for i, r in enumerate(right)],  # one flip each way
        "w4a16": [r and i % 4 != 0 for i, r in enumerate(right)],  # 80 flips down: -20 points
    }
    for fmt, docs in formats.items():
        cell = Cell("m", fmt, "leaderboard_v1", "leaderboard_v1", "hub:x", "f" * 64)
        value = 100 * sum(docs) / len(docs)
        samples = [
            SampleRecord("arc", i, f"h{i}", "A", "A" if r else "B", {"acc": float(r)}) for i, r in enumerate(docs)
        ]
        run = RunInfo(new_run_id(), now, now, "log", prov, "[]", False)
        store.commit_cell(cell, run, [TaskScore("arc", "acc", value, None, len(docs), is_primary=True)], samples)
    out = aggregate_cli(tmp_path)
    written = pd.read_parquet(tmp_path / "aggregate" / "recovery.parquet").set_index("format")
    assert {"recovery_lo", "recovery_hi", "verdict"} <= set(written.columns)
    assert written.loc["w4a16", "verdict"] == "degraded"
    assert written.loc["w4a16", "recovery_hi"] < 100 < written.loc["w8a8", "recovery_hi"]
    assert written.loc["w4a16", "recovery_lo"] < written.loc["w4a16", "recovery"] < written.loc["w4a16", "recovery_hi"]
    rep = written.loc["bf16~r1"]
    # identical to the baseline: recovery 100 with the exact no-flip bound around it (not a zero-width CI)
    assert rep["recovery"] == pytest.approx(100.0) and rep["recovery_lo"] < 100 < rep["recovery_hi"]
    assert pd.isna(rep["verdict"])
    assert pd.isna(written.loc["bf16", "recovery_lo"])
    # the same CI as `evalkit compare` (one implementation, same default seed)
    from evalkit.compare import CompareSettings, compare
    from evalkit.compare.frame import read_samples

    table, _ = compare(read_samples(tmp_path), ResultsStore(tmp_path).read_scores(), CompareSettings())
    w4 = table[(table["format"] == "w4a16") & (table["task"] == SUITE)].iloc[0]
    assert written.loc["w4a16", "recovery_lo"] == pytest.approx(w4["recovery_lo"])
    # 2 flips of 400 documents, a family of 2 claims: the verdict compare gives (inconclusive at a 1-point margin)
    w8 = table[(table["format"] == "w8a8") & (table["task"] == SUITE)].iloc[0]
    assert written.loc["w8a8", "verdict"] == w8["verdict"] == "inconclusive"
    lo, hi = written.loc["w4a16", ["recovery_lo", "recovery_hi"]]
    assert f"50.0 (71.4% [{lo:.1f}, {hi:.1f}], degraded)" in out
    r_lo, r_hi = rep[["recovery_lo", "recovery_hi"]]
    assert f"70.0 (100.0% [{r_lo:.1f}, {r_hi:.1f}])" in out  # the replicate: a CI, no verdict
    assert "(recovery% [95% CI], verdict)" in out


def test_aggregate_without_samples_says_why_there_is_no_ci(tmp_path: Path) -> None:
    (tmp_path / "scores").mkdir()
    hand_table(
        [("m", "bf16", "leaderboard_v1", "mmlu", 68.0, None), ("m", "w8a8", "leaderboard_v1", "mmlu", 67.0, None)]
    ).to_parquet(tmp_path / "scores" / "published.parquet")
    out = aggregate_cli(tmp_path)
    assert "67.0 (98.5%)" in out and "no CIs or verdicts: no samples under" in out
    assert pd.read_parquet(tmp_path / "aggregate" / "recovery.parquet")["verdict"].isna().all()
