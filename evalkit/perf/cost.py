"""Cost per query from dated hourly prices (pure): the price table by hardware type and count, queries per dollar,
cost reduction vs the baseline, peak QPS under a latency SLO.

A measurement is priced on the hardware it ran on (the perf table's `hardware_name` and `hardware_count`: the GPUs
the server held), never on a count assumed per format: the study served 70B BF16 on 4 A6000s but on 2 H100s."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from evalkit.core.errors import ConfigError

DEFAULT_PRICES = Path(__file__).resolve().parents[2] / "conf" / "prices" / "study_2024-10-28.yaml"
"""The study's dated list prices."""


@dataclass(frozen=True)
class PriceTable:
    """USD per hour by hardware type and count, as listed on `date` by `source`."""

    date: str
    source: str
    usd_per_hour: dict[str, dict[int, float]]
    """Hardware type ("H100", "A6000", "CPU") -> count -> USD/hour."""

    def price(self, hardware: str, count: int) -> float:
        """The listed price of `count` units, or the per-unit price of the nearest listed count pro-rated (the
        study pro-rated its 8x A100 price for fewer GPUs)."""
        listed = self.usd_per_hour.get(hardware)
        if not listed:
            raise ConfigError(
                f"no price for hardware {hardware!r} in the price table of {self.date}",
                hint=f"add it under usd_per_hour (priced: {', '.join(sorted(self.usd_per_hour))})",
            )
        if count in listed:
            return listed[count]
        nearest = min(listed, key=lambda c: (abs(c - count), -c))
        return listed[nearest] / nearest * count


def load_prices(path: Path) -> PriceTable:
    try:
        doc = yaml.safe_load(path.read_text())
        return PriceTable(
            date=str(doc["date"]),
            source=str(doc["source"]),
            usd_per_hour={str(h): {int(c): float(p) for c, p in v.items()} for h, v in doc["usd_per_hour"].items()},
        )
    except (OSError, KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"price table {path} is unreadable ({type(exc).__name__}: {exc})",
            hint="it needs date, source and usd_per_hour: {type: {count: USD/hour}} (see conf/prices/)",
        ) from exc


@dataclass(frozen=True)
class Slo:
    """Latency bounds a deployment must hold at the reported percentile."""

    ttft_ms: float = 1000.0
    itl_ms: float = 100.0
    percentile: int = 90


def queries_per_dollar(requests_per_s: float, usd_per_hour: float) -> float:
    return requests_per_s * 3600.0 / usd_per_hour if usd_per_hour > 0 else math.inf


def cost_reduction(baseline_qpd: float, qpd: float) -> float:
    """How many times cheaper per query than the baseline (2.39 = the study's INT4 on A6000, synchronous)."""
    return qpd / baseline_qpd if baseline_qpd > 0 else math.nan


def within_slo(runs: pd.DataFrame, slo: Slo) -> pd.DataFrame:
    """The runs (perf rows) whose TTFT and ITL at the SLO's percentile are within its bounds, with no errors."""
    p = slo.percentile
    ok = (runs[f"ttft_p{p}_ms"] <= slo.ttft_ms) & (runs[f"itl_p{p}_ms"] <= slo.itl_ms) & (runs["errors"] == 0)
    return runs[ok]


def peak_qps(runs: pd.DataFrame, slo: Slo) -> float:
    """The highest completed requests/s over a scenario's throughput and constant-rate runs within the SLO; 0 when
    none holds it."""
    batched = runs[runs["mode"] != "sync"]
    good = within_slo(batched, slo)
    return float(good["requests_per_s"].max()) if len(good) else 0.0
