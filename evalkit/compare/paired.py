"""Paired statistics of a variant vs its baseline on the same documents (pure; numpy vectorised): the difference,
its standard error clustered by document and stratified by subtask, the interval, flips, the two-sided test and
the documents a "recovered" call needs.

A suite's score is the mean over its tasks of weighted sums of per-document values (documents.py), so its
difference is a sum of per-document contributions z_d (a document shared by several tasks, such as a HumanEval
problem scored by HumanEval and HumanEval+, is one z_d: the document is the resampling unit). The variance is the
stratified cluster-robust one (Miller 2024, arXiv 2411.00640): sum over strata of n_s / (n_s - 1) x the sum of
squared deviations of z_d from the stratum's mean, exactly the variance the stratified paired bootstrap estimates,
without drawing it. Two corrections keep its coverage where flips are few (Bowyer et al. 2025, arXiv 2503.01747:
plain CLT intervals fail there):
- half a flip each way per task (Agresti & Min 2005's add-0.5 to the paired table, which keeps the Wald interval
  of a paired difference near its level at small n): one flip and no flip give intervals of the same kind, and
  identical outputs on 8 documents never give a zero-width interval;
- Student's t with (documents - 1) degrees of freedom instead of the normal quantile;
- where flips are few, the score-type bound (`interval`): a true difference d0 implies a variance of at least
  |d0| x (a flip's worth), which keeps 1 flip among 200 documents from excluding a 2-point drop.
Coverage and verdict rates measured on synthetic paired data: bench/coverage.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class Documents:
    """One suite's paired rows (one per task x document), as integer codes and arrays of equal length."""

    task: np.ndarray
    """Task code 0..m-1 (the suite is the unweighted mean of its tasks)."""
    doc: np.ndarray
    """Document code: equal across tasks (and RULER lengths) for a shared document."""
    stratum: np.ndarray
    """Stratum code of the row's document (its subtask): documents are exchangeable within a stratum only."""
    weight: np.ndarray
    """The row's weight in its task's score (sums to 1 per task)."""
    y_b: np.ndarray
    y_v: np.ndarray
    unit: np.ndarray
    """Points of its task's score one full flip of this row moves before weighting (100 x slope on a percent
    scale): the size of the pseudo-flips."""
    binary: np.ndarray
    """Per task: right/wrong scores (the exact McNemar test applies to a task of equal weights)."""


@dataclass(frozen=True)
class PairedResult:
    """A variant vs its baseline on one task or suite. Differences in points of the suite's scale."""

    n_docs: int
    """Distinct documents (a document shared by several tasks counts once)."""
    baseline: float
    variant: float
    diff: float
    se: float
    """Standard error of `diff`, clustered by document, stratified by subtask, with the half-flip correction."""
    df: int
    """Degrees of freedom of the t quantile (documents - 1)."""
    test: str
    """"mcnemar-exact" (binary per-document scores of one task, equal weights) or "t-clustered"."""
    p_value: float
    """Two-sided p of "no difference"."""
    flips_down: int
    """Documents whose contribution went down (right to wrong for binary scores)."""
    flips_up: int
    per_doc_sd: float
    """sqrt(n) x the standard error: the per-document spread that planning scales (documents needed)."""
    flip_worth: float
    """Points one flipped document moves the difference, on average over documents (weighted by their worth)."""
    max_abs_diff: float
    """The largest difference the documents allow (every document flipped): intervals end there."""


