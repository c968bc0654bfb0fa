"""The anytime-valid rule of adaptive evaluation (pure): a confidence sequence (CS) on the paired difference of a
suite's score, checked after every chunk of variant documents; it stops as soon as the answer is known.

The suite's difference is a weighted sum of per-document differences (documents.py): each document belongs to a
stratum (a subtask: the samples' task, or RULER's task x length) of N_k documents, holding the share W_k of the
suite's score, uniformly spread over its documents; a document's difference d lies in [-R_k, R_k] points (100 x the
v2 normalisation's slope). So the suite difference is Delta = sum_k W_k D_k, D_k the mean difference of stratum k.

Documents are run in a seeded random order (`document_order`): each stratum in a uniform random order, strata
interleaved in proportion to their sizes, so every chunk holds every stratum's share. Which stratum comes next never
depends on the scores, only on the seed and the sizes, so each stratum is a uniform sample without replacement.

**Per stratum: the empirical-Bernstein supermartingale** (Howard et al. 2021; for sampling without replacement,
Waudby-Smith & Ramdas 2020, "Confidence sequences for sampling without replacement", Thm 4 / the predictable-mixture
form of their code, `confseq.predmix`): with X = (d + R_k) / 2R_k in [0, 1], the mean of the stratum's documents not
yet run m_i = (N_k mu_k - S_{i-1}) / (N_k - i + 1), a predictable bet lambda_i in [0, 1) and a predictable estimate
mu^_{i-1}, the process  prod_i exp(lambda_i (X_i - m_i) - psi(lambda_i) (X_i - mu^_{i-1})^2),  psi(l) = -log(1-l)-l,
is a nonnegative supermartingale at the true mu_k (Fan et al. 2015's inequality). Its logarithm is *linear* in mu_k:
A_k - B_k mu_k with B_k = sum_i lambda_i N_k / (N_k - i + 1).

**Across strata: the worst case over the strata's means** (union-intersection, as in stratified risk-limiting audits):
the strata are sampled independently, so the product over strata is a supermartingale at the true (mu_1..mu_K);
a suite difference delta is rejected only when the product is >= 2/alpha for *every* (D_1..D_K) in the box
|D_k| <= R_k with sum_k W_k D_k = delta. The product's log being linear in the D_k, that minimum is a fractional
knapsack (closed form, `_invert`). Ville's inequality then gives P(the CS ever excludes the true Delta) <= alpha
(alpha/2 per side), at every chunk, whenever the rule looks. The bets put on a document are proportional to its
worth in the suite (W_k / N_k per document), so the knapsack's worst case costs little.

Two targets (`finite`): True infers the difference over *this* benchmark's documents (the finite population: the
CS shrinks to a point as the last documents come in); False infers the difference of the population the documents
are drawn from (the i.i.d. model `evalkit compare`'s bootstrap assumes; N_k -> infinity in the formulas), so the
rule claims what compare's verdict claims. bench/sequential.md measures both.

The decision after a chunk (`decide`): recovered when the CS's lower bound is >= -margin (non-inferiority, as in
`evalkit compare`), recovered with a drop detected within the margin when, besides, its upper bound is < 0,
degraded when the upper bound is < -margin, continue otherwise. After the last chunk the full-data verdict applies
(`evalkit compare` on every document); the CS is then no longer consulted.

Measured error rates and documents spent: bench/sequential.md (`python -m bench.sequential`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import numpy as np

from evalkit.core.cell import CellKey
from evalkit.results.adaptive import AdaptiveRecord


class Decision(str, Enum):
    """What the rule says after a chunk. RECOVERED / WITHIN_MARGIN / DEGRADED stop the cell."""

    RECOVERED = "recovered"
    WITHIN_MARGIN = "within-margin"
    """Recovered, and a drop is detected all the same (upper bound < 0): the difference lies within the margin."""
    DEGRADED = "degraded"
    CONTINUE = "continue"

    @property
    def stops(self) -> bool:
        return self is not Decision.CONTINUE


@dataclass(frozen=True)
class Strata:
    """The documents of one suite as the rule samples them (index k = stratum code)."""

    sizes: np.ndarray
    """N_k: documents of each stratum."""
    weight: np.ndarray
    """W_k: the stratum's share of the suite's score (sums to 1 over the suite)."""
    bound: np.ndarray
    """R_k: no document's difference in points exceeds it in absolute value (100 x slope for a 0-100 score)."""

    def __post_init__(self) -> None:
        if not (len(self.sizes) == len(self.weight) == len(self.bound)) or not len(self.sizes):
            raise ValueError("strata: sizes, weight and bound must be non-empty and of one length")
        if np.any(self.sizes < 1) or np.any(self.weight <= 0) or np.any(self.bound <= 0):
            raise ValueError("strata: every stratum needs documents, a positive weight and a positive bound")

    @property
    def n(self) -> int:
        return int(self.sizes.sum())

    @property
    def rate(self) -> np.ndarray:
        """How fast each stratum's documents are run (document_order): in proportion to its worth in the suite,
        W_k R_k, so that every document run carries the same bet (Neyman's allocation for equal spreads)."""
        rate: np.ndarray = self.weight * self.bound
        return rate


