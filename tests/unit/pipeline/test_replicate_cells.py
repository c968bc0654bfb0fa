"""Baseline replicates (`replicates.k`) are cells of their own: distinct ids, their own settings, skipped when done."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from evalkit.core.cell import Cell
from evalkit.core.errors import ConfigError
from evalkit.core.records import TaskScore
from evalkit.pipeline.cells import cell_dir_name, cell_seed, cell_settings
from evalkit.pipeline.plan import JobPlan, plan_job
from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id

V1, V2 = "demo_leaderboard_v1", "demo_leaderboard_v2"


def plan(tmp_path: Path, *overrides: str, benchmarks: str = f"{V1},{V2}", fmt: str = "bf16") -> JobPlan:
    from hydra import compose, initialize_config_dir

    from evalkit.core import grid
    from evalkit.core.config import register_configs
    from evalkit.pipeline.compose import CONF_DIR

    register_configs()
    paths = [f"paths.results={tmp_path / 'results'}", f"paths.jobs={tmp_path / 'jobs'}"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        (job,) = grid.expand([f"benchmark={benchmarks}", f"format={fmt}", *paths, *overrides])
        return plan_job(compose("config", overrides=job), check_adapters=False)


def test_replicates_are_cells_of_their_own_after_the_ordinary_ones(tmp_path: Path) -> None:
    p = plan(tmp_path, "replicates.k=2", f"replicates.benchmarks=[{V1}]")
    assert [(c.format, c.benchmark) for c in p.cells] == [
        ("bf16", V1),
        ("bf16", V2),
        ("bf16~r1", V1),
        ("bf16~r2", V1),
    ]
    assert len({c.cell_id for c in p.cells}) == len({c.key for c in p.cells}) == 4
    # what a replicate varies: request concurrency (lm-eval's seed would change few-shot prompts, so it stays)
    assert [cell_settings(p.cfg, c)["num_concurrent"] for c in p.cells] == [32, 32, 8, 1]
    assert {cell_seed(p.cfg, c) for c in p.cells} == {p.cfg.seed}
    assert [cell_dir_name(c) for c in p.cells] == [V1, V2, f"{V1}~r1", f"{V1}~r2"]
    # the same replicate has the same id in every run (cached and resumable like any cell)
    again = plan(tmp_path, "replicates.k=2", f"replicates.benchmarks=[{V1}]")
    assert [c.cell_id for c in again.cells] == [c.cell_id for c in p.cells]


def test_replicates_leave_the_ordinary_cells_ids_alone(tmp_path: Path) -> None:
    plain = plan(tmp_path).cells
    assert plan(tmp_path, "replicates.k=1").cells[:2] == plain


def test_only_the_baseline_job_runs_replicates(tmp_path: Path) -> None:
    assert [c.format for c in plan(tmp_path, "replicates.k=1", fmt="w8a8").cells] == ["w8a8", "w8a8"]


def test_sampling_adapters_get_another_seed(tmp_path: Path) -> None:
    p = plan(tmp_path, "replicates.k=1", benchmarks="demo_humaneval")
    base, rep = p.cells
    assert cell_seed(p.cfg, rep) == cell_seed(p.cfg, base) + 1
    assert cell_settings(p.cfg, rep)["concurrency"] == 8


def test_a_complete_replicate_is_skipped(tmp_path: Path) -> None:
    p = plan(tmp_path, "replicates.k=1", f"replicates.benchmarks=[{V1}]")
    replicate = p.cells[-1]
    assert p.pending == p.cells
    store = ResultsStore.open_for_writing(tmp_path / "results")
    now = datetime.now(timezone.utc)
    prov = Provenance("0", "c", "0.4.13", "0.32", "/ckpt", "h")
    run = RunInfo(new_run_id(), now, now, "log", prov, "[]", True)
    store.commit_cell(replicate, run, [TaskScore("gsm8k_llama", "exact_match", 50.0, None, 4, is_primary=True)], [])
    again = plan(tmp_path, "replicates.k=1", f"replicates.benchmarks=[{V1}]")
    assert again.pending == p.cells[:-1]
    # the baseline's own cell is another key: committing the replicate did not complete it
    assert store.cell_record(p.cells[0]).state.value == "missing"


def test_the_sweeper_names_a_replicated_benchmark_once(tmp_path: Path) -> None:
    from evalkit.launch.base import job_overrides

    p = plan(tmp_path, "replicates.k=1")
    assert job_overrides(["format=bf16", "benchmark=[x]"], p.pending)[-1] == f"benchmark=[{V1},{V2}]"


def test_an_unknown_replicated_benchmark_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"replicates.benchmarks names \['demo_leaderboard_v9'\]"):
        plan(tmp_path, "replicates.k=1", "replicates.benchmarks=[demo_leaderboard_v9]")


def test_a_replicate_format_label_is_not_a_config_format() -> None:
    from evalkit.core.config import replicate_label, replicate_of

    assert replicate_of(replicate_label("bf16", 3)) == ("bf16", 3)
    assert replicate_of("bf16") is None and replicate_of("bf16~r0") is None
    assert Cell("m", "bf16~r1", "b", "s", "c", "f" * 64).key.encode() == "m__bf16~r1__b"
