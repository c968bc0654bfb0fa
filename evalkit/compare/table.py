"""The `comparisons` table: every variant vs its baseline per (model, format, suite), with a row per task below
it, and its terminal rendering. The only module here that knows the whole flow; the statistics are in paired.py."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from evalkit.compare import divergence
from evalkit.compare.documents import document_scores
from evalkit.compare.floor import floor_points, is_replicate, with_floor
from evalkit.compare.frame import as_table
from evalkit.compare.multiple import Method, adjust
from evalkit.compare.paired import PairedResult, TaskStats, combine, task_stats
from evalkit.compare.pairing import drop_unscored, pair
from evalkit.compare.verdict import Margin, Verdict, verdict
from evalkit.core.errors import CompareError

PAIR_COLUMNS = [
    "task",
    "cluster",
    "doc_id",
    "prompt_hash",
    "raw",
    "y",
    "w",
    "slope",
    "row",
    "mc",
    "measure",
    "continuous",
]

SUITE = "*"
"""`task` of a suite's own row."""

VARIANT, REPLICATE = "variant", "replicate"
"""`role` of a row: a format vs its baseline, or a baseline replicate (format `<baseline>~r<i>`) measuring the noise
floor (floor.py)."""


@dataclass(frozen=True)
class CompareSettings:
    baseline: str = "bf16"
    margin: Margin = field(default_factory=Margin)
    method: Method = "holm"
    n_boot: int = 2000
    n_perm: int = 5000
    seed: int = 0
    level: float = 0.95
    subsets: frozenset[tuple[str, str, str]] = frozenset()
    """(model, format, suite) of adaptive cells stopped early (sequential.adaptive_subsets): their documents are a
    subset of the baseline's, which is paired on those documents only."""


