"""The recommendation (pure): per scenario (synchronous or asynchronous x use case x hardware) and model, the
cheapest format whose accuracy verdict is non-inferior (`recovered`, or `within margin`: a drop detected inside the
margin; `Verdict.non_inferior`, compare/verdict.py) on every suite the user names; every other format is listed with
why it was left out. A format with a `degraded` (or `inconclusive`, or missing) verdict is never recommended.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from evalkit.compare import Verdict
from evalkit.core.formats import BASELINE_FORMAT
from evalkit.perf.cost import PriceTable, Slo, cost_reduction, peak_qps, queries_per_dollar, within_slo

HARDWARE_TYPES = ("H100", "A100", "A6000", "L40S", "L4", "A10")
"""GPU families a price table may list; a measured GPU name is priced as the first family it contains."""


@dataclass(frozen=True)
class Choice:
    """One format in one scenario."""

    model: str
    deployment: str
    """sync (one request at a time) or async (continuous batching, peak QPS within the SLO)."""
    use_case: str
    hardware: str
    """The price table's hardware type ("H100", "CPU"): formats are compared within one type."""
    format: str
    units: int
    """GPUs (or CPU cores) one replica uses."""
    usd_per_hour: float
    qps: float
    """sync: completed requests/s at concurrency 1 (median of the repeats); async: peak requests/s within the SLO."""
    qps_min: float
    qps_max: float
    """Spread of `qps` over the repeated runs it comes from (sync runs; the throughput runs when they hold the
    peak)."""
    queries_per_dollar: float
    cost_reduction: float
    """Queries per dollar relative to the baseline format in the same scenario (NaN without a baseline)."""
    status: str
    """recommended | eligible | excluded."""
    reason: str
    """Why excluded (or "cheapest non-inferior format")."""


def hardware_type(name: str, kind: str) -> str:
    """The price table's type of a measured GPU name ("NVIDIA RTX A6000" -> "A6000"); "CPU" for CPU runs."""
    if kind == "cpu":
        return "CPU"
    upper = name.upper()
    return next((t for t in HARDWARE_TYPES if t in upper), name)


def units_of(row: pd.Series) -> int:
    """GPUs (or cores) the measurement held, as the perf table recorded them."""
    return int(row["hardware_count"])


def accuracy_gate(verdicts: pd.DataFrame, model: str, fmt: str, suites: list[str], baseline: str) -> str | None:
    """None when `fmt` may be recommended for `model`; else why not. `verdicts`: the suite rows of evalkit compare
    (model, format, suite, verdict). The baseline is the reference, recovered by definition."""
    if fmt == baseline:
        return None
    mine = verdicts[(verdicts["model"] == model) & (verdicts["format"] == fmt)]
    for suite in suites:
        got = mine.loc[mine["suite"] == suite, "verdict"]
        if got.empty:
            return f"no accuracy verdict on {suite} (run evalkit compare after its cells)"
        # the decision procedure's own notion of "ship it", not one label of it: "within margin" counts too
        if got.iloc[0] not in _NON_INFERIOR:
            return f"{got.iloc[0]} on {suite}"
    return None


_NON_INFERIOR = {v.value for v in Verdict if v.non_inferior}


