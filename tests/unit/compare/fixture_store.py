"""Results stores for the compare tests, written with evalkit's own store writer (the results contract)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from paths import FIXTURES as FIXTURES_DIR

from evalkit.benchmarks.lm_eval.leaderboard import promote_benchmarks
from evalkit.benchmarks.lm_eval.parse import RunFiles, read_run_outputs
from evalkit.benchmarks.lm_eval.ruler_scores import ruler_scores
from evalkit.core.cell import Cell
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id

FIXTURES = FIXTURES_DIR / "lm_eval"
PROV = Provenance("0.1.0", "abc123", "0.4.13", "0.32.0", "/ckpt", "cfg0")


def commit(
    store: ResultsStore,
    model: str,
    fmt: str,
    benchmark: str,
    suite: str,
    scores: Sequence[TaskScore],
    samples: Sequence[SampleRecord],
) -> None:
    now = datetime.now(timezone.utc)
    cell = Cell(model, fmt, benchmark, suite, "hub:x/y", "f" * 64)
    store.commit_cell(cell, RunInfo(new_run_id(), now, now, "/jobs/x.log", PROV), scores, samples)


def lm_eval_fixture(name: str) -> tuple[list[TaskScore], list[SampleRecord]]:
    """Scores (RULER's rows added, suite-level rows promoted, as the adapter commits them) and samples of a recorded
    lm-eval run."""
    scores, samples = read_run_outputs(RunFiles(FIXTURES / name / "demo"))
    return promote_benchmarks(scores + ruler_scores(samples)), samples


def binary_task(
    task: str, right: Sequence[int], suite_value: float | None = None
) -> tuple[TaskScore, list[SampleRecord]]:
    """A task scored right (1) / wrong (0) per document, with its primary score row (percent)."""
    value = 100 * sum(right) / len(right) if suite_value is None else suite_value
    score = TaskScore(task=task, metric="acc", value=value, n_samples=len(right), is_primary=True)
    samples = [
        SampleRecord(
            task=task, doc_id=i, prompt_hash=f"h{i}", target="A", response="A" if r else "B", metrics={"acc": float(r)}
        )
        for i, r in enumerate(right)
    ]
    return score, samples
