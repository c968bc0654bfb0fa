"""One test per defect of issue 15 (each failed on the code before it), on hand-made stores written with the
store writer and on synthetic paired data through the project's own functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixture_store import binary_task, commit

from evalkit.cli import GATE_EXIT, main
from evalkit.compare import CompareSettings, compare
from evalkit.compare.frame import read_samples
from evalkit.compare.paired import Documents, interval, paired
from evalkit.results.store import ResultsStore


def _store(root: Path, cells: dict[tuple[str, str, str], dict[str, np.ndarray]]) -> ResultsStore:
    """cells: (model, format, suite) -> task -> right/wrong per document."""
    store = ResultsStore.open_for_writing(root)
    for (model, fmt, suite), tasks in cells.items():
        scores, samples = [], []
        for task, right in tasks.items():
            s, smp = binary_task(task, right.tolist())
            scores.append(s)
            samples += smp
        commit(store, model, fmt, f"bench_{suite}", suite, scores, samples)
    return store


def _table(root: Path) -> pd.DataFrame:
    table, _ = compare(read_samples(root), ResultsStore(root).read_scores(), CompareSettings())
    return table


def _flips(base: np.ndarray, down: int, up: int) -> np.ndarray:
    out = base.copy()
    out[np.flatnonzero(base == 1)[:down]] = 0
    out[np.flatnonzero(base == 0)[:up]] = 1
    return out


def test_1_a_drop_whose_interval_straddles_the_margin_is_not_degraded(tmp_path: Path) -> None:
    # 2000 documents, 60 down / 36 up: -1.2 points, exact McNemar p ~ 0.02, but the interval reaches above -1
    base = (np.arange(2000) % 3 != 0).astype(int)
    _store(tmp_path, {("m", f, "s"): {"t": b} for f, b in (("bf16", base), ("w4a16", _flips(base, 60, 36)))})
    row = _table(tmp_path).query("task == '*'").iloc[0]
    assert row["diff"] == pytest.approx(-1.2) and row["diff_hi"] > -1
    assert row["verdict"] == "inconclusive"


def test_2_one_flip_and_no_flip_give_intervals_of_the_same_kind(tmp_path: Path) -> None:
    base = np.array([1, 0, 1, 0, 1, 1, 0, 1])
    up = base.copy()
    up[1] = 1
    _store(tmp_path, {("m", f, "s"): {"t": b} for f, b in (("bf16", base), ("same", base), ("up", up))})
    rows = _table(tmp_path).query("task == '*'").set_index("format")
    assert rows.loc["up", "verdict"] == rows.loc["same", "verdict"] == "inconclusive"
    width = rows["diff_hi"] - rows["diff_lo"]
    assert width["same"] > 20 and width["up"] > 20  # 8 documents cannot pin a 1-point margin either way


def test_3_documents_shared_by_two_tasks_are_one_resampling_unit(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base = (rng.random(164) < 0.6).astype(int)
    var = _flips(base, 5, 2)
    _store(
        tmp_path,
        {("m", f, "humaneval"): {"humaneval": b, "humaneval_plus": b} for f, b in (("bf16", base), ("fp8", var))},
    )
    table = _table(tmp_path).set_index("task")
    assert table.loc["*", "n_docs"] == 164 and table.loc["*", "flips_down"] == 5
    assert table.loc["*", "shared_documents"] == "humaneval, humaneval_plus share 164 documents"
    # the suite is the mean of two identical tasks: its interval is the task's, not narrower
    assert table.loc["*", "diff_hi"] - table.loc["*", "diff_lo"] == pytest.approx(
        table.loc["humaneval", "diff_hi"] - table.loc["humaneval", "diff_lo"]
    )


def test_4_the_gate_sees_tasks_and_refuses_a_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    tasks = {f"t{i}": (rng.random(3000) < 0.6).astype(int) for i in range(6)}
    var = dict(tasks)
    var["t0"] = _flips(tasks["t0"], 150, 0)  # 5 points down on one task of six
    _store(tmp_path / "a", {("m", "bf16", "s"): tasks, ("m", "fp8", "s"): var})
    assert main(["compare", "--results", str(tmp_path / "a"), "--gate"]) == GATE_EXIT
    assert "m/fp8/s/t0: degraded (supporting)" in capsys.readouterr().err
    small = (np.arange(20) % 2).astype(int)
    _store(tmp_path / "b", {("m", f, "s"): {"t": small} for f in ("bf16", "fp8")})
    assert main(["compare", "--results", str(tmp_path / "b"), "--gate"]) == GATE_EXIT
    assert "m/fp8/s: insufficient (critical)" in capsys.readouterr().err


def test_5_another_model_does_not_change_a_verdict_and_recovered_is_corrected(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base = (rng.random(1500) < 0.6).astype(int)
    one = {("m", f, "s"): {"t": b} for f, b in (("bf16", base), ("fp8", _flips(base, 8, 2)))}
    _store(tmp_path / "a", one)
    others = {("other", f, f"s{i}"): {"t": base} for f in ("bf16", "fp8") for i in range(5)}
    _store(tmp_path / "b", one | others)
    a = _table(tmp_path / "a").query("model == 'm'")
    b = _table(tmp_path / "b").query("model == 'm'")
    assert list(a["verdict"]) == list(b["verdict"]) and list(a["claim_lo"]) == list(b["claim_lo"])
    # the verdict reads the family's interval (suite and task line of m x fp8: 2 claims), wider than the 95% one
    assert (a["family_size"] == 2).all() and (a["claim_lo"] < a["diff_lo"]).all()


def test_6_intervals_keep_coverage_with_small_unequal_subtasks() -> None:
    # 50 documents in subtasks of 5, 10 and 35, 8% disagreement, true difference 0: 2000 replications
    rng = np.random.default_rng(6)
    stratum = np.repeat([0, 1, 2], [5, 10, 35])
    weight = np.concatenate([np.full(5, 1 / 15), np.full(10, 1 / 30), np.full(35, 1 / 105)])
    covered = 0
    for _ in range(2000):
        y_b = (rng.random(50) < 0.6).astype(float) * 100
        flip = rng.random(50) < 0.08
        y_v = np.where(flip, 100 - y_b, y_b)
        d = Documents(np.zeros(50, int), np.arange(50), stratum, weight, y_b, y_v, np.full(50, 100.0), np.array([1]))
        r = paired(d)
        # the truth for these 50 documents: flips are symmetric, expected difference of the weighted sum is 0
        lo, hi = interval(np.array(r.diff), np.array(r.se), np.array(r.df), 0.95, r.flip_worth, r.moved)
        covered += lo <= 0 <= hi
    assert covered / 2000 >= 0.93


def test_7_replicates_widen_the_interval_instead_of_raising_a_maximum(tmp_path: Path) -> None:
    base = (np.arange(1000) % 2).astype(int)
    shifted = _flips(base, 20, 0)  # a replicate 2 points off the baseline: run-to-run noise beyond sampling
    cells = {("m", f, "s"): {"t": b} for f, b in (("bf16", base), ("bf16~r1", shifted), ("fp8", _flips(base, 5, 5)))}
    _store(tmp_path, cells)
    row = _table(tmp_path).query("format == 'fp8' and task == '*'").iloc[0]
    assert row["run_var"] > 0 and row["se_total"] > row["se"]
    assert row["diff_hi"] - row["diff_lo"] > 2 * 1.96 * row["se"]


def test_8_score_only_rows_keep_their_recovery_and_never_remove_other_lines_cis(tmp_path: Path) -> None:
    base = (np.arange(400) % 3 != 0).astype(int)
    _store(tmp_path, {("m", f, "s"): {"t": b} for f, b in (("bf16", base), ("fp8", base))})
    # the README's hand-entered example: published numbers beside your own runs, the 8 columns only
    pd.DataFrame(
        {
            "model": ["m", "m"],
            "format": ["bf16", "fp8"],
            "suite": ["published"] * 2,
            "task": ["mmlu"] * 2,
            "metric": ["acc"] * 2,
            "value": [68.0, 67.5],
            "is_primary": [True, True],
            "status": ["ok", "ok"],
        }
    ).to_parquet(tmp_path / "scores" / "hand_entered.parquet")
    assert main(["compare", "--results", str(tmp_path)]) == 0
    table = pd.read_parquet(tmp_path / "compare" / "comparisons.parquet").set_index(["suite", "task"])
    assert table.loc[("published", "*"), "recovery"] == pytest.approx(67.5 / 68 * 100)
    assert pd.isna(table.loc[("published", "*"), "diff_lo"]) and pd.notna(table.loc[("s", "*"), "diff_lo"])
    from evalkit.compare.recovery import aggregate_results

    text = aggregate_results(tmp_path)
    assert "99.3%, no CI" in text and "100.0% [" in text


def test_9_humaneval_plus_has_its_verdict_in_compare_and_the_gate(tmp_path: Path) -> None:
    base = (np.random.default_rng(9).random(300) < 0.6).astype(int)
    cells = {
        ("m", f, "humaneval"): {"humaneval": base, "humaneval_plus": b}
        for f, b in (("bf16", base), ("fp8", _flips(base, 45, 0)))
    }
    _store(tmp_path, cells)
    table = _table(tmp_path).set_index("task")
    assert table.loc["humaneval_plus", "verdict"] == "degraded"
    from evalkit.compare.policy import Policy, gate

    assert "m/fp8/humaneval/humaneval_plus: degraded (supporting)" in gate(table.reset_index(), Policy())


def test_9_token_kl_standard_errors_are_clustered_by_prompt() -> None:
    from evalkit.compare.token_divergence import summarize

    # 20 prompts of 50 tokens; a prompt's tokens share its KL (its context), so there are 20 draws, not 1000
    kl = np.repeat(np.random.default_rng(9).gamma(2.0, 0.01, 20), 50)
    prompt = np.repeat(np.arange(20), 50)
    s = summarize(kl, kl < 0.02, prompt)
    per_prompt_se = kl[::50].std(ddof=1) / np.sqrt(20)
    assert s["kl_mean_se"] == pytest.approx(per_prompt_se, rel=1e-9)