@dataclass(frozen=True)
class RuleSettings:
    alpha: float = 0.05
    """Two-sided: the CS excludes the true difference at some chunk with probability <= alpha (alpha/2 per side)."""
    finite: bool = False
    """True: infer the difference over the benchmark's own documents; False: over the population they are drawn
    from (what `evalkit compare` infers). See the module docstring."""
    truncation: float = 0.5
    """Largest bet per document (confseq's default): smaller is more robust to a few large differences."""


@dataclass(frozen=True)
class Looks:
    """The confidence sequence at each look (after each chunk): running intersections, in points."""

    n_seen: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def document_order(stratum: np.ndarray, seed: int, rate: np.ndarray | None = None) -> np.ndarray:
    """A seeded order of the documents (a permutation of their indices): each stratum in uniform random order,
    strata interleaved at the given rates (per stratum code; default their sizes: every prefix holds each
    stratum's share of the documents): the j-th document of stratum k sits at (j + u_k) / rate_k, u_k uniform.
    `Strata.rate` (documents in proportion to the stratum's weight in the suite, Neyman's allocation for equal
    spreads) is what the rule is tuned for. Depends on the seed and the strata, never on scores."""
    rng = np.random.default_rng(seed)
    stratum = np.asarray(stratum)
    n = len(stratum)
    codes, inverse = np.unique(stratum, return_inverse=True)
    sizes = np.bincount(inverse)
    speed = sizes.astype(float) if rate is None else np.asarray(rate, dtype=float)[codes]
    by_stratum = np.lexsort((rng.random(n), inverse))  # within a stratum: uniform random order
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(n)
    rank[by_stratum] = np.arange(n) - starts[inverse[by_stratum]]
    key = (rank + rng.random(len(codes))[inverse]) / speed[inverse]
    order: np.ndarray = np.lexsort((rng.random(n), key))
    return order


def looks_every(n: int, chunk: int) -> np.ndarray:
    """Looks after every `chunk` documents, and after the last."""
    if chunk < 1:
        raise ValueError("chunk: at least one document")
    return np.unique(np.append(np.arange(chunk, n, chunk), n))


