"""The leaderboards' rules: primary metrics and the suite-level benchmark rows (pure)."""

from __future__ import annotations

import pytest

from evalkit.benchmarks.lm_eval.leaderboard import primary_metric, promote_benchmarks
from evalkit.core.records import TaskScore


def test_primary_table() -> None:
    assert primary_metric("mmlu_llama_anatomy") == ("exact_match", "strict_match")
    assert primary_metric("leaderboard_bbh_snarks") == ("acc_norm", "none")
    assert primary_metric("hellaswag_de") is None


def _leaf(task: str, value: float, n: int, normalized: float | None = None) -> TaskScore:
    return TaskScore(task, "acc_norm", value, 1.0, n, normalized=normalized, is_primary=True)


def test_subtasks_roll_up_to_one_primary_benchmark_row() -> None:
    """A suite averages MMLU as one task, not 3 (or 57) subjects: size-weighted like lm-eval's own group score."""
    rows = [
        TaskScore("mmlu_llama_astronomy", "exact_match", 50.0, 1.0, 2, filter="", is_primary=True),
        TaskScore("mmlu_llama_world_religions", "exact_match", 100.0, 1.0, 6, filter="", is_primary=True),
        TaskScore("winogrande", "acc", 60.0, 1.0, 5, is_primary=True),
    ]
    out = promote_benchmarks(rows)
    primary = {r.task: r for r in out if r.is_primary}
    assert set(primary) == {"mmlu_llama", "winogrande"}
    assert primary["mmlu_llama"].value == pytest.approx((50 * 2 + 100 * 6) / 8)
    assert primary["mmlu_llama"].n_samples == 8
    assert sum(1 for r in out if r.task.startswith("mmlu_llama_")) == 2  # subjects kept, as secondary rows


def test_bbh_is_the_mean_of_normalised_subtasks_and_gpqa_normalises_the_group() -> None:
    rows = [
        _leaf("leaderboard_bbh_navigate", 60.0, 10, normalized=20.0),
        _leaf("leaderboard_bbh_boolean_expressions", 75.0, 30, normalized=50.0),
        _leaf("leaderboard_gpqa_diamond", 50.0, 4, normalized=33.3),
    ]
    primary = {r.task: r for r in promote_benchmarks(rows) if r.is_primary}
    assert primary["leaderboard_bbh"].normalized == pytest.approx(35.0)  # unweighted, as the leaderboard does
    assert primary["leaderboard_gpqa"].normalized == pytest.approx((50 - 25) / 75 * 100)


def test_group_row_from_lm_eval_wins_over_derivation() -> None:
    group = TaskScore("mmlu_llama", "exact_match", 42.0, 0.5, 100, filter="", is_primary=False)
    rows = [group, TaskScore("mmlu_llama_astronomy", "exact_match", 90.0, 1.0, 3, filter="", is_primary=True)]
    primary = [r for r in promote_benchmarks(rows) if r.is_primary]
    assert len(primary) == 1 and primary[0].value == 42.0
