"""Where an adaptive cell stands, as its committed scores file records it (in the file's Parquet metadata, so the
record commits with the rows it describes: one atomic replace, no second file to fall out of step).

Written by the job after each chunk (evalkit/pipeline/adaptive.py decides), read by the store (a cell whose rule has
not finished is PARTIAL, not DONE), `evalkit status`, `compare`, `aggregate` and the report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

ADAPTIVE_META = b"evalkit.adaptive"
"""Key of the scores file's metadata holding the cell's `AdaptiveRecord` (JSON)."""


@dataclass(frozen=True)
class AdaptiveRecord:
    """An adaptive variant cell after its committed chunks."""

    baseline_run: str
    """Run id of the baseline cell whose documents the chunks were planned from."""
    chunk: int
    chunks_done: int
    chunks_total: int
    documents: int
    """Variant documents run (and committed) so far."""
    total: int
    """Documents of the full run (the baseline's)."""
    decision: str
    """The rule's decision (evalkit.compare.sequential.Decision): continue, recovered, within-margin, degraded."""
    finished: bool
    """The rule stopped, or every document ran: the cell is done."""
    stopped_early: bool
    lower: float
    upper: float
    """The anytime-valid confidence sequence of the suite's difference (points) after the last chunk."""
    margin_points: float
    alpha: float
    seconds: float
    """Wall seconds of the variant's chunk runs so far (harness and server; CPU-seconds on the demo's CPU server)."""
    baseline_seconds: float
    """Wall seconds of the baseline's full run of the same documents: what the full variant run costs, roughly."""
    why: str

    @property
    def fraction(self) -> float:
        return self.documents / self.total if self.total else 1.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> AdaptiveRecord:
        d = json.loads(text)
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    def line(self) -> str:
        """One line for a person: what the cell spent and why it stopped (or why it goes on)."""
        spent = (
            f"{self.documents:,}/{self.total:,} documents ({100 * self.fraction:.0f}%), "
            f"{self.seconds:.0f}s vs ~{self.baseline_seconds:.0f}s for the baseline's full run"
        )
        if self.stopped_early:
            state = f"stopped early: {self.decision}"
        elif self.finished:
            state = "ran every document: the full-data verdict applies"
        else:
            state = f"in progress ({self.chunks_done}/{self.chunks_total} chunks)"
        return (
            f"{state}; {spent}; anytime-valid CS [{self.lower:+.2f}, {self.upper:+.2f}] points at margin "
            f"{self.margin_points:g}, alpha {self.alpha:g}"
        )
