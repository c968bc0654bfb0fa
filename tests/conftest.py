"""Scheduling of the slow tests on two pytest-xdist workers (`make test`: `-n 2 --dist loadgroup`).

A work unit is one test module, so its module- and session-scoped servers start once, on one worker, except that
every test on the real Slurm is one unit: one worker talks to the cluster (its node runs one evaluation job at a
time, and the session fixture starts it) while the other runs integration modules beside it. Two workers on two
cores pay off because much of a slow test is not compute: server and harness start-up, Slurm scheduling, polling.

xdist's own `loadgroup` reads `xdist_group` marks by rewriting node ids, which pytest 9.2 no longer lets it do
(`Node.nodeid` is derived from `_id`): with pytest-xdist 3.8 every test becomes a unit of its own. So this conftest
answers `pytest_xdist_make_scheduler` with xdist's scope scheduler, told what a unit is."""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

SLURM = "tests/slurm/"


class ModuleOrSlurmScheduling(LoadScopeScheduling):
    """xdist's scope scheduling (units ordered by their number of tests, largest first), a unit per test module
    and one for all of tests/slurm."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return SLURM if path.startswith(SLURM) else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    return ModuleOrSlurmScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None
