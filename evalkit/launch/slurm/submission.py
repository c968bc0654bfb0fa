"""Submitting a sweep to Slurm: check every distinct request with `sbatch --test-only`, then submit quantize jobs,
evaluation job arrays (afterok on the quantize job they need) and an aggregate job (afterany on all), record them in
`jobs/<sweep>/slurm_jobs.json`, and link each job's Slurm logs into its model x format folder.

Only the site settings of Hydra's launcher config are used (`hydra.launcher` under `launcher=slurm`: partition,
account, qos, constraint, setup, extra sbatch options, array parallelism, signal delay, max requeues, submitit
folder); sizes come per job from `job_resources`. See `evalkit.launch.slurm.executor` for why submitit is used directly.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from omegaconf import DictConfig, OmegaConf

from evalkit.core.cell import CellKey
from evalkit.core.resources import JobResources, job_resources
from evalkit.launch import record
from evalkit.launch.base import JobState, Request, SweepJobs, job_overrides
from evalkit.launch.record import JobKind, Submission, SubmittedJob
from evalkit.launch.slurm.describe import render_requests, render_submitted, resources_text
from evalkit.launch.slurm.executor import slurm_executor
from evalkit.launch.slurm.groups import EvalJobSpec, SubmissionPlan, plan_submission
from evalkit.launch.slurm.resources import AGGREGATE_RESOURCES, launcher_conf, plain_resources
from evalkit.launch.slurm.sbatch import render_sbatch
from evalkit.launch.slurm.state import cancel, job_states
from evalkit.launch.slurm.submit import check_submittable, submission_errors
from evalkit.pipeline.plan import JobPlan, config_hash, without_hydra


@dataclass(frozen=True)
class SlurmSweep:
    """The sweep-level facts a submission needs besides its jobs."""

    name: str
    sweep_dir: Path
    """jobs/<sweep>, absolute."""
    base: SlurmQueueConf
    """hydra.launcher, resolved: the site settings every job shares (sizes are replaced per array)."""
    cwd: str
    """Where evalkit was started: the jobs run there, so relative paths in the config mean the same."""
    overrides: list[str]
    results: str
    """Absolute results directory, for the aggregate job."""
    baseline: str
    python: str = shlex.quote(sys.executable)
    """The interpreter the jobs run, as submitit writes it into the script."""


def launcher_base(launcher: DictConfig, cwd: str) -> SlurmQueueConf:
    """`hydra.launcher` as the launcher's schema, resolved, with the submitit folder made absolute (jobs and the
    dry run's rendering must not depend on where they are read)."""
    values = OmegaConf.to_container(launcher, resolve=True)
    assert isinstance(values, dict)
    values.pop("_target_", None)
    merged = OmegaConf.merge(OmegaConf.structured(SlurmQueueConf), values)
    conf = OmegaConf.to_object(merged)
    assert isinstance(conf, SlurmQueueConf)
    return dataclasses.replace(conf, submitit_folder=os.path.join(cwd, conf.submitit_folder))


def slurm_submission(
    jobs: SweepJobs, todo: Sequence[tuple[list[str], JobPlan]]
) -> tuple[SlurmSweep, SubmissionPlan, dict[str, JobPlan]]:
    """What submitting these jobs' cells means: the sweep's site facts, the submission plan (quantize jobs, arrays
    per resources, aggregate) and each job's plan (by job name) for its task to carry."""
    config = jobs.config
    specs = []
    job_plans = {}
    for job, job_plan in todo:
        overrides = job_overrides(job, job_plan.cells)
        cfg = jobs.compose(overrides)  # exactly the config the Slurm job will compose: its hash is checked there
        specs.append(job_spec(job_plan, overrides, cfg))
        job_plans[job_plan.name] = job_plan
    primary = jobs.plans[0].cfg
    cwd = os.getcwd()
    sweep = SlurmSweep(
        name=primary.sweep,
        sweep_dir=Path(config.hydra.sweep.dir).resolve(),
        base=launcher_base(config.hydra.launcher, cwd),
        cwd=cwd,
        overrides=list(config.hydra.overrides.task),
        results=str(Path(primary.paths.results).resolve()),
        baseline=primary.baseline_format,
    )
    plan = plan_submission(specs, plain_resources(primary.quantize.resources), AGGREGATE_RESOURCES)
    return sweep, plan, job_plans


