"""One vLLM cache for every real server a test session starts (integration and Slurm tests import the fixture)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def shared_vllm_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """VLLM_CACHE_ROOT for the session: servers started in the test process, by `evalkit` subprocesses and in Slurm
    jobs inherit it. vLLM caches there what it inspects of the model class (`modelinfos`); without it every server
    start pays a subprocess that imports torch and vLLM again (~10 s quiet, 45 s on a loaded machine), since a job's
    default cache is its own folder (`evalkit.serve.render.render_env`, unchanged: plans never see this)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLLM_CACHE_ROOT", str(tmp_path_factory.getbasetemp() / "vllm-cache"))
        yield
