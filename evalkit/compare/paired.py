"""Paired statistics of a variant vs its baseline on the same documents: paired bootstrap CI of the difference and
of the recovery ratio, the right paired test, flips, and the minimum detectable effect (pure; numpy vectorised).

Each task's score is a weighted sum of per-document values (see documents.py), so one bootstrap resample is a
vector of per-document counts. Documents with identical (cluster, weight, baseline, variant) values are
exchangeable, so resampling draws multinomial counts over those distinct "atoms" within each cluster: exactly the
stratified paired bootstrap, at the cost of the number of atoms (4 per cluster for right/wrong scores) rather than
documents. The permutation test does the same with sign flips (a sum of m random signs is 2*Binomial(m, 1/2) - m).
A suite (the mean of its tasks) combines its tasks' resamples, drawn independently per task and cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.power import TTestPower

ALPHA = 0.05
POWER = 0.8
_CHUNK = 4_000_000
"""Elements of one resample-count matrix held at once (chunks of resamples keep memory flat)."""


@dataclass(frozen=True)
class TaskStats:
    """One task's paired data reduced to what the suite needs: point scores, resamples, permutation draws."""

    n_docs: int
    baseline: float
    variant: float
    boot_baseline: np.ndarray
    boot_variant: np.ndarray
    perm: np.ndarray
    """Permutation (sign-flip) draws of the difference under "no difference"."""
    perm_var: float
    """Exact variance of the sign-flip distribution: sum of squared weighted differences."""
    se: float
    """Standard error of the difference (stratified by cluster)."""
    flips_down: int
    flips_up: int
    binary: bool
    equal_weights: bool
    """Every document's flip is worth the same (weight x slope): the difference is a count of flips."""
    sd_diff: float
    mean_abs_discordant: float
    no_flip_bound: float = 0.0
    """Where no document differs (the bootstrap then has no spread: a CI of zero width, which 8 equal documents
    cannot justify): the largest difference, in points, still consistent with seeing no flip among n documents, the
    exact (Clopper-Pearson) bound on the share that could flip, 1 - (tail)^(1/n) ("rule of three"), times a
    document's full worth (100 x slope). 0 where documents differ, or scores are not percents."""


@dataclass(frozen=True)
class PairedResult:
    """A variant vs its baseline on one task or suite. Differences in points of the suite's scale."""

    n_docs: int
    baseline: float
    variant: float
    diff: float
    diff_lo: float
    diff_hi: float
    recovery: float
    """variant / baseline x 100 (the study's ratio of averages)."""
    recovery_lo: float
    recovery_hi: float
    test: str
    """"mcnemar-exact" (binary per-document scores, equal weights) or "permutation" (sign-flip)."""
    p_value: float
    flips_down: int
    """Documents whose score went down (right to wrong for binary scores)."""
    flips_up: int
    mde: float
    """Minimum detectable difference (points, two-sided alpha 0.05, power 0.8)."""


