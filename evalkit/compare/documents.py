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

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import union_categoricals

from evalkit.compare.divergence import choice_loglikelihoods
from evalkit.compare.frame import MetricMap, codes
from evalkit.compare.suites import SPECIALS
from evalkit.core.errors import CompareError

DERIVED_METRICS = {"strict_acc": ("prompt_level_strict_acc", "inst_level_strict_acc")}
"""Per-document values of metrics the adapter derives (IFEval's v2 score: mean of prompt- and instruction-level
strict accuracy); the samples hold only the parts."""


def metric_key(keys: set[str], metric: str, filt: str) -> list[str] | None:
    """The samples' `metrics` keys holding (metric, filter) per document; several keys are averaged (a derived
    metric); None when the samples do not hold it."""
    for key in (f"{metric},{filt}", metric) if filt else (metric,):
        if key in keys:
            return [key]
    if metric in DERIVED_METRICS and all(k in keys for k in DERIVED_METRICS[metric]):
        return list(DERIVED_METRICS[metric])
    if not filt:  # a single filter folded in by the adapter ("exact_match,strict_match")
        folded = sorted(k for k in keys if k.split(",", 1)[0] == metric)
        if len(folded) == 1:
            return folded
    return None


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


def _mean_of_normalised_subtasks(
    rows: pd.DataFrame, ok: pd.DataFrame, clusters: list[str], metric: str, filt: str
) -> bool:
    """The v2 leaderboard scores BBH and MuSR as the mean of their subtasks' normalised scores: a task whose
    `normalized` equals that mean (on equal-sized subtasks the accuracies cannot tell)."""
    if len(clusters) < 2 or not rows["normalized"].notna().any():
        return False
    sub = ok[ok["task"].isin(clusters) & (ok["metric"] == metric) & (ok["filter"] == filt)]
    means = sub.groupby(["model", "format"])["normalized"].agg(["mean", "count"])
    joined = rows.set_index(["model", "format"])["normalized"].to_frame().join(means, how="inner")
    joined = joined[joined["count"] == len(clusters)].dropna()
    return bool(len(joined)) and bool(np.allclose(joined["normalized"], joined["mean"], atol=1e-6))


def _slope_from_choices(responses: pa.ChunkedArray, rows: np.ndarray) -> float | None:
    """v2 slope 1 / (1 - 1/C) for a task of C answer choices (C read from a stored response's log-likelihoods);
    1 for a generative task (baseline 0); None when the responses say neither."""
    if not len(rows):
        return None
    lls = choice_loglikelihoods(str(responses[int(rows[0])].as_py() or ""))
    if lls is None:
        return 1.0
    return len(lls) / (len(lls) - 1) if len(lls) > 1 else None


def _slope(pairs: pd.DataFrame) -> float | None:
    """Slope of the affine v2 normalisation n = s*v + 100*(1-s), from (value, normalized) rows not floored at 0."""
    ok = pairs[(pairs["normalized"] > 0) & (pairs["value"] < 100)]
    if ok.empty:
        return None
    return float(np.median((ok["normalized"] - 100) / (ok["value"] - 100)))


@dataclass(frozen=True)
class Label:
    """What the documents of one (suite, primary task) share."""

    suite: str
    task: str
    measure: str | None = None
    """suites.Special.measure: what is compared where it is not the primary row's value."""
    continuous: bool = False
    """suites.Special.continuous: never the binary test."""


