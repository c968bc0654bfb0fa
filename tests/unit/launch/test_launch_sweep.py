"""The parts of a Slurm submission that need no cluster: the site config, the list of sbatch requests a dry run shows
and checks, and which cells are still in flight (Slurm's answer given: its query runs in tests/slurm)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from evalkit.core.cell import CellKey
from evalkit.core.resources import JobResources
from evalkit.launch import record
from evalkit.launch.base import JobState
from evalkit.launch.record import Submission, SubmittedJob
from evalkit.launch.slurm import submission as sweep
from evalkit.launch.slurm.groups import EvalJobSpec, plan_submission
from evalkit.launch.slurm.resources import AGGREGATE_RESOURCES

CPU = JobResources(0, 1, 2, 12, 120, 1, 1)
QUANT = JobResources(0, 1, 1, 4, 60, 1, 1)


def spec(fmt: str, quantize: bool = False) -> EvalJobSpec:
    return EvalJobSpec(
        name=f"demo.{fmt}",
        overrides=(f"format={fmt}",),
        config_hash="h",
        cells=(f"demo__{fmt}__smoke",),
        job_dir=f"/j/demo.{fmt}",
        resources=CPU,
        checkpoint=f"recipe:{fmt}" if quantize else "gguf:x",
        needs_quantization=quantize,
    )


def site(**extra: object) -> sweep.SlurmSweep:
    launcher = OmegaConf.create(
        {
            "_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
            "submitit_folder": "jobs/s/.submitit/%j",
            "name": "evalkit.s",
            "partition": "debug",
            **extra,
        }
    )
    return sweep.SlurmSweep(
        name="s",
        sweep_dir=Path("/p/jobs/s"),
        base=sweep.launcher_base(launcher, "/p"),
        cwd="/p",
        overrides=[],
        results="/p/results",
        baseline="bf16",
        python="/p/.venv/bin/python",
    )


def test_launcher_base_is_the_schema_with_an_absolute_folder() -> None:
    base = site().base
    assert base.submitit_folder == "/p/jobs/s/.submitit/%j" and base.partition == "debug"


def test_requests_in_submission_order_with_what_they_wait_for() -> None:
    plan = plan_submission([spec("bf16"), spec("fp8", quantize=True)], QUANT, AGGREGATE_RESOURCES)
    reqs = sweep.requests(plan, site())
    assert [(r.kind, r.names, r.after) for r in reqs] == [
        ("quantize", ["demo.fp8"], ""),
        ("eval", ["demo.bf16"], ""),
        ("eval", ["demo.fp8"], "quantize demo.fp8"),
        ("aggregate", ["aggregate"], "all"),
    ]
    assert "#SBATCH --mem=4GB" in reqs[0].script and "#SBATCH --mem=12GB" in reqs[1].script
    assert reqs[1].script == reqs[2].script  # same resources: one script to check
    assert all("#SBATCH --partition=debug" in r.script and "/p/.venv/bin/python" in r.script for r in reqs)


def test_in_flight_cells_are_those_whose_latest_job_has_not_ended(tmp_path: Path) -> None:
    def job(job_id: str, cells: list[str]) -> SubmittedJob:
        return SubmittedJob(job_id, "eval", "demo.x", cells)

    a, b, c, d, e = (CellKey("demo", "x", name) for name in "abcde")
    record.append(
        tmp_path, "s", Submission("t1", [], [job("1", [str(a), str(b)]), job("2", [str(c)]), job("3", [str(d)])])
    )
    record.append(tmp_path, "s", Submission("t2", [], [job("4", [str(b)])]))
    latest = sweep.latest_jobs(tmp_path, [a, b, c, d, e])  # what is asked of Slurm, in one query
    assert sorted(latest.values()) == ["1", "2", "3", "4"]
    states = {"1": JobState.RUNNING, "2": JobState.COMPLETED, "3": JobState.NOT_FOUND, "4": JobState.PENDING}
    assert sweep.still_running(latest, states) == {a: "1", b: "4"}
    assert sweep.latest_jobs(tmp_path / "never-submitted", [a]) == {}
