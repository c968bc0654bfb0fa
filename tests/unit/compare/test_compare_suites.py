"""Suites whose primary row is not a mean of one per-document metric (compare/suites.py), on hand-made stores written
with the store writer: Arena-Hard compared on the mean per-question win fraction, RULER's documents weighted to
reproduce its `ruler` / `score` row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixture_store import commit, lm_eval_fixture

from evalkit.benchmarks.arena.names import TASK as ARENA_TASK
from evalkit.benchmarks.lm_eval.ruler_scores import ruler_sample, ruler_scores
from evalkit.compare import CompareSettings, compare, render
from evalkit.compare.documents import document_scores
from evalkit.compare.frame import read_samples
from evalkit.compare.recovery import with_verdicts
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.results.aggregate import recovery_table
from evalkit.results.store import ResultsStore

SETTINGS = CompareSettings()


# ------------------------------------------------------------------------------------------------ Arena-Hard


def _arena_samples(win_fractions: list[float | None]) -> list[SampleRecord]:
    """One question per entry; None: every judgment failed (the adapter then stores no win_fraction)."""
    return [
        SampleRecord(
            task=ARENA_TASK,
            doc_id=i,
            prompt_hash=f"q{i}",
            target="the baseline model's answer",
            response="{an answer that looks like JSON}",  # text, not choice log-likelihoods
            metrics={"judge_failures": 4.0} if wf is None else {"win_fraction": wf, "judge_failures": 0.0},
        )
        for i, wf in enumerate(win_fractions)
    ]


def _arena_compare(root: Path, formats: dict[str, list[float | None]]) -> tuple[pd.DataFrame, list[str]]:
    store = ResultsStore.open_for_writing(root)
    for i, (fmt, wf) in enumerate(formats.items()):
        # a Bradley-Terry win rate unlike the mean win fraction: the comparison must not be on it
        score = TaskScore(ARENA_TASK, "win_rate", 10.0 + i, n_samples=len(wf), is_primary=True)
        commit(store, "m", fmt, "arena_bench", "arena_hard", [score], _arena_samples(wf))
    return compare(read_samples(root), ResultsStore(root).read_scores(), SETTINGS)


def _suite_row(table: pd.DataFrame, fmt: str) -> pd.Series:
    return table[(table["task"] == "*") & (table["format"] == fmt)].iloc[0]


BASE_WF = np.random.default_rng(1).choice([0.0, 0.25, 0.5, 0.75, 1.0], size=60)


def test_arena_is_compared_on_the_mean_per_question_win_fraction(tmp_path: Path) -> None:
    lower = np.clip(BASE_WF - np.random.default_rng(2).choice([0.0, 0.25, 0.5], size=60), 0, 1)
    table, notes = _arena_compare(tmp_path, {"bf16": BASE_WF.tolist(), "w4a16": lower.tolist()})
    row = _suite_row(table, "w4a16")
    assert row["suite"] == "arena_hard" and row["n_docs"] == 60
    assert row["baseline"] == pytest.approx(100 * BASE_WF.mean())  # not the table's win rate (10)
    assert row["diff"] == pytest.approx(100 * (lower - BASE_WF).mean())
    assert row["diff"] < 0 and row["flips_down"] > 0
    assert row["test"] == "t-clustered"
    assert row["measure"] == "mean win_fraction"
    assert pd.isna(row["kl_mean"])  # answers are text, even one starting with "{"
    assert any("mean per-question win_fraction" in n and "Bradley-Terry win_rate" in n for n in notes)
    assert "[mean win_fraction]" in render(table, SETTINGS)


def test_aggregate_shows_the_arena_verdict_of_what_was_compared_and_no_foreign_ci(tmp_path: Path) -> None:
    """The recovery beside it is the table's (BT win rate): a CI of the mean win fraction would not bracket it."""
    lower = np.clip(BASE_WF - 0.25, 0, 1)
    table, _ = _arena_compare(tmp_path, {"bf16": BASE_WF.tolist(), "w4a16": lower.tolist()})
    recovery = recovery_table(ResultsStore(tmp_path).read_scores(), "bf16")
    row = with_verdicts(recovery, table).query("format == 'w4a16' and suite == 'arena_hard'").iloc[0]
    assert row["recovery"] == pytest.approx(100 * 11.0 / 10.0)
    assert pd.isna(row["recovery_lo"]) and pd.isna(row["recovery_hi"])
    assert row["verdict"].endswith("(on mean win_fraction)")


def test_arena_gets_the_permutation_test_even_when_every_question_is_won_or_lost(tmp_path: Path) -> None:
    """A win fraction is a share: right/wrong-looking data do not make it McNemar's (which they would elsewhere)."""
    won = (BASE_WF >= 0.5).astype(float)
    lost = won.copy()
    lost[np.flatnonzero(won)[:12]] = 0.0
    table, _ = _arena_compare(tmp_path, {"bf16": won.tolist(), "fp8": lost.tolist()})
    row = _suite_row(table, "fp8")
    assert row["test"] == "t-clustered"
    assert row["diff"] == pytest.approx(-100 * 12 / 60)


