"""What an Arena-Hard cell asks of the served model, in tokens: the cost estimate's facts (pure).

Only the answers are generated on the job's GPUs; the judge is a paid API, priced elsewhere (not GPU-hours).
"""

from __future__ import annotations

from evalkit.core.workload import CellWorkload, Workload

QUESTIONS = 500
"""Arena-Hard-Auto v0.1 prompts (shared/PROTOCOL.md; question.jsonl has 500 lines)."""

PROMPT_TOKENS = 300
"""Mean prompt tokens per question with the chat template: approximate (+-50%, Llama-3 tokenizer, not measured)."""

SOURCE = "Arena-Hard-Auto v0.1: 500 questions; prompt tokens approximate (+-50%); answers counted at their budget"


def workload(limit: int | None, answer_max_tokens: int, concurrency: int) -> CellWorkload:
    """One answer per question, counted at the full answer budget (an upper bound). From the parsed settings
    (`ArenaHard.workload`)."""
    n = min(QUESTIONS, limit) if limit else QUESTIONS
    return CellWorkload((Workload("answers", "arena_hard", n, PROMPT_TOKENS, answer_max_tokens, concurrency, SOURCE),))
