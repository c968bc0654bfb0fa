"""Errors of the Slurm edge. They belong in evalkit.errors' hierarchy; kept here until that module takes them."""

from __future__ import annotations

from evalkit.errors import EvalkitError


class SlurmError(EvalkitError):
    """A Slurm command (squeue, sacct, scancel) failed or did not answer."""


class SubmissionError(SlurmError):
    """Slurm refused a job at submission (no such partition, GPUs the cluster lacks, ...); `what` is sbatch's own
    message. Raised before anything of the sweep is submitted when it comes from the dry check."""
