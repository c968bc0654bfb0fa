"""What evalkit relies on from Slurm and submitit, checked on a real local cluster (see conftest.py).

Every wait has a deadline: a state Slurm or submitit misreads must fail a test, not hang it. Each test uses its own
submitit folder, since job ids restart at 1 whenever the cluster starts afresh.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import cloudpickle
import polling
import pytest
import submitit
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from submitit.core.utils import UncompletedJobError

from evalkit.core.errors import SubmissionError
from evalkit.launch.base import JobState
from evalkit.launch.slurm import state as slurm_state
from evalkit.launch.slurm.sbatch import render_sbatch
from evalkit.launch.slurm.state import cancel, job_states
from evalkit.launch.slurm.submit import check_submittable, submission_errors

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

# Jobs unpickle what they run; pytest imports this file under a name the job's interpreter cannot import, so its
# functions and classes travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ROOT = Path(__file__).parents[2]
WAIT_S = 120.0
until = partial(polling.until, timeout=WAIT_S)


# ---------------------------------------------------------------- helpers


def executor(folder: Path, **params: Any) -> submitit.AutoExecutor:
    ex = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    ex.update_parameters(**{"timeout_min": 5, "cpus_per_task": 1, "mem_gb": 1, **params})
    return ex


def result(job: submitit.Job[Any], timeout: float = WAIT_S) -> Any:
    """job.result() with a deadline (submitit's own waits forever while it reads a state as unfinished)."""
    until(
        f"job {job.job_id} to finish (log: {job.paths.stdout})",
        lambda: job.done(force_check=True),
        timeout=timeout,
        every=0.5,
    )
    # A job that ended without a result pickle (cancelled) makes result() wait 15 s for a slow shared filesystem;
    # on one local disk 1 s is plenty.
    job._results_timeout_s = 1
    return job.result()


def state_of(job_id: str) -> JobState:
    return job_states([job_id])[job_id]


def wait_state(job_id: str, states: Iterable[JobState], timeout: float = WAIT_S) -> JobState:
    wanted = set(states)
    return until(
        f"job {job_id} in {sorted(s.value for s in wanted)}",
        lambda: (s := state_of(job_id)) in wanted and s,
        timeout=timeout,
    )


def sbatch(*args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip().split(";")[0]


def queued_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, timeout=60)
    return set(out.stdout.split())


# ---------------------------------------------------------------- what the jobs run


def add(a: int, b: int) -> int:
    return a + b


def square(x: int) -> int:
    return x * x


class Restartable(submitit.helpers.Checkpointable):
    """Counts its starts in `marker`; the first start waits to be requeued, the second returns the count."""

    def __call__(self, marker: str) -> int:
        path = Path(marker)
        with path.open("a") as f:
            f.write("start\n")
        starts = len(path.read_text().splitlines())
        if starts == 1:
            time.sleep(600)
        return starts


class Resumable(submitit.helpers.Checkpointable):
    """Advances `position` until preempted; submitit's checkpoint() pickles it, the requeued job resumes from it."""

    def __init__(self) -> None:
        self.position = 0

    def __call__(self, marker: str) -> int:
        Path(marker).write_text(f"{self.position}\n")
        if self.position > 0:
            return self.position
        while True:
            self.position += 1
            time.sleep(0.1)


# ---------------------------------------------------------------- submitit on the cluster


def test_submit_returns_result_and_overhead(tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    ex = executor(tmp_path)
    t0 = time.monotonic()
    job = ex.submit(add, 2, 3)
    t_submitted = time.monotonic()
    until("job to start", lambda: state_of(job.job_id) in (JobState.RUNNING, JobState.COMPLETED), every=0.02)
    t_running = time.monotonic()
    until("result pickle", job.paths.result_pickle.exists, every=0.02)
    t_result = time.monotonic()
    assert result(job) == 5
    t_seen = time.monotonic()
    timings = {
        "sbatch": t_submitted - t0,
        "to_running": t_running - t_submitted,
        "to_result_file": t_result - t_submitted,
        "to_result_seen": t_seen - t_submitted,
    }
    for k, v in timings.items():
        record_property(k, round(v, 3))
    print("trivial job overhead (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    assert until("accounting to record it", lambda: state_of(job.job_id) is JobState.COMPLETED)


def test_map_array(tmp_path: Path) -> None:
    jobs = executor(tmp_path).map_array(square, range(4))
    array_id = jobs[0].job_id.split("_")[0]
    assert [j.job_id for j in jobs] == [f"{array_id}_{i}" for i in range(4)]
    assert [result(j) for j in jobs] == [0, 1, 4, 9]
    states = until(
        "all tasks COMPLETED", lambda: (s := job_states([array_id])) and set(s.values()) == {JobState.COMPLETED} and s
    )
    assert sorted(states) == [j.job_id for j in jobs]


def test_scancel_is_seen_as_cancelled(tmp_path: Path) -> None:
    job = executor(tmp_path).submit(time.sleep, 600)
    wait_state(job.job_id, [JobState.RUNNING])
    subprocess.run(["scancel", job.job_id], check=True, timeout=60)
    with pytest.raises(UncompletedJobError, match="CANCELLED"):
        result(job, timeout=60)
    assert job.state.startswith("CANCELLED")
    # squeue shows COMPLETING while slurmd still tears the step down; then accounting says CANCELLED
    assert wait_state(job.job_id, [JobState.CANCELLED, JobState.COMPLETED, JobState.FAILED]) is JobState.CANCELLED


def test_scontrol_requeue_restarts_checkpointable(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    job = executor(tmp_path / "sub").submit(Restartable(), str(marker))
    until("first start", marker.exists)
    subprocess.run(["scontrol", "requeue", job.job_id], check=True, timeout=60)
    # a requeued job waits cred_expire + 1 s (11 s here) before it may start again
    assert result(job) == 2
    # the result pickle exists a moment before the job ends
    wait_state(job.job_id, [JobState.COMPLETED])


def test_preemption_checkpoints_and_resumes(tmp_path: Path) -> None:
    """Preemption (SIGUSR2 through Slurm): submitit calls checkpoint(), requeues the job from inside it, and the
    restarted job carries the pickled state. timeout_min=60: shorter limits make submitit read any signal as a
    timeout (it reserves 10 minutes), which would spend max_num_timeout."""
    marker = tmp_path / "position"
    job = executor(tmp_path / "sub", timeout_min=60).submit(Resumable(), str(marker))
    until("first start", lambda: marker.exists() and marker.read_text() == "0\n")
    time.sleep(1.0)
    job._interrupt()  # submitit's test hook: scancel --signal TERM, then USR2
    position = result(job)
    assert position > 1
    assert marker.read_text() == f"{position}\n"


# ---------------------------------------------------------------- refused at submission


@pytest.mark.parametrize(
    ("params", "slurm_says"),
    [
        ({"slurm_partition": "nosuch"}, "invalid partition specified: nosuch"),
        ({"gpus_per_node": 1}, "Invalid generic resource (gres) specification"),
        ({"slurm_gres": "gpu:1"}, "Invalid generic resource (gres) specification"),
    ],
    ids=["partition", "gpus_per_node", "gres"],
)
def test_impossible_request_fails_at_submission(tmp_path: Path, params: dict[str, Any], slurm_says: str) -> None:
    ex = executor(tmp_path, **params)
    before = queued_ids()
    with pytest.raises(SubmissionError) as err, submission_errors():
        ex.submit(add, 1, 2)
    assert slurm_says in err.value.message
    assert "next:" in err.value.message
    assert queued_ids() == before


def test_check_submittable_refuses_before_anything_is_submitted(tmp_path: Path) -> None:
    conf = SlurmQueueConf(submitit_folder=str(tmp_path / "%j"), name="dry", timeout_min=5, cpus_per_task=1)
    before = queued_ids()
    check_submittable(render_sbatch(conf, python=sys.executable))
    for bad, slurm_says in [({"partition": "nosuch"}, "invalid partition"), ({"gres": "gpu:1"}, "gres")]:
        script = render_sbatch(SlurmQueueConf(**{**conf.__dict__, **bad}), python=sys.executable)
        with pytest.raises(SubmissionError, match=slurm_says):
            check_submittable(script, name="llama-3.1-8b-instruct.bf16")
    assert queued_ids() == before


def test_render_matches_the_script_submitit_writes(tmp_path: Path) -> None:
    conf = SlurmQueueConf(
        submitit_folder=str(tmp_path / "%j"),
        name="render-check",
        timeout_min=7,
        mem_gb=1,
        cpus_per_task=1,
        setup=["export EVALKIT_SMOKE=1"],
        additional_parameters={"comment": "evalkit"},
    )
    ex = executor(tmp_path)
    # what the launcher always passes (its schema's defaults), so that both sides ask for the same
    ex.update_parameters(
        name=conf.name,
        timeout_min=conf.timeout_min,
        nodes=conf.nodes,
        tasks_per_node=conf.tasks_per_node,
        slurm_signal_delay_s=conf.signal_delay_s,
        slurm_setup=conf.setup,
        slurm_additional_parameters=conf.additional_parameters,
    )
    job = ex.submit(add, 0, 0)
    assert result(job) == 0
    assert job.paths.submission_file.read_text() == render_sbatch(conf, python=shlex.quote(sys.executable))


# ---------------------------------------------------------------- Hydra's submitit launcher


def test_hydra_submitit_launcher_runs_a_job_array(tmp_path: Path) -> None:
    """A multirun through conf/launcher/slurm.yaml submits one array and returns once every result is collected."""
    jobs_dir = tmp_path / "jobs"
    cmd = [
        sys.executable,
        str(Path(__file__).with_name("hydra_smoke_app.py")),
        "--multirun",
        f"hydra.searchpath=[file://{ROOT / 'conf'}]",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"paths.jobs={jobs_dir}",
        "x=1,2,3",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{shlex.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    folder = jobs_dir / "smoke" / ".submitit"
    # one folder per array task (<A>_<i>), and <A>/ holding the array's one submission script
    task_dirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and "_" in p.name)
    array_id = task_dirs[0].split("_")[0]
    assert task_dirs == [f"{array_id}_{i}" for i in range(3)], task_dirs
    returns = [submitit.SlurmJob(folder=folder / "%j", job_id=d).result() for d in task_dirs]
    assert [r.return_value for r in returns] == [10, 20, 30]
    # the script the launcher submitted is the one evalkit renders from the same launcher settings
    expected = SlurmQueueConf(
        submitit_folder=str(folder / "%j"),
        name="evalkit.smoke",
        timeout_min=5,
        mem_gb=1,
        cpus_per_task=1,
        gpus_per_node=0,
        nodes=1,
        tasks_per_node=1,
        setup=[f"source {ROOT}/.venv/bin/activate"],
        max_num_timeout=3,
    )
    submitted = (folder / array_id / f"{array_id}_submission.sh").read_text()
    assert submitted == render_sbatch(expected, python=shlex.quote(sys.executable), array_size=3)


# ---------------------------------------------------------------- evalkit.launch.slurm.state


def test_job_states_pending_failed_and_unknown() -> None:
    held = sbatch("--hold", "-o", "/dev/null", "--wrap", "true")
    failing = sbatch("-o", "/dev/null", "--wrap", "exit 3")
    try:
        wait_state(failing, [JobState.FAILED])
        states = job_states([held, failing, "999999"])
        assert states == {held: JobState.PENDING, failing: JobState.FAILED, "999999": JobState.NOT_FOUND}
        assert not states[held].finished and states[failing].finished
        # the accounting database answers too (for jobs slurmctld has already forgotten)
        until("sacct to record the failure", lambda: slurm_state._sacct([failing]).get(failing) is JobState.FAILED)
    finally:
        cancel([held])
    assert wait_state(held, [JobState.CANCELLED])


def test_cancel_array_and_finished_jobs(tmp_path: Path) -> None:
    jobs = executor(tmp_path).map_array(time.sleep, [600, 600, 600])
    array_id = jobs[0].job_id.split("_")[0]
    until("a task running", lambda: JobState.RUNNING in job_states([array_id]).values())
    cancel([array_id])
    states = until(
        "every task CANCELLED",
        lambda: (s := job_states([array_id])) and set(s.values()) == {JobState.CANCELLED} and s,
    )
    assert sorted(states) == sorted(j.job_id for j in jobs)
    cancel([array_id, "999999"])  # finished and unknown ids are not errors
    for job in jobs:
        with pytest.raises(UncompletedJobError):
            result(job, timeout=60)


def test_requeued_job_reads_as_running_again(tmp_path: Path) -> None:
    job = executor(tmp_path).submit(time.sleep, 600)
    wait_state(job.job_id, [JobState.RUNNING])
    subprocess.run(["scontrol", "requeue", job.job_id], check=True, timeout=60)
    # waiting to restart (PENDING), then RUNNING again: never a finished state in between
    seen: list[JobState] = []

    def restarted() -> bool:
        seen.append(state_of(job.job_id))
        return JobState.PENDING in seen and seen[-1] is JobState.RUNNING

    until("restart", restarted, every=0.2)
    assert not any(s.finished for s in seen), seen
    cancel([job.job_id])
    wait_state(job.job_id, [JobState.CANCELLED])


def test_job_states_of_nothing_calls_nothing() -> None:
    assert job_states([]) == {}
    cancel([])


def test_environment_points_at_the_test_cluster() -> None:
    assert os.environ.get("SLURM_CONF")
    assert subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30).returncode == 0
