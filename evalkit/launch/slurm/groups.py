"""What a Slurm sweep submits, decided without a cluster: quantize jobs, evaluation job arrays, the aggregate job.

Jobs asking for the same resources share one job array (one sbatch, one line in squeue). A job whose checkpoint a
quantize job must produce first waits for that job (afterok), and a dependency holds for a whole array, so such jobs
get arrays of their own: one per quantize job. That way a failed quantization stops only the jobs that needed its
checkpoint. Quantize jobs are deduplicated by the checkpoint they produce. Pure: no process, no file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evalkit.core.resources import JobResources


@dataclass(frozen=True)
class EvalJobSpec:
    """One model x format job of a sweep, as the sweeper validated it, ready to run as a Slurm array task."""

    name: str
    """"<model>.<format>"."""
    overrides: tuple[str, ...]
    """The overrides the job composes its config from (its pending benchmarks only)."""
    config_hash: str
    """Hash of the config the sweeper validated; the job refuses to run if what it composes differs."""
    cells: tuple[str, ...]
    """Keys of the cells it runs."""
    job_dir: str
    """Absolute: `paths.jobs/<sweep>/<model>.<format>`."""
    resources: JobResources
    checkpoint: str
    """The checkpoint's identity (Cell.checkpoint), e.g. "recipe:<hash>": equal for jobs serving the same one."""
    needs_quantization: bool
    """Its checkpoint comes from a recipe and is not cached: a quantize job must produce it first."""
    limit_note: str = ""
    """Why its time limit exceeds the configured one ("llama-3.1-8b-instruct.bf16: 240 -> 4530 min, ruler ~46
    GPU-h"), empty when it does not: said when Slurm refuses the limit."""


@dataclass(frozen=True)
class QuantizeSpec:
    """A quantize job: produces one checkpoint (`python -m evalkit.pipeline.checkpoint` with these overrides)."""

    checkpoint: str
    name: str
    overrides: tuple[str, ...]
    config_hash: str
    job_dir: str
    cells: tuple[str, ...]
    """Every cell waiting for this checkpoint."""


@dataclass(frozen=True)
class EvalGroup:
    """One job array: jobs with equal resources that wait for the same quantize job (or none)."""

    resources: JobResources
    after: str | None
    """Checkpoint identity of the QuantizeSpec the array waits for (afterok); None: it starts when resources allow."""
    jobs: tuple[EvalJobSpec, ...]


@dataclass(frozen=True)
class SubmissionPlan:
    quantize: tuple[QuantizeSpec, ...]
    """All with `quantize_resources`: submitted as one array, before everything else."""
    quantize_resources: JobResources
    groups: tuple[EvalGroup, ...]
    aggregate_resources: JobResources
    """The aggregate job runs after every other job has ended, whatever their outcome (afterany)."""

    @property
    def jobs(self) -> list[EvalJobSpec]:
        return [job for group in self.groups for job in group.jobs]


def quantize_specs(jobs: Sequence[EvalJobSpec]) -> list[QuantizeSpec]:
    """One quantize job per checkpoint to produce, in the order jobs need them; a checkpoint several jobs serve
    (same model x format under other settings) is produced once, by the first job's overrides."""
    by_checkpoint: dict[str, QuantizeSpec] = {}
    for job in jobs:
        if not job.needs_quantization:
            continue
        seen = by_checkpoint.get(job.checkpoint)
        if seen is None:
            by_checkpoint[job.checkpoint] = QuantizeSpec(
                job.checkpoint, job.name, job.overrides, job.config_hash, job.job_dir, job.cells
            )
        else:
            by_checkpoint[job.checkpoint] = QuantizeSpec(
                seen.checkpoint, seen.name, seen.overrides, seen.config_hash, seen.job_dir, seen.cells + job.cells
            )
    return list(by_checkpoint.values())


def group_jobs(jobs: Sequence[EvalJobSpec]) -> list[EvalGroup]:
    """Arrays to submit: jobs grouped by (resources, quantize job they wait for), in order of first appearance."""
    groups: dict[tuple[JobResources, str | None], list[EvalJobSpec]] = {}
    for job in jobs:
        key = (job.resources, job.checkpoint if job.needs_quantization else None)
        groups.setdefault(key, []).append(job)
    return [EvalGroup(resources, after, tuple(members)) for (resources, after), members in groups.items()]


def plan_submission(
    jobs: Sequence[EvalJobSpec], quantize_resources: JobResources, aggregate_resources: JobResources
) -> SubmissionPlan:
    return SubmissionPlan(
        quantize=tuple(quantize_specs(jobs)),
        quantize_resources=quantize_resources,
        groups=tuple(group_jobs(jobs)),
        aggregate_resources=aggregate_resources,
    )
