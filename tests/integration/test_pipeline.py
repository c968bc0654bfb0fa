"""The whole pipeline through the `evalkit` command, as a user runs it: GGUF conversion, one real vLLM server per
model x format, real lm-eval tasks on shipped data, Parquet results; resume, single-cell re-run, kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
GRID = ["format=bf16", "benchmark=smoke_loglikelihood,smoke_generate"]

pytestmark = pytest.mark.integration


def evalkit(tmp: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    where = [f"paths.results={tmp / 'results'}", f"paths.jobs={tmp / 'jobs'}", "sweep=it"]
    cmd = [sys.executable, "-m", "evalkit.cli", *args, *where]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


def scores(tmp: Path) -> pd.DataFrame:
    return pd.read_parquet(tmp / "results" / "scores")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real sweep: bf16 x {smoke_loglikelihood, smoke_generate}, one job, one server."""
    tmp = tmp_path_factory.mktemp("pipeline")
    out = evalkit(tmp, "sweep", *GRID)
    assert "2 to run" in out.stdout
    return tmp


def test_sweep_writes_both_tables_for_every_cell(swept: Path) -> None:
    df = scores(swept)
    assert set(df["benchmark"]) == {"smoke_loglikelihood", "smoke_generate"}
    assert set(df["status"]) == {"ok"}
    assert df.groupby("benchmark")["is_primary"].sum().to_dict() == {"smoke_generate": 1, "smoke_loglikelihood": 1}
    wino = df[(df.task == "winogrande") & df.is_primary].iloc[0]
    assert 0 <= wino["value"] <= 100 and wino["n_samples"] == 5
    assert wino["lm_eval_version"] == "0.4.13" and wino["vllm_version"] not in ("", "unknown")
    assert wino["checkpoint"].startswith("gguf:") and Path(wino["checkpoint_path"]).is_dir()
    # conf/server/cpu.yaml's cpu_native: float32 on a CPU without native bf16, bf16 on one with it (issue 16)
    assert wino["served_dtype"] in ("float32", "bfloat16")
    # smoke benchmarks read shipped files: every row says so, with each file's path, sha256 and rows (issue 7)
    assert df["data_overridden"].all()
    sources = json.loads(wino["data_sources"])
    assert any(src["path"] and src["path"].endswith(".jsonl") and src["sha256"] and src["rows"] for src in sources)
    samples = pd.read_parquet(swept / "results" / "samples")
    assert set(samples["run_id"]) == set(df["run_id"])
    assert (samples["task"] == "winogrande").sum() == 5
    # one server for the two cells of the job
    server_logs = list((swept / "jobs" / "it").glob("*/server.log"))
    assert len(server_logs) == 1
    # the two cells overlapped against it (cell_concurrency 2): the second started before the first was done (a
    # cell's progress line is logged when it starts, not while it waits for a slot)
    lines = (server_logs[0].parent / "job.log").read_text().splitlines()
    second = next(i for i, line in enumerate(lines) if "[2/2] cells of" in line)
    first_done = next(i for i, line in enumerate(lines) if re.search(r"smoke_\w+ done in", line))
    assert second < first_done


def test_second_sweep_runs_nothing_and_says_so(swept: Path) -> None:
    before = scores(swept)
    out = evalkit(swept, "sweep", *GRID)
    assert "nothing to do" in out.stdout
    after = scores(swept)
    assert sorted(after["run_id"]) == sorted(before["run_id"])


def test_status_shows_done(swept: Path) -> None:
    out = evalkit(swept, "status", *GRID)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("smollm2-135m-instruct/bf16"))
    assert line.split()[1:] == ["done", "done"]