def confidence_sequence(
    stratum: np.ndarray,
    diff: np.ndarray,
    strata: Strata,
    looks: np.ndarray,
    margin_points: float,
    settings: RuleSettings,
) -> Looks:
    """The CS on the suite difference at each look. `stratum` / `diff`: the documents in the order they were run
    (codes 0..K-1 into `strata`, differences variant - baseline in points); `looks`: documents seen at each look
    (increasing, at most len(diff)). Bets are fixed per chunk from the documents before it (predictable)."""
    stratum = np.asarray(stratum, dtype=np.int64)
    diff = np.asarray(diff, dtype=float)
    looks = np.asarray(looks, dtype=np.int64)
    sizes = strata.sizes.astype(float)
    bound = strata.bound.astype(float)
    n_all, k_all = strata.n, len(sizes)
    if len(diff) > n_all or np.any(np.bincount(stratum, minlength=k_all)[:k_all] > sizes):
        raise ValueError("more documents of a stratum than the stratum holds")
    if np.any(np.abs(diff) > bound[stratum] + 1e-9):
        raise ValueError("a document's difference exceeds its stratum's bound")
    t = len(diff)
    x = (diff + bound[stratum]) / (2 * bound[stratum])
    # within-stratum position i (1-based) and sum of the stratum's earlier values S_{i-1}
    by_stratum = np.argsort(stratum, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(stratum, minlength=k_all))[:-1]])
    rank = np.empty(t, dtype=np.int64)
    rank[by_stratum] = np.arange(t) - starts[stratum[by_stratum]] + 1
    csum = np.cumsum(x[by_stratum])
    s_prev = np.empty(t)
    s_prev[by_stratum] = csum - x[by_stratum] - np.concatenate([[0.0], csum])[starts[stratum[by_stratum]]]
    mu_hat = (0.5 + s_prev) / rank  # predictable, one fake observation at 1/2 (confseq's prior)
    var_term = (x - mu_hat) ** 2
    # The bets aim at the decision: Kelly's bet on the pooled per-document contributions z = N W_k / N_k x d (whose
    # mean is the suite difference) when that mean lies `gap` beyond the boundary -margin is gap / variance; gap and
    # variance come from the chunks before (predictable), the gap kept within [margin / 4, 2 margin] so that early
    # noise neither stops the rule nor wastes its bets.
    worth = n_all * strata.weight / sizes
    z = worth[stratum] * diff
    pos = np.arange(1, t + 1)
    chunk_of = np.searchsorted(looks, pos, side="left")  # look j covers documents (looks[j-1], looks[j]]
    chunk_start = np.concatenate([[0], looks])[np.minimum(chunk_of, len(looks))]
    z_max = float(np.max(worth * bound))
    cz, cz2 = np.concatenate([[0.0], np.cumsum(z)]), np.concatenate([[0.0], np.cumsum(z**2)])
    seen = chunk_start.astype(float)
    mean_z = cz[chunk_start] / (seen + 1)  # one fake observation at 0, another at variance z_max^2 / 4
    var_z = np.maximum((z_max**2 / 4 + cz2[chunk_start] - (seen + 1) * mean_z**2) / (seen + 1), 1e-12)
    log_term = np.log(2 / settings.alpha)
    if settings.finite:
        remaining = sizes[stratum] - rank + 1
        c = sizes[stratum] / remaining
        z_low, z_up = s_prev / remaining, (rank - 1 - s_prev) / remaining
    else:
        c, z_low, z_up = np.ones(t), np.zeros(t), np.zeros(t)
    # Each chunk's bet beta_j is spread over its documents so that every stratum's total sum(lambda c) grows by
    # 2 beta_j W_k R_k: the log-capital's coefficients stay proportional to the suite's weights, and the worst case
    # over the strata's means (_invert) then costs nothing. The chunks' strata are known before their scores
    # (document_order), so the spreading is predictable.
    n_looks = len(looks)
    keep = chunk_of < n_looks
    counts = np.zeros((n_looks, k_all))
    np.add.at(counts, (chunk_of[keep], stratum[keep]), 1.0)
    scale = 2 * strata.weight * bound
    with np.errstate(divide="ignore"):
        cap = settings.truncation * np.min(np.where(counts > 0, counts / scale, np.inf), axis=1)
    chunk_len = counts.sum(axis=1)
    j = np.minimum(chunk_of, n_looks - 1)
    share = scale[stratum] / (np.maximum(counts[j, stratum], 1) * c)
    if margin_points > 0:
        gap_low = np.clip(mean_z + margin_points, margin_points / 4, 2 * margin_points)
        gap_up = np.clip(-margin_points - mean_z, margin_points / 4, 2 * margin_points)
        lam_low = np.minimum(gap_low / var_z * chunk_len[j], cap[j]) * share
        lam_up = np.minimum(gap_up / var_z * chunk_len[j], cap[j]) * share
    else:  # no margin to aim at: the predictable mixture (confseq's lambda_predmix_eb), tight at every time
        at = looks[j].astype(float)
        lam_z = np.sqrt(2 * log_term / (var_z * at * np.log1p(at)))
        lam_low = lam_up = np.minimum(lam_z * chunk_len[j], cap[j]) * share
    lower = _bound(lam_low, x + z_low, var_term, c, stratum, chunk_of, len(looks), strata, log_term)
    upper = -_bound(lam_up, 1 - x + z_up, var_term, c, stratum, chunk_of, len(looks), strata, log_term)
    return Looks(looks, np.maximum.accumulate(lower), np.minimum.accumulate(upper))


def _bound(
    lam: np.ndarray,
    x_term: np.ndarray,
    var_term: np.ndarray,
    c: np.ndarray,
    stratum: np.ndarray,
    chunk_of: np.ndarray,
    n_looks: int,
    strata: Strata,
    log_term: float,
) -> np.ndarray:
    """The lower bound at each look of one side: log M = A - sum_k B_k mu_k, inverted over the strata's means."""
    keep = chunk_of < n_looks
    psi = -np.log1p(-lam) - lam
    a = lam * x_term - psi * var_term
    k_all = len(strata.sizes)
    per_look = np.zeros((n_looks, k_all))
    np.add.at(per_look, (chunk_of[keep], stratum[keep]), (lam * c)[keep])
    big_b = np.cumsum(per_look, axis=0)
    cum_a = np.cumsum(np.bincount(chunk_of[keep], a[keep], minlength=n_looks))
    bound = strata.bound.astype(float)
    return _invert(big_b / (2 * bound), cum_a - big_b.sum(axis=1) / 2 - log_term, strata.weight, bound)


