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
- the interval (`interval`) tests each candidate true difference d0 against the variance d0 implies, not the one
  observed at the difference: re-estimated under d0 (Tango 1998's score interval of a paired difference), and at
  least |d0| x (a flip's worth), which keeps 1 flip among 200 documents from excluding a 2-point drop.
Coverage and verdict rates measured on synthetic paired data: bench/coverage.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
POWER = 0.8
_BISECTIONS = 50  # halvings of the search range: the interval's ends to ~1e-15 of it


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
    moved: float
    """Points moved by the documents that changed, summed without sign, plus the half flip each way that `se` holds
    (one flip of a document of mean worth per group of tasks): se^2 / moved is the worth of the flips seen."""
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
    per_group = np.bincount(g_doc)
    worth_sq = np.bincount(g_doc, worth_doc**2) / per_group
    var_total = var_sampling + float(np.sum(worth_sq))
    moved = float(np.sum(np.abs(z)) + np.sum(np.bincount(g_doc, worth_doc) / per_group))
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
        moved=moved,
        max_abs_diff=float(np.sum(worth_doc)),
    )


def interval(
    diff: np.ndarray,
    se: np.ndarray,
    df: np.ndarray,
    level: np.ndarray | float,
    flip_worth: np.ndarray | float,
    moved: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided `level` interval of the difference, elementwise: the true differences d0 with
    (diff - d0)^2 <= t^2 V(d0), V(d0) the larger of two variances d0 implies (the interval is the hull of both sets):
    - the variance re-estimated under d0 (`_restricted`): se^2 at d0 = diff, smaller towards 0 where the flips went
      one way (a smaller drop needs fewer flips), larger beyond;
    - the least variance of a drop made of flips worth w points each, |d0| x w (the Wilson idea for the paired
      difference: flips are counts, all one way at the least). Without it, 1 flip seen among 200 documents would
      exclude a true 2-point drop (4 flips expected) 9% of the time, and a drop in a small subtask of heavy documents
      that happened not to flip would go unseen. Its ends are roots (k = t^2 w): for d0 <= 0 the lower one of
      d0^2 + (k - 2 diff) d0 + diff^2 = 0, for d0 >= 0 the upper one of d0^2 - (k + 2 diff) d0 + diff^2 = 0.
    The first replaced the t interval diff +- t x se (its variance se^2 at every d0). Joined with the bound, that made
    two intervals that each miss about 5% on different draws (t where few flips were seen, the bound where many):
    98.6% coverage of a 2-point drop of one-way flips in unequal subtasks (n = 1000, 2% disagreement), 97.0% with the
    re-estimated variance, and `degraded` found there 55% of the time instead of 33% (4000 replications,
    `python -m bench.coverage --only`; the grid: bench/coverage.md)."""
    diff, se, w = np.asarray(diff, float), np.asarray(se, float), np.asarray(flip_worth, float)
    q = stats.t.ppf(1 - (1 - np.asarray(level, float)) / 2, np.asarray(df, float))
    k = q**2 * w
    with np.errstate(invalid="ignore"):
        arg_lo = k**2 / 4 - diff * k
        arg_hi = k**2 / 4 + diff * k
        score_lo = np.where(arg_lo >= 0, diff - k / 2 - np.sqrt(np.maximum(arg_lo, 0)), np.inf)
        score_hi = np.where(arg_hi >= 0, diff + k / 2 + np.sqrt(np.maximum(arg_hi, 0)), -np.inf)
    r_lo, r_hi = _restricted(diff, se, q, np.asarray(moved, float))
    lo = np.fmin(r_lo, np.where(score_lo <= 0, score_lo, np.inf))
    hi = np.fmax(r_hi, np.where(score_hi >= 0, score_hi, -np.inf))
    none = ~np.isfinite(se)  # no standard error (a score-only line): no interval
    return np.where(none, np.nan, lo), np.where(none, np.nan, hi)


def _restricted(diff: np.ndarray, se: np.ndarray, q: np.ndarray, moved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The d0 with (diff - d0)^2 <= q^2 V(d0), V(d0) the variance re-estimated under d0 (Tango 1998's score interval
    of a paired difference, Poisson limit). In units of the worth of the flips seen, w = se^2 / moved, there are
    U up and D down flips (U + D = moved / w, D - U = -diff / w); under a true drop of k0 flips the most likely up and
    down rates have variance (U + D + sqrt((2 k0 + U - D)^2 + 4 U D)) / 2 flips^2, in points

        V(d0) = se^2 / 2 x (1 + sqrt(1 + 4 d0 (d0 - diff) / moved^2)):

    se^2 at d0 = diff and at d0 = 0, so with many flips both ways it is the t interval. moved <= 0 (no document has
    worth) or se = 0: the t interval."""
    diff, se, a, q = np.broadcast_arrays(diff, se, moved, q)
    ok = np.isfinite(diff) & np.isfinite(se) & (se > 0) & (a > 0)
    d, s2 = np.where(ok, diff, 0.0), np.where(ok, se, 1.0) ** 2
    a = np.where(ok, np.maximum(a, np.abs(d)), 1.0)  # moved >= |diff| always; rounding aside
    c = q**2 * s2 / 2

    def inside(x: np.ndarray) -> np.ndarray:
        bound = c * (1 + np.sqrt(np.maximum(1 + 4 * x * (x - d) / a**2, 0.0)))
        return np.asarray((d - x) ** 2 <= bound)

    # every x farther than `reach` from diff is outside: V(x) <= se^2 (1 + (|diff| + 2 |x - diff|) / (2 moved))
    beta, gamma = q**2 * s2 / a, q**2 * s2 * (1 + np.abs(d) / (2 * a))
    reach = 1.001 * (beta + np.sqrt(beta**2 + 4 * gamma)) / 2 + 1e-12
    # bisection on both sides at once: the set is one interval around diff (a check of 200,000 random cases
    # found no other shape)
    near, far = np.stack([d, d]), np.stack([d - reach, d + reach])
    for _ in range(_BISECTIONS):
        mid = (near + far) / 2
        inner = inside(mid)
        near, far = np.where(inner, mid, near), np.where(inner, far, mid)
    return np.where(ok, near[0], diff - q * se), np.where(ok, near[1], diff + q * se)


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
