"""The study's published protocol (../shared/PROTOCOL.md) as a table in code, checked against the RENDERED plan of the
study grid (`evalkit sweep --dry-run --json`, see study_plan.py): what the jobs would really run, not what a config
file says. A config change that breaks the protocol (a shot count, a context budget, a doubled BOS, a checkpoint id,
a TP size, a judge setting) fails here with the setting, the protocol's value and the plan's value.

What the plan cannot show is checked in code and said so: v2 normalisation (how scores are computed) and the
tasks' own max_gen_toks (in lm-eval's task YAMLs; the plan must then pass no --gen_kwargs that would replace them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from study_plan import FORMATS, MODELS, cell, job, jobs_of, lm_eval_runs, option, render

# ============================================================================================= the protocol


@dataclass(frozen=True)
class LmEvalTask:
    """One row of PROTOCOL.md's leaderboard tables, as an lm-eval run must carry it."""

    run: str
    """evalkit's run name in conf/benchmarks/<suite>.yaml."""
    tasks: tuple[str, ...]
    shots: int | None
    """None: each task's own count (the `leaderboard` group)."""
    chat_template: bool
    multiturn: bool
    max_model_len: int
    bos_added: bool
    """A BOS token added by the tokenizer: only for the plain (no chat template) log-likelihood tasks. With the chat
    template its own <|begin_of_text|> is the only BOS (lm-eval PR #2797)."""


LEADERBOARD_V1 = [
    # Meta's Llama-3.1 prompts (lm-eval's llama3/instruct tasks); max_gen_toks 10 / 1024 / 100 / 1024 are the tasks'
    LmEvalTask("mmlu", ("mmlu_llama",), 5, True, True, 3850, False),
    LmEvalTask("mmlu_cot", ("mmlu_cot_llama",), 0, True, True, 4064, False),
    LmEvalTask("arc_challenge", ("arc_challenge_llama",), 0, True, True, 3940, False),
    LmEvalTask("gsm8k", ("gsm8k_llama",), 8, True, True, 4096, False),
    LmEvalTask("hellaswag", ("hellaswag",), 10, False, False, 4096, True),
    LmEvalTask("winogrande", ("winogrande",), 5, False, False, 4096, True),
    LmEvalTask("truthfulqa", ("truthfulqa_mc2",), 0, False, False, 4096, True),
]

LEADERBOARD_V2 = [LmEvalTask("leaderboard", ("leaderboard",), None, True, True, 4096, False)]

SIZES = {"llama-3.1-8b-instruct": "8B", "llama-3.1-70b-instruct": "70B", "llama-3.1-405b-instruct": "405B"}
CHECKPOINT_SUFFIX = {"fp8": "FP8-dynamic", "w8a8": "quantized.w8a8", "w4a16": "quantized.w4a16"}


def published_checkpoint(model: str, fmt: str) -> str:
    size = SIZES[model]
    if fmt == "bf16":
        return f"meta-llama/Meta-Llama-3.1-{size}-Instruct"
    return f"neuralmagic/Meta-Llama-3.1-{size}-Instruct-{CHECKPOINT_SUFFIX[fmt]}"


# "8B on 1 GPU; 70B on 2 (FP8) or more; 405B on a full 8-GPU node or more": (exact TP or None, least GPUs per replica)
TENSOR_PARALLEL = {
    **{("llama-3.1-8b-instruct", f): (1, 1) for f in FORMATS},
    ("llama-3.1-70b-instruct", "fp8"): (2, 2),
    **{("llama-3.1-70b-instruct", f): (None, 2) for f in ("bf16", "w8a8", "w4a16")},
    **{("llama-3.1-405b-instruct", f): (8, 8) for f in FORMATS},
}

ARENA_HARD = {
    "questions": "arena-hard-v0.1/question.jsonl",  # v0.1: its 500 prompts, all of them (limit: null)
    "baseline_model": "gpt-4-0314",
    "baseline_answers": "arena-hard-v0.1/model_answer/gpt-4-0314.jsonl",
    "judge_passes": 2,  # judged twice, the mean reported; each pass judges both orders (adapter: game 1 and swapped)
    "judge_model": "gpt-4-1106-preview",  # GPT-4, v0.1's judge
    "answer_temperature": 0.0,
    "limit": None,
}

HUMANEVAL = {"dataset": "humaneval_plus", "temperature": 0.2, "n_samples": 50, "concurrency": 16, "limit": None}

RULER_LENGTHS = [4096, 8192, 16384, 32768, 65536, 131072]

