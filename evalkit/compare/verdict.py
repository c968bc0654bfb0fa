"""The decision procedure: one function, `decide`, turns the confidence interval of a paired difference (variant -
baseline, points) and a margin into a verdict (pure). Every command that shows a verdict (compare, aggregate, the
report, the gate, the sequential rule) calls it.

With [lo, hi] the interval of the difference at the family's level (table.py: Bonferroni over the claims of one
model x format, so each one-sided error is at most alpha / 2 / claims) and m the margin in points:
- recovered: lo >= -m and hi >= 0: non-inferior, no drop detected (a variant better than its baseline is not a
  failure of quantization, so there is no upper bound);
- within margin: lo >= -m and hi < 0: a drop is detected, and it lies within the margin (still non-inferior);
- degraded: hi < -m: worse than the margin, not merely different;
- inconclusive: otherwise (the interval straddles -m: the data cannot tell).
The labels are disjoint and cover every interval. Each error is one-sided at alpha / 2 per claim: a "recovered" or
"within margin" call on a variant whose true difference is below -m needs lo >= -m, which happens with probability
at most alpha / 2 when the interval covers; the same for "degraded" on a variant at or above -m. Measured rates on
synthetic paired data: bench/coverage.md (`python -m bench.coverage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(str, Enum):
    RECOVERED = "recovered"
    WITHIN_MARGIN = "within margin"
    DEGRADED = "degraded"
    INCONCLUSIVE = "inconclusive"

    @property
    def non_inferior(self) -> bool:
        """The claim users act on ("ship it"): recovered, or a detected drop within the margin."""
        return self in (Verdict.RECOVERED, Verdict.WITHIN_MARGIN)


@dataclass(frozen=True)
class Margin:
    """How much worse than the baseline still counts as recovered."""

    value: float = 1.0
    percent: bool = False
    """False: `value` points of the suite's scale; True: `value` percent of the baseline's score."""

    @classmethod
    def parse(cls, text: str | float) -> Margin:
        """ "1.0" (points) or "2%" (percent of the baseline); ValueError otherwise (argparse names the option)."""
        text = str(text)
        value = float(text.strip().rstrip("%"))
        if value < 0:
            raise ValueError(text)
        return cls(value, percent=text.strip().endswith("%"))

    def points(self, baseline: float) -> float:
        return abs(baseline) * self.value / 100 if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value:g}% of baseline" if self.percent else f"{self.value:g} points"


def decide(lo: float, hi: float, margin_points: float) -> Verdict:
    """The verdict of a difference whose interval is [lo, hi] (points), against a margin of `margin_points`."""
    if lo != lo or hi != hi:  # NaN: no interval (score-only data) decides nothing
        return Verdict.INCONCLUSIVE
    if hi < -margin_points:
        return Verdict.DEGRADED
    if lo >= -margin_points:
        return Verdict.WITHIN_MARGIN if hi < 0 else Verdict.RECOVERED
    return Verdict.INCONCLUSIVE