def submit_sweep(jobs: SweepJobs, *, dry_run: bool, wait: bool) -> None:
    """Submit the sweep's pending cells, except those whose job is still queued or running (two jobs would write
    them); `dry_run`: print and check what would be submitted."""
    busy = in_flight(Path(jobs.config.hydra.sweep.dir).resolve(), [c.key for _, plan in jobs.todo for c in plan.cells])
    if busy:
        print(
            f"Slurm: {len(busy)} cell(s) already queued or running, not submitted again: "
            + ", ".join(f"{key} (job {job_id})" for key, job_id in busy.items()),
            flush=True,
        )
    todo = [
        (job, plan.narrowed(left)) for job, plan in jobs.todo if (left := [c for c in plan.cells if c.key not in busy])
    ]
    if not todo:
        print("Slurm: nothing to submit.", flush=True)
        return
    sweep, submission, job_plans = slurm_submission(jobs, todo)
    launch(sweep, submission, jobs.compose, job_plans, dry_run=dry_run, wait=wait)


def job_spec(plan: JobPlan, overrides: Sequence[str], cfg: DictConfig) -> EvalJobSpec:
    """The Slurm job for a validated model x format job; `cfg` is its composed config (with Hydra's node, for the
    job folder Hydra would give it)."""
    from evalkit.checkpoints.resolve import needs_quantization
    from evalkit.launch.estimate import check_attempts, job_estimates, limit_note, with_time_limit

    job_dir = Path(str(cfg.hydra.sweep.dir), str(cfg.hydra.sweep.subdir)).resolve()
    (estimate,) = job_estimates([plan])
    # a job capped at the cluster's limit runs in attempts: its requeues at the limit must be enough to finish
    check_attempts(plan.name, estimate, int(cfg.hydra.launcher.max_num_timeout))
    return EvalJobSpec(
        name=plan.name,
        overrides=tuple(overrides),
        config_hash=config_hash(cfg),
        cells=tuple(c.key.encode() for c in plan.cells),
        job_dir=str(job_dir),
        # the time limit holds the estimated work (evalkit.launch.estimate): no job is planned to run out of time
        resources=with_time_limit(job_resources(plan.cfg.model, plan.cfg.format.name), estimate),
        checkpoint=plan.cells[0].checkpoint.encode(),
        needs_quantization=needs_quantization(plan.cfg),
        limit_note=limit_note(plan.name, estimate),
    )


def in_flight(sweep_dir: Path, keys: Sequence[CellKey]) -> dict[CellKey, str]:
    """Cells (by key) whose latest Slurm job has not ended, with that job's id. Submitting them again would make two
    jobs write one cell. One query to Slurm for all of them."""
    latest = latest_jobs(sweep_dir, keys)
    return still_running(latest, job_states(latest.values()))


def latest_jobs(sweep_dir: Path, keys: Sequence[CellKey]) -> dict[CellKey, str]:
    """Cell key -> id of the latest job of the sweep's record that runs it (cells never submitted are left out)."""
    rec = record.read(sweep_dir)
    if rec is None:
        return {}
    return {key: found[1].job_id for key in keys if (found := rec.job_for_cell(key)) is not None}


def still_running(latest: Mapping[CellKey, str], states: Mapping[str, JobState]) -> dict[CellKey, str]:
    """The entries of `latest` whose job has not ended; a job Slurm no longer knows counts as ended."""
    return {
        key: job_id
        for key, job_id in latest.items()
        if not (state := states.get(job_id, JobState.NOT_FOUND)).finished and state is not JobState.NOT_FOUND
    }


