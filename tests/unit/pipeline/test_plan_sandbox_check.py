"""HumanEval is refused at plan time where the sandbox cannot run, only when the job would score it.

"No sandbox" is a node without bubblewrap: PATH without `bwrap` (the sandbox finds its tools on PATH).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import evalkit
from evalkit.core.errors import ConfigError
from evalkit.pipeline.plan import JobPlan, plan_job

PROJECT_DIR = Path(evalkit.__file__).resolve().parents[1]


def plan(tmp_path: Path, *overrides: str) -> JobPlan:
    from hydra import compose, initialize_config_dir

    from evalkit.core import grid
    from evalkit.core.config import register_configs
    from evalkit.pipeline.compose import CONF_DIR

    register_configs()
    paths = [f"paths.results={tmp_path / 'results'}", f"paths.jobs={tmp_path / 'jobs'}"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        (job,) = grid.expand(["benchmark=demo_humaneval", "format=bf16", *paths, *overrides])
        return plan_job(compose("config", overrides=job))


@pytest.fixture
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(
        "evalkit.benchmarks.humaneval.sandbox._checked", []
    )  # the per-process verdict, taken afresh on this "node"
    monkeypatch.chdir(PROJECT_DIR)  # the demo's data paths are relative to the project
    return empty


@pytest.mark.parametrize("overrides", [(), ("phase=score",)])
def test_a_job_that_scores_humaneval_is_refused_with_the_fix(tmp_path: Path, no_bwrap: Path, overrides: tuple) -> None:
    with pytest.raises(ConfigError) as info:
        plan(tmp_path, *overrides)
    msg = info.value.message
    assert "demo_humaneval" in msg and "bubblewrap" in msg and "apt-get install bubblewrap" in msg
    assert "split_scoring=true" in msg and "evalkit score" in msg


@pytest.mark.parametrize("overrides", [("phase=generate",), ("split_scoring=true",)])
def test_a_generate_only_job_is_planned_without_a_sandbox(tmp_path: Path, no_bwrap: Path, overrides: tuple) -> None:
    assert [c.benchmark for c in plan(tmp_path, *overrides).pending] == ["demo_humaneval"]


@pytest.mark.sandbox
def test_a_job_that_scores_humaneval_is_planned_where_the_sandbox_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(PROJECT_DIR)
    assert [c.benchmark for c in plan(tmp_path).pending] == ["demo_humaneval"]


def test_dry_run_refuses_it_with_the_configuration_exit_code(tmp_path: Path, no_bwrap: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    argv = [sys.executable, "-m", "evalkit.cli", "sweep", "--dry-run", "benchmark=demo_humaneval", "format=bf16"]
    argv += [f"paths.results={tmp_path / 'results'}", f"paths.jobs={tmp_path / 'jobs'}"]
    refused = subprocess.run(argv, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "bubblewrap" in refused.stderr and "evalkit score" in refused.stderr
    planned = subprocess.run(
        [*argv, "split_scoring=true"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert "demo_humaneval" in planned.stdout


def test_status_is_a_read_and_works_without_a_sandbox(tmp_path: Path, no_bwrap: Path) -> None:
    argv = [sys.executable, "-m", "evalkit.cli", "status", "benchmark=demo_humaneval", "format=bf16"]
    argv += [f"paths.results={tmp_path / 'results'}", f"paths.jobs={tmp_path / 'jobs'}"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    status = subprocess.run(argv, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr[-2000:]
    assert "demo_humaneval" in status.stdout
