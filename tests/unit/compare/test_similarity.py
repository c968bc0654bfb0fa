"""Text similarity of answers with the real scorers (rouge-score, bert-score and sentence-transformers on the
bundled all-MiniLM-L6-v2, offline): identical texts give 1.0 everywhere, different ones less."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from fixture_store import binary_task, commit

from evalkit.cli import main
from evalkit.compare.similarity import Scorers, SimilarityModels, bundled_minilm, compare_similarity, first_difference
from evalkit.compare.similarity import render as render_similarity
from evalkit.core.errors import CompareError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.results.store import ResultsStore

ANSWERS = [
    "A list is mutable while a tuple is immutable, so tuples can be dictionary keys.",
    "Rain on the maple / each red leaf a small lantern / the gutter sings low",
    "Blue light scatters more strongly off air molecules than red light does.",
]


@pytest.fixture(scope="module")
def scorers() -> Scorers:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return Scorers(SimilarityModels(bertscore_model=bundled_minilm()))


def test_identical_texts_give_similarity_one(scorers: Scorers) -> None:
    per = scorers.score(list(ANSWERS), list(ANSWERS))
    for metric in ("rouge1", "rougeL", "bertscore", "sts"):
        assert per[metric].tolist() == pytest.approx([1.0] * 3, abs=1e-6), metric
    assert per["identical"].all()


def test_different_texts_score_below_one_and_in_order(scorers: Scorers) -> None:
    close = ANSWERS[0].replace("dictionary keys", "keys of a dict")
    per = scorers.score([close, ANSWERS[2]], [ANSWERS[0], ANSWERS[1]])
    for metric in ("rouge1", "rougeL", "bertscore", "sts"):
        assert 0.0 <= per[metric][1] < per[metric][0] < 1.0, metric
    assert per["first_diff_word"].tolist() == [13.0, 0.0]  # "dictionary" is word 13
    assert not per["identical"].any()


def test_first_difference() -> None:
    assert first_difference(["a", "b", "c"], ["a", "x"]) == 1
    assert first_difference(["a", "b"], ["a", "b", "c"]) == 2


def arena_samples(rows: list[tuple[str, int, str]]) -> pa.Table:
    return pa.table(
        {
            "model": ["m"] * len(rows),
            "format": [r[0] for r in rows],
            "benchmark": ["demo_arena_hard"] * len(rows),
            "task": ["arena_hard"] * len(rows),
            "doc_id": [r[1] for r in rows],
            "prompt_hash": [f"h{r[1]}" for r in rows],
            "response": [r[2] for r in rows],
        }
    )


def test_compare_identical_format_and_marks_the_non_study_model(scorers: Scorers) -> None:
    base = [("bf16", i, a) for i, a in enumerate(ANSWERS)]
    same = [("fp8", i, a) for i, a in enumerate(ANSWERS)]
    other = [("w4a16", 0, ANSWERS[0]), ("w4a16", 1, ANSWERS[2]), ("w4a16", 2, ANSWERS[1])]
    table = compare_similarity(arena_samples(base + same + other), "bf16", scorers).set_index("format")
    fp8 = table.loc["fp8"]
    assert fp8["identical_rate"] == 1.0 and fp8["prompts"] == 3
    assert [fp8[m] for m in ("rouge1", "rougeL", "bertscore", "sts")] == pytest.approx([1.0] * 4, abs=1e-6)
    assert table.loc["w4a16", "identical_rate"] == pytest.approx(1 / 3)
    assert table.loc["w4a16", "rougeL"] < 0.6
    text = render_similarity(table.reset_index())
    assert "NOT the study's roberta-large" in text and "0.999*" not in text and "1.000*" in text


def test_answers_to_other_questions_are_a_pairing_error(scorers: Scorers) -> None:
    table = arena_samples([("bf16", 0, "a"), ("bf16", 1, "b"), ("fp8", 0, "a")])
    with pytest.raises(CompareError, match="1 only in the baseline, 0 only in the variant"):
        compare_similarity(table, "bf16", scorers)


def test_evalkit_compare_similarity_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the store writer and the CLI, arena cells as the arena adapter commits them (answer in `response`)."""
    store = ResultsStore.open_for_writing(tmp_path)
    answers = {"bf16": ANSWERS, "w4a16": [ANSWERS[0], ANSWERS[1], "The sky is blue because of the ocean."]}
    for fmt, texts in answers.items():
        score, samples = binary_task("task_a", [1, 0, 1, 1] * 25)
        commit(store, "m", fmt, "bench_a", "suite_a", [score], samples)
        rows = [
            SampleRecord("arena_hard", i, f"q{i}", "baseline answer", t, {"win_fraction": 0.5})
            for i, t in enumerate(texts)
        ]
        win = [TaskScore("arena_hard", "win_rate", 50.0, n_samples=3, is_primary=True)]
        commit(store, "m", fmt, "demo_arena_hard", "arena_hard", win, rows)
    args = ["compare", "--results", str(tmp_path), "--similarity", "--bertscore-model", bundled_minilm()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "text similarity of the arena answers vs bf16" in out and "NOT the study's roberta-large" in out
    row = pd.read_parquet(tmp_path / "compare" / "similarity.parquet").iloc[0]
    assert row["format"] == "w4a16" and row["identical_rate"] == pytest.approx(2 / 3)
    assert 0.3 < row["rouge1"] < 1.0 and not row["study_bertscore_model"]
    assert row["first_diff_word"] == 0.0  # the one differing answer differs from its first word