def compare(
    samples: pa.Table | pd.DataFrame, scores: pd.DataFrame, settings: CompareSettings
) -> tuple[pd.DataFrame, list[str]]:
    """The comparisons table and notes (what was left out and why). `samples`: Arrow (`frame.read_samples`, fast)
    or the DataFrame `ResultsStore.read_samples` returns."""
    table = as_table(samples)
    docs, notes = document_scores(table, scores)
    choices = divergence.ChoiceCache(table.column("response"))
    rng = np.random.default_rng(settings.seed)
    rows: list[dict[str, object]] = []
    for (model, suite), grp in docs.groupby(["model", "suite"], sort=True, observed=True):
        base = grp[grp["format"] == settings.baseline]
        if base.empty:
            notes.append(f"{model} / {suite}: no {settings.baseline} baseline documents; not compared")
            continue
        for fmt, var in grp[grp["format"] != settings.baseline].groupby("format", sort=True, observed=True):
            where = f"{model} / {suite}: {fmt} vs {settings.baseline}"
            of = base if (model, fmt, suite) not in settings.subsets else base[base["doc_id"].isin(var["doc_id"])]
            paired, unscored = drop_unscored(pair(of[PAIR_COLUMNS], var[PAIR_COLUMNS], where))
            notes.extend(
                f"{where}: {task}: {n} documents without a score on one side (arena: every judgment of the "
                "question failed) left out on both sides"
                for task, n in unscored.items()
            )
            if paired.empty:
                notes.append(f"{where}: no document scored on both sides; not compared")
                continue
            per_task: list[TaskStats] = []
            measures: list[str | None] = []
            task_rows = []
            divs = []
            for task, t in paired.groupby("task", sort=True, observed=True):
                values = np.union1d(t["raw_b"].unique(), t["raw_v"].unique())
                binary = not t["continuous_b"].iat[0] and bool(
                    set(values.tolist()) <= {0.0, 1.0} or set(values.tolist()) <= {0.0, 100.0}
                )
                of_task = t["measure_b"].iat[0]
                measure = of_task if isinstance(of_task, str) else None  # NaN: the primary value is compared
                measures.append(measure)
                cluster = pd.factorize(t["cluster"])[0]
                ts = task_stats(
                    cluster,
                    t["w_b"].to_numpy(),
                    t["y_b"].to_numpy(),
                    t["y_v"].to_numpy(),
                    binary,
                    rng,
                    settings.n_boot,
                    settings.n_perm,
                    t["slope_b"].to_numpy(),
                    settings.level,
                )
                per_task.append(ts)
                div = choices.divergence(t["row_b"].to_numpy(), t["row_v"].to_numpy(), t["mc_b"].to_numpy())
                divs.append(div)
                task_rows.append(
                    _row(str(model), str(fmt), str(suite), str(task), combine([ts], settings.level), div, settings)
                    | {"measure": measure}
                )
            all_div = pd.concat(divs, ignore_index=True)
            rows.append(
                _row(str(model), str(fmt), str(suite), SUITE, combine(per_task, settings.level), all_div, settings)
                | {"measure": "; ".join(sorted({m for m in measures if m})) or None}
            )
            rows.extend(task_rows)
    if not rows:
        raise CompareError(
            f"nothing to compare: no model has both {settings.baseline!r} and another format with samples",
            hint="check --baseline and that the baseline cells completed (`evalkit status`)",
        )
    table = pd.DataFrame(rows)
    replicate = table["format"].map(lambda f: is_replicate(str(f), settings.baseline)).astype(bool)
    table["role"] = np.where(replicate, REPLICATE, VARIANT)
    # two families, each across the whole grid: the suite rows (the verdicts) and the task rows. Replicates are the
    # yardstick, not tests of the grid's formats: adjusted among themselves, they leave the variants' p alone.
    is_suite = table["task"] == SUITE
    table["p_adjusted"] = np.nan
    for family in (is_suite & ~replicate, ~is_suite & ~replicate, is_suite & replicate, ~is_suite & replicate):
        table.loc[family, "p_adjusted"] = adjust(table.loc[family, "p_value"].to_numpy(), settings.method)
    table = with_floor(table, replicate)
    table["verdict"] = [
        verdict_of(r) if r["task"] == SUITE and r["role"] == VARIANT else None for r in table.to_dict("records")
    ]
    return table[COLUMNS], notes


def verdict_of(r: Mapping[Hashable, Any]) -> str:
    """The verdict of a comparisons row (a suite row; task rows of a suite split in two lines, see recovery.py)."""
    return verdict(
        float(r["diff"]),
        float(r["diff_lo"]),
        float(r["p_adjusted"]),
        float(r["margin_points"]),
        floor_points(float(r["floor_diff"])),
    ).value


COLUMNS = [
    "model",
    "format",
    "role",
    "baseline_format",
    "suite",
    "task",
    "measure",
    "n_docs",
    "baseline",
    "variant",
    "diff",
    "diff_lo",
    "diff_hi",
    "recovery",
    "recovery_lo",
    "recovery_hi",
    "test",
    "p_value",
    "p_adjusted",
    "method",
    "flips_down",
    "flips_up",
    "mde",
    "margin_points",
    "flip_rate",
    "n_replicates",
    "floor_diff",
    "floor_flip_rate",
    "beyond_floor",
    "verdict",
    "kl_mean",
    "top1_agreement",
    "n_choice_docs",
]
"""`measure`: what the row compares where it is not the scores table's primary value (Arena-Hard: the mean
per-question win fraction, not the Bradley-Terry win rate; suites.py); None where the documents reproduce it."""


def _row(
    model: str, fmt: str, suite: str, task: str, res: PairedResult, div: pd.DataFrame, s: CompareSettings
) -> dict[str, object]:
    has = div["kl"].notna()
    return {
        "model": model,
        "format": fmt,
        "baseline_format": s.baseline,
        "suite": suite,
        "task": task,
        **asdict(res),
        "method": s.method,
        "margin_points": s.margin.points(res.baseline),
        "kl_mean": float(div.loc[has, "kl"].mean()) if has.any() else np.nan,
        "top1_agreement": float(div.loc[has, "agree"].mean()) if has.any() else np.nan,
        "n_choice_docs": int(has.sum()),
    }


