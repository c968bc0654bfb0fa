"""What the lm-eval family's result rows are called, for `evalkit.compare` (pure, no imports): RULER's task names,
its group row and its per-length metric names.

One of the two modules of the family that code outside `evalkit.benchmarks` may import (`.importlinter`); the
other is `external`, its reader of lm-eval runs made outside evalkit.
"""

from __future__ import annotations

RULER_GROUP = "ruler"
"""lm-eval's group of the 13 RULER tasks; also the task name of evalkit's aggregate rows."""

RULER_TASKS = (
    "niah_single_1",
    "niah_single_2",
    "niah_single_3",
    "niah_multikey_1",
    "niah_multikey_2",
    "niah_multikey_3",
    "niah_multiquery",
    "niah_multivalue",
    "ruler_vt",
    "ruler_cwe",
    "ruler_fwe",
    "ruler_qa_squad",
    "ruler_qa_hotpot",
)
"""Every RULER task lm-eval has, in its group's order (`ruler.TASKS` holds their loaders; a unit test keeps the two
in step)."""

SCORE = "score"
"""RULER's metric: a task's mean over its lengths; `score@<L>` at one length."""
NO_SAMPLE = -1.0
"""lm-eval's per-document value under a length metric the document does not belong to (and the aggregate of a
length without documents)."""


def length_metric(length: int) -> str:
    """Metric name of a score at one length: "score@4096"."""
    return f"{SCORE}@{length}"


def length_of(metric: str) -> int | None:
    """The length of a `length_metric` name ("score@4096" -> 4096); None for any other metric."""
    prefix = f"{SCORE}@"
    return int(metric[len(prefix) :]) if metric.startswith(prefix) else None
