"""Grid expansion: benchmarks fold into one job per model x format; other sweeps multiply."""

from __future__ import annotations

import pytest

from evalkit.core import grid
from evalkit.core.errors import ConfigError


def test_benchmarks_grouped_per_model_format() -> None:
    jobs = grid.expand(["model=a,b", "format=bf16,fp8", "benchmark=v1,v2"])
    assert jobs == [
        ["model=a", "format=bf16", "benchmark=[v1,v2]"],
        ["model=a", "format=fp8", "benchmark=[v1,v2]"],
        ["model=b", "format=bf16", "benchmark=[v1,v2]"],
        ["model=b", "format=fp8", "benchmark=[v1,v2]"],
    ]


def test_single_values_and_lists() -> None:
    assert grid.expand(["benchmark=v1", "server.max_num_seqs=8"]) == [["server.max_num_seqs=8", "benchmark=[v1]"]]
    assert grid.expand(["benchmark=[v1,v2]"]) == [["benchmark=[v1,v2]"]]
    assert grid.expand([]) == [[]]


def test_other_keys_sweep_too() -> None:
    jobs = grid.expand(["format=bf16,fp8", "seed=1,2"])
    assert len(jobs) == 4 and ["format=fp8", "seed=2"] in jobs


def test_normalize_for_single_run() -> None:
    assert grid.normalize(["model=a", "benchmark=v1"]) == ["model=a", "benchmark=[v1]"]
    assert grid.normalize(["benchmark=v1,v2"]) == ["benchmark=[v1,v2]"]
    with pytest.raises(ConfigError, match="evalkit sweep"):
        grid.normalize(["format=bf16,fp8"])


def test_range_sweeps_rejected_with_reason() -> None:
    with pytest.raises(ConfigError, match="comma-separated"):
        grid.expand(["seed=interval(0,1)"])


def test_group_benchmarks_keeps_other_sweeps() -> None:
    assert grid.group_benchmarks(["format=bf16,fp8", "benchmark=v1"]) == ["format=bf16,fp8", "benchmark=[v1]"]
    assert grid.group_benchmarks(["benchmark=v1,v2"]) == ["benchmark=[v1,v2]"]
