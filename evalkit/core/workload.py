"""What a cell asks of the server, in tokens: the input of the cost estimate (`evalkit.launch.estimate`). Pure.

Each benchmark family states its own facts (documents, prompt lengths, generation budgets, with their sources) in
its package (`evalkit/benchmarks/<family>/tokens.py`) and returns them as these records;
the estimator turns tokens into FLOPs, bytes and GPU-hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Workload:
    """One homogeneous slice of a cell's requests (one task, at one length)."""

    run: str
    """The part of the cell it belongs to (an lm-eval run's name, or the benchmark's): the plan sums per run."""
    task: str
    requests: int
    """Requests sent to the server (documents x requests per document x samples)."""
    prompt_tokens: float
    """Mean prompt tokens per request, few-shot examples and chat template included."""
    decode_tokens: float
    """Tokens generated per request: the generation budget (an upper bound; 0 for loglikelihood requests, which the
    server answers with one forward pass over the prompt)."""
    concurrency: int
    """Requests the harness keeps in flight: the decode batch."""
    source: str
    """Where the numbers come from (dataset card, config, measurement), so a reader can judge them."""

    @property
    def prefill_total(self) -> float:
        return self.requests * self.prompt_tokens

    @property
    def decode_total(self) -> float:
        return self.requests * self.decode_tokens


@dataclass(frozen=True)
class CellWorkload:
    """Everything a cell sends, and what its family could not put a number on."""

    parts: tuple[Workload, ...] = ()
    unknown: tuple[str, ...] = field(default_factory=tuple)
    """Tasks without token facts (the estimate is then a lower bound, and says so)."""