def paired(d: Documents, tasks: np.ndarray | None = None) -> PairedResult:
    """The suite made of `tasks` (codes; default all): the unweighted mean of their scores vs the baseline's."""
    keep = np.ones(len(d.task), bool) if tasks is None else np.isin(d.task, tasks)
    task, doc, stratum = d.task[keep], d.doc[keep], d.stratum[keep]
    t_codes, task = _distinct(task)
    m = len(t_codes)
    a = d.weight[keep] / m
    base = float(np.sum(a * d.y_b[keep]))  # not BLAS: its threads cost more than the product here
    var = float(np.sum(a * d.y_v[keep]))
    delta = a * (d.y_v[keep] - d.y_b[keep])
    doc_codes, doc_i = _distinct(doc)
    n = len(doc_codes)
    z = np.bincount(doc_i, delta)
    # a document's stratum: the smallest of its rows' (shared documents belong to subtasks that pair one to one)
    s_doc = _min_by(stratum.astype(np.int64), doc_i, n)
    _, s_i = _distinct(s_doc)
    n_s = np.bincount(s_i)
    mean_s = np.bincount(s_i, z) / n_s
    ss = np.bincount(s_i, (z - mean_s[s_i]) ** 2)
    # a stratum of one document has no spread to estimate: its own squared contribution stands in (conservative)
    lone = n_s == 1
    var_sampling = float(np.sum(np.where(lone, mean_s**2, ss * n_s / np.maximum(n_s - 1, 1))))
    # half a flip each way per group of tasks joined by shared documents (Agresti-Min): 2 x 0.5 x worth^2
    worth_doc = np.bincount(doc_i, a * d.unit[keep])
    first_task = _min_by(task.astype(np.int64), doc_i, n)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(task)), (task, first_task[doc_i])), shape=(m, m))
    group = connected_components(graph, directed=False)[1]
    # a flip at a random document of the group: its mean squared worth (equal weights: (100 / n)^2, Agresti-Min)
    g_doc = group[first_task]
    worth_sq = np.bincount(g_doc, worth_doc**2) / np.bincount(g_doc)
    var_total = var_sampling + float(np.sum(worth_sq))
    se = float(np.sqrt(var_total))
    df = max(n - 1, 1)
    down, up = int((z < -1e-12).sum()), int((z > 1e-12).sum())
    diff = var - base
    one_binary = m == 1 and bool(d.binary[t_codes[0]]) and _uniform(a * d.unit[keep])
    if one_binary:
        test = "mcnemar-exact"
        p = float(stats.binomtest(up, up + down, 0.5).pvalue) if up + down else 1.0
    else:
        test = "t-clustered"
        p = float(2 * stats.t.sf(abs(diff) / se, df)) if se > 0 else 1.0
    return PairedResult(
        n_docs=n,
        baseline=base,
        variant=var,
        diff=diff,
        se=se,
        df=df,
        test=test,
        p_value=p if diff else 1.0,
        flips_down=down,
        flips_up=up,
        per_doc_sd=se * np.sqrt(n),
        flip_worth=float(np.sum(worth_doc**2) / np.sum(worth_doc)) if np.sum(worth_doc) > 0 else 0.0,
        max_abs_diff=float(np.sum(worth_doc)),
    )


