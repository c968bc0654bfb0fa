"""Parsing lm-eval outputs into records, on fixtures captured from real demo runs (tests/fixtures/lm_eval)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from paths import FIXTURES as FIXTURES_DIR

from evalkit.benchmarks.lm_eval.leaderboard import normalize_v2
from evalkit.benchmarks.lm_eval.parse import RunFiles, parse_results, parse_samples, read_run_outputs
from evalkit.core.errors import BenchmarkError
from evalkit.core.records import TaskScore

FIXTURES = FIXTURES_DIR / "lm_eval"


def _read(name: str):
    return read_run_outputs(RunFiles(FIXTURES / name))


def _raw(name: str) -> dict:
    return json.loads(next((FIXTURES / name).glob("**/results_*.json")).read_text())


def _by(scores: list[TaskScore]) -> dict[tuple[str, str, str], TaskScore]:
    return {(s.task, s.metric, s.filter): s for s in scores}


@pytest.mark.parametrize("name", ["v1_gsm8k", "v1_mmlu", "v1_hellaswag", "v2_leaderboard"])
def test_exactly_one_primary_row_per_task_and_none_for_groups(name: str) -> None:
    scores, _ = _read(name)
    raw = _raw(name)
    groups = set(raw["group_subtasks"])
    primaries = Counter(s.task for s in scores if s.is_primary)
    assert set(primaries) == set(raw["results"]) - groups
    assert all(n == 1 for n in primaries.values())


def test_values_are_percentages_with_stderr_and_sample_counts() -> None:
    scores, _ = _read("v1_hellaswag")
    raw = _raw("v1_hellaswag")["results"]["hellaswag"]
    row = _by(scores)[("hellaswag", "acc_norm", "")]
    assert row.is_primary and row.n_samples == 4
    assert row.value == pytest.approx(raw["acc_norm,none"] * 100)
    assert row.stderr == pytest.approx(raw["acc_norm_stderr,none"] * 100)
    assert not _by(scores)[("hellaswag", "acc", "")].is_primary


def test_filters_kept_only_when_a_task_has_several() -> None:
    scores, samples = _read("v1_gsm8k")
    rows = _by(scores)
    assert rows[("gsm8k_llama", "exact_match", "strict_match")].is_primary
    assert not rows[("gsm8k_llama", "exact_match", "flexible_extract")].is_primary
    assert set(samples[0].metrics) == {"exact_match,strict_match", "exact_match,flexible_extract"}
    mmlu, _ = _read("v1_mmlu")
    assert {(s.task, s.filter) for s in mmlu if s.is_primary} == {
        ("mmlu_llama_astronomy", ""),
        ("mmlu_llama_high_school_geography", ""),
        ("mmlu_llama_world_religions", ""),
    }


def test_generative_samples_carry_the_filtered_answer() -> None:
    _, samples = _read("v1_gsm8k")
    assert [s.doc_id for s in samples] == [0, 1, 2, 3]
    first = json.loads(next((FIXTURES / "v1_gsm8k").glob("**/samples_*.jsonl")).read_text().splitlines()[0])
    assert samples[0].target == first["target"] and samples[0].prompt_hash == first["prompt_hash"]
    assert samples[0].response == first["filtered_resps"][0]  # the strict_match line, the primary filter


def test_loglikelihood_samples_carry_choices_and_argmax() -> None:
    _, samples = _read("v1_hellaswag")
    resp = json.loads(samples[0].response)
    assert len(resp["choices"]) == len(resp["loglikelihoods"]) == 4
    assert resp["argmax"] == max(range(4), key=resp["loglikelihoods"].__getitem__)
    assert set(samples[0].metrics) == {"acc", "acc_norm"}


def test_v2_normalisation_per_subtask() -> None:
    scores, _ = _read("v2_leaderboard")
    rows = _by(scores)
    date = rows[("leaderboard_bbh_date_understanding", "acc_norm", "")]
    assert date.normalized == pytest.approx(normalize_v2(date.value or 0, 6))
    gpqa = rows[("leaderboard_gpqa_diamond", "acc_norm", "")]
    assert gpqa.normalized == pytest.approx(max(0.0, ((gpqa.value or 0) / 100 - 0.25) / 0.75 * 100))
    pro = rows[("leaderboard_mmlu_pro", "acc", "")]
    assert pro.normalized == pytest.approx(max(0.0, ((pro.value or 0) / 100 - 0.1) / 0.9 * 100))
    math = rows[("leaderboard_math_algebra_hard", "exact_match", "")]
    assert math.normalized == math.value  # generative: baseline 0
    assert all(s.normalized is None for s in scores if not s.is_primary and s.task.startswith("leaderboard_bbh_"))


def test_v2_group_scores_follow_the_leaderboard() -> None:
    scores, _ = _read("v2_leaderboard")
    rows = _by(scores)
    musr = rows[("leaderboard_musr", "acc_norm", "")]
    subs = [
        rows[(f"leaderboard_musr_{t}", "acc_norm", "")]
        for t in ("murder_mysteries", "object_placements", "team_allocation")
    ]
    assert not musr.is_primary and musr.n_samples == sum(s.n_samples for s in subs)
    # mean of the subtasks' normalised scores, not the normalised group mean
    assert musr.normalized == pytest.approx(sum(s.normalized or 0 for s in subs) / 3)


def test_ifeval_primary_is_the_mean_of_strict_prompt_and_instruction_accuracy() -> None:
    scores, samples = _read("v2_leaderboard")
    rows = _by(scores)
    raw = _raw("v2_leaderboard")["results"]["leaderboard_ifeval"]
    strict = rows[("leaderboard_ifeval", "strict_acc", "")]
    expected = (raw["prompt_level_strict_acc,none"] + raw["inst_level_strict_acc,none"]) / 2 * 100
    assert strict.is_primary and strict.value == pytest.approx(expected) and strict.normalized == strict.value
    assert rows[("leaderboard_ifeval", "inst_level_strict_acc", "")].stderr is None  # lm-eval's "N/A"
    ifeval = [s for s in samples if s.task == "leaderboard_ifeval"]
    assert all(0 <= s.metrics["inst_level_strict_acc"] <= 1 for s in ifeval)  # per-instruction list -> its mean


def test_synthetic_groups_unknown_tasks_and_missing_numbers() -> None:
    results = {
        "results": {
            "leaderboard_gpqa": {"acc_norm,none": 0.5, "acc_norm_stderr,none": "N/A"},
            "leaderboard_gpqa_main": {"acc_norm,none": 0.5, "acc_norm_stderr,none": 0.1},
            "leaderboard_math_hard": {"exact_match,none": 0.2, "exact_match_original,none": 0.1},
            "leaderboard_math_algebra_hard": {"exact_match,none": 0.2, "exact_match_original,none": 0.1},
            "my_task": {"f1,none": 0.7, "bleu,none": 12.0},
        },
        "group_subtasks": {
            "leaderboard_gpqa": ["leaderboard_gpqa_main"],
            "leaderboard_math_hard": ["leaderboard_math_algebra_hard"],
        },
        "n-samples": {
            "leaderboard_gpqa_main": {"original": 10, "effective": 10},
            "leaderboard_math_algebra_hard": {"original": 5, "effective": 5},
            "my_task": {"effective": 3},
        },
    }
    rows = _by(parse_results(results))
    gpqa = rows[("leaderboard_gpqa", "acc_norm", "")]
    assert gpqa.stderr is None and gpqa.n_samples == 10 and not gpqa.is_primary
    assert gpqa.normalized == pytest.approx(100 / 3)
    assert rows[("leaderboard_math_hard", "exact_match", "")].normalized == pytest.approx(20.0)
    assert rows[("leaderboard_math_hard", "exact_match_original", "")].normalized is None
    assert rows[("my_task", "f1", "")].is_primary and not rows[("my_task", "bleu", "")].is_primary
    assert rows[("my_task", "bleu", "")].value == 12.0  # not a proportion: left on its own scale
    assert all(r.normalized is None for r in rows.values() if r.task == "my_task")


def test_parse_samples_merges_filters_per_document() -> None:
    lines = [
        {
            "doc_id": 1,
            "filter": "a",
            "metrics": ["em"],
            "em": 1.0,
            "target": "5",
            "prompt_hash": "h",
            "filtered_resps": ["5"],
        },
        {
            "doc_id": 1,
            "filter": "b",
            "metrics": ["em"],
            "em": 0.0,
            "target": "5",
            "prompt_hash": "h",
            "filtered_resps": ["x"],
        },
    ]
    (rec,) = parse_samples("t", lines)
    assert rec.metrics == {"em,a": 1.0, "em,b": 0.0} and rec.response == "5"


def test_missing_results_is_a_benchmark_error(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError) as err:
        read_run_outputs(RunFiles(tmp_path))
    assert err.value.log == tmp_path / "lm_eval.log"
