"""Recovery tables: per model and suite, each format's average score and its recovery vs the baseline format.

Recovery = (average of the format's primary task scores) / (average of the baseline's, over the same tasks) x 100:
a ratio of averages, not an average of ratios (PROTOCOL.md). Leaderboard-v2 tasks contribute their normalised
score (random baseline subtracted, rescaled 0-100) where the scores table has one. Only tasks present for both the
format and the baseline count, so a missing task never skews a comparison; `n_tasks` says how many did.

A row whose scores (the format's or the baseline's) came from a cell that ran on local data overrides (a demo or
smoke benchmark, or local copies of Hub datasets; the `data_overridden` column of `scores`) has `data_overridden`
set, and the rendered table marks it.

Beside each recovery, `evalkit aggregate` shows its 95% CI and verdict from `evalkit.compare` (a layer above this
one: `evalkit.compare.recovery` fills the columns, this module renders them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from evalkit.core.errors import StoreError
from evalkit.util.files import write_atomic
from evalkit.util.text import format_cell, text_table

REQUIRED_COLUMNS = ("model", "format", "suite", "task", "metric", "value", "is_primary", "status")
"""The part of the scores contract aggregation reads (hand-entered tables need only these; `normalized` is
optional)."""

TASK_SUITES = {("humaneval", "humaneval_plus"): "humaneval_plus"}
"""(suite, task) -> the table line a task gets when it is not its cell's suite: one humaneval cell scores both
HumanEval and HumanEval+, and the study reports them as separate lines."""

RECOVERY_COLUMNS = [
    "section",
    "model",
    "suite",
    "format",
    "n_tasks",
    "score",
    "baseline_score",
    "recovery",
    "recovery_lo",
    "recovery_hi",
    "verdict",
    "data_overridden",
]
"""recovery_lo / recovery_hi / verdict: the 95% CI and verdict of `evalkit compare` (filled by
`evalkit.compare.recovery`; NaN / None where there are no per-document samples, e.g. hand-entered scores)."""


def primary_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """One score per (model, format, suite, task): the primary metric of successful cells."""
    missing = [c for c in REQUIRED_COLUMNS if c not in scores.columns]
    if missing:
        raise StoreError(
            f"scores table lacks columns {missing} that aggregation needs",
            hint=f"a hand-entered table needs at least {', '.join(REQUIRED_COLUMNS)}",
        )
    ok = scores[(scores["status"] == "ok") & scores["is_primary"].astype(bool)].copy()
    normalized = ok["normalized"] if "normalized" in ok.columns else pd.Series(float("nan"), index=ok.index)
    ok["score"] = normalized.where(normalized.notna(), ok["value"]).astype(float)
    # hand-entered tables and files written before the column existed carry no flag: not overridden
    flag = ok["data_overridden"] if "data_overridden" in ok.columns else pd.Series(False, index=ok.index)
    ok["data_overridden"] = flag.eq(True)
    ok["suite"] = [TASK_SUITES.get((s, t), s) for s, t in zip(ok["suite"], ok["task"], strict=True)]
    dupes = ok.duplicated(["model", "format", "suite", "task"], keep=False)
    if dupes.any():
        rows = ok.loc[dupes, ["model", "format", "suite", "task", "metric"]].drop_duplicates()
        raise StoreError(
            f"more than one primary metric for {len(rows)} (model, format, suite, task) entries, e.g.\n"
            f"{rows.head(5).to_string(index=False)}",
            hint="each task must mark exactly one metric is_primary",
        )
    return ok[["model", "format", "suite", "task", "score", "data_overridden"]]


def recovery_table(
    scores: pd.DataFrame, baseline_format: str = "bf16", sections: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Rows: (model, suite, format) with the format's average, the baseline's average over the same tasks, and
    their ratio in percent. The baseline's own row has recovery 100. Formats of a model without a baseline get
    recovery NaN (still listed, so a missing baseline is visible). `sections`: suite -> the study's section its
    rows are grouped under, as the benchmark families declare them (`evalkit.benchmarks.report_sections`); unknown
    suites land in "other"."""
    sections = sections or {}
    prim = primary_scores(scores).dropna(subset=["score"])
    rows: list[dict[str, object]] = []
    for (model, suite), group in prim.groupby(["model", "suite"], sort=True):
        base_rows = group[group["format"] == baseline_format].set_index("task")
        base = base_rows["score"]
        for fmt, fgroup in group.groupby("format", sort=False):
            scores_f = fgroup.set_index("task")["score"]
            over_f = fgroup.set_index("task")["data_overridden"]
            common = scores_f.index.intersection(base.index)
            if len(common):
                avg, base_avg = float(scores_f[common].mean()), float(base[common].mean())
                recovery = avg / base_avg * 100 if base_avg else float("nan")
                n = len(common)
                overridden = bool(over_f[common].any() or base_rows["data_overridden"][common].any())
            else:
                avg, base_avg, recovery, n = float(scores_f.mean()), float("nan"), float("nan"), len(scores_f)
                overridden = bool(over_f.any())
            rows.append(
                {
                    "section": sections.get(str(suite), "other"),
                    "model": model,
                    "suite": suite,
                    "format": fmt,
                    "n_tasks": n,
                    "score": avg,
                    "baseline_score": base_avg,
                    "recovery": recovery,
                    "recovery_lo": float("nan"),
                    "recovery_hi": float("nan"),
                    "verdict": None,
                    "data_overridden": overridden,
                }
            )
    table = pd.DataFrame(rows, columns=RECOVERY_COLUMNS)
    order = {"academic": 0, "real-world": 1, "long-context": 2, "other": 3}
    table["_s"] = table["section"].map(order)
    table["_b"] = table["format"] != baseline_format
    table = table.sort_values(["model", "_s", "suite", "_b", "format"]).drop(columns=["_s", "_b"])
    return table.reset_index(drop=True)


