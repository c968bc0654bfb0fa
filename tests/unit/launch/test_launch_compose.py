"""A Slurm job composes its config with Hydra's compose API; the sweeper validated the one Hydra's config loader made
for the same overrides. The two must be equal (the job checks the hash), and so must the job folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.types import RunMode

from evalkit.core.config import register_configs
from evalkit.pipeline.compose import CONF_DIR, compose_job
from evalkit.pipeline.plan import config_hash, job_dir_of, typed

SWEEP = ["launcher=slurm", "format=bf16,fp8", "benchmark=[smoke_loglikelihood,smoke_generate]", "sweep=t"]
JOBS = [
    ["launcher=slurm", "format=fp8", "benchmark=[smoke_generate]", "sweep=t"],
    ["launcher=slurm", "format=bf16", "benchmark=[smoke_loglikelihood]", "sweep=t", "paths.jobs=/tmp/elsewhere"],
]


@pytest.mark.parametrize("job", JOBS, ids=["fp8", "bf16-jobs-dir"])
def test_compose_in_job_equals_the_sweepers_config(job: list[str]) -> None:
    register_configs()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF_DIR)))
    primary = loader.load_configuration("config", overrides=SWEEP, run_mode=RunMode.MULTIRUN)
    swept = loader.load_sweep_config(primary, job)
    composed = compose_job(job)
    assert "hydra" not in composed
    assert config_hash(swept) == config_hash(composed)
    hydra_dir = Path(str(swept.hydra.sweep.dir), str(swept.hydra.sweep.subdir)).resolve()
    assert job_dir_of(typed(composed)) == hydra_dir


def test_hash_differs_when_the_config_does() -> None:
    assert config_hash(compose_job(JOBS[0])) != config_hash(compose_job([*JOBS[0], "seed=7"]))