V2_CHOICES = {  # the Open LLM Leaderboard v2's random baselines (1/choices; 0: generative), a sample of subtasks
    "leaderboard_bbh_navigate": 2,
    "leaderboard_bbh_date_understanding": 6,
    "leaderboard_gpqa_diamond": 4,
    "leaderboard_musr_murder_mysteries": 2,
    "leaderboard_musr_object_placements": 5,
    "leaderboard_musr_team_allocation": 3,
    "leaderboard_mmlu_pro": 10,
    "leaderboard_math_algebra_hard": 0,
    "leaderboard_ifeval": 0,
}

GRID = [(m, f) for m in MODELS for f in FORMATS]
IDS = [f"{m}.{f}" for m, f in GRID]


@pytest.fixture(scope="module")
def plan() -> dict[str, Any]:
    return render()[1]


def model_args(argv: list[str]) -> dict[str, Any]:
    raw = option(argv, "--model_args")
    assert raw, argv
    return dict(json.loads(raw))


# ============================================================================================= checks


@pytest.mark.parametrize(("model", "fmt"), GRID, ids=IDS)
@pytest.mark.parametrize(("suite", "table"), [("leaderboard_v1", LEADERBOARD_V1), ("leaderboard_v2", LEADERBOARD_V2)])
def test_leaderboard_runs_follow_the_protocol(
    plan: dict[str, Any], model: str, fmt: str, suite: str, table: list[LmEvalTask]
) -> None:
    runs = lm_eval_runs(plan, model, fmt, suite)
    assert list(runs) == [t.run for t in table]
    for t in table:
        argv = runs[t.run]
        where = f"{model}.{fmt} {suite} run {t.run}"
        got = {
            "tasks": tuple((option(argv, "--tasks") or "").split(",")),
            "shots": None if option(argv, "--num_fewshot") is None else int(option(argv, "--num_fewshot") or -1),
            "chat_template": option(argv, "--apply_chat_template") is not None,
            "multiturn": option(argv, "--fewshot_as_multiturn") == "true",
            "max_model_len": model_args(argv)["max_length"],
            "bos_added": model_args(argv)["add_bos_token"],
        }
        want = {k: getattr(t, k) for k in got}
        assert got == want, f"{where}: plan {got} differs from the protocol {want}"
        # the tasks' own generation budgets (max_gen_toks) apply: nothing replaces them
        assert option(argv, "--gen_kwargs") is None, f"{where}: --gen_kwargs replaces the tasks' max_gen_toks"
        # chat-formatted prompts go out as token ids, tokenized with the served checkpoint's own tokenizer
        args = model_args(argv)
        assert args["tokenized_requests"] is True and args["tokenizer"] == published_checkpoint(model, fmt)


@pytest.mark.parametrize(("model", "fmt"), GRID, ids=IDS)
def test_checkpoints_are_the_published_ones_served_as_they_are(plan: dict[str, Any], model: str, fmt: str) -> None:
    j = job(plan, model, fmt)
    want = published_checkpoint(model, fmt)
    assert j["checkpoint"]["source"] == "hub" and j["checkpoint"]["id"] == want
    argv = j["server"]["argv"]
    assert option(argv, "--model") == want
    assert option(argv, "--dtype") == "auto"  # compressed-tensors picks its own; bf16 stays bf16
    assert "--quantization" not in argv  # vLLM reads compressed-tensors from the checkpoint's config
    # v2 ran with chunked prefill on; RULER needs the full 128K context
    assert "--enable-chunked-prefill" in argv
    assert int(option(argv, "--max-model-len") or 0) >= max(RULER_LENGTHS)


@pytest.mark.parametrize(("model", "fmt"), GRID, ids=IDS)
def test_tensor_parallelism_per_model_and_format(plan: dict[str, Any], model: str, fmt: str) -> None:
    j = job(plan, model, fmt)
    exact, least = TENSOR_PARALLEL[(model, fmt)]
    tp = int(option(j["server"]["argv"], "--tensor-parallel-size") or 0)
    pp = int(option(j["server"]["argv"], "--pipeline-parallel-size") or 1)
    if exact is not None:
        assert tp == exact, f"{model}.{fmt}: TP {tp}, protocol {exact}"
    assert tp * pp >= least
    assert j["resources"]["tensor_parallel_size"] == tp
    assert j["resources"]["gpus_per_node"] * j["resources"]["nodes"] >= tp * pp


