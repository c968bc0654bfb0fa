"""Adaptive mode's pure core: chunks of the baseline's documents for lm-eval's `--samples`, resuming at the first
chunk not committed, and the rule's status from what is committed (read through compare's document frame)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from unit.benchmarks.lm_eval.lm_eval_conf import ENDPOINT
from unit.compare.fixture_store import binary_task, commit

from evalkit.benchmarks.lm_eval.command import render_command
from evalkit.benchmarks.lm_eval.settings import LmEvalRun, LmEvalSuiteSettings
from evalkit.compare.documents import document_scores
from evalkit.compare.frame import read_samples
from evalkit.compare.sequential import Decision
from evalkit.pipeline.adaptive import AdaptiveSettings, plan_chunks, status
from evalkit.results.store import ResultsStore

SIZES = {"task_a": 1500, "task_b": 500}


def _store(root: Path, drop: float, variant_docs: dict[str, set[int]] | None = None) -> None:
    """bf16 on every document; w4a16 `drop` of right answers turned wrong, on `variant_docs` only (committed
    chunks) or all."""
    rng = np.random.default_rng(0)
    store = ResultsStore.open_for_writing(root)
    base = {t: (rng.random(n) < 0.7).astype(int) for t, n in SIZES.items()}
    for fmt in ("bf16", "w4a16"):
        scores, samples = [], []
        for task, right in base.items():
            right = right.copy()
            if fmt == "w4a16":
                right[np.flatnonzero(right)[: int(drop * right.sum())]] = 0
            score, docs = binary_task(task, right.tolist())
            if fmt == "w4a16" and variant_docs is not None:
                docs = [d for d in docs if d.doc_id in variant_docs.get(task, set())]
            scores.append(score)
            samples += docs
        commit(store, "m", fmt, "bench_suite", "suite", scores, samples)


def _frames(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    docs, _ = document_scores(read_samples(root), ResultsStore(root).read_scores())
    return docs[docs["format"] == "bf16"].reset_index(drop=True), docs[docs["format"] == "w4a16"].reset_index(drop=True)


def test_chunks_cover_every_document_once_at_the_pace_of_the_tasks_weights(tmp_path: Path) -> None:
    _store(tmp_path, 0.0)
    base, _ = _frames(tmp_path)
    plan = plan_chunks(base, AdaptiveSettings(chunk=100))
    chunks = [plan.chunk_samples(i) for i in range(len(plan.ends))]
    seen = [(t, d) for c in chunks for t, ids in c.items() for d in ids]
    assert sorted(seen) == sorted((t, d) for t, n in SIZES.items() for d in range(n))
    # equal task weights: equal documents per task while both last (task_b runs out after 10 chunks)
    assert abs(len(chunks[0]["task_a"]) - len(chunks[0]["task_b"])) <= 1
    assert plan_chunks(base, AdaptiveSettings(chunk=100)).chunk_samples(3) == chunks[3]  # seeded: the same again


def test_a_killed_job_resumes_at_the_first_chunk_not_committed(tmp_path: Path) -> None:
    _store(tmp_path, 0.0)
    plan = plan_chunks(_frames(tmp_path)[0], AdaptiveSettings(chunk=100))
    committed = [(t, d) for i in range(3) for t, ids in plan.chunk_samples(i).items() for d in ids]
    assert plan.chunks_done(committed) == 3
    assert plan.chunks_done(committed[:-1]) == 2  # a chunk in part is run again whole


def test_status_stops_a_clear_drop_early_from_the_committed_chunks(tmp_path: Path) -> None:
    settings = AdaptiveSettings(chunk=100)
    _store(tmp_path / "full", 0.15)
    plan = plan_chunks(_frames(tmp_path / "full")[0], settings)
    chunks = 6
    run: dict[str, set[int]] = {}
    for i in range(chunks):
        for t, ids in plan.chunk_samples(i).items():
            run.setdefault(t, set()).update(ids)
    _store(tmp_path / "partial", 0.15, run)
    base, var = _frames(tmp_path / "partial")
    st = status(plan, base, var, settings)
    assert st.chunks_done == chunks and st.documents == 600 and st.total == 2000
    assert st.decision is Decision.DEGRADED and st.stopped_early
    assert "stopped early after 600 of 2,000 documents (30%): degraded" in st.why


def test_status_continues_with_no_chunk_committed(tmp_path: Path) -> None:
    _store(tmp_path, 0.0, {})
    base, var = _frames(tmp_path)
    st = status(plan_chunks(base, AdaptiveSettings()), base, var, AdaptiveSettings())
    assert st.decision is Decision.CONTINUE and st.documents == 0


def test_a_chunk_renders_as_lm_evals_samples_argument() -> None:
    run = LmEvalRun(name="r", tasks=["hellaswag"])
    argv = render_command(
        run, LmEvalSuiteSettings(runs=[run]), endpoint=ENDPOINT, output_dir=Path("/o"), samples={"hellaswag": [9, 2]}
    )
    assert json.loads(argv[argv.index("--samples") + 1]) == {"hellaswag": [2, 9]}
    assert "--samples" not in render_command(
        run, LmEvalSuiteSettings(runs=[run]), endpoint=ENDPOINT, output_dir=Path("/o")
    )