def interval(
    diff: np.ndarray, se: np.ndarray, df: np.ndarray, level: np.ndarray | float, flip_worth: np.ndarray | float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided `level` interval of the difference, elementwise: the t interval diff +- t x se, widened where flips
    are few to the score-type bound. A true difference d0 made of flips worth w points each has variance at least
    |d0| x w (its flips are counts, all one way at the least), so d0 stays in the interval while
    (diff - d0)^2 <= t^2 |d0| w (the Wilson idea for the paired difference). Without it, 1 flip seen among 200
    documents would exclude a true 2-point drop (4 flips expected) 9% of the time."""
    diff, se, w = np.asarray(diff, float), np.asarray(se, float), np.asarray(flip_worth, float)
    q = stats.t.ppf(1 - (1 - np.asarray(level, float)) / 2, np.asarray(df, float))
    k = q**2 * w
    with np.errstate(invalid="ignore"):
        # d0 <= 0: d0^2 + (k - 2 diff) d0 + diff^2 = 0, lower root; d0 >= 0: d0^2 - (k + 2 diff) d0 + diff^2 = 0, upper
        arg_lo = k**2 / 4 - diff * k
        arg_hi = k**2 / 4 + diff * k
        score_lo = np.where(arg_lo >= 0, diff - k / 2 - np.sqrt(np.maximum(arg_lo, 0)), np.inf)
        score_hi = np.where(arg_hi >= 0, diff + k / 2 + np.sqrt(np.maximum(arg_hi, 0)), -np.inf)
    lo = np.fmin(diff - q * se, np.where(score_lo <= 0, score_lo, np.inf))
    hi = np.fmax(diff + q * se, np.where(score_hi >= 0, score_hi, -np.inf))
    none = ~np.isfinite(se)  # no standard error (a score-only line): no interval
    return np.where(none, np.nan, lo), np.where(none, np.nan, hi)


def documents_needed(
    per_doc_sd: np.ndarray, margin: np.ndarray, level: np.ndarray | float, df: np.ndarray
) -> np.ndarray:
    """Planning: documents for a `recovered` call with probability POWER when the true difference is 0, at the
    measured per-document spread (disagreement rate): n = ((t_level + z_power) x sd / margin)^2 (one-sided
    non-inferiority at the interval's lower bound, the paired minimum detectable effect against the margin)."""
    q = stats.t.ppf(1 - (1 - np.asarray(level, float)) / 2, np.asarray(df, float)) + stats.norm.ppf(POWER)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.ceil((q * np.asarray(per_doc_sd) / np.asarray(margin)) ** 2)
    return np.where(np.asarray(margin) > 0, n, np.inf)


def _min_by(x: np.ndarray, code: np.ndarray, size: int) -> np.ndarray:
    """Minimum of integer x per code 0..size-1 (every code present). ufunc.at: since numpy 1.25 it is an order of
    magnitude faster than the lexsort it replaces on millions of rows."""
    out = np.full(size, np.iinfo(x.dtype).max, dtype=x.dtype)
    np.minimum.at(out, code, x)
    return out


def _distinct(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(code, return_inverse=True)` of integer codes, by counting instead of sorting where the codes are
    non-negative and not sparse (document, task and stratum codes are dense): the same values and inverse."""
    code = np.asarray(code)
    if not len(code) or code.dtype.kind not in "iu" or code.min() < 0 or code.max() > 4 * len(code) + 1024:
        return np.unique(code, return_inverse=True)
    present = np.bincount(code) > 0
    rank = np.cumsum(present) - 1
    return np.flatnonzero(present).astype(code.dtype), rank[code]


def _uniform(x: np.ndarray) -> bool:
    return bool(np.ptp(x) <= 1e-9 * max(1e-300, float(np.abs(x).max()))) if len(x) else True


def shared_documents(frame: pd.DataFrame) -> np.ndarray:
    """Document codes of one suite's paired rows (columns task, cluster, doc_id, prompt_hash), equal where rows are
    one document: the same (doc_id, prompt_hash) in two tasks (HumanEval and HumanEval+ score one prompt), the same
    subject and doc_id in tasks with the same subjects (MMLU and MMLU-CoT: mmlu_llama_astronomy and
    mmlu_cot_llama_astronomy, document 3), and one RULER item across lengths (cluster `task@length`). Connected
    components (scipy) join the rules."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(frame)
    t_code, t_names = pd.factorize(frame["task"])  # categorical in, codes out: no string per row
    c_code, c_names = pd.factorize(frame["cluster"])
    d_code = pd.factorize(frame["doc_id"])[0].astype(np.int64)
    p_code = pd.factorize(frame["prompt_hash"])[0].astype(np.int64)
    nd = int(d_code.max()) + 1 if n else 1
    # per distinct cluster (not per row): its name without RULER's "@length", and its subject within its task
    base_of = [str(c).split("@", 1)[0] for c in c_names]
    b_code_of, b_names = pd.factorize(pd.Series(base_of))
    b_code = b_code_of[c_code].astype(np.int64)
    keys = [
        (t_code.astype(np.int64) * len(b_names) + b_code) * nd + d_code,  # one RULER item across lengths
        d_code * (int(p_code.max()) + 1 if n else 1) + p_code,  # one prompt scored by two tasks
    ]
    # tasks whose subject sets are equal share (subject, doc_id): mmlu_llama_astronomy / mmlu_cot_llama_astronomy
    pairs = pd.DataFrame({"t": t_code, "b": b_code}).drop_duplicates()
    subject = {}
    for t, b in pairs.itertuples(index=False):
        name, task = str(b_names[b]), str(t_names[t])
        if name.startswith(task + "_"):
            subject[(t, b)] = name[len(task) + 1 :]
    if subject:
        sets: dict[int, frozenset[str]] = {}
        for (t, _), sub in subject.items():
            sets[t] = sets.get(t, frozenset()) | {sub}
        group_of_set: dict[frozenset[str], int] = {}
        group = {t: group_of_set.setdefault(v, len(group_of_set)) for t, v in sets.items()}
        s_code_of, s_names = pd.factorize(pd.Series(list(subject.values())))
        lut = np.full((len(t_names), len(b_names)), -1, dtype=np.int64)
        for ((t, b), _), sc in zip(subject.items(), s_code_of, strict=True):
            lut[t, b] = group[t] * len(s_names) + sc
        k3 = lut[t_code, b_code]
        keys.append(np.where(k3 >= 0, k3 * nd + d_code, -1 - np.arange(n)))
    rows, cols = [], []
    for key in keys:
        code, uniq = pd.factorize(key)  # int64 keys: hash factorisation, no Python object per row
        if len(uniq) == n:  # every key distinct: no rows to join (the usual case), no sort
            continue
        order = np.argsort(code, kind="stable")
        same = code[order][1:] == code[order][:-1]
        rows.append(order[:-1][same])
        cols.append(order[1:][same])
    r, c = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (rows, cols))
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    labels: np.ndarray = connected_components(graph, directed=False)[1]
    return labels