def degraded(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["verdict"] == Verdict.DEGRADED.value]


def _line(r: Mapping[Hashable, Any]) -> str:
    kl = f"{r['kl_mean']:6.3f}" if pd.notna(r["kl_mean"]) else f"{'':6}"
    agree = f"{r['top1_agreement']:5.2f}" if pd.notna(r["top1_agreement"]) else f"{'':5}"
    task = "" if r["task"] == SUITE else str(r["task"])
    if isinstance(r["measure"], str):  # compared on something else than the scores table's value: say on what
        task = f"{task} [{r['measure']}]".strip()
    diff = f"{r['diff']:+.2f} [{r['diff_lo']:+.2f}, {r['diff_hi']:+.2f}]"
    recovery = f"{r['recovery']:.1f}% [{r['recovery_lo']:.1f}, {r['recovery_hi']:.1f}]"
    flips = f"{r['flips_down']}/{r['flips_up']}"
    floor = f"{r['floor_diff']:.2f}/{100 * r['floor_flip_rate']:.0f}%" if r["n_replicates"] else "-"
    beyond = {True: "yes", False: "no"}.get(r["beyond_floor"], "")  # variants with a floor only
    verdict_ = r["verdict"] if isinstance(r["verdict"], str) else ""  # task rows carry none
    if r["role"] == REPLICATE:
        verdict_ = "(noise floor)"
    return (
        f"{str(r['model'])[:24]:<24} {str(r['suite'])[:18]:<18} {str(r['format'])[:8]:<8} {task[:26]:<26} "
        f"{r['n_docs']:>7} {r['baseline']:6.1f} {r['variant']:6.1f} {diff:>22} {recovery:>24} "
        f"{r['p_adjusted']:7.3f} {flips:>10} {r['mde']:5.1f} {kl} {agree} {floor:>11} {beyond:>6}  {verdict_}"
    )


def render(table: pd.DataFrame, settings: CompareSettings, with_tasks: bool = False) -> str:
    """Text table for the terminal: one line per (model, suite, format), optionally its tasks below it."""
    view = table if with_tasks else table[table["task"] == SUITE]
    head = (
        f"{'model':<24} {'suite':<18} {'format':<8} {'task':<26} {'n':>7} {'base':>6} {'score':>6} "
        f"{'diff [95% CI]':>22} {'recovery [95% CI]':>24} {'p_adj':>7} {'flips -/+':>10} {'MDE':>5} "
        f"{'KL':>6} {'agree':>5} {'floor':>11} {'beyond':>6}  verdict"
    )
    lines = [head, "-" * len(head)]
    for r in view.to_dict("records"):
        lines.append(_line(r))
    lines.append(
        f"\nbaseline {settings.baseline}; margin {settings.margin}; p adjusted ({settings.method}) across the "
        f"grid's suite rows; recovered = 95% CI of the difference within [-margin, +inf) (non-inferiority), "
        f"degraded = adjusted p < 0.05 and difference < -max(margin, floor), else inconclusive"
    )
    lines.append(_floor_note(table, settings))
    return "\n".join(lines)


def _floor_note(table: pd.DataFrame, settings: CompareSettings) -> str:
    """What the floor column means, and where there is none."""
    if not (table["role"] == REPLICATE).any():
        return (
            f"noise floor: none measured (no {settings.baseline} replicates; run the baseline with replicates.k=1, "
            "see README 'Comparing formats')"
        )
    return (
        f"noise floor = {settings.baseline} replicates (format {settings.baseline}~r<i>: another request "
        "concurrency, so other batches) vs the baseline: largest |diff| / share of documents flipped; beyond = the "
        "variant's |diff| exceeds it"
    )