def document_scores(samples: pa.Table, scores: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One row per (model, format, primary task, document) with `raw` (the harness's per-document value, on the
    table's scale), `y` (its value on the suite's scale), `w` (its weight in its task's score), `row` (its row in
    `samples`), `mc` (its response holds choice log-likelihoods), `cluster` (its stratum: the samples' task, or
    RULER's task x length), and its task's `measure` and `continuous` (Label). Suites whose primary row is not a
    mean of one per-document metric come from suites.py; `raw` / `y` are NaN where a document has no score
    (an Arena-Hard question whose judgments all failed: pairing leaves it out). Returns the frame and notes on what
    could not be used."""
    notes: list[str] = []
    ok = scores[scores["status"] == "ok"]
    prim = ok[ok["is_primary"].astype(bool)]
    meta = pd.DataFrame({c: _categorical(samples.column(c)) for c in ("model", "format", "benchmark", "task")})
    meta["doc_id"] = samples.column("doc_id").to_numpy()
    meta["prompt_hash"] = codes(samples.column("prompt_hash"))[0]
    meta["mc"] = pc.starts_with(samples.column("response").combine_chunks(), "{").to_numpy(zero_copy_only=False)
    committed = set(prim[["model", "format", "benchmark"]].itertuples(index=False, name=None))
    # a row's cell as one integer of its three codes (no groupby over millions of rows); the committed cells' too
    cats = [meta[c].cat.categories for c in ("model", "format", "benchmark")]
    cell = np.zeros(len(meta), np.int64)
    for c, cat in zip(("model", "format", "benchmark"), cats, strict=True):
        cell = cell * len(cat) + meta[c].cat.codes.to_numpy().astype(np.int64)
    pos = [{v: i for i, v in enumerate(cat)} for cat in cats]
    keep = np.array(
        [
            (pos[0][m] * len(cats[1]) + pos[1][f]) * len(cats[2]) + pos[2][b]
            for m, f, b in committed
            if m in pos[0] and f in pos[1] and b in pos[2]
        ],
        dtype=np.int64,
    )
    metrics = MetricMap(samples.column("metrics"))
    responses = samples.column("response")
    cache: dict[str, np.ndarray] = {}
    frames = []
    in_cell = np.isin(cell, keep)
    bench_codes = meta["benchmark"].cat.codes.to_numpy()
    task_codes = meta["task"].cat.codes.to_numpy()
    task_names = meta["task"].cat.categories
    labels_of: list[Label] = []  # of each frame: categorical codes after the concat
    for (suite, bench), p_suite in prim.groupby(["suite", "benchmark"], sort=True):
        if bench not in meta["benchmark"].cat.categories:
            continue
        rows_suite = np.flatnonzero(in_cell & (bench_codes == meta["benchmark"].cat.categories.get_loc(bench)))
        if not len(rows_suite):
            continue
        primary_tasks = sorted(p_suite["task"].unique())
        specials = [
            SPECIALS[key]
            for key in sorted(set(zip(p_suite["task"], p_suite["metric"], strict=True)))
            if key in SPECIALS
        ]
        codes_suite = task_codes[rows_suite]
        for sp in specials:
            of_special = [c for c in np.unique(codes_suite) if task_names[c] in sp.members]
            idx = rows_suite[np.isin(codes_suite, of_special)]
            if not len(idx):
                notes.append(f"{suite}/{sp.task}: no samples of {sorted(sp.members)}; left out")
                continue
            d = sp.documents(meta.iloc[idx].reset_index(drop=True).assign(row=idx), metrics)
            if d.empty or bool(d["raw"].isna().all()):
                notes.append(f"{suite}/{sp.task}: samples hold no per-document values of it; left out")
                continue
            labels_of.append(Label(str(suite), sp.task, sp.measure, sp.continuous))
            frames.append(d.assign(label=len(labels_of) - 1))
            if sp.note:
                notes.append(f"{suite}/{sp.task}: {sp.note}")
        claimed = {m for sp in specials for m in sp.members} | {sp.task for sp in specials}
        groups = {
            int(c): _group_of(str(task_names[c]), [t for t in primary_tasks if t not in claimed])
            for c in np.unique(codes_suite)
            if str(task_names[c]) not in claimed
        }
        unused = sorted(str(task_names[c]) for c, g in groups.items() if g is None)
        if unused:
            notes.append(f"{suite}: samples of {unused} belong to no primary task; left out")
        for g in sorted({g for g in groups.values() if g is not None}):
            rows = p_suite[p_suite["task"] == g]
            metric, filt = str(rows["metric"].iloc[0]), str(rows["filter"].iloc[0])
            keys = metric_key(metrics.keys, metric, filt)
            if keys is None:
                notes.append(f"{suite}/{g}: samples hold no per-document {metric!r}; left out")
                continue
            members = np.array([c for c, gg in groups.items() if gg == g])
            idx = rows_suite[np.isin(codes_suite, members)]
            for k in keys:
                if k not in cache:
                    cache[k] = metrics.values(k)
            raw = np.mean([cache[k][idx] for k in keys], axis=0)
            d = meta.iloc[idx].reset_index(drop=True)
            d = d.rename(columns={"task": "cluster"}).assign(raw=raw, row=idx, label=len(labels_of))
            d = d[~np.isnan(raw)]
            labels_of.append(Label(str(suite), g))
            frames.append(_on_suite_scale(d, g, rows, ok, metric, filt, notes, responses))
    if not frames:
        raise CompareError(
            "no per-document scores to compare: the samples table has no documents of any successful cell's "
            "primary tasks",
            hint="run the cells with the lm-eval adapter (it stores samples), then `evalkit compare` again",
        )
    # RULER's (task, length) clusters are labels of their own: one categorical over all frames, not strings
    cluster = union_categoricals([f["cluster"] for f in frames])
    docs = pd.concat([f.drop(columns="cluster") for f in frames], ignore_index=True)
    docs["cluster"] = cluster
    label = docs.pop("label").to_numpy()
    for name in ("suite", "task", "measure"):
        values = [getattr(lab, name) for lab in labels_of]
        cats = sorted({v for v in values if v is not None})
        lut = np.array([cats.index(v) if v is not None else -1 for v in values])
        docs[name] = pd.Categorical.from_codes(lut[label], categories=pd.Index(cats, dtype=object))
    docs["continuous"] = np.array([lab.continuous for lab in labels_of])[label]
    return docs, notes


def _categorical(column: pa.ChunkedArray) -> pd.Categorical[str]:
    c, labels = codes(column)
    return pd.Categorical.from_codes(c, categories=pd.Index(labels))


def _on_suite_scale(
    d: pd.DataFrame,
    g: str,
    rows: pd.DataFrame,
    ok: pd.DataFrame,
    metric: str,
    filt: str,
    notes: list[str],
    responses: pa.ChunkedArray,
) -> pd.DataFrame:
    """Puts `raw` on the table's scale (x100 where the table is in percent of lm-eval's 0-1) and adds `w` (the
    document's weight in its task's score: 1/n, or 1/(clusters x n_cluster) where the task is the mean of its
    subtasks), `y` (v2: normalised) and `slope` (dy/draw: a right/wrong flip is worth slope x 100 points).
    Grouping by integer codes: this runs on millions of documents."""
    fmt_codes = d["format"].cat.codes.to_numpy().astype(np.int64)
    cell_code, cell_ids = pd.factorize(d["model"].cat.codes.to_numpy().astype(np.int64) * 1_000_000 + fmt_codes)
    cells = pd.MultiIndex.from_arrays(
        [d["model"].cat.categories[cell_ids // 1_000_000], d["format"].cat.categories[cell_ids % 1_000_000]]
    )
    clus_code, clus_ids = pd.factorize(d["cluster"].cat.codes.to_numpy())
    clusters = d["cluster"].cat.categories[clus_ids]
    raw = d["raw"].to_numpy(dtype=float)
    n_cell = np.bincount(cell_code)
    plain = np.bincount(cell_code, raw) / n_cell
    pair_code = cell_code * len(clusters) + clus_code
    pair_ids, pair_inv = np.unique(pair_code, return_inverse=True)
    n_pair = np.bincount(pair_inv)
    mean_pair = np.bincount(pair_inv, raw) / n_pair
    cell_of_pair = pair_ids // len(clusters)
    n_clusters = np.bincount(cell_of_pair, minlength=len(cells))
    of_clusters = np.bincount(cell_of_pair, mean_pair, minlength=len(cells)) / np.maximum(n_clusters, 1)
    target = rows.set_index(["model", "format"])["value"].reindex(cells).to_numpy(dtype=float)
    percent = bool(np.abs(raw).max() <= 1) and bool(np.all(np.abs(plain * 100 - target) <= np.abs(plain - target)))
    scale = 100.0 if percent else 1.0
    # mean of cluster means only where it reproduces the table better than the plain mean (they agree on equal sizes)
    mode_mean = bool(np.any(np.abs(of_clusters * scale - target) < np.abs(plain * scale - target) - 1e-6))
    mode_mean = mode_mean or _mean_of_normalised_subtasks(rows, ok, list(clusters), metric, filt)
    raw = raw * scale
    w = 1.0 / (n_clusters[cell_code] * n_pair[pair_inv]) if mode_mean else 1.0 / n_cell[cell_code]
    y = raw.copy()
    slope_doc = np.ones(len(raw))
    if rows["normalized"].notna().any():
        # v2: the normalised score; per subtask where the task averages its subtasks' normalised scores
        for i, key in enumerate(clusters if mode_mean else [g]):
            pairs = ok[(ok["task"] == key) & (ok["metric"] == metric) & (ok["filter"] == filt)]
            slope = _slope(pairs.dropna(subset=["value", "normalized"]))
            if slope is None:  # every format floored at 0: the random baseline from the number of choices
                sel_rows = d["row"].to_numpy()[clus_code == i] if mode_mean else d["row"].to_numpy()
                slope = _slope_from_choices(responses, sel_rows)
            if slope is None:
                notes.append(
                    f"{g}/{key}: v2 normalisation not recoverable (every format floored at 0, no choices "
                    "in the responses); raw accuracy used for it"
                )
                continue
            sel = clus_code == i if mode_mean else slice(None)
            y[sel] = slope * raw[sel] + 100 * (1 - slope)
            slope_doc[sel] = slope
    return d.assign(raw=raw, w=w, y=y, slope=slope_doc)
