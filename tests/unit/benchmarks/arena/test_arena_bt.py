"""Arena-Hard scoring on hand-made verdict sets whose answers are known or computed independently.

Independent references: (1) the direct maximum-likelihood fit of the Bradley-Terry model with scipy.optimize on the
same battles, (2) the closed form for two players (the MLE win probability is the weighted share of battles won,
ties counted half), (3) a transcription of arena-hard v0.1's show_result.py (label -> winner tables, duplicated
battles, sklearn logistic regression, Elo anchoring) on a pandas DataFrame, as arena-hard builds it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import expit

from evalkit.benchmarks.arena import bradley_terry as bt
from evalkit.benchmarks.arena.bradley_terry import Game

# A hand-made verdict set: 8 questions, both games each (game 0: baseline is A; game 1: model is A).
MIXED = [
    ("B>>A", "A>>B"),  # model much better in both orders: 3 + 3 model wins
    ("B>A", "A>B"),  # model slightly better: 1 + 1 wins
    ("A=B", "A=B"),  # ties: 0.5 + 0.5
    ("A>B", "B>A"),  # baseline slightly better: 2 losses
    ("A>>B", "B>A"),  # baseline: 3 losses + 1 loss
    ("B>A", "A=B"),  # 1 win + tie
    ("A=B", "B>>A"),  # tie + 3 losses
    ("B>A", "B>A"),  # position bias: the judge prefers B both times -> 1 win + 1 loss
]
# Battles: wins = 3+3+1+1+1+1 = 10, ties = 2+1+1 = 4, losses = 2+3+1+3+1 = 10 -> 24 rows.
MIXED_EXPECTED = 100 * (10 + 0.5 * 4) / 24  # = 50.0; closed form for two players


def games(pairs: list[tuple[str | None, str | None]]) -> list[Game]:
    return [Game(g, label) for pair in pairs for g, label in enumerate(pair)]


def scipy_mle(outcomes: np.ndarray) -> float:
    """Direct MLE of P(model beats baseline) under Bradley-Terry; ties are half a win (arena-hard's convention)."""

    def nll(d: float) -> float:
        p = expit(d)
        return -float(np.sum(outcomes * np.log(p) + (1 - outcomes) * np.log1p(-p)))

    res = minimize_scalar(nll, bounds=(-30, 30), method="bounded", options={"xatol": 1e-10})
    return 100 * float(expit(res.x))


def show_result_transcription(pairs: list[tuple[str, str]], weight: int = 3) -> float:
    """arena-hard v0.1 show_result.py: get_battles_from_row + compute_mle_elo + get_win_rate_column, one model."""
    from sklearn.linear_model import LogisticRegression

    game1 = {"A=B": "tie", "A>B": "model_a", "A>>B": "model_a", "B>A": "model_b", "B>>A": "model_b"}
    game2 = {"A=B": "tie", "A>B": "model_b", "A>>B": "model_b", "B>A": "model_a", "B>>A": "model_a"}
    rows = []
    for s1, s2 in pairs:
        for table, score in ((game1, s1), (game2, s2)):
            w = weight if score in ("A>>B", "B>>A") else 1
            rows += [{"model_a": "gpt-4-0314", "model_b": "m", "winner": table[score]}] * w
    df = pd.DataFrame(rows)
    models = pd.Series(np.arange(2), index=["gpt-4-0314", "m"])
    df = pd.concat([df, df], ignore_index=True)
    n = len(df)
    x = np.zeros([n, 2])
    x[np.arange(n), models[df["model_a"]]] = +math.log(10)
    x[np.arange(n), models[df["model_b"]]] = -math.log(10)
    y = np.zeros(n)
    y[df["winner"] == "model_a"] = 1.0
    tie_idx = df["winner"] == "tie"
    tie_idx[len(tie_idx) // 2 :] = False
    y[tie_idx] = 1.0
    lr = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8)
    lr.fit(x, y)
    elo = 400 * lr.coef_[0] + 1000
    elo += 1000 - elo[0]
    return 100 / (1 + 10 ** ((elo[0] - elo[1]) / 400))


# ------------------------------------------------------------------------------------------ known answers


def test_all_ties_score_50() -> None:
    rows = bt.battles(games([("A=B", "A=B")] * 20))
    result = bt.win_rate([rows, rows], rounds=10, seed=1)
    assert result.value == pytest.approx(50.0, abs=1e-6)
    assert result.ci_low == pytest.approx(50.0, abs=1e-6) and result.ci_high == pytest.approx(50.0, abs=1e-6)


def test_model_winning_every_game_strongly_scores_near_100() -> None:
    rows = bt.battles(games([("B>>A", "A>>B")] * 10))
    assert rows.tolist() == [1.0] * 60
    assert bt.fit_win_rate(rows) > 99.0
    # one tie among 61 battles: a finite MLE, 60.5 / 61, which the independent fit confirms
    rows_tie = bt.battles(games([("B>>A", "A>>B")] * 10 + [("A=B", None)]))
    assert bt.fit_win_rate(rows_tie) == pytest.approx(100 * 60.5 / 61, abs=1e-3)
    assert bt.fit_win_rate(rows_tie) == pytest.approx(scipy_mle(rows_tie), abs=1e-3)


def test_baseline_winning_every_game_scores_0() -> None:
    assert bt.fit_win_rate(bt.battles(games([("A>B", "B>A")] * 5))) == 0.0


def test_mixed_set_matches_independent_mle_closed_form_and_show_result() -> None:
    rows = bt.battles(games(MIXED))
    assert len(rows) == 24 and rows.sum() == pytest.approx(12.0)
    ours = bt.fit_win_rate(rows)
    assert ours == pytest.approx(MIXED_EXPECTED, abs=1e-3)
    assert ours == pytest.approx(scipy_mle(rows), abs=1e-3)
    assert ours == pytest.approx(show_result_transcription(MIXED), abs=1e-3)


def test_lopsided_set_matches_independent_mle_and_show_result() -> None:
    pairs = [("B>A", "A>B")] * 7 + [("A>>B", "B>>A")] * 2 + [("A=B", "A>B")] * 3 + [("B>>A", "B>A")] * 2
    rows = bt.battles(games(pairs))
    # wins: 7*2 + 3 + 2*3 = 23; ties: 3; losses: 2*6 + 2*1 = 14 -> 40 rows, 24.5 / 40 = 61.25 %
    assert len(rows) == 40
    ours = bt.fit_win_rate(rows)
    assert ours == pytest.approx(61.25, abs=1e-3)
    assert ours == pytest.approx(scipy_mle(rows), abs=1e-3)
    assert ours == pytest.approx(show_result_transcription(pairs), abs=1e-3)


# ------------------------------------------------------------------------------------------ battle rules


def test_game_two_reads_labels_mirrored() -> None:
    # game 0: baseline is A -> "B>A" is a model win; game 1: model is A -> "A>B" is a model win
    assert bt.model_outcome(0, "B>A") == 1.0 and bt.model_outcome(1, "A>B") == 1.0
    assert bt.model_outcome(0, "A>>B") == 0.0 and bt.model_outcome(1, "B>>A") == 0.0
    assert bt.model_outcome(0, "A=B") == bt.model_outcome(1, "A=B") == 0.5
    assert bt.verdict_score(1, "A>>B") == 2.0 and bt.verdict_score(0, "A>B") == -1.0 and bt.verdict_score(1, "A=B") == 0


def test_strong_verdicts_count_three_times() -> None:
    # one strong model win (game 0, B>>A) against one slight baseline win (game 1, B>A)
    pairs = [("B>>A", "B>A")]
    assert bt.fit_win_rate(bt.battles(games(pairs), weight=3)) == pytest.approx(75.0, abs=1e-3)
    assert bt.fit_win_rate(bt.battles(games(pairs), weight=1)) == pytest.approx(50.0, abs=1e-3)
    assert show_result_transcription(pairs, weight=3) == pytest.approx(75.0, abs=1e-3)


def test_failed_games_add_no_battle() -> None:
    rows = bt.battles(games([("B>A", None), (None, None), ("A>B", "A>B")]))
    assert rows.tolist() == [1.0, 0.0, 1.0]


def test_unknown_label_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown verdict label"):
        bt.model_outcome(0, "A<B")


# ------------------------------------------------------------------------------------------ bootstrap, passes


def test_ci_contains_the_estimate_and_shrinks_with_more_battles() -> None:
    rows = bt.battles(games(MIXED))
    small = bt.win_rate([rows], rounds=60, seed=7)
    large = bt.win_rate([np.tile(rows, 20)], rounds=60, seed=7)
    for r in (small, large):
        assert r.ci_low is not None and r.ci_high is not None and r.value is not None
        assert r.ci_low <= r.value <= r.ci_high
    assert large.value == pytest.approx(small.value, abs=1e-6)
    width_small = small.ci_high - small.ci_low  # type: ignore[operator]
    width_large = large.ci_high - large.ci_low  # type: ignore[operator]
    assert width_large < width_small / 3  # ~ 1/sqrt(20) in theory
    assert small.stderr is not None and large.stderr is not None and large.stderr < small.stderr


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    rows = bt.battles(games(MIXED))
    assert bt.win_rate([rows], rounds=20, seed=3) == bt.win_rate([rows], rounds=20, seed=3)
    assert bt.win_rate([rows], rounds=20, seed=3).ci_low != bt.win_rate([rows], rounds=20, seed=4).ci_low


def test_passes_are_fitted_separately_then_averaged() -> None:
    p1 = bt.battles(games([("B>A", "A>B")] * 4 + [("A>B", "B>A")]))  # 8 wins, 2 losses -> 80 %
    p2 = bt.battles(games([("B>A", "A>B")] * 2 + [("A>B", "B>A")] * 3))  # 4 wins, 6 losses -> 40 %
    result = bt.win_rate([p1, p2], rounds=30, seed=0)
    assert result.per_pass == pytest.approx((80.0, 40.0), abs=1e-3)
    assert result.value == pytest.approx(60.0, abs=1e-3)
    assert result.n_battles == (10, 10)
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low <= 60.0 <= result.ci_high


def test_a_pass_without_battles_is_left_out_and_no_battles_at_all_gives_none() -> None:
    p1 = bt.battles(games([("B>A", "A>B"), ("A>B", "A=B")]))  # 2 wins, 1 tie, 1 loss -> 62.5 %
    result = bt.win_rate([p1, np.array([])], rounds=20, seed=0)
    assert result.per_pass[1] is None
    assert result.value == pytest.approx(62.5, abs=1e-3)
    empty = bt.win_rate([np.array([]), np.array([])])
    assert empty.value is None and empty.ci_low is None and empty.ci_high is None
