"""Typed records that benchmarks produce and the results store persists.

A benchmark adapter returns `TaskScore`s (one per task x metric) and `SampleRecord`s (one per task x document).
The store adds the cell identity, run and provenance columns (see `evalkit.results.schema`), so adapters never
deal with storage concerns. The statuses of rows and cells are in `evalkit.core.enums`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskScore:
    """One metric of one task, as reported by a benchmark.

    The fields in declaration order are the `scores` table's columns of a metric (`evalkit.results.schema`); the
    ones marked keyword-only are declared where their column goes, while the constructor's positional order stays
    `TaskScore(task, metric, value, stderr, n_samples, ...)`."""

    task: str
    """Task name as the harness knows it, e.g. "gsm8k_llama" or "leaderboard_bbh_navigate"."""
    metric: str
    """Metric name with the harness's filter folded in when it matters, e.g. "exact_match,strict-match"
    becomes metric="exact_match", filter="strict-match"."""
    filter: str = field(default="", kw_only=True)
    """Harness filter / answer-extraction variant ("" when there is only one)."""
    value: float | None
    """Score. Accuracy-type metrics are percentages (0-100). None only when the metric could not be computed."""
    stderr: float | None = None
    """Standard error of `value`, same scale; None when the harness gives none."""
    normalized: float | None = field(default=None, kw_only=True)
    """Leaderboard-v2 normalised score (random baseline subtracted, rescaled to 0-100); None when not defined."""
    is_primary: bool = field(default=False, kw_only=True)
    """The metric this task contributes to its suite's average (one per task)."""
    higher_is_better: bool = field(default=True, kw_only=True)
    """Direction of the metric, needed to compare formats."""
    n_samples: int = 0
    """Number of documents (or prompts) the score is computed over."""


@dataclass(frozen=True)
class SampleRecord:
    """One document of one task: what was asked, what came back, how it scored."""

    task: str
    doc_id: int
    prompt_hash: str
    """Hash of the exact prompt sent (the harness's own hash where it has one)."""
    target: str
    response: str
    """The model's (filtered) response; for log-likelihood tasks, the chosen option and its log-likelihoods."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Per-sample metric values (same names as `TaskScore.metric`, filter folded in as "metric,filter")."""


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server that serves one checkpoint."""

    base_url: str
    """e.g. "http://127.0.0.1:8123/v1"."""
    model: str
    """The served model name to put in requests."""
    tokenizer: str
    """Local path (or hub id) of the checkpoint's tokenizer, for harnesses that tokenize client-side."""
    max_model_len: int
    """Context length the server was started with."""
