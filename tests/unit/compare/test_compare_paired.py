"""Known answers for the paired statistics: scipy / statsmodels, exact enumeration, and coverage by simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.power import TTestPower

from evalkit.compare.paired import combine, task_stats


def _binary_pairs(both: int, down: int, up: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-document scores in percent: right-right, right->wrong, wrong->right, wrong-wrong."""
    b = np.array([100.0] * both + [100.0] * down + [0.0] * up + [0.0] * neither)
    v = np.array([100.0] * both + [0.0] * down + [100.0] * up + [0.0] * neither)
    return b, v


def _one_task(b: np.ndarray, v: np.ndarray, binary: bool, seed: int = 0, **kw: int):  # type: ignore[no-untyped-def]
    n = len(b)
    ts = task_stats(np.zeros(n, int), np.full(n, 1 / n), b, v, binary, np.random.default_rng(seed), **kw)
    return combine([ts])


def test_exact_mcnemar_on_a_discordant_table_equals_statsmodels_and_scipy() -> None:
    b, v = _binary_pairs(both=40, down=12, up=3, neither=25)
    res = _one_task(b, v, binary=True)
    table = [[40, 12], [3, 25]]
    assert res.test == "mcnemar-exact"
    assert res.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
    assert res.p_value == pytest.approx(stats.binomtest(3, 15, 0.5).pvalue, rel=1e-12)
    assert (res.flips_down, res.flips_up) == (12, 3)
    assert res.diff == pytest.approx((3 - 12) / 80 * 100)
    assert res.recovery == pytest.approx((43 / 80) / (52 / 80) * 100)
    # McNemar's power approximation: (z_.975 + z_.8) * sqrt(discordant rate / n), in points
    assert res.mde == pytest.approx((1.959964 + 0.841621) * np.sqrt(15 / 80 / 80) * 100, rel=1e-4)


def test_sign_flip_permutation_p_matches_exact_enumeration() -> None:
    rng = np.random.default_rng(1)
    b = rng.normal(50, 10, 10)
    v = b + rng.normal(-3, 4, 10)
    res = _one_task(b, v, binary=False, n_perm=40_000)
    d = v - b
    sums = np.array([np.dot(s, np.abs(d)) for s in itertools.product([-1, 1], repeat=10)])
    exact = np.mean(np.abs(sums) >= abs(d.sum()) - 1e-9)
    assert res.test == "permutation"
    assert res.p_value == pytest.approx(exact, abs=0.01)
    # continuous: MDE from the SD of the differences with statsmodels' paired t power
    d_min = TTestPower().solve_power(nobs=10, alpha=0.05, power=0.8, alternative="two-sided")
    assert res.mde == pytest.approx(d_min * np.std(d, ddof=1))


def test_bootstrap_ci_covers_the_true_difference_about_95_percent() -> None:
    """200 synthetic paired draws: right/wrong documents with a true drop of 3 points."""
    rng = np.random.default_rng(7)
    n, p_both, p_down, p_up = 400, 0.55, 0.06, 0.03
    true_diff = (p_up - p_down) * 100
    hits, recovery_hits = 0, 0
    true_recovery = (p_both + p_up) / (p_both + p_down) * 100
    for draw in range(200):
        kind = rng.choice(4, size=n, p=[p_both, p_down, p_up, 1 - p_both - p_down - p_up])
        b = np.where((kind == 0) | (kind == 1), 100.0, 0.0)
        v = np.where((kind == 0) | (kind == 2), 100.0, 0.0)
        res = _one_task(b, v, binary=True, seed=draw, n_boot=1000, n_perm=10)
        hits += res.diff_lo <= true_diff <= res.diff_hi
        recovery_hits += res.recovery_lo <= true_recovery <= res.recovery_hi
    assert 0.90 <= hits / 200 <= 0.99
    assert 0.90 <= recovery_hits / 200 <= 0.99


def test_clustered_suite_resamples_within_clusters_and_averages_tasks() -> None:
    """Two tasks, one the mean of two unequal subtasks: the suite is the mean of the task scores, and its
    bootstrap distribution is centred on it."""
    rng = np.random.default_rng(3)
    a_b, a_v = _binary_pairs(30, 5, 1, 14)
    ts_a = task_stats(np.zeros(50, int), np.full(50, 1 / 50), a_b, a_v, True, rng)
    c = np.array([0] * 10 + [1] * 40)
    w = np.where(c == 0, 1 / (2 * 10), 1 / (2 * 40))
    c_b = rng.integers(0, 2, 50) * 100.0
    c_v = c_b.copy()
    c_v[:3] = 100 - c_v[:3]
    ts_c = task_stats(c, w, c_b, c_v, True, rng)
    suite = combine([ts_a, ts_c])
    expect_b = (a_b.mean() + (c_b[:10].mean() + c_b[10:].mean()) / 2) / 2
    assert suite.baseline == pytest.approx(expect_b)
    assert suite.test == "permutation"
    assert suite.diff_lo <= suite.diff <= suite.diff_hi
    assert abs(np.mean(ts_c.boot_baseline) - ts_c.baseline) < 1.0


def test_no_difference_gives_p_one_and_the_exact_no_flip_bound_as_ci() -> None:
    """No document differs: the bootstrap has no spread, but 20 documents cannot rule out that a fifth of all
    documents flip. The CI is the Clopper-Pearson bound on the share that could flip, seeing none (scipy's exact
    binomial interval), times a document's worth (100 points); with many documents it shrinks to nothing."""
    b, v = _binary_pairs(10, 0, 0, 10)
    res = _one_task(b, v, binary=True)
    assert res.p_value == 1.0 and res.diff == 0.0 and res.recovery == 100.0
    exact = stats.binomtest(0, 20).proportion_ci(0.95, method="exact").high * 100  # 16.8 points
    assert res.diff_hi == pytest.approx(exact) and res.diff_lo == pytest.approx(-exact)
    assert res.recovery_lo == pytest.approx(100 - exact / 50 * 100)  # baseline 50: -16.8 points is -33.7%
    b, v = _binary_pairs(1000, 0, 0, 1000)
    assert _one_task(b, v, binary=True).diff_lo == pytest.approx(-stats.binomtest(0, 2000).proportion_ci().high * 100)
    assert _one_task(b, v, binary=True).diff_lo > -0.2


def test_one_flip_is_bootstrapped_not_bounded() -> None:
    b, v = _binary_pairs(10, 1, 0, 9)
    res = _one_task(b, v, binary=True)
    assert res.diff == -5.0 and res.diff_hi == 0.0  # the bootstrap's own interval (it never gains a flip up)


def test_no_flip_bounds_of_independent_tasks_add_in_quadrature() -> None:
    b, v = _binary_pairs(10, 0, 0, 10)
    rng = np.random.default_rng(0)
    tasks = [task_stats(np.zeros(20, int), np.full(20, 1 / 20), b, v, True, rng) for _ in range(2)]
    one = stats.binomtest(0, 20).proportion_ci(0.95, method="exact").high * 100
    assert combine(tasks).diff_lo == pytest.approx(-np.sqrt(2) * one / 2)
