"""Arena-Hard-Auto v0.1 scoring, pure: judge labels -> battles -> Bradley-Terry win rate vs the baseline + bootstrap CI.

This follows arena-hard-auto's `show_result.py` (v0.1, after its game-2 fix):

- `battles`: each game is one battle between the baseline (`model_a`) and the evaluated model (`model_b`). Game 1
  shows the baseline as assistant A, game 2 swaps the answers, so its labels are read mirrored. A significant
  verdict (`A>>B`, `B>>A`) adds the battle `weight` times (3 in v0.1); a missing or unknown label adds nothing.
- `compute_mle_elo`: logistic regression without intercept or penalty on a design with one column per model
  (+ln 10 for model_a, -ln 10 for model_b). The battles are duplicated so that a tie counts as one win for each side
  (ties are `y=1` in the first copy and `y=0` in the second). Ratings are `400 * coef + 1000`, then shifted so the
  baseline sits at 1000.
- `get_win_rate_column`: the Elo-scale win probability vs the baseline, `1 / (1 + 10 ** ((R_base - R) / 400))`.
- `get_bootstrap_result`: 100 rounds (seed 42) of resampling the battle rows (after the strong-verdict expansion)
  with replacement and refitting; the 95 % CI is the 2.5 / 97.5 percentiles. The point estimate is the fit on all
  battles, not the bootstrap median.

Differences, all deliberate: arena-hard fits every model it has judgments for at once; every battle involves the
baseline, so each model's rating vs the baseline is the same whether fitted alone or together, and we fit one cell's
model alone. Several judging passes (the study: 2) are each fitted and then averaged; each bootstrap round resamples
every pass and averages them, so the CI is that of the averaged score. When one side wins every battle the MLE is at
infinity (scikit-learn refuses a single-class fit); we return its limit, 0 or 100 %. Win rates are not rounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

LABELS: tuple[str, ...] = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
"""The five verdict labels of the v0.1 judge prompt; anything else the regex captures is not a verdict."""

STRONG_WEIGHT = 3
"""v0.1's `--weight`: a significant verdict counts as this many battles."""

SCALE, BASE, INIT_RATING = 400.0, 10.0, 1000.0
"""show_result's Elo scale: ratings = SCALE * coef + INIT_RATING, win probability in base BASE."""

# Model-perspective outcome of each label in game 1 (baseline shown as A, model as B): 1 = model wins, 0.5 = tie.
_GAME1_OUTCOME = {"A>>B": 0.0, "A>B": 0.0, "A=B": 0.5, "B>A": 1.0, "B>>A": 1.0}
_STRONG = {"A>>B", "B>>A"}


@dataclass(frozen=True)
class Game:
    """One judged game of one question in one judging pass."""

    game: int
    """0: baseline shown as assistant A, evaluated model as B; 1: the answers swapped."""
    label: str | None
    """The judge's verdict label, or None when the judgment failed (it then adds no battle)."""


@dataclass(frozen=True)
class WinRate:
    """The Bradley-Terry win rate of the evaluated model against the baseline, in percent."""

    value: float | None
    """Mean over passes of each pass's fit on all its battles; None when no pass has any battle."""
    ci_low: float | None
    """2.5th percentile of the bootstrap distribution of the pass-averaged win rate."""
    ci_high: float | None
    """97.5th percentile of the same distribution."""
    stderr: float | None
    """Standard deviation of the bootstrap distribution (the standard error of `value`)."""
    per_pass: tuple[float | None, ...]
    """Each pass's win rate on all its battles (None for a pass without battles)."""
    n_battles: tuple[int, ...]
    """Battle rows per pass after the strong-verdict expansion."""


def model_outcome(game: int, label: str) -> float:
    """The evaluated model's result in one game: 1 win, 0.5 tie, 0 loss (strength aside)."""
    if label not in _GAME1_OUTCOME:
        raise ValueError(f"unknown verdict label {label!r}; valid: {', '.join(LABELS)}")
    if game not in (0, 1):
        raise ValueError(f"game must be 0 (baseline as A) or 1 (swapped), not {game!r}")
    outcome = _GAME1_OUTCOME[label]
    return outcome if game == 0 else 1.0 - outcome


def verdict_score(game: int, label: str) -> float:
    """The verdict from the evaluated model's side, on -2..2 (2: model significantly better), for per-sample rows."""
    outcome = model_outcome(game, label)
    strength = 2.0 if label in _STRONG else 1.0
    return 0.0 if outcome == 0.5 else (strength if outcome == 1.0 else -strength)


def battles(games: Iterable[Game], weight: int = STRONG_WEIGHT) -> np.ndarray:
    """Battle rows of one pass as model-perspective outcomes (1, 0.5, 0); failed games add none."""
    rows: list[float] = []
    for g in games:
        if g.label is None:
            continue
        rows += [model_outcome(g.game, g.label)] * (weight if g.label in _STRONG else 1)
    return np.asarray(rows, dtype=float)


def fit_win_rate(outcomes: np.ndarray) -> float:
    """show_result's `compute_mle_elo` + `get_win_rate_column` for one model vs the baseline, in percent."""
    if outcomes.size == 0:
        raise ValueError("no battles to fit")
    n = outcomes.size
    # Battle rows with the baseline as model_a (column 0) and the model as model_b (column 1), duplicated.
    x = np.zeros((2 * n, 2))
    x[:, 0], x[:, 1] = math.log(BASE), -math.log(BASE)
    baseline_wins = outcomes == 0.0
    ties = outcomes == 0.5
    y = np.concatenate([baseline_wins | ties, baseline_wins]).astype(float)
    if y.min() == y.max():
        # Separable: the MLE is at +-infinity and LogisticRegression refuses one class. Report the limit.
        return 0.0 if y[0] == 1.0 else 100.0

    from sklearn.linear_model import LogisticRegression  # heavy; only scoring needs it

    # C=inf is scikit-learn >= 1.8's spelling of show_result's penalty=None.
    lr = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8)
    lr.fit(x, y)
    ratings = SCALE * lr.coef_[0] + INIT_RATING
    ratings += INIT_RATING - ratings[0]  # anchor the baseline at 1000
    win_rate: float = 100.0 / (1.0 + BASE ** ((ratings[0] - ratings[1]) / SCALE))
    return win_rate


def win_rate(passes: Sequence[np.ndarray], rounds: int = 100, seed: int = 42, confidence: float = 0.95) -> WinRate:
    """Point estimate and bootstrap CI of the pass-averaged win rate. `passes`: battle rows per judging pass."""
    counts = tuple(int(p.size) for p in passes)
    usable = [p for p in passes if p.size]
    per_pass = tuple(fit_win_rate(p) if p.size else None for p in passes)
    if not usable:
        return WinRate(None, None, None, None, per_pass, counts)
    value = float(np.mean([w for w in per_pass if w is not None]))
    if rounds < 1:
        return WinRate(value, None, None, None, per_pass, counts)
    rng = np.random.default_rng(seed)
    samples = np.array(
        [np.mean([fit_win_rate(p[rng.integers(0, p.size, p.size)]) for p in usable]) for _ in range(rounds)]
    )
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    stderr = float(samples.std(ddof=1)) if rounds > 1 else None
    return WinRate(value, float(low), float(high), stderr, per_pass, counts)
