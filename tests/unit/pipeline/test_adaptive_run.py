"""Adaptive mode's job side (evalkit/pipeline/adaptive_run.py) on a real results store: each chunk commits, a cell
whose rule has not finished reads as PARTIAL, a run interrupted between chunks resumes at the next one, the rule
stops the cell early, and a variant without its baseline's committed cell is refused. The adapter is a registered
one (ADAPTERS is the registry) that answers the chunk's documents from a fixed table instead of a server: the
real lm-eval chunk run is tests/integration/test_adaptive_sweep.py's."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from unit.compare.fixture_store import PROV, binary_task, commit

from evalkit.benchmarks import ADAPTERS, BenchmarkBase, BenchmarkResult, RunContext
from evalkit.core.cell import Cell
from evalkit.core.datasources import DataSource
from evalkit.core.enums import CellState
from evalkit.core.errors import BenchmarkError
from evalkit.core.records import TaskScore
from evalkit.pipeline.adaptive import AdaptiveSettings, merge_scores
from evalkit.pipeline.adaptive_run import run_adaptive_cell
from evalkit.results.store import ResultsStore, RunInfo

N = 400
RIGHT = (np.random.default_rng(1).random(N) < 0.7).astype(int)
"""Baseline and variant answer alike: every paired difference is 0."""
CALLS: list[dict[str, list[int]]] = []
FAIL_AT: list[int] = []
"""Chunk calls (1-based, over the test) whose generate raises: a job killed in that chunk."""


class Oracle(BenchmarkBase[dict[str, Any]]):
    """Scores exactly the chunk's documents from RIGHT."""

    chunks = True

    def parse_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        return dict(settings)  # its settings are the mapping itself: it reads none of them

    def validate(self, settings: dict[str, Any]) -> None: ...

    def generate(self, ctx: RunContext[dict[str, Any]]) -> None:
        assert ctx.samples is not None
        CALLS.append(ctx.samples)
        if len(CALLS) in FAIL_AT:
            raise BenchmarkError("killed in this chunk")

    def score(self, ctx: RunContext[dict[str, Any]]) -> BenchmarkResult:
        assert ctx.samples is not None
        ids = ctx.samples["t"]
        _, docs = binary_task("t", RIGHT.tolist())
        mine = [docs[i] for i in ids]
        value = 100 * float(np.mean([RIGHT[i] for i in ids]))
        return BenchmarkResult([TaskScore("t", "acc", value, n_samples=len(ids), is_primary=True)], mine)

    def data_sources(self, ctx: RunContext[dict[str, Any]]) -> list[DataSource]:
        return []

    def prefetch(self, settings: dict[str, Any]) -> None: ...


VARIANT = Cell("m", "w4a16", "bench", "suite", "hub:x/y", "v" * 64)
SETTINGS = AdaptiveSettings(chunk=40, margin_points=20.0)


@pytest.fixture(autouse=True)
def _oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ADAPTERS, "oracle", f"{__name__}:Oracle")
    CALLS.clear()
    FAIL_AT.clear()


def _baseline(store: ResultsStore) -> None:
    score, docs = binary_task("t", RIGHT.tolist())
    commit(store, "m", "bf16", "bench", "suite", [score], docs)


def _run(tmp_path: Path, store: ResultsStore) -> Any:
    now = datetime.now(timezone.utc)
    ctx = RunContext(endpoint=None, work_dir=tmp_path / "jobs" / "bench", settings=Oracle().parse_settings({}))
    run = RunInfo("", now, now, str(tmp_path), PROV, "[]", True)
    return run_adaptive_cell(VARIANT, "oracle", ctx, SETTINGS, "bf16", store, run, None)


