"""The plan is made once and handed down: `run_job` runs the plan it is given (no compose, no plan of its own), a
narrowed plan is what planning the narrowed job gives, and the sweeper's task function finds each job's plan by its
overrides; a Slurm task carries it pickled."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from paths import REPO

import evalkit.pipeline.compose
import evalkit.pipeline.plan
from evalkit.app import PlannedTask, plan_key
from evalkit.core import grid
from evalkit.core.enums import CellState, RowStatus
from evalkit.pipeline.compose import compose_grid
from evalkit.pipeline.job import JobSummary, run_job
from evalkit.pipeline.plan import JobPlan, config_hash, plan_job
from evalkit.results.store import ResultsStore

MISSING_GGUF = "model.checkpoints.bf16.id=no_such_package/missing.gguf"
"""A checkpoint that fails as soon as the job resolves it (no server starts): the job records its pending cells
failed, through the same path a real job takes (claim, resolve, record)."""


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(REPO)  # the smoke benchmarks' data paths are relative to the project
    yield


def job_overrides(tmp_path: Path, benchmarks: str = "smoke_generate,smoke_loglikelihood") -> list[str]:
    paths = [f"paths.results={tmp_path / 'results'}", f"paths.jobs={tmp_path / 'jobs'}"]
    (job,) = grid.expand([f"benchmark={benchmarks}", "format=bf16", MISSING_GGUF, *paths])
    return job


def composed(tmp_path: Path, benchmarks: str = "smoke_generate,smoke_loglikelihood") -> DictConfig:
    (cfg,) = compose_grid(job_overrides(tmp_path, benchmarks))
    return cfg


def forbid_planning(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on every compose and plan entry point only records that it was called."""
    calls: list[str] = []
    for module, name in [
        (evalkit.pipeline.plan, "plan_job"),
        (evalkit.pipeline.compose, "compose_job"),
        (evalkit.pipeline.compose, "compose_grid"),
    ]:
        monkeypatch.setattr(module, name, lambda *a, _name=name, **k: calls.append(_name))
    return calls


def test_run_job_runs_the_plan_it_is_given_without_planning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = plan_job(composed(tmp_path))
    generate, loglikelihood = full.cells
    plan = full.narrowed([generate])  # the config names both benchmarks; the plan hands down one
    calls = forbid_planning(monkeypatch)
    summary = run_job(plan, tmp_path / "job", "cafe0123")
    assert calls == []
    assert list(summary.failed) == ["smoke_generate"] and "missing.gguf" in summary.failed["smoke_generate"]
    store = ResultsStore(tmp_path / "results")
    assert store.cell_record(generate).state is CellState.FAILED
    assert store.cell_record(loglikelihood).state is CellState.MISSING  # the plan, not the config, said what runs
    rows = store.read_scores()
    assert list(rows["status"]) == [RowStatus.failed] and list(rows["config_hash"]) == ["cafe0123"]


def test_a_narrowed_plan_is_the_plan_of_the_narrowed_job(tmp_path: Path) -> None:
    full = plan_job(composed(tmp_path))
    alone = plan_job(composed(tmp_path, "smoke_loglikelihood"))
    narrowed = full.narrowed(full.cells[1:])
    assert narrowed.cells == alone.cells and narrowed.records == alone.records and narrowed.cfg == alone.cfg
    assert narrowed.name == full.name and full.cfg.benchmark == ["smoke_generate", "smoke_loglikelihood"]


def test_the_sweepers_task_function_runs_each_job_with_its_handed_down_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = job_overrides(tmp_path)
    (cfg,) = compose_grid(overrides, with_hydra=True)  # what Hydra's launcher composes for the job
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "job")
    plan = plan_job(cfg)
    fallback_calls: list[DictConfig] = []
    task = PlannedTask(fallback_calls.append, {plan_key(list(reversed(overrides))): plan})
    calls = forbid_planning(monkeypatch)
    HydraConfig.instance().set_config(cfg)
    try:
        summary = task(cfg)
        task.plans.clear()
        task(cfg)  # a job without a handed-down plan goes to the app's own task function, which plans it
    finally:
        HydraConfig.instance().cfg = None
    assert calls == [] and fallback_calls == [cfg]
    assert isinstance(summary, JobSummary) and sorted(summary.failed) == ["smoke_generate", "smoke_loglikelihood"]
    assert (tmp_path / "job").is_dir()
    assert set(ResultsStore(tmp_path / "results").read_scores()["config_hash"]) == {config_hash(cfg)}


def test_a_plan_survives_the_pickling_into_a_slurm_task(tmp_path: Path) -> None:
    plan = plan_job(composed(tmp_path))
    again = pickle.loads(pickle.dumps(plan))
    assert isinstance(again, JobPlan) and again == plan and again.pending == plan.pending
