"""The recommendation rule on hand-made perf and verdict tables: the cheapest format recovered on every named
suite; a degraded (or inconclusive, or unjudged) format is never recommended, whatever its cost."""

from __future__ import annotations

import pandas as pd
import pytest

from evalkit.perf.cost import PriceTable, Slo
from evalkit.perf.recommend import recommend, render

PRICES = PriceTable("2024-10-28", "test", {"H100": {1: 3.29, 2: 6.38}, "CPU": {2: 0.10}}, {"m70": {"bf16": 2}})
SLO = Slo(ttft_ms=1000, itl_ms=100, percentile=90)


def _perf(model: str, hw: str, kind: str, speeds: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Per format (sync requests/s, peak requests/s within the SLO)."""
    rows = []
    for fmt, (sync, peak) in speeds.items():
        for mode, rps in (("sync", sync), ("throughput", peak)):
            rows.append(
                {
                    "model": model, "format": fmt, "use_case": "rag", "hardware": hw, "hardware_kind": kind,
                    "mode": mode, "rate": None, "requests_per_s": rps, "ttft_p90_ms": 100.0, "itl_p90_ms": 10.0,
                    "errors": 0,
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def _verdicts(model: str, table: dict[tuple[str, str], str]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"model": model, "format": f, "suite": s, "task": "*", "verdict": v} for (f, s), v in table.items()]
    )


def _row(table: pd.DataFrame, deployment: str, fmt: str) -> pd.Series:
    sel = table[(table["deployment"] == deployment) & (table["format"] == fmt)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_degraded_format_is_never_recommended_even_when_cheapest() -> None:
    perf = _perf("m8", "1x NVIDIA H100 80GB HBM3", "gpu", {"bf16": (1.0, 10), "w8a8": (1.5, 20), "w4a16": (2.5, 15)})
    verdicts = _verdicts(
        "m8", {("w8a8", "v1"): "recovered", ("w4a16", "v1"): "degraded", ("w8a8", "v2"): "recovered",
               ("w4a16", "v2"): "recovered"}
    )  # fmt: skip
    table = recommend(perf, verdicts, ["v1", "v2"], PRICES, SLO)
    for deployment in ("sync", "async"):
        w4 = _row(table, deployment, "w4a16")
        assert w4["status"] == "excluded" and w4["reason"] == "degraded on v1"
        assert _row(table, deployment, "w8a8")["status"] == "recommended"
    # the numbers of the excluded format are still shown: it is the fastest synchronously
    assert _row(table, "sync", "w4a16")["cost_reduction"] == pytest.approx(2.5)
    assert _row(table, "sync", "w8a8")["cost_reduction"] == pytest.approx(1.5)
    assert "degraded on v1" in render(table, PRICES, SLO)


def test_inconclusive_or_missing_verdicts_exclude_and_baseline_remains() -> None:
    perf = _perf("m8", "1x NVIDIA H100 80GB HBM3", "gpu", {"bf16": (1.0, 10), "fp8": (1.2, 12), "w8a8": (1.4, 14)})
    verdicts = _verdicts("m8", {("fp8", "v1"): "inconclusive"})
    table = recommend(perf, verdicts, ["v1"], PRICES, SLO)
    assert _row(table, "sync", "fp8")["reason"] == "inconclusive on v1"
    assert _row(table, "sync", "w8a8")["reason"].startswith("no accuracy verdict on v1")
    assert _row(table, "sync", "bf16")["status"] == "recommended"  # the baseline is the reference


def test_gpu_count_per_format_changes_the_winner() -> None:
    # 70B: BF16 needs 2 H100s, INT8 one; BF16 is faster per replica but twice the price
    perf = _perf("m70", "1x NVIDIA H100 80GB HBM3", "gpu", {"bf16": (1.0, 10), "w8a8": (0.8, 9)})
    table = recommend(perf, _verdicts("m70", {("w8a8", "v1"): "recovered"}), ["v1"], PRICES, SLO)
    bf16, w8a8 = _row(table, "async", "bf16"), _row(table, "async", "w8a8")
    assert bf16["usd_per_hour"] == 6.38 and w8a8["usd_per_hour"] == 3.29 and w8a8["units"] == 1
    assert w8a8["status"] == "recommended"
    assert w8a8["cost_reduction"] == pytest.approx((9 / 3.29) / (10 / 6.38))


def test_cpu_measurements_are_priced_per_measured_cores() -> None:
    perf = _perf("m", "CPU Some CPU (2 cores)", "cpu", {"bf16": (1.0, 10)})
    table = recommend(perf, _verdicts("m", {}), ["v1"], PRICES, SLO)
    assert set(table["units"]) == {2} and set(table["usd_per_hour"]) == {0.10}


def test_sync_figure_is_the_median_of_repeats_with_its_spread() -> None:
    perf = _perf("m8", "1x NVIDIA H100 80GB HBM3", "gpu", {"bf16": (1.0, 10)})
    more = perf[perf["mode"] == "sync"].assign(requests_per_s=[0.8])
    perf = pd.concat([perf, more, more.assign(requests_per_s=[1.3])], ignore_index=True)
    sync = _row(recommend(perf, _verdicts("m8", {}), ["v1"], PRICES, SLO), "sync", "bf16")
    assert (sync["qps"], sync["qps_min"], sync["qps_max"]) == (1.0, 0.8, 1.3)
