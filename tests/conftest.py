"""Scheduling of the slow tests on two pytest-xdist workers (`make test`: `-n 2 --dist loadgroup`).

Each test module is one group, so its module- and session-scoped servers start once, on one worker; the tests on the
real Slurm are one group, so one worker talks to the cluster (its node runs one evaluation job at a time) while the
other runs the integration modules beside it. Two workers on two cores pay off because much of a slow test is not
compute: server and harness start-up (Python imports, one core), Slurm scheduling, polling."""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the group marks into node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = "slurm" if item.get_closest_marker("slurm") else item.path.stem
            item.add_marker(pytest.mark.xdist_group(group))