def _conf(sweep: SlurmSweep, resources: JobResources) -> SlurmQueueConf:
    return launcher_conf(sweep.base, resources)


def requests(plan: SubmissionPlan, sweep: SlurmSweep) -> list[Request]:
    """Every sbatch request the submission makes, in submission order (dependencies are left out: they name jobs
    that do not exist yet, and Slurm judges a request by its resources)."""
    out: list[Request] = []
    if plan.quantize:
        conf = _conf(sweep, plan.quantize_resources)
        names = [q.name for q in plan.quantize]
        out.append(
            Request(
                "quantize", names, resources_text(conf), render_sbatch(conf, python=sweep.python, array_size=len(names))
            )
        )
    for group in plan.groups:
        conf = _conf(sweep, group.resources)
        names = [j.name for j in group.jobs]
        after = f"quantize {group.jobs[0].name}" if group.after else ""
        script = render_sbatch(conf, python=sweep.python, array_size=len(names))
        notes = tuple(j.limit_note for j in group.jobs if j.limit_note)
        out.append(Request("eval", names, resources_text(conf), script, after=after, limit_notes=notes))
    conf = _conf(sweep, plan.aggregate_resources)
    out.append(
        Request("aggregate", ["aggregate"], resources_text(conf), render_sbatch(conf, python=sweep.python), after="all")
    )
    return out


def check(reqs: Sequence[Request]) -> None:
    """`sbatch --test-only` every distinct request; raises SubmissionError (Slurm's message) at the first refusal."""
    from evalkit.core.errors import SubmissionError
    from evalkit.launch.estimate import refusal_hint

    seen: set[str] = set()
    for req in reqs:
        if req.script in seen:
            continue
        seen.add(req.script)
        try:
            check_submittable(req.script, name=f"the {req.kind} job(s) {', '.join(req.names)}")
        except SubmissionError as err:
            if not req.limit_notes:
                raise
            raise SubmissionError(err.what, hint=f"{err.hint}; {refusal_hint(req.limit_notes)}") from err


def _links(job_dir: Path, prefix: str, job: Any, latest: str | None) -> tuple[str, str]:
    """Links in the job folder to submitit's stdout/stderr of `job` (the files appear when it starts); `latest`
    also (re)points a stable name at them, so `slurm.out` is always the current attempt's log."""
    job_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for suffix, target in (("out", job.paths.stdout), ("err", job.paths.stderr)):
        names = [f"{prefix}-{job.job_id}.{suffix}"] + ([f"{latest}.{suffix}"] if latest else [])
        for name in names:
            link = job_dir / name
            tmp = job_dir / f".{name}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(os.path.relpath(target, job_dir))
            os.replace(tmp, link)
        out.append(str(job_dir / names[0]))
    return out[0], out[1]


