"""Submission checks: ask Slurm itself whether it accepts a job, and keep its message when it refuses.

Slurm is the only authority on what a cluster offers (partitions, GPUs, QOS, limits), so evalkit does not
second-guess requests: `check_submittable` runs `sbatch --test-only` on the rendered script before anything of a
sweep is submitted, and `submission_errors` turns a refusal met during submission into a SubmissionError whose
message is sbatch's own stderr.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from submitit.core.utils import FailedJobError

from evalkit.core.errors import SubmissionError
from evalkit.launch.slurm._run import run

HINT = (
    "fix the request (partition, account, qos, gpus_per_node, nodes, mem_gb) in the launcher config"
    " or the model's resources"
)


def check_submittable(script: str, *, name: str = "job") -> None:
    """Raise SubmissionError with sbatch's message if Slurm would refuse `script`. Submits nothing.

    `name` says which job of a sweep the script belongs to (model x format), for the message.
    """
    proc = run(["sbatch", "--test-only"], input=script)
    if proc.returncode != 0:
        message = proc.stderr.strip() or proc.stdout.strip() or f"sbatch --test-only exited {proc.returncode}"
        raise SubmissionError(f"Slurm refuses {name}:\n{message}", hint=HINT)


def as_submission_error(exc: BaseException) -> SubmissionError | None:
    """The SubmissionError for submitit's failure to run sbatch, or None if `exc` is something else.

    submitit raises FailedJobError(stderr) from the CalledProcessError of `sbatch <script>`; a job that failed while
    running raises the same class, so the cause tells the two apart.
    """
    cause = exc.__cause__
    if not (isinstance(exc, FailedJobError) and isinstance(cause, subprocess.CalledProcessError)):
        return None
    argv = [str(a) for a in cause.cmd] if isinstance(cause.cmd, list | tuple) else str(cause.cmd).split()
    if not argv or not argv[0].endswith("sbatch"):
        return None
    stderr = cause.stderr.decode() if isinstance(cause.stderr, bytes) else (cause.stderr or "")
    message = stderr.strip() or str(exc).strip() or f"sbatch exited {cause.returncode}"
    script = f"; the script is {argv[-1]}" if len(argv) > 1 else ""
    return SubmissionError(f"sbatch refused the job:\n{message}", hint=HINT + script)


@contextmanager
def submission_errors() -> Iterator[None]:
    """Re-raise sbatch refusals inside the block (e.g. `executor.submit`, a launcher's `launch`) as SubmissionError."""
    try:
        yield
    except FailedJobError as exc:
        err = as_submission_error(exc)
        if err is None:
            raise
        raise err from exc