def recommend(
    perf: pd.DataFrame,
    verdicts: pd.DataFrame,
    suites: list[str],
    prices: PriceTable,
    slo: Slo,
    baseline: str = BASELINE_FORMAT,
) -> pd.DataFrame:
    """One row per (model, deployment, use case, hardware, format): `Choice` columns."""
    suite_rows = verdicts[verdicts["task"] == "*"] if "task" in verdicts else verdicts
    choices: list[Choice] = []
    # formats are compared on one GPU type, each on the GPUs it held (70B BF16 on 4 A6000s vs INT4 on 2)
    typed = perf.assign(
        _type=[hardware_type(str(n), str(k)) for n, k in zip(perf["hardware_name"], perf["hardware_kind"], strict=True)]
    )
    for (model, use_case, hardware), grp in typed.groupby(["model", "use_case", "_type"], sort=True):
        for deployment in ("sync", "async"):
            scenario: list[Choice] = []
            for fmt, runs in grp.groupby("format", sort=True):
                first = runs.iloc[0]
                units = units_of(first)
                usd = prices.price(str(hardware), units)
                qps, lo, hi = (sync_qps if deployment == "sync" else async_qps)(runs, slo)
                why = accuracy_gate(suite_rows, str(model), str(fmt), suites, baseline)
                if why is None and qps <= 0:
                    why = "no run within the latency SLO" if deployment == "async" else "no synchronous run"
                scenario.append(
                    Choice(
                        str(model),
                        deployment,
                        str(use_case),
                        str(hardware),
                        str(fmt),
                        units,
                        usd,
                        qps,
                        lo,
                        hi,
                        queries_per_dollar(qps, usd),
                        math.nan,
                        "excluded" if why else "eligible",
                        why or "",
                    )
                )
            choices += _rank(scenario, baseline)
    return pd.DataFrame([asdict(c) for c in choices], columns=list(Choice.__dataclass_fields__))


def sync_qps(runs: pd.DataFrame, slo: Slo) -> tuple[float, float, float]:
    """Median, min and max requests/s of the synchronous runs (0 without any). The SLO does not apply: one
    request at a time is the deployment's best latency."""
    rps = runs.loc[runs["mode"] == "sync", "requests_per_s"]
    return (float(rps.median()), float(rps.min()), float(rps.max())) if len(rps) else (0.0, 0.0, 0.0)


def async_qps(runs: pd.DataFrame, slo: Slo) -> tuple[float, float, float]:
    """Peak requests/s within the SLO, with the spread of the throughput repeats when the peak is one of them."""
    peak = peak_qps(runs, slo)
    thr = within_slo(runs[runs["mode"] == "throughput"], slo)["requests_per_s"]
    if len(thr) and float(thr.max()) == peak:
        return peak, float(thr.min()), peak
    return peak, peak, peak


def _rank(scenario: list[Choice], baseline: str) -> list[Choice]:
    """Cost reduction vs the baseline's queries per dollar, and the cheapest eligible format marked recommended."""
    base = next((c.queries_per_dollar for c in scenario if c.format == baseline), math.nan)
    out = [Choice(**{**asdict(c), "cost_reduction": cost_reduction(base, c.queries_per_dollar)}) for c in scenario]
    eligible = [c for c in out if c.status == "eligible"]
    if eligible:
        best = max(eligible, key=lambda c: c.queries_per_dollar)
        out = [
            Choice(**{**asdict(c), "status": "recommended", "reason": "cheapest non-inferior format"})
            if c is best
            else c
            for c in out
        ]
    return out


def render(table: pd.DataFrame, prices: PriceTable, slo: Slo) -> str:
    lines = [
        f"prices of {prices.date} ({prices.source}); async SLO: TTFT p{slo.percentile} <= {slo.ttft_ms:g} ms, "
        f"ITL p{slo.percentile} <= {slo.itl_ms:g} ms",
        f"{'model':<24} {'deploy':<6} {'use case':<22} {'hardware':<44} {'format':<7} {'qps [min, max]':>24} "
        f"{'q/$':>10} "
        f"{'vs base':>7}  status",
    ]
    for r in (Choice(**{str(k): v for k, v in rec.items()}) for rec in table.to_dict("records")):
        red = f"{r.cost_reduction:6.2f}x" if not math.isnan(r.cost_reduction) else f"{'':7}"
        lines.append(
            f"{r.model[:24]:<24} {r.deployment:<6} {r.use_case[:22]:<22} {f'{r.units}x {r.hardware}'[:44]:<44} "
            f"{r.format[:7]:<7} "
            f"{r.qps:8.3f} [{r.qps_min:6.3f}, {r.qps_max:6.3f}] {r.queries_per_dollar:10.0f} {red}  "
            f"{r.status}{': ' + r.reason if r.reason else ''}"
        )
    return "\n".join(lines)
