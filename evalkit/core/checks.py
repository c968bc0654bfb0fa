"""One finding of a readiness check (`evalkit doctor`'s rows): made by the doctor itself and by each benchmark
family's own node checks (`evalkit.benchmarks.base.Benchmark.node_checks`), so both speak one record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table."""

    name: str
    """What was checked, e.g. "checkpoint smollm2-135m-instruct/fp8"."""
    ok: bool
    detail: str
    """What was found (a version, a path, "none")."""
    fix: str = ""
    """What to do when not ok."""
