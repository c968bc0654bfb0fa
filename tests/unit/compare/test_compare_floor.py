"""The noise floor from baseline replicates (format `bf16~r<i>`), on hand-made stores written with the store writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixture_store import binary_task, commit

from evalkit.compare import CompareSettings, compare, render
from evalkit.compare.frame import read_samples
from evalkit.results.store import ResultsStore

SETTINGS = CompareSettings()


def _flip_down(right: np.ndarray, n: int, skip: int = 0) -> np.ndarray:
    """`right` with n right answers (after the first `skip` of them) turned wrong."""
    out = right.copy()
    out[np.flatnonzero(right)[skip : skip + n]] = 0
    return out


def _compare(root: Path, formats: dict[str, np.ndarray]) -> pd.DataFrame:
    store = ResultsStore.open_for_writing(root)
    for fmt, right in formats.items():
        score, samples = binary_task("task_a", right.tolist())
        commit(store, "m", fmt, "bench_a", "suite_a", [score], samples)
    table, _ = compare(read_samples(root), ResultsStore(root).read_scores(), SETTINGS)
    return table[table["task"] == "*"].set_index("format")


BASE = (np.random.default_rng(0).random(600) < 0.7).astype(int)


def test_a_replicate_identical_to_the_baseline_is_a_floor_of_zero_flips(tmp_path: Path) -> None:
    rows = _compare(tmp_path, {"bf16": BASE, "bf16~r1": BASE.copy(), "w8a8": _flip_down(BASE, 3)})
    rep = rows.loc["bf16~r1"]
    assert rep["role"] == "replicate" and pd.isna(rep["verdict"])  # the yardstick, not judged
    assert rep["flips_down"] == rep["flips_up"] == 0
    var = rows.loc["w8a8"]
    assert var["role"] == "variant" and var["n_replicates"] == 1
    assert var["floor_diff"] == 0.0 and var["floor_flip_rate"] == 0.0
    assert var["flip_rate"] == pytest.approx(3 / 600)
    assert var["beyond_floor"] is True  # any change is beyond a floor of zero


def test_a_variant_inside_the_floor_is_not_called_degraded(tmp_path: Path) -> None:
    # the variant loses 30 of 600 documents (-5 points, exact McNemar p ~ 2e-9): degraded against the margin alone
    variant = _flip_down(BASE, 30)
    alone = _compare(tmp_path / "alone", {"bf16": BASE, "fp8": variant})
    assert alone.loc["fp8", "verdict"] == "degraded"
    assert alone.loc["fp8", "n_replicates"] == 0 and pd.isna(alone.loc["fp8", "beyond_floor"])
    # the baseline against itself moved 40 documents (-6.7 points): run-to-run variance widens the interval
    rows = _compare(
        tmp_path / "floor",
        {"bf16": BASE, "bf16~r1": _flip_down(BASE, 40, skip=100), "fp8": variant, "w4a16": _flip_down(BASE, 200)},
    )
    assert rows.loc["fp8", "floor_diff"] == pytest.approx(40 / 6)
    assert rows.loc["fp8", "beyond_floor"] is False
    assert rows.loc["fp8", "verdict"] == "inconclusive"
    # a 33-point drop is beyond the floor and its run-to-run-widened interval: degraded
    assert rows.loc["w4a16", "beyond_floor"] is True and rows.loc["w4a16", "verdict"] == "degraded"
    # the replicate is no test of the grid: the variants' adjusted p are those of a grid without it
    without = _compare(tmp_path / "without", {"bf16": BASE, "fp8": variant, "w4a16": _flip_down(BASE, 200)})
    for fmt in ("fp8", "w4a16"):
        assert rows.loc[fmt, "p_adjusted"] == pytest.approx(without.loc[fmt, "p_adjusted"])


def test_render_shows_the_floor_and_the_replicate_as_such(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    for fmt, right in {"bf16": BASE, "bf16~r1": _flip_down(BASE, 6), "fp8": _flip_down(BASE, 30)}.items():
        score, samples = binary_task("task_a", right.tolist())
        commit(store, "m", fmt, "bench_a", "suite_a", [score], samples)
    table, _ = compare(read_samples(tmp_path), ResultsStore(tmp_path).read_scores(), SETTINGS)
    text = render(table, SETTINGS)
    rep_line = next(line for line in text.splitlines() if "bf16~r1" in line)
    assert rep_line.endswith("(noise floor)")
    fp8_line = next(line for line in text.splitlines() if " fp8 " in line)
    assert "1.00/1%" in fp8_line  # floor: 6 of 600 documents, 1 point; fp8 drops 5
    assert "noise floor = bf16 replicates" in text


def test_without_replicates_the_report_says_how_to_get_a_floor(tmp_path: Path) -> None:
    store = ResultsStore.open_for_writing(tmp_path)
    for fmt, right in {"bf16": BASE, "fp8": BASE}.items():
        score, samples = binary_task("task_a", right.tolist())
        commit(store, "m", fmt, "bench_a", "suite_a", [score], samples)
    table, _ = compare(read_samples(tmp_path), ResultsStore(tmp_path).read_scores(), SETTINGS)
    assert "noise floor: none measured" in render(table, SETTINGS) and "replicates.k=1" in render(table, SETTINGS)
