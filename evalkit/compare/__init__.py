"""Paired comparison of quantized formats against their baseline, from the results store's samples and scores:
per-document pairing, paired bootstrap CIs, exact McNemar / permutation tests, multiple-comparison control,
verdicts and choice-level output divergence."""

from evalkit.compare.table import CompareSettings, compare, degraded, render
from evalkit.compare.verdict import Margin, Verdict
from evalkit.core.errors import CompareError

__all__ = ["CompareError", "CompareSettings", "Margin", "Verdict", "compare", "degraded", "render"]
