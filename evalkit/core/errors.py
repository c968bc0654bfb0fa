"""One small hierarchy of errors. Every message says what failed, where its log is, and what to do next."""

from __future__ import annotations

from pathlib import Path


class EvalkitError(Exception):
    """Base class: a failure evalkit understands and can explain to the user."""

    def __init__(self, what: str, *, log: Path | str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.log = Path(log) if log is not None else None
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [self.what]
        if self.log is not None:
            parts.append(f"log: {self.log}")
        if self.hint:
            parts.append(f"next: {self.hint}")
        return "\n  ".join(parts)


class ConfigError(EvalkitError):
    """The configuration is invalid (unknown key, unknown choice, inconsistent values)."""


class CheckpointError(EvalkitError):
    """A checkpoint could not be found, produced (quantized / converted) or loaded."""


class ServerError(EvalkitError):
    """The inference server failed to start, died, or did not become healthy in time."""


class BenchmarkError(EvalkitError):
    """A benchmark run failed (harness crash, missing data, unparseable output)."""


class StoreError(EvalkitError):
    """The results store is unreadable or inconsistent (e.g. a corrupt Parquet file)."""


class SlurmError(EvalkitError):
    """A Slurm command (sbatch, squeue, sacct, scancel) failed or did not answer."""


class SubmissionError(SlurmError):
    """Slurm refused a job at submission (no such partition, GPUs the cluster lacks, ...); `what` is sbatch's own
    message. Raised before anything of the sweep is submitted when it comes from the dry check."""


class CompareError(EvalkitError):
    """Baseline and variant cannot be compared (different documents, missing baseline, unusable samples)."""
