"""Per-document scores on the scale of the suite's average (pure).

A suite's score is the mean over its tasks (the scores table's primary rows) of each task's score; a task such as
MMLU or BBH is itself an average over subtasks (the samples' tasks, here "clusters"), either size-weighted (MMLU,
GPQA, MATH) or the mean of subtask scores (BBH, MuSR). Leaderboard-v2 normalisation is affine per task
(random baseline subtracted, rescaled), so it is applied per document too. With these, every suite score is a
weighted sum of per-document values, which is what makes the paired bootstrap a cheap linear operation.

Everything is read off the two tables, not the adapter's code: the per-document metric is the primary row's
(metric, filter) key in the samples' `metrics` map; the scale (lm-eval's 0-1 vs the table's percent) and the
averaging mode are the ones that reproduce the primary row's value from the documents.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.compare.errors import CompareError

DERIVED_METRICS = {"strict_acc": ("prompt_level_strict_acc", "inst_level_strict_acc")}
"""Per-document values of metrics the adapter derives (IFEval's v2 score: mean of prompt- and instruction-level
strict accuracy); the samples hold only the parts."""

DOC_COLUMNS = ["model", "format", "suite", "task", "cluster", "doc_id", "prompt_hash", "raw", "y", "response"]


def metric_value(metrics: object, metric: str, filt: str) -> float:
    """The per-document value of (metric, filter) in a samples `metrics` map (a list of pairs or a dict)."""
    m = dict(metrics) if not isinstance(metrics, dict) else metrics  # type: ignore[call-overload]
    for key in (f"{metric},{filt}", metric) if filt else (metric,):
        if key in m:
            return float(m[key])
    if metric in DERIVED_METRICS:
        parts = [m.get(k) for k in DERIVED_METRICS[metric]]
        if all(p is not None for p in parts):
            return float(sum(parts)) / len(parts)  # type: ignore[arg-type]
    if not filt:
        for key, value in m.items():  # a single filter folded in by the adapter ("exact_match,strict_match")
            if key.split(",", 1)[0] == metric:
                return float(value)
    return float("nan")


def _group_of(task: str, primary_tasks: list[str]) -> str | None:
    """The primary task a samples task belongs to: itself, or the primary task sharing the most leading
    "_"-separated words (mmlu_llama_astronomy -> mmlu_llama, leaderboard_math_algebra_hard ->
    leaderboard_math_hard), at least two and unambiguous."""
    if task in primary_tasks:
        return task
    words = task.split("_")
    best: list[tuple[int, str]] = []
    for p in primary_tasks:
        pw = p.split("_")
        n = 0
        while n < min(len(words), len(pw)) and words[n] == pw[n]:
            n += 1
        best.append((n, p))
    best.sort(reverse=True)
    if not best or best[0][0] < 2 or (len(best) > 1 and best[1][0] == best[0][0]):
        return None
    return best[0][1]


def _slope(pairs: pd.DataFrame) -> float | None:
    """Slope of the affine v2 normalisation n = s*v + 100*(1-s), from (value, normalized) rows not floored at 0."""
    ok = pairs[(pairs["normalized"] > 0) & (pairs["value"] < 100)]
    if ok.empty:
        return None
    return float(np.median((ok["normalized"] - 100) / (ok["value"] - 100)))


def document_scores(samples: pd.DataFrame, scores: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One row per (model, format, primary task, document) with `raw` (the harness's per-document value) and `y`
    (its contribution on the suite's scale), plus the weights the suite average gives it: `w` (its weight in its
    task's score). Returns the frame and notes on what could not be used."""
    notes: list[str] = []
    ok = scores[scores["status"] == "ok"]
    prim = ok[ok["is_primary"].astype(bool)]
    cells = prim[["model", "format", "benchmark", "suite"]].drop_duplicates()
    samples = samples.merge(cells, on=["model", "format", "benchmark"], how="inner")
    frames = []
    for (suite, bench), s_suite in samples.groupby(["suite", "benchmark"], sort=False):
        p_suite = prim[(prim["suite"] == suite) & (prim["benchmark"] == bench)]
        primary_tasks = sorted(p_suite["task"].unique())
        groups = {t: _group_of(t, primary_tasks) for t in s_suite["task"].unique()}
        unused = sorted(t for t, g in groups.items() if g is None)
        if unused:
            notes.append(f"{suite}: samples of {unused} belong to no primary task; left out")
        for g in sorted({g for g in groups.values() if g is not None}):
            rows = p_suite[p_suite["task"] == g]
            metric, filt = str(rows["metric"].iloc[0]), str(rows["filter"].iloc[0])
            docs = s_suite[s_suite["task"].map(groups) == g]
            raw = np.array([metric_value(m, metric, filt) for m in docs["metrics"]], dtype=float)
            if np.isnan(raw).all():
                notes.append(f"{suite}/{g}: samples hold no per-document {metric!r}; left out")
                continue
            d = pd.DataFrame(
                {
                    "model": docs["model"].to_numpy(),
                    "format": docs["format"].to_numpy(),
                    "suite": suite,
                    "task": g,
                    "cluster": docs["task"].to_numpy(),
                    "doc_id": docs["doc_id"].to_numpy(),
                    "prompt_hash": docs["prompt_hash"].to_numpy(),
                    "raw": raw,
                    "response": docs["response"].to_numpy(),
                }
            )
            frames.append(_on_suite_scale(d, rows, ok, metric, filt, notes))
    if not frames:
        raise CompareError(
            "no per-document scores to compare: the samples table has no documents of any successful cell's "
            "primary tasks",
            hint="run the cells with the lm-eval adapter (it stores samples), then `evalkit compare` again",
        )
    return pd.concat(frames, ignore_index=True), notes