def test_kill_minus_9_mid_cell_leaves_nothing_then_sweep_completes(tmp_path: Path) -> None:
    grid = ["format=bf16", "benchmark=smoke_loglikelihood"]
    where = [f"paths.results={tmp_path / 'results'}", f"paths.jobs={tmp_path / 'jobs'}", "sweep=kill"]
    job_log = tmp_path / "jobs" / "kill" / "smollm2-135m-instruct.bf16" / "job.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalkit.cli", "run", *grid, *where],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while "[1/1]" not in (job_log.read_text() if job_log.exists() else ""):
            assert proc.poll() is None, "evalkit exited before the cell started"
            assert time.monotonic() < deadline, "the cell never started"
            time.sleep(1)
        lm_log = tmp_path / "jobs" / "kill" / "smollm2-135m-instruct.bf16" / "smoke_loglikelihood"
        while not list(lm_log.rglob("lm_eval.log")):  # lm-eval is running: the cell is mid-way
            assert time.monotonic() < deadline
            time.sleep(0.5)
        time.sleep(3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    results = tmp_path / "results"
    if (results / "scores").exists():
        assert pd.read_parquet(results / "scores").empty
        assert pd.read_parquet(results / "samples").empty
    # the server and lm-eval were children of the killed job: they must not outlive it
    job_dir = tmp_path / "jobs" / "kill" / "smollm2-135m-instruct.bf16"
    port = re.search(r"--port (\d+)", (job_dir / "server.log").read_text()).group(1)  # type: ignore[union-attr]
    time.sleep(5)
    for pattern in (f"--port {port}", str(job_dir)):
        leftovers = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        assert not leftovers, f"processes of the killed job survive ({pattern}): {leftovers}"
    out = evalkit(tmp_path, "sweep", *grid, check=True)
    assert "1 to run" in out.stdout
    df = pd.read_parquet(results / "scores")
    assert set(df["status"]) == {"ok"} and set(df["benchmark"]) == {"smoke_loglikelihood"}


def test_run_generates_then_score_replaces_exactly_one_cell_without_server(swept: Path) -> None:
    """`evalkit run` re-runs one cell of a swept grid, in the cluster flow (issue: GPUs for generation only): a job
    that only generates leaves the cell's new run uncommitted with its outputs and a marker; `evalkit score` then
    commits it with no server running. The other cell's rows are untouched."""
    grid = ["format=bf16", "benchmark=smoke_loglikelihood"]
    before = scores(swept)
    evalkit(swept, "run", "--phase", "generate", *grid)
    job_dir = swept / "jobs" / "it" / "smollm2-135m-instruct.bf16"
    assert (job_dir / "smoke_loglikelihood" / ".generated.json").is_file()
    assert sorted(scores(swept)["run_id"]) == sorted(before["run_id"])  # generated, not committed
    server_log = (job_dir / "server.log").read_text()
    out = evalkit(swept, "score", *grid)
    assert (job_dir / "server.log").read_text() == server_log  # no server was started to score
    assert "done" in out.stdout
    assert "(no server)" in (job_dir / "job.log").read_text()
    after = scores(swept)
    assert set(after["status"]) == {"ok"} and after["vllm_version"].iloc[0] not in ("", "unknown")
    gen_before = before[before.benchmark == "smoke_generate"]
    gen_after = after[after.benchmark == "smoke_generate"]
    assert gen_after["run_id"].tolist() == gen_before["run_id"].tolist()
    ll_before = set(before[before.benchmark == "smoke_loglikelihood"]["run_id"])
    ll_after = set(after[after.benchmark == "smoke_loglikelihood"]["run_id"])
    assert len(ll_after) == 1 and ll_after != ll_before
    assert len(after) == len(before)


def test_two_sweeps_at_once_run_each_cell_once(tmp_path: Path) -> None:
    """Two `evalkit sweep` started together on one results folder (issue 7): a job claims its cells (a run lock per
    cell) before its server starts, so the other sweep leaves them to it; every cell is committed exactly once."""
    grid = ["format=bf16", "benchmark=smoke_loglikelihood,smoke_generate"]
    results = tmp_path / "results"

    def start(sweep: str) -> subprocess.Popen[str]:
        where = [f"paths.results={results}", f"paths.jobs={tmp_path / 'jobs'}", f"sweep={sweep}"]
        return subprocess.Popen(
            [sys.executable, "-m", "evalkit.cli", "sweep", *grid, *where],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    procs = [start("a"), start("b")]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    df = pd.read_parquet(results / "scores")
    assert set(df["status"]) == {"ok"}
    runs = df.groupby("benchmark")["run_id"].nunique().to_dict()
    assert runs == {"smoke_loglikelihood": 1, "smoke_generate": 1}, runs  # each cell ran once, no duplicate rows
    assert not df.duplicated(["benchmark", "task", "metric", "filter"]).any()
    samples = pd.read_parquet(results / "samples")
    assert set(samples["run_id"]) == set(df["run_id"])
    logs = "".join(p.read_text() for p in (tmp_path / "jobs").glob("*/*/job.log"))
    for bench in ("smoke_loglikelihood", "smoke_generate"):
        assert logs.count(f"{bench} done in ") == 1, logs  # each cell done by exactly one of the sweeps
