"""The job parses each cell's settings once, into its family's typed record (`Benchmark.parse_settings`), and every
phase finds that record in `RunContext.settings` (issue 17); a settings error raises when the job makes its cells'
contexts, before its server starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from unit.pipeline.test_replicate_cells import V1, plan

from evalkit.benchmarks.arena.adapter import ArenaHardSettings
from evalkit.benchmarks.divergence.adapter import DivergenceSettings
from evalkit.benchmarks.humaneval.adapter import HumanEvalSettings
from evalkit.benchmarks.lm_eval.settings import LmEvalSuiteSettings
from evalkit.benchmarks.perf.settings import PerfSettings
from evalkit.core.errors import ConfigError
from evalkit.pipeline.job import cell_contexts


def test_each_cell_holds_its_familys_record(tmp_path: Path) -> None:
    p = plan(tmp_path, benchmarks="demo_arena_hard,demo_divergence,demo_humaneval,demo_leaderboard_v1,demo_perf")
    ctx_of = cell_contexts(p.cfg, tmp_path / "jobs", p.cells)
    assert {c.benchmark: type(ctx_of(c, None).settings) for c in p.cells} == {
        "demo_arena_hard": ArenaHardSettings,
        "demo_divergence": DivergenceSettings,
        "demo_humaneval": HumanEvalSettings,
        "demo_leaderboard_v1": LmEvalSuiteSettings,
        "demo_perf": PerfSettings,
    }


def test_a_replicate_holds_its_concurrency_and_each_cell_is_parsed_once(tmp_path: Path) -> None:
    p = plan(tmp_path, "replicates.k=2", f"replicates.benchmarks=[{V1}]")
    ctx_of = cell_contexts(p.cfg, tmp_path / "jobs", p.cells)
    first = [ctx_of(c, None).settings for c in p.cells]
    assert [s.num_concurrent for s in first] == [32, 32, 8, 1]
    # the generate and score phases (and provenance) of a cell share the one record
    assert all(ctx_of(c, None).settings is s for c, s in zip(p.cells, first, strict=True))


def test_a_settings_error_raises_when_the_contexts_are_made(tmp_path: Path) -> None:
    p = plan(tmp_path, benchmarks=V1)
    p.cfg.benchmarks[V1].settings = {**p.cfg.benchmarks[V1].settings, "num_concurent": 4}
    with pytest.raises(ConfigError, match="num_concurent"):
        cell_contexts(p.cfg, tmp_path / "jobs", p.cells)
    cell_contexts(p.cfg, tmp_path / "jobs")  # (no cells named: each is parsed when it is first asked for)
