"""Holm / BH equal statsmodels; the verdict rule on hand-made differences."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from evalkit.compare.multiple import adjust
from evalkit.compare.verdict import Margin, Verdict, verdict

P = np.array([0.001, 0.04, 0.03, 0.2, 0.012, 0.5, 0.049])


@pytest.mark.parametrize(("method", "sm"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjustment_equals_statsmodels_multipletests(method: str, sm: str) -> None:
    np.testing.assert_allclose(adjust(P, method), multipletests(P, method=sm)[1])  # type: ignore[arg-type]


def test_nan_is_not_a_test() -> None:
    with_nan = np.concatenate([P, [np.nan]])
    out = adjust(with_nan, "holm")
    assert np.isnan(out[-1])
    np.testing.assert_allclose(out[:-1], multipletests(P, method="holm")[1])


@pytest.mark.parametrize(
    ("diff", "lo", "p_adj", "expected"),
    [
        (-0.2, -0.9, 0.5, Verdict.RECOVERED),  # CI inside [-1, +inf)
        (2.0, -0.5, 0.01, Verdict.RECOVERED),  # better than the baseline is recovered (non-inferiority)
        (-3.0, -4.5, 0.001, Verdict.DEGRADED),  # real drop beyond the margin
        (-3.0, -4.5, 0.2, Verdict.INCONCLUSIVE),  # big but not significant after adjustment
        (-0.5, -1.2, 0.001, Verdict.INCONCLUSIVE),  # real but within the margin, CI reaching past it
    ],
)
def test_verdict_rule(diff: float, lo: float, p_adj: float, expected: Verdict) -> None:
    assert verdict(diff, lo, p_adj, Margin(1.0).points(50.0)) is expected


def test_margin_in_percent_of_baseline() -> None:
    assert Margin(2.0, percent=True).points(60.0) == pytest.approx(1.2)
    assert verdict(-1.0, -1.1, 0.9, Margin(2.0, percent=True).points(60.0)) is Verdict.RECOVERED
    assert verdict(-1.0, -1.1, 0.9, Margin(1.0, percent=True).points(60.0)) is Verdict.INCONCLUSIVE
