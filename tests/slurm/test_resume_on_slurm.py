"""A multi-run lm-eval cell requeued mid-cell on the real local Slurm resumes where it stopped: the runs it finished
are not run again, the run it was in sends only the requests lm-eval's cache has no answer for, and its rows equal
those of the same cell run uninterrupted.

  REFERENCE  the cell uninterrupted, in sweep folders of its own (`evalkit sweep --wait`).
  RESUMED    the same cell (same id); its job is requeued (`scontrol requeue`) once its first two runs are recorded
             done and the third run's cache holds answers; the restarted job finishes the cell.

The cell: `smoke_generate` with three runs (Winogrande 0-shot log-likelihoods, ARC generation, GSM8K 8-shot
generation on 12 documents: the long one, where the requeue falls), the demo model served in fp32 (this machine's
CPUs may lack native bf16) with one request in flight: vLLM on CPU is not batch-invariant, and a resumed run batches
differently from an uninterrupted one (fewer requests left), so only then are equal rows expected of any rerun.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import polling
import pytest
from slurm.test_sweep_on_slurm import seed_bf16_checkpoint

from evalkit.launch.base import JobState
from evalkit.launch.record import read as read_record
from evalkit.launch.slurm.state import job_states

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
BENCH = "smoke_generate"
GSM_DOCS = 12
RUNS = (
    "[{name:wino,tasks:[winogrande],num_fewshot:0,add_bos_token:true,max_length:4096},"
    "{name:arc,tasks:[arc_challenge_llama],num_fewshot:0,apply_chat_template:true,fewshot_as_multiturn:true,"
    "max_length:3940,demo_max_gen_toks:16},"
    "{name:gsm,tasks:[gsm8k_llama],num_fewshot:8,apply_chat_template:true,fewshot_as_multiturn:true,"
    "max_length:4096,demo_max_gen_toks:96}]"
)
STEP_S = 900.0
until = partial(polling.until, timeout=STEP_S, every=0.5)


@dataclass
class Sweeps:
    tmp: Path
    evidence: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def grid(self, name: str) -> list[str]:
        return [
            "launcher=slurm",
            f"model={MODEL}",
            "format=bf16",
            f"benchmark={BENCH}",
            f"benchmarks.{BENCH}.settings.runs={RUNS}",
            f"benchmarks.{BENCH}.settings.num_concurrent=1",
            f"benchmarks.{BENCH}.data.gsm8k.data_files.test={self.tmp / 'gsm8k.jsonl'}",
            "server.dtype=float32",
            "model.resources.cpus_per_task=1",
            f"paths.results={self.tmp / name / 'results'}",
            f"paths.jobs={self.tmp / name / 'jobs'}",
            f"paths.checkpoints={self.tmp / 'checkpoints'}",
            f"sweep={name}",
        ]

    def evalkit(self, *args: str, name: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "evalkit.cli", *args, *self.grid(name)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        (self.tmp / f"{name}-{args[0]}.txt").write_text(f"$ {cmd}\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def cell_dir(self, name: str) -> Path:
        return self.tmp / name / "jobs" / name / f"{MODEL}.bf16" / BENCH

    def log(self, name: str) -> str:
        path = self.tmp / name / "jobs" / name / f"{MODEL}.bf16" / "job.log"
        return path.read_text() if path.exists() else ""

    def rows(self, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The cell's rows without what differs between any two runs (ids, times, paths)."""
        results = self.tmp / name / "results"
        scores = pd.read_parquet(results / "scores")[
            ["task", "metric", "filter", "value", "stderr", "n_samples", "is_primary", "status"]
        ]
        samples = pd.read_parquet(results / "samples")
        samples = samples[["task", "doc_id", "prompt_hash", "target", "response", "metrics"]]
        samples = samples.assign(metrics=samples["metrics"].astype(str))
        return (
            scores.sort_values(["task", "metric", "filter"]).reset_index(drop=True),
            samples.sort_values(["task", "doc_id"]).reset_index(drop=True),
        )


def _done_runs(cell: Path) -> set[str]:
    return {p.parts[-3] for p in cell.glob("progress/*/*/*/done.json")}


def _cached(cell: Path, run: str) -> int:
    total = 0
    for db in cell.glob(f"progress/*/{run}/*/cache_rank*.db"):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                total += conn.execute('SELECT COUNT(*) FROM "unnamed"').fetchone()[0]
        except sqlite3.Error:
            continue
    return total