def test_405b_bf16_server_spans_both_nodes(plan: dict[str, Any]) -> None:
    j = job(plan, "llama-3.1-405b-instruct", "bf16")
    argv = j["server"]["argv"]
    tp, pp = option(argv, "--tensor-parallel-size"), option(argv, "--pipeline-parallel-size")
    assert (tp, pp, j["resources"]["nodes"]) == ("8", "2", 2)


@pytest.mark.parametrize(("model", "fmt"), GRID, ids=IDS)
def test_arena_hard_settings(plan: dict[str, Any], model: str, fmt: str) -> None:
    s = cell(plan, model, fmt, "arena_hard")["harness"]["settings"]
    got = {
        "questions": s["questions_url"],
        "baseline_model": s["baseline_model"],
        "baseline_answers": s["baseline_answers_url"],
        "judge_passes": s["judge_passes"],
        "judge_model": s["judge_model"],
        "answer_temperature": s["answer_temperature"],
        "limit": s["limit"],
    }
    for key, want in ARENA_HARD.items():
        ok = got[key].endswith(want) if isinstance(want, str) and key in ("questions", "baseline_answers") else None
        assert ok if ok is not None else got[key] == want, f"arena_hard {key}: plan {got[key]!r}, protocol {want!r}"
    assert s["bootstrap_rounds"] >= 100 and s["judge_extra_body"] is None  # nothing but the v0.1 request to GPT-4


@pytest.mark.parametrize(("model", "fmt"), GRID, ids=IDS)
def test_humaneval_settings(plan: dict[str, Any], model: str, fmt: str) -> None:
    s = cell(plan, model, fmt, "humaneval")["harness"]["settings"]
    got = {k: s[k] for k in HUMANEVAL}
    assert got == HUMANEVAL
    # the HumanEval+ file is evalplus's release, named with its version and URL
    (source,) = cell(plan, model, fmt, "humaneval")["data_sources"]
    assert source["release"] == "v0.1.10" and source["url"].endswith("/v0.1.10/HumanEvalPlus.jsonl.gz")


def test_ruler_for_405b_is_not_required(plan: dict[str, Any]) -> None:
    for j in jobs_of(plan, "llama-3.1-405b-instruct"):
        assert "ruler" not in [c["benchmark"] for c in j["cells"]]
        assert "model.skip_benchmarks=[]" in j["skipped_benchmarks"][0]["why"]


RULER_GRID = [(m, f) for m, f in GRID if m != "llama-3.1-405b-instruct"]
"""The study ran RULER on 8B and 70B; 405B's is opt-in (model.skip_benchmarks), so the plan does not require it."""


@pytest.mark.parametrize(("model", "fmt"), RULER_GRID, ids=[f"{m}.{f}" for m, f in RULER_GRID])
def test_ruler_lengths_and_tasks(plan: dict[str, Any], model: str, fmt: str) -> None:
    runs = lm_eval_runs(plan, model, fmt, "ruler")
    lengths = []
    for name, argv in runs.items():
        assert option(argv, "--tasks") == "ruler", f"ruler run {name}: every task of lm-eval's ruler group"
        metadata = json.loads(option(argv, "--metadata") or "{}")
        # the served checkpoint's tokenizer sizes the documents; no demo cap on documents per length
        assert metadata["tokenizer"] == published_checkpoint(model, fmt)
        assert set(metadata) == {"max_seq_lengths", "tokenizer"}
        assert model_args(argv)["max_length"] >= max(metadata["max_seq_lengths"])
        lengths += metadata["max_seq_lengths"]
    assert sorted(lengths) == RULER_LENGTHS


def test_v2_normalisation_is_the_leaderboards() -> None:
    """Not in the plan (it is how scores are computed): the random baseline subtracted per subtask, rescaled."""
    from evalkit.benchmarks.lm_eval.leaderboard import normalize_v2, v2_num_choices

    assert {t: v2_num_choices(t) for t in V2_CHOICES} == V2_CHOICES
    assert normalize_v2(50.0, 2) == 0.0 and normalize_v2(100.0, 4) == 100.0 and normalize_v2(40.0, 0) == 40.0
    assert normalize_v2(62.5, 4) == pytest.approx(50.0)
    assert normalize_v2(10.0, 4) == 0.0  # below chance: floor 0, as the leaderboard


def test_real_cells_read_no_local_data(plan: dict[str, Any]) -> None:
    local = [
        (j["name"], c["benchmark"], d["dataset"])
        for j in jobs_of(plan)
        for c in j["cells"]
        for d in c["data_sources"]
        if c["adapter"] == "lm_eval" and d["source"] == "local"
    ]
    assert local == []
