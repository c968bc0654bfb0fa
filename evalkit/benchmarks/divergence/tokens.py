"""What a divergence cell asks of the served model, in tokens: the cost estimate's facts (pure).

One forward pass per prompt (`max_tokens=1`, the prompt's top-k logprobs): prefill only.
"""

from __future__ import annotations

from evalkit.benchmarks.arena.tokens import PROMPT_TOKENS as ARENA_PROMPT_TOKENS
from evalkit.benchmarks.arena.tokens import QUESTIONS as ARENA_QUESTIONS
from evalkit.core.workload import CellWorkload, Workload

HELD_OUT = 5
"""Paragraphs of data/divergence/held_out.jsonl."""

HELD_OUT_TOKENS = 250
"""Mean tokens of one held-out paragraph: approximate (+-50%, not measured)."""

SOURCE = "the Arena-Hard v0.1 questions (500) and the held-out paragraphs (5); prompt tokens approximate (+-50%)"


def workload(limit: int | None, concurrency: int, held_out: bool) -> CellWorkload:
    """One prompt-logprobs request per prompt (nothing decoded). From the parsed settings (`Divergence.workload`)."""
    questions = min(ARENA_QUESTIONS, limit) if limit else ARENA_QUESTIONS
    parts = [Workload("prompts", "arena_hard_questions", questions, ARENA_PROMPT_TOKENS, 0, concurrency, SOURCE)]
    if held_out:
        parts.append(Workload("prompts", "held_out", HELD_OUT, HELD_OUT_TOKENS, 0, concurrency, SOURCE))
    return CellWorkload(tuple(parts))
