"""`evalkit compare` on a hand-made store written with evalkit's store writer: one clearly degraded cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixture_store import binary_task, commit

from evalkit.cli import GATE_EXIT, main
from evalkit.results.store import ResultsStore


def _store(root: Path, with_degraded: bool) -> None:
    rng = np.random.default_rng(0)
    base = (rng.random(1200) < 0.7).astype(int)
    store = ResultsStore.open_for_writing(root)
    formats = {"bf16": base, "fp8": base.copy()}
    if with_degraded:
        bad = base.copy()
        bad[np.flatnonzero(base)[:180]] = 0  # 15 points lost: right -> wrong on 180 of 1200 documents
        formats["w4a16"] = bad
    for fmt, right in formats.items():
        for suite, task in (("suite_a", "task_a"), ("suite_b", "task_b")):
            score, samples = binary_task(task, right.tolist())
            commit(store, "m", fmt, f"bench_{suite}", suite, [score], samples)


def test_gate_exits_non_zero_on_a_degraded_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path, with_degraded=True)
    assert main(["compare", "--results", str(tmp_path), "--gate"]) == GATE_EXIT
    out, err = capsys.readouterr()
    assert "m/w4a16/suite_a: degraded (critical)" in err and "m/w4a16/suite_b: degraded (critical)" in err
    table = pd.read_parquet(tmp_path / "compare" / "comparisons.parquet")
    suites = table[table["task"] == "*"].set_index(["format", "suite"])
    assert suites.loc[("w4a16", "suite_a"), "verdict"] == "degraded"
    assert suites.loc[("w4a16", "suite_a"), "diff"] == pytest.approx(-15.0)
    assert suites.loc[("w4a16", "suite_a"), "flips_down"] == 180
    assert suites.loc[("fp8", "suite_a"), "verdict"] == "recovered"
    assert "degraded" in out and "recovered" in out
    # without --gate the same table is only reported
    assert main(["compare", "--results", str(tmp_path)]) == 0


def test_gate_passes_without_degraded_cells(tmp_path: Path) -> None:
    _store(tmp_path, with_degraded=False)
    assert main(["compare", "--results", str(tmp_path), "--gate", "--method", "bh", "--margin", "2%"]) == 0
    table = pd.read_parquet(tmp_path / "compare" / "comparisons.parquet")
    assert set(table["verdict"].dropna()) == {"recovered"}
    assert (table["method"] == "bh").all()


def test_missing_baseline_is_an_error_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path, with_degraded=False)
    assert main(["compare", "--results", str(tmp_path), "--baseline", "fp16"]) == 2
    assert "no model has both 'fp16'" in capsys.readouterr().err


def test_dataframe_input_gives_the_arrow_result(tmp_path: Path) -> None:
    """`compare` takes the samples as `ResultsStore.read_samples` returns them, too."""
    from evalkit.compare import CompareSettings, compare
    from evalkit.compare.frame import read_samples

    _store(tmp_path, with_degraded=True)
    store = ResultsStore(tmp_path)
    settings = CompareSettings()
    from_arrow, _ = compare(read_samples(tmp_path), store.read_scores(), settings)
    from_pandas, _ = compare(store.read_samples(), store.read_scores(), settings)
    pd.testing.assert_frame_equal(from_arrow, from_pandas)