def _invert(b: np.ndarray, k_val: np.ndarray, weight: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Per look (rows of `b`), the largest delta with G(delta) <= k_val, where G(delta) = max sum_k b_k D_k over
    |D_k| <= R_k, sum_k W_k D_k = delta: every delta up to it is rejected (G is nondecreasing, b >= 0). G is the
    fractional knapsack: all D_k at -R_k, then raised to +R_k in decreasing order of b_k / W_k."""
    ratio = b / weight
    order = np.argsort(-ratio, axis=1, kind="stable")
    seg_delta = (2 * weight * bound)[order]
    seg_g = np.take_along_axis(2 * b * bound, order, axis=1)
    d_min = -float(weight @ bound)
    g_min = -(b @ bound)
    cum_g = g_min[:, None] + np.cumsum(seg_g, axis=1)
    cum_d = d_min + np.cumsum(seg_delta, axis=1)
    over = cum_g > k_val[:, None]
    first = np.where(over.any(axis=1), over.argmax(axis=1), -1)
    rows = np.arange(len(b))
    prev_g = np.where(first > 0, cum_g[rows, np.maximum(first - 1, 0)], g_min)
    prev_d = np.where(first > 0, cum_d[rows, np.maximum(first - 1, 0)], d_min)
    r = np.take_along_axis(ratio, order, axis=1)[rows, np.maximum(first, 0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = prev_d + (k_val - prev_g) / r
    out = np.where(first == -1, -d_min, inside)
    return np.where(k_val < g_min, d_min, np.clip(out, d_min, -d_min))


def decide(lower: float, upper: float, margin_points: float) -> Decision:
    """The decision of one look of the CS (margin in points of the suite's scale, >= 0)."""
    if lower >= -margin_points:
        return Decision.WITHIN_MARGIN if upper < 0 else Decision.RECOVERED
    if upper < -margin_points:
        return Decision.DEGRADED
    return Decision.CONTINUE


@dataclass(frozen=True)
class Stop:
    """Where the rule stopped on one order of the documents."""

    look: int
    """Index of the look that decided; the last look when it never did (then the full-data verdict applies)."""
    n_seen: int
    decision: Decision
    """CONTINUE when no look before the last one decided."""
    lower: float
    upper: float


def first_stop(looks: Looks, margin_points: float) -> Stop:
    """The first look that decides, never the last one (after all documents the full-data verdict applies)."""
    for j in range(len(looks.n_seen) - 1):
        d = decide(float(looks.lower[j]), float(looks.upper[j]), margin_points)
        if d.stops:
            return Stop(j, int(looks.n_seen[j]), d, float(looks.lower[j]), float(looks.upper[j]))
    j = len(looks.n_seen) - 1
    return Stop(j, int(looks.n_seen[j]), Decision.CONTINUE, float(looks.lower[j]), float(looks.upper[j]))


def early_stop_notes(records: Mapping[CellKey, AdaptiveRecord]) -> list[str]:
    """One note per adaptive cell for `compare`, `aggregate` and the report: which stopped early, after how many
    documents, and why (its rows hold that subset of the documents: compare's full-data interval on them is wider
    than the rule needed; the rule's own decision is what stopped the cell)."""
    return [f"adaptive {key}: {rec.line()}" for key, rec in sorted(records.items(), key=lambda kv: kv[0].encode())]


def adaptive_subsets(
    records: Mapping[CellKey, AdaptiveRecord], suite_of: Mapping[str, str]
) -> frozenset[tuple[str, str, str]]:
    """(model, format, suite) of the adaptive cells that hold part of their baseline's documents (stopped early, or
    still running), for `CompareSettings.subsets`. `suite_of`: benchmark -> suite."""
    return frozenset(
        (k.model, k.format, suite_of.get(k.benchmark, k.benchmark))
        for k, rec in records.items()
        if rec.documents < rec.total
    )


def sequential_decision(
    stratum: np.ndarray,
    diff: np.ndarray,
    strata: Strata,
    margin_points: float,
    alpha: float = 0.05,
    looks: np.ndarray | None = None,
    settings: RuleSettings | None = None,
) -> Decision:
    """The rule on the documents run so far, in the order they were run (the pipeline's call after each chunk):
    `looks` are the chunk ends so far (default: one look, now). CONTINUE while undecided; after the last document,
    callers take the full-data verdict instead."""
    rule = RuleSettings(alpha=alpha) if settings is None else settings
    at = np.array([len(diff)]) if looks is None else np.asarray(looks)
    cs = confidence_sequence(stratum, diff, strata, at, margin_points, rule)
    for j in range(len(at)):
        d = decide(float(cs.lower[j]), float(cs.upper[j]), margin_points)
        if d.stops:
            return d
    return Decision.CONTINUE
