"""What an lm-eval suite asks of the server, in tokens, before anything runs: the cost estimate's facts (pure).

No dataset is read: a login node plans without the Hub. Document counts are the test splits' sizes (dataset cards);
prompt lengths are rough means for the Llama-3 tokenizer (the study's), chat template and turn headers included,
NOT measured here: take them as +-50%. Generation budgets are the tasks' own `max_gen_toks` (lm-eval 0.4.13 YAML;
a run's `gen_kwargs` wins), counted in full: an upper bound, since most answers stop earlier. Loglikelihood requests
(multiple choice) are one forward pass per choice, prefill only; shared contexts are counted once per choice (vLLM's
prefix cache would reuse them: an upper bound again). These suites are small next to RULER (for 8B, about an
H100-hour against two days), so their error barely moves a job's estimate.

RULER is computed, not approximated: 500 documents per task and length (lm-eval's generators, `num_samples=500`),
each sized to the length minus the task's answer budget (`ruler.document_length`), the chat template filling the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evalkit.benchmarks.lm_eval import ruler
from evalkit.core.workload import CellWorkload, Workload

_CARD = "test split size from the dataset card"
_APPROX = "prompt tokens approximate (+-50%, Llama-3 tokenizer, not measured)"


@dataclass(frozen=True)
class TaskTokens:
    """One lm-eval leaf task's size."""

    docs: int
    requests_per_doc: float
    """1 for generation; the (mean) number of choices for multiple choice."""
    question_tokens: int
    """Mean prompt tokens of the document itself, instructions and chat template included."""
    shot_tokens: int
    """Mean tokens each few-shot example adds."""
    shots: int
    """The protocol's few-shot count (a run's `num_fewshot` wins)."""
    max_gen_toks: int
    """The task's generation budget; 0 for loglikelihood tasks."""
    source: str

    def prompt_tokens(self, shots: int | None) -> int:
        return self.question_tokens + (self.shots if shots is None else shots) * self.shot_tokens


TASKS: dict[str, dict[str, TaskTokens]] = {
    # Open LLM Leaderboard v1 (Meta's prompts for the generative ones: lm_eval/tasks/llama3/instruct)
    "mmlu_llama": {"mmlu_llama": TaskTokens(14042, 1, 130, 120, 5, 10, f"cais/mmlu {_CARD}; {_APPROX}")},
    "mmlu_cot_llama": {"mmlu_cot_llama": TaskTokens(14042, 1, 180, 0, 0, 1024, f"cais/mmlu {_CARD}; {_APPROX}")},
    "arc_challenge_llama": {
        "arc_challenge_llama": TaskTokens(
            1164, 1, 140, 0, 0, 100, f"allenai/ai2_arc 1172 test questions less the 8 with < 4 options; {_APPROX}"
        )
    },
    "gsm8k_llama": {"gsm8k_llama": TaskTokens(1319, 1, 110, 170, 8, 1024, f"openai/gsm8k {_CARD}; {_APPROX}")},
    "hellaswag": {"hellaswag": TaskTokens(10042, 4, 80, 85, 10, 0, f"Rowan/hellaswag validation split; {_APPROX}")},
    "winogrande": {
        "winogrande": TaskTokens(1267, 2, 30, 30, 5, 0, f"allenai/winogrande xl validation split; {_APPROX}")
    },
    "truthfulqa_mc2": {
        "truthfulqa_mc2": TaskTokens(
            817, 7.2, 225, 0, 0, 0, f"truthfulqa/truthful_qa validation, ~7 mc2 answers each; {_APPROX}"
        )
    },
    # Open LLM Leaderboard v2: lm-eval's `leaderboard` group (chat template, fewshot as multiturn)
    "leaderboard": {
        "leaderboard_ifeval": TaskTokens(
            541, 1, 90, 0, 0, 1280, f"wis-k/instruction-following-eval (IFEval) train, its only split; {_APPROX}"
        ),
        "leaderboard_bbh": TaskTokens(
            5761, 5, 150, 200, 3, 0, f"24 BBH subtasks (21 x 250 + 187 + 146 + 178), ~5 choices; {_APPROX}"
        ),
        "leaderboard_math_hard": TaskTokens(1324, 1, 100, 200, 4, 1024, f"MATH level 5 test; {_APPROX}"),
        "leaderboard_gpqa": TaskTokens(1192, 4, 250, 0, 0, 0, f"GPQA main 448 + diamond 198 + extended 546; {_APPROX}"),
        "leaderboard_musr": TaskTokens(756, 3, 1100, 0, 0, 0, f"MuSR 250 + 256 + 250 narratives; {_APPROX}"),
        "leaderboard_mmlu_pro": TaskTokens(12032, 10, 250, 300, 5, 0, f"TIGER-Lab/MMLU-Pro {_CARD}; {_APPROX}"),
    },
}
"""Task or group name as a suite's run lists it -> its leaf tasks' sizes."""

RULER_DOCUMENTS = 500
"""Documents per RULER task and length (lm-eval's generators: `num_samples=500`, RULER's own count)."""

RULER_SOURCE = "RULER: 500 documents per task and length, sized to the length (lm-eval 0.4.13 generators)"


def workload(settings: Mapping[str, Any]) -> CellWorkload:
    """The requests of a suite's runs, task by task (RULER: task by length)."""
    from evalkit.benchmarks.lm_eval.settings import parse_settings

    s = parse_settings(settings)
    parts: list[Workload] = []
    unknown: list[str] = []
    for run in s.runs:
        budget = run.gen_kwargs.get("max_gen_toks", run.demo_max_gen_toks)
        if run.max_seq_lengths:
            leaves = [t for t in ruler.TASKS if ruler.GROUP in run.tasks or t in run.tasks]
            docs = run.demo_samples_per_length or RULER_DOCUMENTS
            for length in run.max_seq_lengths:
                for task in leaves:
                    gen = ruler.ANSWER_BUDGET[task]
                    # documents are sized to the length less the answer (ruler.document_length); the chat template and
                    # the answer prefix fill the rest: the whole prompt is about length - answer budget
                    prompt = length - gen
                    parts.append(
                        Workload(run.name, f"{task}@{length}", docs, prompt, gen, s.num_concurrent,
                                 RULER_SOURCE)
                    )  # fmt: skip
            continue
        for name in run.tasks:
            if name not in TASKS:
                unknown.append(name)
                continue
            for leaf, t in TASKS[name].items():
                gen = (int(budget) if budget is not None else t.max_gen_toks) if t.max_gen_toks else 0
                parts.append(
                    Workload(
                        run.name,
                        leaf,
                        round(t.docs * t.requests_per_doc),
                        t.prompt_tokens(run.num_fewshot),
                        gen,
                        s.num_concurrent,
                        t.source,
                    )
                )
    return CellWorkload(tuple(parts), tuple(unknown))