def test_arena_questions_without_a_win_fraction_leave_both_sides(tmp_path: Path) -> None:
    base: list[float | None] = BASE_WF.tolist()
    var: list[float | None] = (BASE_WF * 0.5).tolist()
    base[3] = None
    var[7] = None
    table, notes = _arena_compare(tmp_path, {"bf16": base, "fp8": var})
    kept = np.ones(60, bool)
    kept[[3, 7]] = False
    row = _suite_row(table, "fp8")
    assert row["n_docs"] == 58
    assert row["baseline"] == pytest.approx(100 * BASE_WF[kept].mean())
    assert row["diff"] == pytest.approx(100 * (BASE_WF[kept] * 0.5 - BASE_WF[kept]).mean())
    assert any("m / arena_hard: fp8 vs bf16: arena_hard: 2 documents without a score" in n for n in notes)


# ------------------------------------------------------------------------------------------------ RULER

RULER_CELLS = {("niah_single_1", 4096): 3, ("niah_single_1", 8192): 5, ("ruler_vt", 4096): 4}
"""Documents per task x length: unequal, and ruler_vt not run at 8192 (the 8192 mean is niah's alone)."""


def _ruler_samples(rng: np.random.Generator, drop: float) -> list[SampleRecord]:
    """lm-eval's records (a metric per length, -1 at the other), relabelled as the adapter stores them."""
    out = []
    for task in ("niah_single_1", "ruler_vt"):
        doc_id = 0
        for (t, length), n in RULER_CELLS.items():
            if t != task:
                continue
            for _ in range(n):
                value = max(0.0, float(rng.choice([0.0, 0.5, 0.75, 1.0])) - drop)
                metrics = {str(n_): (value if n_ == length else -1.0) for n_ in (4096, 8192)}
                out.append(ruler_sample(SampleRecord(task, doc_id, f"{task}-{length}-{doc_id}", "t", "r", metrics)))
                doc_id += 1
    return out


def _ruler_store(root: Path) -> ResultsStore:
    store = ResultsStore.open_for_writing(root)
    for fmt, drop in (("bf16", 0.0), ("w4a16", 0.25)):
        samples = _ruler_samples(np.random.default_rng(5), drop)
        commit(store, "m", fmt, "ruler_bench", "ruler", ruler_scores(samples), samples)
    return ResultsStore(root)


def _primary(scores: pd.DataFrame, fmt: str) -> float:
    row = scores[(scores["format"] == fmt) & (scores["task"] == "ruler") & (scores["metric"] == "score")]
    assert bool(row["is_primary"].iloc[0])
    return float(row["value"].iloc[0])


def test_ruler_documents_reproduce_the_primary_score(tmp_path: Path) -> None:
    store = _ruler_store(tmp_path)
    scores = store.read_scores()
    docs, notes = document_scores(read_samples(tmp_path), scores)
    assert not any("left out" in n for n in notes)
    assert set(docs["task"]) == {"ruler"}
    assert set(docs["cluster"]) == {"niah_single_1@4096", "niah_single_1@8192", "ruler_vt@4096"}
    for fmt, d in docs.groupby("format", observed=True):
        assert len(d) == sum(RULER_CELLS.values())
        assert float((d["w"] * d["y"]).sum()) == pytest.approx(_primary(scores, str(fmt)), abs=1e-9)
    # the weights are not the plain mean's: the 8192 cell (niah alone) is half the score
    bf16 = docs[docs["format"] == "bf16"]
    assert bf16.loc[bf16["cluster"] == "niah_single_1@8192", "w"].sum() == pytest.approx(0.5)


def test_compare_has_a_ruler_row(tmp_path: Path) -> None:
    store = _ruler_store(tmp_path)
    table, notes = compare(read_samples(tmp_path), store.read_scores(), SETTINGS)
    assert not any("left out" in n for n in notes)
    row = _suite_row(table, "w4a16")
    scores = store.read_scores()
    assert (row["suite"], row["n_docs"]) == ("ruler", sum(RULER_CELLS.values()))
    assert row["baseline"] == pytest.approx(_primary(scores, "bf16"), abs=1e-9)
    assert row["variant"] == pytest.approx(_primary(scores, "w4a16"), abs=1e-9)
    assert row["diff"] < 0 and row["test"] == "t-clustered"  # unequal weights
    assert pd.isna(row["measure"])  # the primary row itself
    assert set(table["task"]) == {"*", "ruler"}


def test_real_ruler_output_is_compared_on_its_primary_score(tmp_path: Path) -> None:
    """lm-eval's recorded RULER output (niah_single_1 and ruler_vt at 1024 and 2048): ruler / score is 65."""
    store = ResultsStore.open_for_writing(tmp_path)
    for fmt in ("bf16", "fp8"):
        commit(store, "m", fmt, "demo_ruler", "ruler", *lm_eval_fixture("ruler_demo"))
    table, notes = compare(read_samples(tmp_path), ResultsStore(tmp_path).read_scores(), SETTINGS)
    assert not any("left out" in n for n in notes)
    row = _suite_row(table, "fp8")
    # identical outputs, but 20 documents cannot rule out a real drop (the no-flip bound): not "recovered"
    assert (row["n_docs"], row["baseline"], row["diff"]) == (20, pytest.approx(65.0), 0.0)
    assert row["diff_lo"] < -1 and row["verdict"] == "inconclusive"