def task_stats(
    cluster: np.ndarray,
    weight: np.ndarray,
    y_b: np.ndarray,
    y_v: np.ndarray,
    binary: bool,
    rng: np.random.Generator,
    n_boot: int = 2000,
    n_perm: int = 5000,
    slope: np.ndarray | None = None,
    level: float = 0.95,
) -> TaskStats:
    """`cluster`: integer codes 0..k-1 (the task's subtasks, resampled separately); `weight` per document sums to
    1 over the task (its share of the task's score); `slope`: points of y per point of the raw score (v2
    normalisation), so that a flip's worth w x slope decides whether the test statistic is a plain count."""
    c_atom, w_atom, b_atom, v_atom, k_atom = _atoms(cluster, weight, y_b, y_v)
    boot_b = np.zeros(n_boot)
    boot_v = np.zeros(n_boot)
    bounds = np.flatnonzero(np.diff(c_atom)) + 1
    for k, wb, wv in zip(
        np.split(k_atom, bounds), np.split(w_atom * b_atom, bounds), np.split(w_atom * v_atom, bounds), strict=True
    ):
        n = int(k.sum())
        if len(k) == 1:
            boot_b += n * wb[0]
            boot_v += n * wv[0]
            continue
        step = max(1, _CHUNK // len(k))
        for start in range(0, n_boot, step):
            counts = rng.multinomial(n, k / n, size=min(step, n_boot - start))
            boot_b[start : start + len(counts)] += counts @ wb
            boot_v[start : start + len(counts)] += counts @ wv
    diff = y_v - y_b
    perm = _sign_flips(weight * diff, rng, n_perm)
    # stratified SE of the weighted difference: sum over clusters of n_c * w_c^2 * var_c
    c_idx = cluster
    n_c = np.maximum(np.bincount(c_idx), 1)
    mean_c = np.bincount(c_idx, diff) / n_c
    ss_c = np.bincount(c_idx, (diff - mean_c[c_idx]) ** 2)
    var_c = np.where(n_c > 1, ss_c / np.maximum(n_c - 1, 1), 0.0)
    w_c = np.bincount(c_idx, weight) / n_c
    se = float(np.sqrt(np.sum(n_c * w_c**2 * var_c)))
    discordant = diff[diff != 0]
    no_flip_bound = 0.0
    if not len(discordant) and len(diff) and np.abs(np.concatenate([y_b, y_v])).max() <= 100:
        worth = 100.0 * (float(np.max(slope)) if slope is not None and len(slope) else 1.0)
        no_flip_bound = (1 - ((1 - level) / 2) ** (1 / len(diff))) * worth
    return TaskStats(
        n_docs=len(y_b),
        baseline=float(weight @ y_b),
        variant=float(weight @ y_v),
        boot_baseline=boot_b,
        boot_variant=boot_v,
        perm=perm,
        perm_var=float(np.sum((weight * diff) ** 2)),
        se=se,
        flips_down=int((diff < 0).sum()),
        flips_up=int((diff > 0).sum()),
        binary=binary,
        equal_weights=_uniform(weight if slope is None else weight * slope),
        sd_diff=float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0,
        mean_abs_discordant=float(np.abs(discordant).mean()) if len(discordant) else 0.0,
        no_flip_bound=no_flip_bound,
    )


def _uniform(x: np.ndarray) -> bool:
    return bool(np.ptp(x) <= 1e-9 * max(1e-300, float(np.abs(x).max()))) if len(x) else True


def _atoms(
    cluster: np.ndarray, weight: np.ndarray, y_b: np.ndarray, y_v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (cluster, weight, baseline, variant) rows, sorted by cluster, with their multiplicities."""
    code = np.zeros(len(cluster), dtype=np.int64)
    for x in (cluster, weight, y_b, y_v):  # hash factorisation: O(n), no sort of the documents
        inverse, values = pd.factorize(x)
        code = code * len(values) + inverse
    inverse, _ = pd.factorize(code)
    counts = np.bincount(inverse)
    # factorize numbers atoms in order of first appearance: an atom's first row is where the running max grows
    first = np.flatnonzero(np.diff(np.maximum.accumulate(inverse), prepend=-1) > 0)
    first = first[np.argsort(cluster[first], kind="stable")]
    return cluster[first], weight[first], y_b[first], y_v[first], counts[inverse[first]]


def _sign_flips(delta: np.ndarray, rng: np.random.Generator, n_perm: int) -> np.ndarray:
    """Draws of sum(+-delta) with independent fair signs, grouped by distinct |delta| values."""
    values, mult = np.unique(np.abs(delta[delta != 0]), return_counts=True)
    out = np.zeros(n_perm)
    step = max(1, _CHUNK // max(1, len(values)))
    for start in range(0, n_perm, step):
        size = min(step, n_perm - start)
        heads = rng.binomial(mult, 0.5, size=(size, len(values)))
        out[start : start + size] = (2 * heads - mult) @ values
    return out


def combine(tasks: list[TaskStats], level: float = 0.95) -> PairedResult:
    """A suite (or one task): the unweighted mean of its tasks' scores, with its CI, test, flips and MDE."""
    m = len(tasks)
    base = sum(t.baseline for t in tasks) / m
    var = sum(t.variant for t in tasks) / m
    boot_b = np.sum([t.boot_baseline for t in tasks], axis=0) / m
    boot_v = np.sum([t.boot_variant for t in tasks], axis=0) / m
    tail = (1 - level) / 2 * 100
    d_lo, d_hi = np.percentile(boot_v - boot_b, [tail, 100 - tail])
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = var / base * 100 if base else float("nan")
        ratios = boot_v / boot_b * 100
        finite = ratios[np.isfinite(ratios)]
    r_lo, r_hi = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (np.nan, np.nan)
    # tasks where no document differs add their exact no-flip bound (the bootstrap gives them no spread); tasks are
    # independent, so the half-widths add in quadrature (one task alone: exactly its bound)
    widen = float(np.sqrt(sum(t.no_flip_bound**2 for t in tasks))) / m
    if widen:
        diff = var - base
        d_lo = diff - float(np.hypot(diff - d_lo, widen))
        d_hi = diff + float(np.hypot(d_hi - diff, widen))
        if base > 0:
            r_lo = float(np.fmin(r_lo, (base + d_lo) / base * 100))
            r_hi = float(np.fmax(r_hi, (base + d_hi) / base * 100))
    down = sum(t.flips_down for t in tasks)
    up = sum(t.flips_up for t in tasks)
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)
    if m == 1 and tasks[0].binary and tasks[0].equal_weights:
        test = "mcnemar-exact"
        p = float(stats.binomtest(up, up + down, 0.5).pvalue) if up + down else 1.0
        n = tasks[0].n_docs
        # McNemar's normal approximation: Var(difference) ~ discordant rate / n (at least one discordant pair)
        rate = max(up + down, 1) / n
        magnitude = tasks[0].mean_abs_discordant or _unit(tasks[0])
        mde = float(z * np.sqrt(rate / n) * magnitude)
    else:
        test = "permutation"
        observed = var - base
        perm = np.sum([t.perm for t in tasks], axis=0) / m
        p = _permutation_p(observed, perm, tasks, m)
        if m == 1 and tasks[0].equal_weights and tasks[0].n_docs > 2:
            d = TTestPower().solve_power(nobs=tasks[0].n_docs, alpha=ALPHA, power=POWER, alternative="two-sided")
            mde = float(d * tasks[0].sd_diff)
        else:
            mde = float(z * np.sqrt(sum(t.se**2 for t in tasks)) / m)
    return PairedResult(
        n_docs=sum(t.n_docs for t in tasks),
        baseline=base,
        variant=var,
        diff=var - base,
        diff_lo=float(d_lo),
        diff_hi=float(d_hi),
        recovery=float(rec),
        recovery_lo=float(r_lo),
        recovery_hi=float(r_hi),
        test=test,
        p_value=p,
        flips_down=down,
        flips_up=up,
        mde=mde,
    )


def _permutation_p(observed: float, perm: np.ndarray, tasks: list[TaskStats], m: int) -> float:
    """Two-sided Monte Carlo p of the sign-flip test. Fewer than 10 draws as extreme as the observed difference is
    beyond the draws' resolution (a grid's Holm adjustment needs smaller p than 1/n_perm): there the p comes from
    the normal approximation of the same permutation distribution (mean 0, variance sum of squared differences,
    exact), which the central limit theorem makes accurate for the many documents such small p needs."""
    if not observed:
        return 1.0
    extreme = int(np.sum(np.abs(perm) >= abs(observed) - 1e-12))
    if extreme >= 10:
        return float((1 + extreme) / (len(perm) + 1))
    sd = float(np.sqrt(sum(t.perm_var for t in tasks))) / m
    return float(2 * stats.norm.sf(abs(observed) / sd)) if sd else 0.0


def _unit(t: TaskStats) -> float:
    """Points one flipped binary document is worth when none flipped: 100 on a percent scale."""
    return 100.0 if max(abs(t.baseline), abs(t.variant)) > 1 else 1.0