def _on_suite_scale(
    d: pd.DataFrame, rows: pd.DataFrame, ok: pd.DataFrame, metric: str, filt: str, notes: list[str]
) -> pd.DataFrame:
    """Adds `scale` (100 when the table is in percent of lm-eval's 0-1), `mode` and `w`, and `y`."""
    g = str(d["task"].iloc[0])
    value = rows.set_index(["model", "format"])["value"]
    by_cell = d.groupby(["model", "format"])
    plain = by_cell["raw"].mean()
    of_clusters = d.groupby(["model", "format", "cluster"])["raw"].mean().groupby(level=[0, 1]).mean()
    target = value.reindex(plain.index)
    percent = bool(d["raw"].abs().max() <= 1) and bool(((plain * 100 - target).abs() <= (plain - target).abs()).all())
    scale = 100.0 if percent else 1.0
    # mean of cluster means only where it reproduces the table better than the plain mean (they agree on equal sizes)
    mode_mean = bool(((of_clusters * scale - target).abs() < (plain * scale - target).abs() - 1e-6).any())
    d["raw"] = d["raw"] * scale
    n_cluster = d.groupby(["model", "format", "cluster"])["raw"].transform("size")
    n_clusters = d.groupby(["model", "format"])["cluster"].transform("nunique")
    n_task = d.groupby(["model", "format"])["raw"].transform("size")
    d["w"] = 1.0 / (n_clusters * n_cluster) if mode_mean else 1.0 / n_task
    d["y"] = d["raw"]
    if rows["normalized"].notna().any():
        # v2: the normalised score; per subtask where the task averages its subtasks' normalised scores
        keys = sorted(d["cluster"].unique()) if mode_mean else [g]
        for key in keys:
            pairs = ok[(ok["task"] == key) & (ok["metric"] == metric) & (ok["filter"] == filt)]
            s = _slope(pairs.dropna(subset=["value", "normalized"]))
            if s is None:
                notes.append(f"{g}/{key}: normalisation not recoverable (every score floored at 0); raw scores used")
                continue
            sel = d["cluster"] == key if mode_mean else slice(None)
            d.loc[sel, "y"] = s * d.loc[sel, "raw"] + 100 * (1 - s)
    return d
