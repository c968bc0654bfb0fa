"""The gate's policy: what each comparisons row's verdict means for a deployment, read once from a YAML file
(conf/policy/default.yaml documents every field) into a typed record (pure apart from `load_policy`).

A row's gate outcome is its verdict label, or "insufficient" (fewer distinct documents than `min_documents`), or
"no ci" (a score-only row); it blocks when its tier lists that label. Exit codes of `evalkit compare --gate`:
0 nothing blocks, 3 something blocks (GATE_EXIT), 2 an evalkit error (bad input: nothing was decided).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml

from evalkit.compare.verdict import Margin, Verdict
from evalkit.core.errors import CompareError

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "conf" / "policy" / "default.yaml"
INSUFFICIENT = "insufficient"
NO_CI = "no ci"
LABELS = frozenset({v.value for v in Verdict} | {INSUFFICIENT, NO_CI})
Family = Literal["model_format", "claim"]


@dataclass(frozen=True)
class Policy:
    margin: Margin = field(default_factory=Margin)
    alpha: float = 0.05
    """Two-sided level of each interval before the multiplicity correction."""
    family: Family = "model_format"
    """Bonferroni over the claims of one model x format, or none ("claim")."""
    min_documents: int = 50
    default_suite_tier: str = "critical"
    default_task_tier: str = "supporting"
    tiers: dict[str, frozenset[str]] = field(
        default_factory=lambda: {
            "critical": frozenset({"degraded", "inconclusive", INSUFFICIENT, NO_CI}),
            "supporting": frozenset({"degraded"}),
            "advisory": frozenset(),
        }
    )
    """Tier -> the outcome labels that block the gate."""
    suites: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)

    def tier(self, suite: str, task: str | None) -> str:
        """The tier of a suite row (task None) or a task row."""
        if task is None:
            return self.suites.get(suite, self.default_suite_tier)
        return self.tasks.get(task, self.default_task_tier)

    def outcome(self, verdict: str | None, n_docs: float, has_ci: bool) -> str:
        """The label the gate reads: no ci, insufficient, or the verdict."""
        if not has_ci:
            return NO_CI
        if n_docs < self.min_documents:
            return INSUFFICIENT
        return str(verdict)

    def blocks(self, tier: str, outcome: str) -> bool:
        return outcome in self.tiers[tier]


def load_policy(path: Path | None = None) -> Policy:
    """The policy in `path` (default conf/policy/default.yaml); CompareError naming the field otherwise."""
    path = path or DEFAULT_POLICY
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CompareError(f"policy {path}: unreadable ({exc})", hint=f"see {DEFAULT_POLICY} for the format") from exc
    known = {"margin", "alpha", "family", "min_documents", "default_suite_tier", "default_task_tier", "tiers"}
    unknown = sorted(set(doc) - known - {"suites", "tasks"})
    if unknown:
        raise CompareError(
            f"policy {path}: unknown fields {unknown}", hint=f"valid: {sorted(known | {'suites', 'tasks'})}"
        )
    try:
        tiers = {str(k): frozenset(str(x) for x in (v or [])) for k, v in (doc.get("tiers") or {}).items()}
        policy = Policy(
            margin=Margin.parse(doc.get("margin", 1.0)),
            alpha=float(doc.get("alpha", 0.05)),
            family=doc.get("family", "model_format"),
            min_documents=int(doc.get("min_documents", 50)),
            default_suite_tier=str(doc.get("default_suite_tier", "critical")),
            default_task_tier=str(doc.get("default_task_tier", "supporting")),
            tiers=tiers or Policy().tiers,
            suites={str(k): str(v) for k, v in (doc.get("suites") or {}).items()},
            tasks={str(k): str(v) for k, v in (doc.get("tasks") or {}).items()},
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise CompareError(f"policy {path}: {exc}", hint=f"see {DEFAULT_POLICY} for the format") from exc
    bad_labels = sorted({lab for v in policy.tiers.values() for lab in v} - LABELS)
    named = {policy.default_suite_tier, policy.default_task_tier, *policy.suites.values(), *policy.tasks.values()}
    problems = []
    if bad_labels:
        problems.append(f"unknown labels {bad_labels} (valid: {sorted(LABELS)})")
    if named - set(policy.tiers):
        problems.append(f"tiers {sorted(named - set(policy.tiers))} are not defined under tiers")
    if policy.family not in ("model_format", "claim"):
        problems.append(f"family {policy.family!r} is neither model_format nor claim")
    if not 0 < policy.alpha < 1:
        problems.append(f"alpha {policy.alpha} is not in (0, 1)")
    if problems:
        raise CompareError(f"policy {path}: " + "; ".join(problems), hint=f"see {DEFAULT_POLICY} for the format")
    return policy


def gate(table: pd.DataFrame, policy: Policy) -> list[str]:
    """The comparisons rows that block under `policy`, as "model/format/suite[/task]: outcome (tier)" (empty: the
    gate passes). Suite rows and task rows both count; replicates never do. A suite line with samples for only some
    of its tasks has no interval of the suite: "no ci"."""
    out = []
    for r in table[table["role"] == "variant"].to_dict("records"):
        task = None if r["task"] == "*" else str(r["task"])
        part = r.get("tasks_compared")
        partial = isinstance(part, str) and part.split("/")[0] != part.split("/")[1]
        has_ci = bool(np.isfinite(r["se"])) and not (task is None and partial)
        outcome = policy.outcome(r["verdict"], float(r["n_docs"]) if has_ci else 0.0, has_ci)
        tier = policy.tier(str(r["suite"]), task)
        if policy.blocks(tier, outcome):
            where = "/".join([str(r["model"]), str(r["format"]), str(r["suite"])] + ([task] if task else []))
            out.append(f"{where}: {outcome} ({tier})")
    return out