def test_a_chunk_interrupted_resumes_at_the_next_and_the_rule_stops_the_cell_early(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path / "results")
    _baseline(store)
    FAIL_AT.append(2)  # the job dies in its second chunk: the first is committed
    with pytest.raises(BenchmarkError, match="killed"):
        _run(tmp_path, store)
    rec = store.cell_record(VARIANT)
    assert rec.state is CellState.PARTIAL and rec.adaptive is not None
    assert (rec.adaptive.chunks_done, rec.adaptive.documents, rec.adaptive.finished) == (1, 40, False)
    first_chunk, lost_chunk = CALLS
    committed = store.read_cell(VARIANT.key)
    assert committed is not None and sorted(committed[1]["doc_id"]) == sorted(first_chunk["t"])

    final = _run(tmp_path, store)
    assert CALLS[2] == lost_chunk  # resumed at the chunk that was lost, not at the first
    assert final.finished and final.stopped_early and final.decision == "recovered"
    assert final.documents < N and final.documents == 40 * final.chunks_done
    rec = store.cell_record(VARIANT)
    assert rec.state is CellState.DONE and rec.adaptive == final
    scores, samples = store.read_cell(VARIANT.key)  # type: ignore[misc]
    # the committed samples are exactly the documents run, once each; the score is their mean
    assert len(samples) == final.documents == samples["doc_id"].nunique()
    primary = scores[scores["is_primary"]].iloc[0]
    assert primary["n_samples"] == final.documents
    assert primary["value"] == pytest.approx(100 * RIGHT[samples["doc_id"].to_numpy()].mean())
    assert store.adaptive_records() == {VARIANT.key: final}


def test_a_failure_after_committed_chunks_keeps_them(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path / "results")
    _baseline(store)
    FAIL_AT.append(2)
    with pytest.raises(BenchmarkError):
        _run(tmp_path, store)
    now = datetime.now(timezone.utc)
    store.record_failure(VARIANT, RunInfo("r-fail", now, now, "/x", PROV), "later chunk failed")
    assert store.cell_record(VARIANT).state is CellState.PARTIAL


def test_a_variant_without_its_baselines_cell_is_refused(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path / "results")
    with pytest.raises(BenchmarkError, match="has not been committed") as err:
        _run(tmp_path, store)
    assert "format=bf16" in (err.value.hint or "")
    assert CALLS == []


def test_chunk_scores_merge_to_the_score_of_their_union() -> None:
    a = TaskScore("t", "acc", 50.0, stderr=5.0, n_samples=10, is_primary=True)
    b = TaskScore("t", "acc", 80.0, stderr=4.0, n_samples=30, is_primary=True)
    (m,) = merge_scores([[a], [b]])
    assert m.value == pytest.approx(72.5) and m.n_samples == 40 and m.is_primary
    assert m.stderr == pytest.approx(np.sqrt((0.25 * 5) ** 2 + (0.75 * 4) ** 2))


def test_compare_pairs_a_stopped_cell_on_its_own_documents_and_names_the_stop(tmp_path: Path) -> None:
    from evalkit.compare import CompareSettings, compare
    from evalkit.compare.frame import read_samples
    from evalkit.compare.sequential import adaptive_subsets, early_stop_notes
    from evalkit.core.errors import CompareError

    store = ResultsStore.open_for_writing(tmp_path / "results")
    _baseline(store)
    final = _run(tmp_path, store)
    scores, records = store.read_scores(), store.adaptive_records()
    samples = read_samples(tmp_path / "results")
    with pytest.raises(CompareError, match="not run on the same documents"):  # what compare did before
        compare(samples, scores, CompareSettings())
    subsets = adaptive_subsets(records, {"bench": "suite"})
    assert subsets == {("m", "w4a16", "suite")}
    table, _ = compare(samples, scores, CompareSettings(subsets=subsets))
    row = table[(table["format"] == "w4a16") & (table["task"] == "*")].iloc[0]
    assert row["n_docs"] == final.documents
    (note,) = early_stop_notes(records)
    assert "stopped early: recovered" in note and f"{final.documents}/{N} documents" in note