def _write_config(spec: EvalJobSpec, compose: Callable[[list[str]], DictConfig]) -> None:
    """The job's resolved config beside its logs (what `run_job` will see), and the overrides that make it."""
    job_dir = Path(spec.job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(without_hydra(compose(list(spec.overrides))), job_dir / "config.yaml", resolve=True)
    OmegaConf.save(OmegaConf.create(list(spec.overrides)), job_dir / "overrides.yaml")


def submit(
    plan: SubmissionPlan,
    sweep: SlurmSweep,
    compose: Callable[[list[str]], DictConfig],
    job_plans: Mapping[str, JobPlan],
) -> list[SubmittedJob]:
    """Submit quantize -> eval arrays -> aggregate; record them. If sbatch refuses anything midway (the test-only
    check passed, but the cluster changed), what was already submitted is cancelled: no half-submitted sweep.
    `job_plans`: each evaluation job's plan by job name, pickled into its task so the job does not plan again."""
    from evalkit.launch.slurm.tasks import AggregateTask, EvalTask, QuantizeTask

    submitted: list[SubmittedJob] = []
    # before the first sbatch: anything a job writes to the store is later than this
    submitted_at = datetime.now(timezone.utc).isoformat()

    def note(
        job: Any,
        kind: JobKind,
        name: str,
        cells: Sequence[str],
        after: list[str],
        r: JobResources,
        job_dir: str,
        prefix: str,
        latest: str | None = None,
    ) -> None:
        out, err = _links(Path(job_dir), prefix, job, latest)
        resources = dataclasses.asdict(r)
        submitted.append(SubmittedJob(job.job_id, kind, name, list(cells), after, resources, job_dir, out, err))

    try:
        with submission_errors():
            produced_by: dict[str, str] = {}
            if plan.quantize:
                ex = slurm_executor(_conf(sweep, plan.quantize_resources))
                with ex.batch():
                    qjobs = [ex.submit(QuantizeTask(q, sweep.cwd)) for q in plan.quantize]
                for q, job in zip(plan.quantize, qjobs, strict=True):
                    produced_by[q.checkpoint] = job.job_id
                    note(job, "quantize", q.name, q.cells, [], plan.quantize_resources, q.job_dir, "slurm-quantize")
            for group in plan.groups:
                dep = produced_by[group.after] if group.after else None
                ex = slurm_executor(_conf(sweep, group.resources), dependency=f"afterok:{dep}" if dep else None)
                with ex.batch():
                    jobs = [ex.submit(EvalTask(spec, job_plans[spec.name], sweep.cwd)) for spec in group.jobs]
                for spec, job in zip(group.jobs, jobs, strict=True):
                    _write_config(spec, compose)
                    after = [dep] if dep else []
                    note(job, "eval", spec.name, spec.cells, after, spec.resources, spec.job_dir, "slurm", "slurm")
            every = sorted({j.job_id.split("_")[0] for j in submitted}, key=int)
            ex = slurm_executor(_conf(sweep, plan.aggregate_resources), dependency="afterany:" + ":".join(every))
            agg = ex.submit(AggregateTask(sweep.results, sweep.baseline, sweep.cwd))
            note(
                agg,
                "aggregate",
                "aggregate",
                [],
                every,
                plan.aggregate_resources,
                str(sweep.sweep_dir),
                "slurm-aggregate",
            )
    except BaseException:
        cancel([j.job_id for j in submitted])
        raise
    submission = Submission(submitted_at, list(sweep.overrides), submitted)
    record.append(sweep.sweep_dir, sweep.name, submission)
    return submitted


def launch(
    sweep: SlurmSweep,
    plan: SubmissionPlan,
    compose: Callable[[list[str]], DictConfig],
    job_plans: Mapping[str, JobPlan],
    *,
    dry_run: bool,
    wait: bool,
) -> list[SubmittedJob]:
    """Check, then (unless `dry_run`) submit and print the jobs; `wait`: then follow them until all have ended."""
    reqs = requests(plan, sweep)
    if dry_run:
        from evalkit.launch.estimate import job_estimates, render_text

        names = [j.name for j in plan.jobs]
        print(render_text(names, job_estimates([job_plans[n] for n in names])), flush=True)
        print(render_requests(reqs), flush=True)
    check(reqs)
    if dry_run:
        print("\nsbatch --test-only accepts every request; nothing submitted (dry run).", flush=True)
        return []
    submitted = submit(plan, sweep, compose, job_plans)
    print(render_submitted(submitted, record.path_of(sweep.sweep_dir)), flush=True)
    if wait:
        follow([j.job_id for j in submitted])
    return submitted


def follow(job_ids: Sequence[str], poll_s: float = 10.0, out: Callable[[str], None] = print) -> dict[str, JobState]:
    """Poll Slurm until every job has ended, printing a line whenever the counts per state change."""
    last = ""
    while True:
        states = job_states(job_ids)
        counts: dict[str, int] = {}
        for state in states.values():
            counts[state.value] = counts.get(state.value, 0) + 1
        line = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        if line != last:
            out(f"[{datetime.now():%H:%M:%S}] {len(states)} job(s): {line}")
            last = line
        if all(s.finished for s in states.values()):
            return states
        time.sleep(poll_s)
