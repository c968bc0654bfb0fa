"""Adaptive evaluation through the `evalkit` command, as a user runs it (issue 20): a real sweep of the baseline and
one variant format on the real vLLM server and real lm-eval, on the purpose-built demo suite (demo_adaptive: 120
easy questions, chunks of 20, margin 20 points). The sweep is killed (SIGKILL of its whole process group) right
after the variant's first chunk is committed; the same sweep again resumes at the second chunk, the rule stops the
cell before the last document, and `evalkit compare` reads its committed samples like any other cell's."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from evalkit.core.cell import CellKey
from evalkit.results.store import ResultsStore

REPO = Path(__file__).resolve().parents[2]
GRID = ["format=bf16,fp8", "benchmark=demo_adaptive"]
VARIANT = CellKey("smollm2-135m-instruct", "fp8", "demo_adaptive")

pytestmark = pytest.mark.integration


def _where(tmp: Path) -> list[str]:
    return [f"paths.results={tmp / 'results'}", f"paths.jobs={tmp / 'jobs'}", "sweep=adaptive"]


def _adaptive(tmp: Path):  # type: ignore[no-untyped-def]
    scores = tmp / "results" / "scores"
    return ResultsStore(tmp / "results").adaptive_records().get(VARIANT) if scores.is_dir() else None


def test_adaptive_sweep_killed_between_chunks_resumes_and_stops_early(tmp_path: Path) -> None:
    job_log = tmp_path / "jobs" / "adaptive" / "smollm2-135m-instruct.fp8" / "job.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalkit.cli", "sweep", *GRID, *_where(tmp_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 1500
        while (first := _adaptive(tmp_path)) is None:  # the variant's first chunk is committed: kill the sweep
            assert proc.poll() is None, "evalkit exited before the variant's first chunk was committed"
            assert time.monotonic() < deadline, "the variant's first chunk was never committed"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (first.chunks_done, first.documents, first.total, first.finished) == (1, 20, 120, False)
    store = ResultsStore(tmp_path / "results")
    baseline = CellKey("smollm2-135m-instruct", "bf16", "demo_adaptive")
    assert len(store.read_cell(baseline)[1]) == 120  # type: ignore[index]  # the baseline runs in full
    # the same sweep again: the baseline is done, the variant resumes at chunk 2 and runs until the rule stops
    out = subprocess.run(
        [sys.executable, "-m", "evalkit.cli", "sweep", *GRID, *_where(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    log = job_log.read_text()
    assert "resuming adaptive run at chunk 2/6 (20 documents committed)" in log
    assert "chunk 1/6 committed" in log.split("resuming adaptive run")[0]  # before the kill
    assert "chunk 1/6 committed" not in log.split("resuming adaptive run")[1]  # not run again
    final = _adaptive(tmp_path)
    assert final is not None and final.finished and final.stopped_early, final
    assert final.decision in ("recovered", "within-margin") and final.documents < 120
    assert final.seconds > 0 and final.baseline_seconds > 0
    cell = store.read_cell(VARIANT)
    assert cell is not None and len(cell[1]) == final.documents == cell[1]["doc_id"].nunique()
    samples = pd.read_parquet(tmp_path / "results" / "samples")
    assert set(samples["run_id"]) == set(pd.read_parquet(tmp_path / "results" / "scores")["run_id"])
    # status says how far the cell got; compare reads the subset and names the early stop
    status = subprocess.run(
        [sys.executable, "-m", "evalkit.cli", "status", *GRID, *_where(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert f"done {final.documents}/120 early" in status.stdout, status.stdout
    assert "adaptive cells spent" in status.stdout
    compare = subprocess.run(
        [sys.executable, "-m", "evalkit.cli", "compare", "--results", str(tmp_path / "results"), "--margin", "20"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert compare.returncode == 0, compare.stderr[-4000:]
    assert re.search(r"fp8.*demo_adaptive.*stopped early", compare.stdout), compare.stdout
    comparisons = pd.read_parquet(tmp_path / "results" / "compare" / "comparisons.parquet")
    row = comparisons[(comparisons["format"] == "fp8") & (comparisons["task"] == "*")]
    assert len(row) == 1 and int(row["n_docs"].iloc[0]) == final.documents
