"""What a HumanEval(+) cell asks of the served model, in tokens: the cost estimate's facts (pure).

164 problems (HumanEval and HumanEval+ share the prompts), `n_samples` samples each, every sample its own request
(`n=1`), counted at the full `max_tokens` budget (an upper bound: most solutions stop far earlier).
"""

from __future__ import annotations

from evalkit.core.workload import CellWorkload, Workload

PROBLEMS = 164
"""HumanEval's problems (openai/human-eval; HumanEval+ keeps the same 164)."""

PROMPT_TOKENS = 200
"""Mean prompt tokens: evalplus's instruction and response prefixes around the problem's signature and docstring,
chat template included. Approximate (+-50%, Llama-3 tokenizer, not measured)."""

SOURCE = "HumanEval: 164 problems x n_samples; prompt tokens approximate (+-50%); answers counted at max_tokens"


def workload(limit: int | None, n_samples: int, max_tokens: int, concurrency: int) -> CellWorkload:
    """`n_samples` answers per problem, counted at `max_tokens`. From the parsed settings (`HumanEval.workload`)."""
    problems = min(PROBLEMS, limit) if limit else PROBLEMS
    return CellWorkload(
        (Workload("samples", "humaneval", problems * n_samples, PROMPT_TOKENS, max_tokens, concurrency, SOURCE),)
    )
