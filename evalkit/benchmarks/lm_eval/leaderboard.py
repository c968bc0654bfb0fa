"""The Open LLM Leaderboards' rules (pure): which metric a task contributes, the v2 normalisation, and the
suite-level benchmark rows (MMLU, BBH, ... averaged as one task each)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from evalkit.core.records import TaskScore

_PRIMARY: tuple[tuple[str, str, str], ...] = (
    # (task name, or prefix ending in "_"), metric, lm-eval filter: what the Open LLM Leaderboards report per task
    ("mmlu_llama_", "exact_match", "strict_match"),
    ("mmlu_cot_llama_", "exact_match", "strict_match"),
    ("arc_challenge_llama", "exact_match", "strict_match"),
    ("gsm8k_llama", "exact_match", "strict_match"),
    ("hellaswag", "acc_norm", "none"),
    ("winogrande", "acc", "none"),
    ("truthfulqa_mc2", "acc", "none"),
    ("leaderboard_bbh_", "acc_norm", "none"),
    ("leaderboard_gpqa_", "acc_norm", "none"),
    ("leaderboard_musr_", "acc_norm", "none"),
    ("leaderboard_math_", "exact_match", "none"),
    ("leaderboard_mmlu_pro", "acc", "none"),
    ("leaderboard_ifeval", "strict_acc", ""),  # derived by `ifeval_strict`, as the v2 leaderboard scores IFEval
)

IFEVAL_STRICT = "strict_acc"
"""Derived IFEval metric: mean of prompt-level and instruction-level strict accuracy (the v2 leaderboard's IFEval)."""

_V2_CHOICES: dict[str, int] = {
    # Open LLM Leaderboard v2 normalisation: random baseline 1/choices per subtask (0 = generative, baseline 0).
    # From the leaderboard's normalisation code (huggingface.co/docs/leaderboards/open_llm_leaderboard/normalization).
    **{
        f"leaderboard_bbh_{k}": v
        for k, v in {
            "sports_understanding": 2,
            "tracking_shuffled_objects_three_objects": 3,
            "navigate": 2,
            "snarks": 2,
            "date_understanding": 6,
            "reasoning_about_colored_objects": 18,
            "object_counting": 19,
            "logical_deduction_seven_objects": 7,
            "geometric_shapes": 11,
            "web_of_lies": 2,
            "movie_recommendation": 6,
            "logical_deduction_five_objects": 5,
            "salient_translation_error_detection": 6,
            "disambiguation_qa": 3,
            "temporal_sequences": 4,
            "hyperbaton": 2,
            "logical_deduction_three_objects": 3,
            "causal_judgement": 2,
            "formal_fallacies": 2,
            "tracking_shuffled_objects_seven_objects": 7,
            "ruin_names": 6,
            "penguins_in_a_table": 5,
            "boolean_expressions": 2,
            "tracking_shuffled_objects_five_objects": 5,
        }.items()
    },
    "leaderboard_musr_murder_mysteries": 2,
    "leaderboard_musr_object_placements": 5,
    "leaderboard_musr_team_allocation": 3,
    "leaderboard_gpqa_diamond": 4,
    "leaderboard_gpqa_extended": 4,
    "leaderboard_gpqa_main": 4,
    "leaderboard_mmlu_pro": 10,
    "leaderboard_ifeval": 0,
    "leaderboard_gpqa": 4,  # the leaderboard normalises GPQA's group score (size-weighted over its subtasks)
    "leaderboard_math_hard": 0,
}

_V2_MEAN_OF_SUBTASKS = ("leaderboard_bbh", "leaderboard_musr")
"""v2 benchmarks whose score is the unweighted mean of their subtasks' normalised scores."""

_PROPORTION_METRICS = {"acc", "acc_norm", "acc_mutual_info", "exact_match", "exact_match_original", IFEVAL_STRICT}


def is_proportion(metric: str) -> bool:
    """lm-eval reports these in 0-1; evalkit stores percentages."""
    return metric in _PROPORTION_METRICS or metric.endswith("_acc")


def primary_metric(task: str) -> tuple[str, str] | None:
    """(metric, lm-eval filter) a task contributes to its suite's average; None for tasks not in the table."""
    for key, metric, filt in _PRIMARY:
        if task == key or (key.endswith("_") and task.startswith(key)):
            return metric, filt
    return None


def v2_num_choices(task: str) -> int | None:
    """Choices behind the v2 random baseline (0: generative); None when the task is not a v2 leaderboard one."""
    if task in _V2_CHOICES:
        return _V2_CHOICES[task]
    return 0 if task.startswith("leaderboard_math_") else None


def normalize_v2(value: float, num_choices: int) -> float:
    """The v2 leaderboard's normalisation of a percentage: random baseline subtracted, rescaled to 0-100, floor 0."""
    lower = 1 / num_choices if num_choices > 0 else 0.0
    return max(0.0, (value / 100 - lower) / (1 - lower)) * 100


def ifeval_strict(task: str, prompt_level: float | None, inst_level: float | None, n: int) -> TaskScore:
    """The v2 leaderboard's IFEval score from lm-eval's strict prompt- and instruction-level accuracies (0-1)."""
    value = None if prompt_level is None or inst_level is None else (prompt_level + inst_level) / 2 * 100
    return TaskScore(task=task, metric=IFEVAL_STRICT, value=value, n_samples=n, normalized=value, is_primary=True)


def with_group_normalization(rows: list[TaskScore], group_members: Mapping[str, list[str]]) -> list[TaskScore]:
    """`normalized` of the v2 benchmark groups, on the row of their subtasks' primary metric: BBH and MuSR average
    their subtasks' normalised scores; GPQA and MATH normalise lm-eval's (size-weighted) group score."""
    primary_norm = {r.task: r.normalized for r in rows if r.is_primary}
    out = []
    for r in rows:
        members = group_members.get(r.task)
        sub_primary = primary_metric(members[0]) if members else None
        # the v2 groups have one filter per metric, so their rows carry the empty filter label
        if members and sub_primary and (r.metric, r.filter) == (sub_primary[0], ""):
            if r.task in _V2_MEAN_OF_SUBTASKS:
                vals = [v for v in (primary_norm.get(m) for m in members) if v is not None]
                r = replace(r, normalized=sum(vals) / len(vals) if vals else None)
            elif (choices := v2_num_choices(r.task)) is not None and r.value is not None:
                r = replace(r, normalized=normalize_v2(r.value, choices))
        out.append(r)
    return out


SUITE_GROUPS: dict[str, tuple[str, str]] = {
    # suite-level benchmark -> (prefix of its subtasks, how the leaderboard combines them)
    "mmlu_llama": ("mmlu_llama_", "size_weighted"),
    "mmlu_cot_llama": ("mmlu_cot_llama_", "size_weighted"),
    "leaderboard_bbh": ("leaderboard_bbh_", "mean_normalized"),
    "leaderboard_musr": ("leaderboard_musr_", "mean_normalized"),
    "leaderboard_gpqa": ("leaderboard_gpqa_", "size_weighted"),
    "leaderboard_math_hard": ("leaderboard_math_", "size_weighted"),
}
"""Benchmarks the study averages as ONE task each (a suite's average is over MMLU, ARC, GSM8K, ..., not over MMLU's
57 subjects). lm-eval reports such a group itself when the whole group runs; a run of some subtasks (the demo, a
re-run) gets the same row computed here, the way lm-eval and the v2 leaderboard aggregate."""


def promote_benchmarks(rows: list[TaskScore]) -> list[TaskScore]:
    """Make the suite-level benchmark row the primary one and its subtasks' rows secondary (pure).

    Where lm-eval emitted the group row, it becomes primary; where only subtasks ran, a group row is derived from
    their primary metrics: size-weighted mean (lm-eval's default for MMLU, GPQA, MATH) or, for BBH and MuSR, the
    mean of the subtasks' normalised scores as the v2 leaderboard computes its benchmark score.
    """
    out = list(rows)
    for group, (prefix, how) in SUITE_GROUPS.items():
        leaves = [r for r in out if r.is_primary and r.task.startswith(prefix) and r.task != group]
        if not leaves:
            continue
        metric, filt = leaves[0].metric, leaves[0].filter
        out = [replace(r, is_primary=False) if r in leaves else r for r in out]
        existing = [i for i, r in enumerate(out) if r.task == group and (r.metric, r.filter) == (metric, filt)]
        if existing:
            out[existing[0]] = replace(out[existing[0]], is_primary=True)
            continue
        n = sum(r.n_samples for r in leaves)
        values = [r.value for r in leaves if r.value is not None]
        normalized = [r.normalized for r in leaves if r.normalized is not None]
        if how == "size_weighted":
            weighted = [(r.value, r.n_samples) for r in leaves if r.value is not None]
            total = sum(w for _, w in weighted)
            value = sum(v * w for v, w in weighted) / total if total else None
            choices = v2_num_choices(leaves[0].task)
            norm = normalize_v2(value, choices) if value is not None and choices is not None else None
        else:
            value = sum(values) / len(values) if values else None
            norm = sum(normalized) / len(normalized) if normalized else None
        out.append(
            TaskScore(
                task=group,
                metric=metric,
                value=value,
                stderr=None,
                n_samples=n,
                filter=filt,
                higher_is_better=leaves[0].higher_is_better,
                normalized=norm,
                is_primary=True,
            )
        )
    return out
