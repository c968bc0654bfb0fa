"""The closed sets of values evalkit passes around: one definition each.

They are `StrEnum`s, so a member is its string: YAML, JSON, Parquet columns and hashes keep the same text they had
when these were plain strings. Members are named exactly as their value because OmegaConf reads an Enum-typed field
by member name: `phase: score` in YAML or `phase=score` on the command line is then Hydra-validated, and a wrong value
fails naming the valid ones.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """What a job does (evalkit/pipeline/job.py)."""

    all = "all"
    """Generate and score each cell while the server is up."""
    generate = "generate"
    """Only talk to the server (a GPU job): each cell's outputs and a marker in its folder."""
    score = "score"
    """No server at all (a CPU step after the GPU job): judge, execute code, parse, commit."""


class CheckpointSource(StrEnum):
    """Where a model x format checkpoint comes from (core.config.CheckpointSpec.source)."""

    hub = "hub"
    path = "path"
    recipe = "recipe"
    gguf = "gguf"


class QuantScheme(StrEnum):
    """compressed-tensors preset schemes a recipe can quantize to (checkpoints/recipes.py spells each out)."""

    FP8_DYNAMIC = "FP8_DYNAMIC"
    W8A8 = "W8A8"
    W4A16 = "W4A16"


class RowStatus(StrEnum):
    """The `status` column of a `scores` row."""

    ok = "ok"
    failed = "failed"


class CellState(StrEnum):
    """What the results store holds for a cell key."""

    DONE = "done"
    FAILED = "failed"
    STALE = "stale"
    """Rows exist for this model x format x benchmark, but from other settings (another cell id)."""
    MISSING = "missing"
    PARTIAL = "partial"
    """An adaptive cell's chunks committed so far, the rule still undecided: the next run resumes at the next chunk."""


class CellStatus(StrEnum):
    """Where a cell stands for `evalkit status`: the store's state, refined by Slurm's view of its job."""

    DONE = "done"
    RUNNING = "running"
    QUEUED = "queued"
    FAILED = "failed"
    STALE = "stale"
    """Rows from other settings (another cell id); the next sweep runs the cell again."""
    MISSING = "missing"
    PARTIAL = "partial"
    """An adaptive cell part-way through its chunks (CellState.PARTIAL)."""
