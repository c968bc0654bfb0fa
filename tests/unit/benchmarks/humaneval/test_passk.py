"""The unbiased pass@k estimator on hand-made cases and against brute-force enumeration of k-subsets."""

from __future__ import annotations

import itertools
from math import comb

import pytest

from evalkit.benchmarks.humaneval.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (10, 10, 1, 1.0),  # n = c: every sample passes
        (10, 10, 10, 1.0),
        (10, 0, 1, 0.0),  # c = 0: nothing ever passes
        (10, 0, 10, 0.0),
        (5, 1, 5, 1.0),  # k = n: the only subset is all samples, which contains the correct one
        (50, 0, 50, 0.0),
        (10, 3, 1, 0.3),  # pass@1 is the fraction correct
        (50, 7, 1, 0.14),
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (6, 1, 3, 0.5),  # 1 - C(5,3)/C(6,3) = 1 - 10/20
    ],
)
def test_hand_made_cases(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n", range(1, 9))
def test_matches_enumerating_all_k_subsets(n: int) -> None:
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(range(n), k))
            brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


def test_stable_where_binomials_overflow_floats() -> None:
    n, c, k = 2000, 3, 100
    exact = 1 - comb(n - c, k) / comb(n, k)  # exact integers, one final division
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12)
    assert 0.0 <= pass_at_k(5000, 1, 100) <= 1.0


def test_mean_over_problems() -> None:
    assert mean_pass_at_k([(10, 10), (10, 0), (10, 5)], 1) == pytest.approx(0.5)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_rejects_impossible_inputs(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)
