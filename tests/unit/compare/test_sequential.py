"""The anytime-valid rule: its knapsack inversion against scipy's LP solver, its coverage at every look, its power on
a study-shaped cell, the document order, and the decision labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from evalkit.compare.sequential import (
    Decision,
    RuleSettings,
    Strata,
    _invert,
    confidence_sequence,
    decide,
    document_order,
    first_stop,
    looks_every,
    sequential_decision,
)


def _lp_max(b: np.ndarray, weight: np.ndarray, bound: np.ndarray, delta: float) -> float:
    """max sum b_k D_k s.t. sum W_k D_k = delta, |D_k| <= R_k, by scipy's LP solver."""
    res = linprog(-b, A_eq=weight[None, :], b_eq=[delta], bounds=list(zip(-bound, bound, strict=True)))
    assert res.status == 0
    return float(-res.fun)


def test_invert_is_the_largest_delta_the_lp_rejects() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        k = int(rng.integers(1, 6))
        weight = rng.dirichlet(np.ones(k))
        bound = rng.uniform(50, 150, k)
        b = rng.uniform(0, 2, (1, k))
        d_max = float(weight @ bound)
        k_val = np.array([_lp_max(b[0], weight, bound, rng.uniform(-d_max, d_max))])
        delta = float(_invert(b, k_val, weight, bound)[0])
        # at the returned delta the worst case just reaches the threshold, and beyond it exceeds it
        assert _lp_max(b[0], weight, bound, delta) == pytest.approx(float(k_val[0]), abs=1e-6)
        if delta + 1e-3 < d_max:
            assert _lp_max(b[0], weight, bound, delta + 1e-3) > k_val[0] - 1e-9


def test_invert_rejects_nothing_below_the_worst_case() -> None:
    weight, bound = np.array([0.5, 0.5]), np.array([100.0, 100.0])
    assert _invert(np.array([[1.0, 1.0]]), np.array([-1000.0]), weight, bound)[0] == -100.0


def _population(rng: np.random.Generator, strat: np.ndarray, disagree: float, true: float) -> np.ndarray:
    """Right/wrong flips: a document differs with probability `disagree`, down or up so that the mean is `true`."""
    u = rng.random(len(strat))
    down, up = (disagree - true / 100) / 2, (disagree + true / 100) / 2
    return np.where(u < down, -100.0, np.where(u < down + up, 100.0, 0.0))


@pytest.mark.parametrize("finite", [False, True])
@pytest.mark.parametrize(
    ("sizes", "weight", "disagree", "true", "margin", "chunk"),
    [
        # unequal strata and weights, the true difference on the margin's boundary
        ([200, 90, 40], [0.2, 0.3, 0.5], 0.3, -2.0, 2.0, 20),
        # most documents differ and the margin is wide: the bets are large, so the variance term is what holds the
        # sequence (without it, 20-34% of runs miss)
        ([300, 300], [0.5, 0.5], 0.9, 0.0, 10.0, 10),
    ],
)
def test_the_sequence_covers_the_true_difference_at_every_look(
    finite: bool, sizes: list[int], weight: list[float], disagree: float, true: float, margin: float, chunk: int
) -> None:
    """Each side misses the true difference at some look in no more than alpha/2 of the runs (superpopulation: the
    generating mean; finite: the mean over the documents), for either order design."""
    rng = np.random.default_rng(1)
    w = np.array(weight)
    strata = Strata(np.array(sizes), w, np.full(len(sizes), 100.0))
    strat = np.repeat(np.arange(len(sizes)), sizes)
    alpha, reps, misses = 0.2, 200, np.zeros(2)
    for r in range(reps):
        d = _population(rng, strat, disagree, true)
        target = float(sum(w[k] * d[strat == k].mean() for k in range(len(sizes)))) if finite else true
        o = document_order(strat, r, strata.rate if r % 2 else None)
        looks = looks_every(len(d), chunk)
        cs = confidence_sequence(strat[o], d[o], strata, looks, margin, RuleSettings(alpha, finite))
        misses += [np.any(cs.lower > target + 1e-9), np.any(cs.upper < target - 1e-9)]
    assert np.all(misses / reps <= alpha / 2), misses / reps


def test_study_shaped_fp8_cell_stops_recovered_on_under_40pct_of_the_documents() -> None:
    """Leaderboard-v1-like: 6 tasks, ~10k documents, 2% disagreement, true difference 0, margin 1 point."""
    rng = np.random.default_rng(2)
    sizes = np.array([3000, 2600, 1319, 1172, 1267, 817])
    strata = Strata(sizes, np.full(6, 1 / 6), np.full(6, 100.0))
    strat = np.repeat(np.arange(6), sizes)
    d = _population(rng, strat, 0.02, 0.0)
    stops = []
    for seed in range(10):
        o = document_order(strat, seed, strata.rate)
        cs = confidence_sequence(strat[o], d[o], strata, looks_every(len(d), 200), 1.0, RuleSettings())
        stops.append(first_stop(cs, 1.0))
    assert all(s.decision in (Decision.RECOVERED, Decision.WITHIN_MARGIN) for s in stops)
    assert np.mean([s.n_seen for s in stops]) / len(d) <= 0.4


def test_the_order_interleaves_strata_in_proportion_and_depends_only_on_the_seed() -> None:
    strat = np.repeat([0, 1, 2], [500, 300, 200])
    o = document_order(strat, 7)
    assert sorted(o.tolist()) == list(range(1000))
    assert np.array_equal(o, document_order(strat, 7)) and not np.array_equal(o, document_order(strat, 8))
    for prefix in (10, 100, 333, 999):
        shares = np.bincount(strat[o[:prefix]], minlength=3)
        assert np.all(np.abs(shares - prefix * np.array([0.5, 0.3, 0.2])) <= 1.0 + 1e-9)
    # at equal rates the strata advance together until the smallest runs out
    even = document_order(strat, 7, np.ones(3))
    assert np.all(np.abs(np.bincount(strat[even[:300]], minlength=3) - 100) <= 1)


@pytest.mark.parametrize(
    ("lower", "upper", "expected"),
    [
        (-0.9, 0.5, Decision.RECOVERED),
        (-0.9, -0.1, Decision.WITHIN_MARGIN),  # a real drop, but inside the margin
        (-3.0, -1.2, Decision.DEGRADED),
        (-1.5, 0.3, Decision.CONTINUE),
        (-1.5, -0.5, Decision.CONTINUE),  # a drop is detected, its size against the margin is not known yet
    ],
)
def test_decision_labels(lower: float, upper: float, expected: Decision) -> None:
    assert decide(lower, upper, 1.0) is expected


def test_identical_outputs_stop_recovered_only_after_enough_documents() -> None:
    strat = np.zeros(2000, dtype=int)
    strata = Strata(np.array([2000]), np.array([1.0]), np.array([100.0]))
    diff = np.zeros(2000)
    assert sequential_decision(strat[:20], diff[:20], strata, 1.0) is Decision.CONTINUE
    looks = looks_every(2000, 100)
    assert sequential_decision(strat, diff, strata, 1.0, looks=looks) is Decision.RECOVERED


def test_a_difference_beyond_its_bound_is_refused() -> None:
    strata = Strata(np.array([10]), np.array([1.0]), np.array([100.0]))
    with pytest.raises(ValueError, match="bound"):
        confidence_sequence(np.zeros(2, int), np.array([0.0, 150.0]), strata, np.array([2]), 1.0, RuleSettings())
