"""The verdict per (model, format, suite): recovered, degraded or inconclusive (pure).

- recovered: the 95% CI of the difference lies in [-margin, +inf): non-inferiority (a variant better than its
  baseline is not a failure of quantization, so there is no upper bound);
- degraded: the drop is real at the adjusted level (adjusted p < alpha) and larger than the margin (diff < -margin);
- inconclusive: otherwise (the CI reaches below -margin but the data cannot say the drop is real and that large).
The two are disjoint: a CI lower bound >= -margin puts the point estimate above -margin.
With a noise floor (floor.py: the largest |difference| between baseline replicates), a drop no larger than the floor
is never degraded: the baseline moved as much against itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(str, Enum):
    RECOVERED = "recovered"
    DEGRADED = "degraded"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Margin:
    """How much worse than the baseline still counts as recovered."""

    value: float = 1.0
    percent: bool = False
    """False: `value` points of the suite's scale; True: `value` percent of the baseline's score."""

    @classmethod
    def parse(cls, text: str) -> Margin:
        """ "1.0" (points) or "2%" (percent of the baseline); ValueError otherwise (argparse names the option)."""
        value = float(text.strip().rstrip("%"))
        if value < 0:
            raise ValueError(text)
        return cls(value, percent=text.strip().endswith("%"))

    def points(self, baseline: float) -> float:
        return abs(baseline) * self.value / 100 if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value:g}% of baseline" if self.percent else f"{self.value:g} points"


def verdict(
    diff: float, diff_lo: float, p_adjusted: float, margin_points: float, floor: float = 0.0, alpha: float = 0.05
) -> Verdict:
    if diff_lo >= -margin_points:
        return Verdict.RECOVERED
    if p_adjusted < alpha and diff < -max(margin_points, floor):
        return Verdict.DEGRADED
    return Verdict.INCONCLUSIVE