OVERRIDE_MARK = "*"
OVERRIDE_NOTE = (
    "* ran on local data overrides (demo: a handful of shipped documents per task, so the number only shows the "
    "pipeline works; or local copies of the datasets): see data_sources in results/scores"
)


CI_NOTE = (
    "(recovery% [95% CI], verdict): CI of the paired difference clustered by document and verdict (recovered / "
    "within margin / degraded / inconclusive) as `evalkit compare` computes them; no CI: a line without per-document "
    "samples (score-only or hand-entered) or with samples for only some of its tasks; <baseline>~r<i>: a baseline "
    "replicate (run-to-run noise)"
)


def _recovery_text(r: pd.Series, others_have_ci: bool = False) -> str:
    """ "90.0%", or with a CI and verdict "90.0% [85.1, 95.2], inconclusive"; "90.0%, no CI" where other lines
    have one and this line cannot (it keeps its recovery)."""
    text = f"{format_cell(float(r['recovery']))}%"
    lo, hi = r.get("recovery_lo"), r.get("recovery_hi")
    has_ci = lo is not None and hi is not None and bool(pd.notna(lo)) and bool(pd.notna(hi))
    if has_ci and lo is not None and hi is not None:
        text += f" [{format_cell(float(lo))}, {format_cell(float(hi))}]"
    verdict = r.get("verdict")
    if isinstance(verdict, str):
        text += f", {verdict}"
    elif others_have_ci and not has_ci:
        text += ", no CI"
    return text


def render_recovery(table: pd.DataFrame, baseline_format: str) -> str:
    """Per model and section: suites as rows, formats as columns, "score (recovery%)" in each cell, with the CI and
    verdict where the table has them; a cell that ran on local data overrides is marked "*", with a footnote."""
    if table.empty:
        return "No successful results to aggregate."
    blocks = []
    marked = False
    any_ci = "recovery_lo" in table.columns and bool(table["recovery_lo"].notna().any())
    for model, mgroup in table.groupby("model", sort=False):
        formats = [baseline_format, *sorted(f for f in mgroup["format"].unique() if f != baseline_format)]
        for section, sgroup in mgroup.groupby("section", sort=False):
            rows = []
            for suite, g in sgroup.groupby("suite", sort=False):
                by_fmt = g.set_index("format")
                row: list[object] = [suite]
                for fmt in formats:
                    if fmt not in by_fmt.index:
                        row.append("-")
                        continue
                    r = by_fmt.loc[fmt]
                    cell = format_cell(float(r["score"]))
                    if fmt != baseline_format:
                        cell += f" ({_recovery_text(r, any_ci)})"
                    if bool(r.get("data_overridden", False)):
                        cell += OVERRIDE_MARK
                        marked = True
                    row.append(cell)
                rows.append(row)
            title = f"{model} - {section}: average score (recovery vs {baseline_format})"
            blocks.append(title + "\n" + text_table(["suite", *formats], rows, [False] + [True] * len(formats)))
    if "recovery_lo" in table.columns and table["recovery_lo"].notna().any():
        blocks.append(CI_NOTE)
    if marked:
        blocks.append(OVERRIDE_NOTE)
    return "\n\n".join(blocks)


def write_recovery(table: pd.DataFrame, results: Path) -> str:
    """Write `<results>/aggregate/recovery.{parquet,csv}`; returns the line saying so."""
    out = results / "aggregate"
    write_atomic(out / "recovery.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    write_atomic(out / "recovery.csv", lambda tmp: table.to_csv(tmp, index=False))
    return f"written: {out / 'recovery.parquet'}, {out / 'recovery.csv'}"
