"""Cost arithmetic on hand-made numbers: prices (listed and pro-rated), queries per dollar, cost reduction, peak QPS
within a latency SLO."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from evalkit.core.errors import ConfigError
from evalkit.perf.cost import DEFAULT_PRICES, PriceTable, Slo, cost_reduction, load_prices, peak_qps, queries_per_dollar


def test_study_prices_load_with_their_date() -> None:
    p = load_prices(DEFAULT_PRICES)
    assert p.date == "2024-10-28"
    assert p.price("A6000", 1) == 0.80 and p.price("H100", 2) == 6.38
    assert p.price("A100", 1) == pytest.approx(14.32 / 8)  # pro-rated from the listed 8x price, as the study did
    assert p.price("A6000", 4) == 3.20 and p.price("A6000", 2) == pytest.approx(1.60)  # 2x: pro-rated from 1x


def test_unknown_hardware_names_the_priced_ones() -> None:
    with pytest.raises(ConfigError, match="no price for hardware 'B200'") as err:
        PriceTable("d", "s", {"H100": {1: 3.29}}).price("B200", 1)
    assert "H100" in str(err.value)


def test_unreadable_price_table_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("date: x\n")
    with pytest.raises(ConfigError, match="unreadable"):
        load_prices(bad)


def test_queries_per_dollar_and_reduction() -> None:
    # 0.5 requests/s on a $0.80/h GPU: 1800 queries per hour -> 2250 per dollar
    assert queries_per_dollar(0.5, 0.80) == pytest.approx(2250)
    # a format twice as fast on one GPU vs a baseline on two: 4x cheaper per query
    base = queries_per_dollar(1.0, 6.38)
    fast = queries_per_dollar(2.0, 3.19)
    assert cost_reduction(base, fast) == pytest.approx(4.0)
    assert math.isnan(cost_reduction(0.0, fast))


def _runs(rows: list[tuple[str, float, float, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["mode", "requests_per_s", "ttft_p90_ms", "itl_p90_ms", "errors"])


def test_peak_qps_is_the_fastest_run_within_the_slo() -> None:
    runs = _runs(
        [
            ("sync", 9.0, 10, 5, 0),  # sync runs never count as batched throughput
            ("constant", 2.0, 100, 20, 0),
            ("constant", 4.0, 400, 40, 0),
            ("constant", 6.0, 900, 150, 0),  # ITL over the bound
            ("throughput", 7.0, 5000, 60, 0),  # TTFT over the bound
            ("constant", 5.0, 300, 30, 2),  # errors disqualify
        ]
    )
    assert peak_qps(runs, Slo(ttft_ms=1000, itl_ms=100, percentile=90)) == 4.0
    assert peak_qps(runs, Slo(ttft_ms=10_000, itl_ms=100, percentile=90)) == 7.0
    assert peak_qps(runs, Slo(ttft_ms=1, itl_ms=1, percentile=90)) == 0.0


def test_a_measurement_counts_the_gpus_visible_to_its_job() -> None:
    from evalkit.benchmarks.perf.hardware import visible_gpus

    # nvidia-smi lists all 8 GPUs of the node; the server was given 2 (Slurm or the user set CUDA_VISIBLE_DEVICES)
    assert visible_gpus("0,1", installed=8) == 2
    assert visible_gpus(None, installed=8) == 8
