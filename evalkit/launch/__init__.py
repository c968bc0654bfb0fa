"""Running sweeps on Slurm.

Pure, tested without a cluster: `resources` (what a job asks for), `sbatch` (the script it becomes), `groups` (jobs
into arrays, quantize dependencies), `record` (jobs/<sweep>/slurm_jobs.json), `describe` (dry run and submission
tables). At the edge, tested against the local cluster of scripts/slurm (pytest marker `slurm`): `submit` (sbatch
--test-only, refusals), `executor` and `sweep` (submission with submitit), `tasks` (what runs inside the jobs),
`slurm_state` (squeue / sacct / scancel).
"""

from evalkit.core.errors import SlurmError, SubmissionError
from evalkit.core.resources import JobResources, job_resources
from evalkit.launch.resources import launcher_conf
from evalkit.launch.sbatch import render_sbatch, sbatch_parameters, submit_command
from evalkit.launch.slurm_state import JobState, cancel, job_states
from evalkit.launch.submit import as_submission_error, check_submittable, submission_errors

__all__ = [
    "JobResources",
    "JobState",
    "SlurmError",
    "SubmissionError",
    "as_submission_error",
    "cancel",
    "check_submittable",
    "job_resources",
    "job_states",
    "launcher_conf",
    "render_sbatch",
    "sbatch_parameters",
    "submission_errors",
    "submit_command",
]
