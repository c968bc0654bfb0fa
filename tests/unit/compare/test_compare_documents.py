"""Per-document scores reproduce the scores table's primary values (scale, subtask averaging, v2 normalisation);
pairing refuses different documents, naming the task and the counts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fixture_store import binary_task, commit, lm_eval_fixture

from evalkit.compare import CompareError, CompareSettings, compare
from evalkit.compare.documents import document_scores
from evalkit.compare.frame import read_samples
from evalkit.results.store import ResultsStore


def _task_scores(store: ResultsStore) -> dict[str, float]:
    docs, _ = document_scores(read_samples(store.root), store.read_scores())
    return {str(t): float((g["w"] * g["y"]).sum()) for t, g in docs.groupby("task")}


def test_mmlu_subjects_average_to_the_suite_row_in_percent(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    commit(store, "m", "bf16", "b", "leaderboard_v1", *lm_eval_fixture("v1_mmlu"))
    assert _task_scores(store) == {"mmlu_llama": pytest.approx(100 / 3)}


@pytest.mark.parametrize(
    ("task", "table", "expected"),
    [
        ("leaderboard_gpqa", 100 / 3, 100 / 3),  # normalised: (50% - 25%) / 75%
        ("leaderboard_mmlu_pro", 100 / 6, 100 / 6),
        # mean of three subtasks' normalised scores, not floored at 0 per document: murder mysteries 1/3 right of 2
        # choices is -33.3 (the table floors it to 0, giving 175/9), team allocation 1/3 of 3 is 0, object
        # placements 2/3 of 5 is 58.3; choices read from the stored log-likelihoods since both floored in the table
        ("leaderboard_musr", 175 / 9, (-100 / 3 + 0 + 175 / 3) / 3),
        ("leaderboard_math_hard", 25.0, 25.0),
    ],
)
def test_v2_tasks_use_the_normalised_scale(tmp_path: Path, task: str, table: float, expected: float) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    commit(store, "m", "bf16", "b", "leaderboard_v2", *lm_eval_fixture("v2_leaderboard"))
    scores = store.read_scores()
    assert scores[(scores["task"] == task) & scores["is_primary"]]["normalized"].iloc[0] == pytest.approx(table)
    assert _task_scores(store)[task] == pytest.approx(expected)


def test_mismatched_documents_name_the_task_and_counts(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    score, samples = binary_task("arc", [1, 0, 1, 1, 0, 1])
    commit(store, "m", "bf16", "b", "s", [score], samples)
    changed = [replace(samples[0], prompt_hash="other"), *samples[1:4]]
    commit(store, "m", "fp8", "b", "s", [score], changed)
    with pytest.raises(CompareError) as err:
        compare(store.read_samples(), store.read_scores(), CompareSettings())
    msg = err.value.message
    assert "task arc: baseline 6 documents, variant 4" in msg
    assert "3 only in the baseline, 1 only in the variant" in msg
    assert "m / s: fp8 vs bf16" in msg


def test_identical_formats_on_real_v2_output_recover_with_zero_divergence(tmp_path: Path) -> None:
    """The whole flow on lm-eval's recorded v2 output (MC log-likelihood, generative and IFEval tasks)."""
    store = ResultsStore.open_for_writing(tmp_path)
    for fmt in ("bf16", "fp8"):
        commit(store, "m", fmt, "b", "leaderboard_v2", *lm_eval_fixture("v2_leaderboard"))
    table, _ = compare(read_samples(tmp_path), store.read_scores(), CompareSettings())
    suite = table[table["task"] == "*"].iloc[0]
    assert (suite["diff"], suite["recovery"]) == (0.0, 100.0)
    # no document differs, but a handful per task cannot rule out a real drop: the CI is the exact no-flip bound
    # (rule of three), not the bootstrap's zero width, and the verdict is not "recovered"
    assert suite["diff_lo"] == pytest.approx(-suite["diff_hi"]) and suite["diff_lo"] < -1
    assert suite["verdict"] == "inconclusive"
    assert suite["n_choice_docs"] > 0 and suite["kl_mean"] == pytest.approx(0.0, abs=1e-12)
    assert suite["top1_agreement"] == 1.0
    tests = table.set_index("task")["test"]
    assert tests["leaderboard_mmlu_pro"] == "mcnemar-exact"  # right/wrong per document, one task
    assert tests["leaderboard_ifeval"] == "t-clustered"  # continuous per-document score
    assert tests["leaderboard_musr"] == "t-clustered"  # mean of unequal subtasks: unequal weights
