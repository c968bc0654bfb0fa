"""The report page rendered from hand-made results stores (written with evalkit's store writer): every section is
there, absent data is said in one line, failures carry their error and log, side tables and figures appear when
their tables exist, and the page references nothing outside itself."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from report_store import FAILED_LOG, write_store

from evalkit.cli import main
from evalkit.report import SECTIONS, ReportInputs, load_inputs, render_report
from evalkit.report.figures import VERDICT_COLOURS


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> ReportInputs:
    return load_inputs(write_store(tmp_path_factory.mktemp("results")))


def _section(page: str, sid: str) -> str:
    match = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert match, f"section {sid} missing"
    return match.group(1)


def test_failed_cells_and_missing_perf_say_what_is_missing(inputs: ReportInputs) -> None:
    page = render_report(inputs)
    for s in SECTIONS:
        assert f'<section id="{s.id}">' in page
    assert "Performance: absent (no results/perf table" in _section(page, "performance")
    assert "Noise floor: absent" in _section(page, "noise")
    div = _section(page, "divergence")
    assert "Token divergence: not computed" in div and "Text similarity: not computed" in div
    failures = _section(page, "failures")
    assert "ServerError: vLLM server exited with code 1 before /health" in failures
    assert (
        FAILED_LOG in failures
        and "evalkit run model=smollm2-135m-instruct format=w8a8 benchmark=demo_humaneval" in failures
    )
    assert "1 failed" in page


def test_heatmap_colours_cells_by_verdict_with_the_recovery_ci(inputs: ReportInputs) -> None:
    assert inputs.comparisons is not None
    suites = inputs.comparisons[inputs.comparisons["task"] == "*"].set_index(["format", "suite"])
    assert suites.loc[("w4a16", "arc_demo"), "verdict"] == "degraded"
    assert suites.loc[("fp8", "arc_demo"), "verdict"] == "recovered"
    recovery = _section(render_report(inputs), "recovery")
    heatmap = recovery[recovery.index("<svg") : recovery.index("</svg>")]
    r = suites.loc[("w4a16", "arc_demo")]
    assert f"{r['recovery']:.1f}% [{r['recovery_lo']:.1f}, {r['recovery_hi']:.1f}]" in heatmap
    for verdict in ("recovered", "degraded", "inconclusive"):
        assert VERDICT_COLOURS[verdict] in heatmap, f"no {verdict} cell in the heatmap"


def test_tasks_section_has_a_forest_plot_and_the_flips_per_suite(inputs: ReportInputs) -> None:
    tasks = _section(render_report(inputs), "tasks")
    assert tasks.count("<svg") == 3  # arc_demo, hellaswag, mmlu
    assert "smollm2-135m-instruct / arc_demo" in tasks
    # 60 right -> wrong flips of the degraded format appear in its row
    assert re.search(r"<td>arc_demo</td><td>w4a16</td>.*?<td>60</td><td>0</td>", tasks)


def test_choice_divergence_comes_from_the_comparison(inputs: ReportInputs) -> None:
    div = _section(render_report(inputs), "divergence")
    assert "Choice divergence" in div and "<td>hellaswag</td><td>w4a16</td>" in div


def test_side_tables_render_when_present(inputs: ReportInputs) -> None:
    perf = pd.DataFrame(
        {
            "model": ["m"] * 6,
            "format": ["bf16"] * 3 + ["w8a8"] * 3,
            "use_case": ["chat"] * 6,
            "mode": ["sync", "throughput", "throughput"] * 2,
            "repeat": [1, 1, 2] * 2,
            "ttft_p50_ms": [80.0, 300.0, 320.0, 60.0, 250.0, 270.0],
            "output_tokens_per_s": [50.0, 300.0, 320.0, 60.0, 420.0, 400.0],
            "e2el_p50_ms": [1000.0, 2500.0, 2600.0, 800.0, 2000.0, 2100.0],
            "hardware": ["CPU Xeon (2 cores)"] * 6,
        }
    )
    cost = pd.DataFrame({"format": ["bf16", "w8a8"], "usd_per_million_tokens": [1.2, 0.8]})
    similarity = pd.DataFrame({"format": ["w8a8"], "rouge_l": [0.91]})
    assert inputs.comparisons is not None
    floor = inputs.comparisons.assign(n_replicates=1, floor_diff=0.75, floor_flip_rate=0.02)
    full = replace(
        inputs,
        comparisons=floor,
        perf_tables={"perf": perf, "cost": cost},
        compare_tables={"similarity": similarity},
    )
    page = render_report(full)
    performance = _section(page, "performance")
    assert "absent" not in performance and "usd_per_million_tokens" in performance
    assert performance.count("<svg") == 1 and "e2el_p50_ms against output_tokens_per_s" in performance
    assert "floor_flip_rate" in _section(page, "noise") and "absent" not in _section(page, "noise")
    assert "rouge_l" in _section(page, "divergence") and "Text similarity: not computed" not in page
    assert "CPU Xeon (2 cores)" in _section(page, "provenance")


def test_latency_curve_averages_repeated_runs() -> None:
    from evalkit.report.sections import _curve_points

    runs = pd.DataFrame(
        {"format": ["a", "a", "a"], "mode": ["t", "t", "s"], "tps": [400.0, 420.0, 50.0], "lat": [2.0, 2.2, 1.0]}
    )
    points = _curve_points(runs, "tps", "lat", None).set_index("mode")
    assert points.loc["t", "tps"] == pytest.approx(410.0) and points.loc["t", "lat"] == pytest.approx(2.1)
    assert len(points) == 2


def test_no_comparison_is_one_line_per_section(tmp_path: Path) -> None:
    """A results folder with only a failed cell: the comparison sections say why they are empty."""
    write_store(tmp_path / "full")
    only_failed = tmp_path / "failed"
    (only_failed / "scores").mkdir(parents=True)
    for f in (tmp_path / "full" / "scores").glob("*demo_humaneval*.parquet"):
        f.rename(only_failed / "scores" / f.name)
    page = render_report(load_inputs(only_failed))
    assert "No comparison vs the bf16 baseline: no completed cells" in _section(page, "recovery")
    assert "No per-task comparison" in _section(page, "tasks")
    assert "<svg" not in page


def test_page_is_self_contained_and_escapes_text(inputs: ReportInputs) -> None:
    scores = inputs.scores.copy()
    scores.loc[scores["status"] == "failed", "error"] = "<script>alert(1)</script>"
    page = render_report(replace(inputs, scores=scores))
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<link" not in page and "@import" not in page
    # every src/href is a fragment link or the SVG namespace: nothing to fetch
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith("#") for r in refs), refs


def test_cli_writes_the_report_and_prints_its_path(inputs: ReportInputs, capsys: pytest.CaptureFixture[str]) -> None:
    out = Path(inputs.results) / "out" / "r.html"
    assert main(["report", "--results", inputs.results, "--out", str(out)]) == 0
    assert f"report: {out.resolve()}" in capsys.readouterr().out
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", "--results", str(out.parent / "nowhere")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_a_sweep_writes_its_report_beside_the_results(tmp_path: Path) -> None:
    """What `evalkit sweep` (and the Slurm aggregate job) prints at its end: the report's path, or why there is none."""
    from evalkit.report import write_sweep_report

    assert "not written" in write_sweep_report(tmp_path / "nothing-yet")
    root = write_store(tmp_path / "results", with_failure=True)
    line = write_sweep_report(root)
    assert line == f"report: {(root / 'report.html').resolve()}"
    assert "<h2>Recovery" in (root / "report.html").read_text()
