"""`evalkit replay` on a hand-made store written with evalkit's store writer: the rule's cells are compare's
comparisons (same difference, same weights), and it stops early, in agreement, on clear cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixture_store import binary_task, commit

from evalkit.cli import main
from evalkit.compare import CompareSettings
from evalkit.compare.frame import read_samples
from evalkit.compare.replay import ReplaySettings, cells, replay_cell
from evalkit.results.store import ResultsStore


def _store(root: Path) -> None:
    """One suite of two tasks of unequal size (1500 and 500 documents: unequal document weights); fp8 identical to
    the baseline, w4a16 15 points worse on each task."""
    rng = np.random.default_rng(0)
    store = ResultsStore.open_for_writing(root)
    base = {"task_a": (rng.random(1500) < 0.7).astype(int), "task_b": (rng.random(500) < 0.6).astype(int)}
    for fmt in ("bf16", "fp8", "w4a16"):
        scores, samples = [], []
        for task, right in base.items():
            right = right.copy()
            if fmt == "w4a16":
                right[np.flatnonzero(right)[: int(0.15 * len(right))]] = 0
            score, docs = binary_task(task, right.tolist())
            scores.append(score)
            samples += docs
        commit(store, "m", fmt, "bench_suite", "suite", scores, samples)


def test_cells_carry_compares_difference_and_verdict(tmp_path: Path) -> None:
    _store(tmp_path)
    found, _ = cells(read_samples(tmp_path), ResultsStore(tmp_path).read_scores(), CompareSettings())
    by_format = {c.format: c for c in found}
    assert set(by_format) == {"fp8", "w4a16"}
    w4 = by_format["w4a16"]
    # suite weights: half the suite per task, spread over its documents
    assert sorted(w4.strata.sizes.tolist()) == [500, 1500]
    np.testing.assert_allclose(w4.strata.weight, [0.5, 0.5])
    diff = float(w4.diff @ (w4.strata.weight / w4.strata.sizes)[w4.stratum])
    assert diff == pytest.approx(-15.0, abs=0.1)
    assert w4.full_verdict == "degraded" and by_format["fp8"].full_verdict == "recovered"


def test_replay_stops_a_clear_drop_early_and_agrees(tmp_path: Path) -> None:
    _store(tmp_path)
    found, _ = cells(read_samples(tmp_path), ResultsStore(tmp_path).read_scores(), CompareSettings())
    runs = {c.format: replay_cell(c, ReplaySettings(orders=20, chunk=50)) for c in found}
    assert all(r.agrees for r in runs["fp8"] + runs["w4a16"])
    # 15 points below: stopped degraded on a fraction of the documents
    assert {r.decision for r in runs["w4a16"]} == {"degraded"}
    assert np.mean([r.fraction for r in runs["w4a16"]]) < 0.3
    # identical outputs on 2000 documents: a 1-point margin against 100-point flips takes more than these
    # documents to prove anytime (the identical study-sized cell stops at a third: test_sequential), so the rule
    # runs to the end and the full-data verdict stands
    assert {(r.decision, r.label) for r in runs["fp8"]} == {("continue", "recovered")}


def test_replay_command_writes_its_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path)
    assert main(["replay", "--results", str(tmp_path), "--orders", "10", "--chunk", "100"]) == 0
    out = capsys.readouterr().out
    assert "10 random orders per cell" in out
    table = pd.read_parquet(tmp_path / "compare" / "replay.parquet").set_index("format")
    assert table.loc["w4a16", "full_verdict"] == "degraded"
    assert table.loc["w4a16", "agreement"] == 1.0
    assert table.loc["w4a16", "mean_fraction"] < 0.3 and table.loc["fp8", "mean_fraction"] == 1.0
