"""Adaptive mode's switch (evalkit/core/config.py AdaptiveConfig): off by default; on for a suite, only its variant
cells run adaptively (the baseline and its replicates run in full), their identity says so, and a job that cannot
run chunks is refused at planning. A chunk narrows the lm-eval suite's runs to the chunk's tasks."""

from __future__ import annotations

from pathlib import Path

import pytest
from unit.pipeline.test_replicate_cells import plan

from evalkit.benchmarks.lm_eval.adapter import _chunk_runs
from evalkit.benchmarks.lm_eval.settings import LmEvalRun
from evalkit.core.errors import ConfigError
from evalkit.pipeline.adaptive import adaptive_settings

SMOKE = "smoke_loglikelihood"


def test_off_by_default_and_never_for_the_baseline(tmp_path: Path) -> None:
    assert adaptive_settings(plan(tmp_path, benchmarks=SMOKE, fmt="w4a16").cfg, SMOKE, "w4a16") is None
    on = ["adaptive.enabled=true", "adaptive.chunk=7", "adaptive.margin=2.5"]
    base = plan(tmp_path, *on, benchmarks=SMOKE, fmt="bf16")
    variant = plan(tmp_path, *on, benchmarks=SMOKE, fmt="w4a16")
    assert adaptive_settings(base.cfg, SMOKE, "bf16") is None
    assert adaptive_settings(base.cfg, SMOKE, "bf16~r1") is None
    got = adaptive_settings(variant.cfg, SMOKE, "w4a16")
    assert got is not None and (got.chunk, got.margin_points) == (7, 2.5)
    # a stopped cell holds a subset of the documents: its id is not the full run's, the baseline's is unchanged
    assert variant.cells[0].cell_id != plan(tmp_path, benchmarks=SMOKE, fmt="w4a16").cells[0].cell_id
    assert base.cells[0].cell_id == plan(tmp_path, benchmarks=SMOKE, fmt="bf16").cells[0].cell_id


def test_a_suites_own_setting_wins_over_the_sweeps(tmp_path: Path) -> None:
    p = plan(tmp_path, benchmarks="demo_adaptive", fmt="w4a16")
    got = adaptive_settings(p.cfg, "demo_adaptive", "w4a16")
    assert got is not None and (got.chunk, got.margin_points) == (20, 20.0)
    off = plan(tmp_path, "benchmarks.demo_adaptive.adaptive.enabled=false", benchmarks="demo_adaptive", fmt="w4a16")
    assert adaptive_settings(off.cfg, "demo_adaptive", "w4a16") is None


def test_adaptive_without_in_process_scoring_or_chunks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not score in process"):
        plan(tmp_path, "adaptive.enabled=true", "split_scoring=true", benchmarks=SMOKE, fmt="w4a16")
    with pytest.raises(ConfigError, match="cannot run a chunk"):
        plan(tmp_path, "adaptive.enabled=true", benchmarks="demo_humaneval", fmt="w4a16")


def test_a_chunk_runs_only_the_tasks_it_has_documents_of() -> None:
    runs = [LmEvalRun(name="a", tasks=["t1", "t2"]), LmEvalRun(name="b", tasks=["t3"])]
    (only,) = _chunk_runs(runs, {"t2": [4, 7]})
    assert (only.name, only.tasks) == ("a", ["t2"])
    with pytest.raises(ConfigError, match="no run of the suite holds"):
        _chunk_runs(runs, {"ruler_niah_4096": [1]})


def test_the_plan_estimates_a_variants_documents_from_its_committed_baseline(tmp_path: Path) -> None:
    from unit.compare.fixture_store import binary_task, commit

    from evalkit.pipeline.adaptive_estimate import render_estimates
    from evalkit.results.store import ResultsStore

    p = plan(tmp_path, benchmarks="demo_adaptive", fmt="w4a16")
    assert "not committed yet" in render_estimates([p])
    score, docs = binary_task("arc_easy", [1] * 90 + [0] * 30)
    store = ResultsStore.open_for_writing(tmp_path / "results")
    commit(store, "smollm2-135m-instruct", "bf16", "demo_adaptive", "demo_adaptive", [score], docs)
    text = render_estimates([p])
    assert "at most 120 documents" in text
    expected = float(text.split("expected ~")[1].split(" ")[0])
    assert 20 <= expected < 120  # the rule stops early on a format that barely moves, after a chunk at the least


def test_status_says_how_far_an_adaptive_cell_got_and_what_the_sweep_spent() -> None:
    from evalkit.core.cell import Cell
    from evalkit.core.enums import CellStatus
    from evalkit.results.adaptive import AdaptiveRecord
    from evalkit.status import CellView
    from evalkit.tables import render_grid_status

    rec = AdaptiveRecord("r", 20, 4, 6, 80, 120, "recovered", True, True, -18.0, 9.0, 20.0, 0.05, 40.0, 90.0, "")
    cell = Cell("m", "w4a16", "demo_adaptive", "demo_adaptive", "hub:x", "f" * 64)
    text = render_grid_status([CellView(cell, CellStatus.DONE, adaptive=rec)])
    assert "done 80/120 early" in text
    assert "stopped early: recovered; 80/120 documents (67%), 40s vs ~90s" in text
    assert "adaptive cells spent 80 of 120 documents (67%), 40s against ~90s" in text
