"""Running sweeps on Slurm: resources per job, the sbatch script they become, submission checks, job states.

Pure parts (`resources`, `sbatch`) are golden-file tested without a cluster; the rest talks to Slurm's client
commands and is tested against the local cluster of scripts/slurm (pytest marker `slurm`).
"""

from evalkit.errors import SlurmError, SubmissionError
from evalkit.launch.resources import JobResources, job_resources, launcher_conf
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
