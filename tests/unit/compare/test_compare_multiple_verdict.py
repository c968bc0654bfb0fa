"""The decision procedure (verdict.decide) and the policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.compare import DEFAULT_POLICY, CompareError, Margin, Verdict, decide, load_policy


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (-0.5, 1.0, Verdict.RECOVERED),
        (-0.9, -0.1, Verdict.WITHIN_MARGIN),
        (-3.0, -1.1, Verdict.DEGRADED),
        (-1.5, -0.2, Verdict.INCONCLUSIVE),  # a drop, but maybe beyond the margin
        (-1.1, 2.0, Verdict.INCONCLUSIVE),
        (float("nan"), float("nan"), Verdict.INCONCLUSIVE),
    ],
)
def test_decide_reads_the_interval_against_the_margin(lo: float, hi: float, expected: Verdict) -> None:
    assert decide(lo, hi, 1.0) is expected


def test_margin_points_or_percent() -> None:
    assert Margin.parse("2%").points(50.0) == 1.0 and Margin.parse("1.5").points(50.0) == 1.5
    with pytest.raises(ValueError):
        Margin.parse("-1")


def test_default_policy_loads_and_a_bad_one_is_named(tmp_path: Path) -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert policy.margin == Margin(1.0) and policy.tier("leaderboard_v1", None) == "critical"
    assert policy.blocks("supporting", "degraded") and not policy.blocks("supporting", "inconclusive")
    bad = tmp_path / "p.yaml"
    bad.write_text("margin: 1\ntiers: {critical: [degradd]}\n")
    with pytest.raises(CompareError, match="unknown labels"):
        load_policy(bad)
