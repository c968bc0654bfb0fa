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
    se: float
    """Standard error of the difference (stratified by cluster)."""
    flips_down: int
    flips_up: int
    binary: bool
    equal_weights: bool
    sd_diff: float
    mean_abs_discordant: float


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
) -> TaskStats:
    """`weight` per document sums to 1 over the task (its share of the task's score)."""
    frame = pd.DataFrame({"c": cluster, "w": weight, "b": y_b, "v": y_v})
    atoms = frame.groupby(["c", "w", "b", "v"], sort=True).size().reset_index(name="k")
    boot_b = np.zeros(n_boot)
    boot_v = np.zeros(n_boot)
    for _, a in atoms.groupby("c", sort=False):
        k = a["k"].to_numpy()
        wb = (a["w"] * a["b"]).to_numpy()
        wv = (a["w"] * a["v"]).to_numpy()
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
    delta = weight * (y_v - y_b)
    perm = _sign_flips(delta, rng, n_perm)
    diff = y_v - y_b
    var_c = frame.assign(d=diff).groupby("c").agg(n=("d", "size"), var=("d", "var"), w=("w", "first"))
    se = float(np.sqrt((var_c["n"] * var_c["w"] ** 2 * var_c["var"].fillna(0.0)).sum()))
    discordant = diff[diff != 0]
    return TaskStats(
        n_docs=len(y_b),
        baseline=float(weight @ y_b),
        variant=float(weight @ y_v),
        boot_baseline=boot_b,
        boot_variant=boot_v,
        perm=perm,
        se=se,
        flips_down=int((diff < 0).sum()),
        flips_up=int((diff > 0).sum()),
        binary=binary,
        equal_weights=bool(np.ptp(weight) <= 1e-12 * max(1.0, float(np.abs(weight).max()))),
        sd_diff=float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0,
        mean_abs_discordant=float(np.abs(discordant).mean()) if len(discordant) else 0.0,
    )


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
    r_lo, r_hi = np.nanpercentile(ratios, [tail, 100 - tail]) if np.isfinite(ratios).any() else (np.nan, np.nan)
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
        p = float((1 + np.sum(np.abs(perm) >= abs(observed) - 1e-12)) / (len(perm) + 1)) if observed else 1.0
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


def _unit(t: TaskStats) -> float:
    """Points one flipped binary document is worth when none flipped: 100 on a percent scale."""
    return 100.0 if max(abs(t.baseline), abs(t.variant)) > 1 else 1.0
