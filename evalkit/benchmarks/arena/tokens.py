"""What an Arena-Hard cell asks of the served model, in tokens: the cost estimate's facts (pure).

Only the answers are generated on the job's GPUs; the judge is a paid API, priced elsewhere (not GPU-hours).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evalkit.core.workload import CellWorkload, Workload

QUESTIONS = 500
"""Arena-Hard-Auto v0.1 prompts (shared/PROTOCOL.md; question.jsonl has 500 lines)."""

PROMPT_TOKENS = 300
"""Mean prompt tokens per question with the chat template: approximate (+-50%, Llama-3 tokenizer, not measured)."""

SOURCE = "Arena-Hard-Auto v0.1: 500 questions; prompt tokens approximate (+-50%); answers counted at their budget"


def workload(settings: Mapping[str, Any]) -> CellWorkload:
    """One answer per question, counted at the full answer budget (an upper bound)."""
    from evalkit.benchmarks.arena.adapter import ArenaHardSettings

    s = ArenaHardSettings.from_dict(dict(settings))
    n = min(QUESTIONS, s.limit) if s.limit else QUESTIONS
    return CellWorkload(
        (Workload("answers", "arena_hard", n, PROMPT_TOKENS, s.answer_max_tokens, s.concurrency, SOURCE),)
    )