def _cell_seconds(log: str) -> list[float]:
    return [float(s) for s in re.findall(rf"{BENCH} done in (\d+)s", log)]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweeps]:
    s = Sweeps(tmp_path_factory.mktemp("slurm-resume"))
    # the shipped questions, numbered so that no two documents send the same request (lm-eval's cache keys are the
    # requests: a repeated question would be answered from the cache even in the uninterrupted run's terms)
    docs = [json.loads(line) for line in (REPO / "data/openai/gsm8k/main/test.jsonl").read_text().splitlines()]
    docs = (docs * GSM_DOCS)[:GSM_DOCS]
    numbered = [{**d, "question": f"Problem {i + 1}. {d['question']}"} for i, d in enumerate(docs)]
    (s.tmp / "gsm8k.jsonl").write_text("".join(json.dumps(d) + "\n" for d in numbered))
    seed_bf16_checkpoint(s.tmp / "checkpoints")
    try:
        _run_scenario(s)
        print("\nslurm resume timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in s.timings.items()))
        yield s
    finally:
        for name in ("resume-ref", "resume-it"):
            cmd = [sys.executable, "-m", "evalkit.cli", "cancel", *s.grid(name)]
            subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=300)


def _run_scenario(s: Sweeps) -> None:
    t0 = time.monotonic()
    s.evalkit("sweep", "--wait", name="resume-ref", timeout=2 * STEP_S)
    s.timings["reference sweep (--wait)"] = time.monotonic() - t0

    s.evalkit("sweep", name="resume-it")
    job = read_record(s.tmp / "resume-it" / "jobs" / "resume-it")
    assert job is not None
    job_id = next(j.job_id for j in job.submissions[0].jobs if j.kind == "eval")
    cell = s.cell_dir("resume-it")
    until("two runs done, the third begun", lambda: _done_runs(cell) >= {"wino", "arc"} and _cached(cell, "gsm") >= 2)
    s.evidence["cached_at_requeue"] = _cached(cell, "gsm")
    status = {r: cell / "lm_eval" / r / "status.json" for r in ("wino", "arc")}
    s.evidence["done_status_mtimes"] = {r: p.stat().st_mtime for r, p in status.items()}
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60, capture_output=True)
    s.evidence["requeued_at"] = time.time()
    until("the requeued job to complete", lambda: job_states([job_id])[job_id] is JobState.COMPLETED)
    s.evidence["job_id"] = job_id


def test_requeued_cell_keeps_its_finished_runs_and_cached_requests(sweeps: Sweeps) -> None:
    log = sweeps.log("resume-it")
    job_id = sweeps.evidence["job_id"]
    assert log.count(f"Slurm job {job_id} ") == 2, log  # it ran, was requeued, ran again
    assert f"{BENCH} interrupted by the job's stop; left pending" in log
    seen = re.search(rf"resuming {BENCH}: 2 of 3 runs done, (\d+) cached requests", log)
    assert seen is not None, log
    cached = int(seen.group(1))
    assert cached >= sweeps.evidence["cached_at_requeue"] >= 2
    cell = sweeps.cell_dir("resume-it")
    # the finished runs were not run again; the interrupted one sent only what its cache did not answer
    for run, mtime in sweeps.evidence["done_status_mtimes"].items():
        assert (cell / "lm_eval" / run / "status.json").stat().st_mtime == mtime, run
    assert '"name": "gsm"' in (cell / "lm_eval" / "batch.json").read_text()
    assert '"name": "wino"' not in (cell / "lm_eval" / "batch.json").read_text()
    gsm_log = (cell / "lm_eval" / "gsm" / "lm_eval.log").read_text()
    assert f"Cached requests: {cached}, Requests remaining: {GSM_DOCS - cached}" in gsm_log
    # committed: nothing of the cell's kept work is left to be mistaken for a later run's
    assert not (cell / "progress").exists()


def test_resumed_cell_rows_equal_the_uninterrupted_cells(sweeps: Sweeps) -> None:
    ref_scores, ref_samples = sweeps.rows("resume-ref")
    scores, samples = sweeps.rows("resume-it")
    assert set(ref_scores["status"]) == {"ok"}
    assert (ref_samples["task"] == "gsm8k_llama").sum() == GSM_DOCS
    assert {"winogrande", "arc_challenge_llama"} <= set(ref_samples["task"])
    pd.testing.assert_frame_equal(scores, ref_scores)
    pd.testing.assert_frame_equal(samples, ref_samples)


def test_resume_timings(sweeps: Sweeps, record_property: Any) -> None:
    ref = _cell_seconds(sweeps.log("resume-ref"))
    resumed = _cell_seconds(sweeps.log("resume-it"))
    assert len(ref) == 1 and len(resumed) == 1
    sweeps.timings["reference cell (s)"] = ref[0]
    sweeps.timings["resumed cell after the requeue (s)"] = resumed[0]
    for k, v in sweeps.timings.items():
        record_property(k, round(v, 1))
    print("\nresume timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in sweeps.timings.items()))
