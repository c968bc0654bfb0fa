"""Paired comparison of quantized formats against their baseline, from the results store's samples and scores:
per-document pairing, paired intervals clustered by document, the decision procedure (verdict.py), the gate's
policy (policy.py), multiplicity over a stated family and choice-level output divergence.

Public names other modules build on (the sequential rule of issue 20 among them): `Verdict`, `Margin`, `decide`
(the one decision procedure), `Policy`, `load_policy`, `DEFAULT_POLICY`."""

from evalkit.compare.policy import DEFAULT_POLICY, Policy, gate, load_policy
from evalkit.compare.table import CompareSettings, compare, degraded, render
from evalkit.compare.verdict import Margin, Verdict, decide
from evalkit.core.errors import CompareError

__all__ = [
    "DEFAULT_POLICY",
    "CompareError",
    "CompareSettings",
    "Margin",
    "Policy",
    "Verdict",
    "compare",
    "decide",
    "degraded",
    "gate",
    "load_policy",
    "render",
]
