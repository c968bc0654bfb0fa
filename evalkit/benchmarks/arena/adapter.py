"""Arena-Hard-Auto v0.1: the evaluated model answers 500 hard prompts; a judge compares every answer with a fixed
baseline's (gpt-4-0314) in both orders; the score is the Bradley-Terry win rate vs the baseline with a bootstrap CI.

Phases (see `evalkit.benchmarks.base`):
- `generate` (needs the served model): one answer per question, temperature 0, up to 4096 new tokens (arena-hard's
  gen_answer_config), the question as the only user turn. Written in arena-hard's model_answer format to
  `<work_dir>/arena_hard/model_answer/<model>.jsonl`, snapshotted atomically every `checkpoint_every_s`; a restart
  skips answered questions.
- `score` (no model server): judge each answer against the baseline's, game 1 with the baseline as assistant A and
  game 2 swapped, `judge_passes` times (the study: 2, averaged); judgments come from a cache when nothing they depend
  on changed. Then `evalkit.benchmarks.arena.bradley_terry` turns them into the win rate.

Files under `<work_dir>/arena_hard/`: `generation.json` (what the answers were generated with), `model_answer/`,
`judgments.jsonl` (arena-hard's model_judgment format, one line per question x pass), `judge_failures.jsonl`
(every failed judgment with its reason), `score_summary.json` (win rates, requests, tokens, cache hits).
The judgment cache defaults to `<work_dir>/../judgments/<judge model>.jsonl`, shared by the cells of a sweep.
"""

from __future__ import annotations

import json
import logging
import os
import re
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from evalkit.benchmarks import generation
from evalkit.benchmarks.arena import bradley_terry as bt
from evalkit.benchmarks.arena import tokens
from evalkit.benchmarks.arena.data import (
    Answer,
    Question,
    read_answers,
    read_questions,
    write_answers,
    write_jsonl_atomic,
)
from evalkit.benchmarks.arena.judge import (
    PROMPT_TEMPLATE,
    SYSTEM_PROMPT,
    TEMPLATE_FIELDS,
    VERDICT_FAILURES,
    JudgeClient,
    JudgeConfig,
    JudgeTask,
    Judgment,
    JudgmentCache,
    judge_all,
)
from evalkit.benchmarks.arena.names import TASK, WIN_FRACTION, WIN_RATE
from evalkit.benchmarks.base import (
    BenchmarkBase,
    BenchmarkResult,
    NodeContext,
    PlanContext,
    RunContext,
    data_check,
    pin_generation_settings,
)
from evalkit.benchmarks.settings import parse_settings, require
from evalkit.core.checks import Check
from evalkit.core.datasources import DataSource, local_source
from evalkit.core.errors import BenchmarkError, ConfigError
from evalkit.core.records import Endpoint, SampleRecord, TaskScore
from evalkit.core.workload import CellWorkload
from evalkit.util.hashing import sha256_file
from evalkit.util.http import Client, HttpError, RetryPolicy, download

log = logging.getLogger(__name__)

ARENA_HARD_COMMIT = "6c82720015d5da7b8795b809b91f63ef74abbf6a"
"""arena-hard-auto commit whose data/arena-hard-v0.1 holds the 500 questions and gpt-4-0314's answers."""
_RAW = f"https://raw.githubusercontent.com/lmarena/arena-hard-auto/{ARENA_HARD_COMMIT}/data/arena-hard-v0.1/"
SUBDIR = "arena_hard"
GENERATION_FILE = "generation.json"
ANSWER_DIR = "model_answer"


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SERVED_JUDGE = "served"
"""judge_base_url value meaning "the model this cell serves" (demo and tests: any OpenAI-compatible server stands in
for GPT-4; a real study names an independent judge)."""


@dataclass(frozen=True)
class ArenaHardSettings:
    """The `settings` of an arena_hard benchmark section. Relative paths are from where evalkit runs (the repo)."""

    questions_file: str = "data/arena_hard/v0.1/question.jsonl"
    # arena-hard's question.jsonl. Default: where prefetch puts the real 500; demo: data/arena_hard/demo/question.jsonl.
    questions_url: str | None = _RAW + "question.jsonl"
    # Where `prefetch` downloads questions_file from when it is missing (None: never download).
    baseline_answers_file: str = "data/arena_hard/v0.1/model_answer/gpt-4-0314.jsonl"
    # The baseline's answers in arena-hard's model_answer format (demo: data/arena_hard/demo/model_answer/...).
    baseline_answers_url: str | None = _RAW + "model_answer/gpt-4-0314.jsonl"
    # Where `prefetch` downloads baseline_answers_file from when it is missing (None: never download).
    baseline_model: str = "gpt-4-0314"
    # The baseline's name, the 50 % anchor; the answers file's model_id must match it.
    judge_base_url: str = "https://api.openai.com/v1"
    # OpenAI-compatible base URL of the judge (requests go to <judge_base_url>/chat/completions).
    judge_model: str = "gpt-4-1106-preview"
    # The judge's model name (arena-hard v0.1's default judge, GPT-4-Turbo). Part of the cache key.
    judge_api_key_env: str | None = "OPENAI_API_KEY"
    # Name of the environment variable holding the judge's API key (never the key itself); None: no auth header.
    judge_extra_body: dict[str, Any] | None = None
    # Further fields of each judge request, sent as they are (e.g. vLLM's `structured_outputs`); part of the cache key.
    # None for the protocol; the demo uses it to hold a 135M judge to the five verdict labels.
    judge_temperature: float = 0.0
    # v0.1 judges greedily.
    judge_max_tokens: int = 4096
    # v0.1's judge budget (the judge writes its own answer before the verdict).
    judge_system_prompt: str = SYSTEM_PROMPT
    # v0.1's judge system prompt, verbatim (config/judge_config.yaml).
    judge_prompt_template: str = PROMPT_TEMPLATE
    # v0.1's user template; fields {question_1}, {answer_1} (assistant A), {answer_2} (assistant B).
    judge_passes: int = 2
    # Independent judging passes, each scored, then averaged (the study judged every answer set twice).
    verdict_retries: int = 1
    # Continuations asked for when the judge's reply has no [[...]] label (v0.1: 2 attempts in all).
    strong_verdict_weight: int = 3
    # Battles a significant verdict (A>>B, B>>A) counts as (show_result.py --weight).
    bootstrap_rounds: int = 100
    # Bootstrap resamples for the 95 % CI (show_result.py --num-rounds).
    bootstrap_seed: int = 42
    # Seed of the bootstrap (show_result.py seeds numpy with 42; our generator differs, so CIs differ slightly).
    answer_max_tokens: int = 4096
    # New tokens per answer (v0.1 gen_answer_config: 4096), capped by what the server's context leaves.
    answer_temperature: float = 0.0
    # v0.1 generates greedily (gen_answer_config temperature 0.0; its category overrides never match v0.1).
    fit_answer_to_context: bool = True
    # Cap each answer's max_tokens at max_model_len minus its chat-templated prompt (counted with the tokenizer).
    concurrency: int = 16
    # Answer requests in flight at once (the server batches them).
    judge_concurrency: int = 8
    # Judge requests in flight at once (mind the judge API's rate limits).
    request_timeout_s: float = 600.0
    # Seconds before one HTTP request (answer or judgment) is abandoned and retried.
    http_retries: int = 5
    # Retries of a request after a timeout, connection error, 5xx or 429 (evalkit.util.http's policy).
    retry_backoff_s: float = 2.0
    # First backoff wait; doubles per retry (jittered), capped at 60 s; a server's Retry-After wins.
    cache_dir: str | None = None
    # Judgment cache directory; None: a `judgments` directory beside the cell's work_dir.
    checkpoint_every_s: float = 10.0
    # How often generate snapshots the answers file (a crash loses at most this much generation).
    limit: int | None = None
    # Demo only: use the first `limit` questions. Never set it for reported numbers.

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> ArenaHardSettings:
        """The section's settings over these defaults; ConfigError naming the key, the value and the fix."""
        s = parse_settings(cls, settings, "arena_hard")
        s._check_values()
        return s

    def _check_values(self) -> None:
        """What the schema cannot say: ranges, the judge URL, the template's fields, a variable name."""

        def need(key: str, ok: bool, rule: str) -> None:
            require("arena_hard", key, getattr(self, key), ok, rule)

        for key in ("judge_max_tokens", "judge_passes", "answer_max_tokens", "concurrency", "judge_concurrency"):
            need(key, getattr(self, key) >= 1, "must be an integer >= 1")
        for key in ("verdict_retries", "http_retries", "bootstrap_rounds"):
            need(key, getattr(self, key) >= 0, "must be an integer >= 0")
        need("strong_verdict_weight", self.strong_verdict_weight >= 1, "must be an integer >= 1 (v0.1: 3)")
        for key in ("judge_temperature", "answer_temperature"):
            need(key, 0.0 <= getattr(self, key) <= 2.0, "must be in [0, 2]")
        for key in ("request_timeout_s", "checkpoint_every_s"):
            need(key, getattr(self, key) > 0, "must be > 0")
        need("retry_backoff_s", self.retry_backoff_s >= 0, "must be >= 0")
        need("limit", self.limit is None or self.limit >= 1, "must be an integer >= 1 or null")
        need(
            "judge_base_url",
            self.judge_base_url == SERVED_JUDGE or re.match(r"^https?://", self.judge_base_url) is not None,
            f"must be an http(s) URL such as https://api.openai.com/v1, or {SERVED_JUDGE!r} (the served model)",
        )
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(self.judge_prompt_template) if f is not None}
        except ValueError as exc:
            raise ConfigError(
                f"arena_hard: invalid judge_prompt_template={self.judge_prompt_template!r}: not a format string ({exc})"
            ) from exc
        need(
            "judge_prompt_template",
            names == TEMPLATE_FIELDS,
            f"must use exactly the fields {sorted(TEMPLATE_FIELDS)}, not {names}",
        )
        fixed = sorted(set(self.judge_extra_body or {}) & {"model", "messages"})
        need("judge_extra_body", not fixed, f"may not set {fixed}: evalkit sends them (judge_model, the prompt)")
        need(
            "judge_api_key_env",
            self.judge_api_key_env is None
            or re.fullmatch(r"[A-Za-z_]\w*", self.judge_api_key_env, re.ASCII) is not None,
            "must be the NAME of an environment variable, not a key",
        )

    def retry_policy(self) -> RetryPolicy:
        """Of every request this benchmark sends (answers and judgments)."""
        return RetryPolicy(retries=self.http_retries, backoff_s=self.retry_backoff_s, timeout_s=self.request_timeout_s)

    def judge_config(self, served: Endpoint | None = None) -> JudgeConfig:
        """The judge's client settings; `served` is the cell's own endpoint, used when judge_base_url is "served"."""
        key = os.environ.get(self.judge_api_key_env) if self.judge_api_key_env else None
        base_url, model = self.judge_base_url, self.judge_model
        if base_url == SERVED_JUDGE:
            if served is None:
                raise ConfigError(
                    'arena_hard: judge_base_url "served" judges with the served model, but scoring runs without a '
                    "server here (phase=score / split_scoring)",
                    hint="name a real judge endpoint (judge_base_url, judge_model), or score with the server up",
                )
            base_url, model = served.base_url, served.model
        return JudgeConfig(
            base_url=base_url,
            model=model,
            api_key=key or None,
            temperature=self.judge_temperature,
            max_tokens=self.judge_max_tokens,
            system_prompt=self.judge_system_prompt,
            prompt_template=self.judge_prompt_template,
            verdict_retries=self.verdict_retries,
            extra_body=dict(self.judge_extra_body) if self.judge_extra_body else None,
            retry=self.retry_policy(),
        )

    def cache_file(self, work_dir: Path, judge_model: str | None = None) -> Path:
        root = Path(self.cache_dir) if self.cache_dir else work_dir.parent / "judgments"
        return root / f"{_safe_name(judge_model or self.judge_model)}.jsonl"

    def questions(self) -> list[Question]:
        questions = read_questions(self.questions_file)
        return questions[: self.limit] if self.limit else questions

    def baseline(self, questions: list[Question]) -> dict[str, Answer]:
        answers = read_answers(self.baseline_answers_file)
        missing = [q.question_id for q in questions if q.question_id not in answers]
        if missing:
            raise BenchmarkError(
                f"arena_hard: {self.baseline_answers_file} has no baseline answer for {len(missing)} question(s) "
                f"of {self.questions_file} (first: {missing[0]})",
                hint="the questions and baseline answers must come from the same arena-hard release",
            )
        others = sorted({answers[q.question_id].model_id for q in questions} - {self.baseline_model})
        if others:
            raise BenchmarkError(
                f"arena_hard: {self.baseline_answers_file} holds answers of {others}, not of "
                f"baseline_model={self.baseline_model!r}",
                hint="point baseline_answers_file at the baseline's answers or set baseline_model to match",
            )
        return answers


def missing_judge_key(s: ArenaHardSettings) -> str | None:
    """The judge key variable the settings name when it is not set (or empty); None when nothing is missing.
    The served model judges without a key."""
    if s.judge_base_url == SERVED_JUDGE or not s.judge_api_key_env:
        return None
    return None if os.environ.get(s.judge_api_key_env) else s.judge_api_key_env


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


# ------------------------------------------------------------------------------------------------ adapter


def judge_key_check(benchmark: str, variable: str | None, environ: Mapping[str, str]) -> Check:
    """`evalkit doctor`'s row for the judge's API key: `variable` None when no key is needed."""
    name = f"judge key {benchmark}"
    if variable is None:
        return Check(name, True, "no key needed (served judge, or judge_api_key_env: null)")
    if environ.get(variable):
        return Check(name, True, f"${variable} is set")
    return Check(
        name,
        False,
        f"${variable} is not set",
        f"export {variable}=<the judge's API key> before the sweep (jobs inherit it)",
    )


class ArenaHard(BenchmarkBase[ArenaHardSettings]):
    """The `Benchmark` adapter for Arena-Hard-Auto v0.1."""

    concurrency_key = "concurrency"
    sections: ClassVar[Mapping[str, str]] = {TASK: "real-world"}

    def parse_settings(self, settings: Mapping[str, Any]) -> ArenaHardSettings:
        return ArenaHardSettings.from_dict(dict(settings))

    def planned_sources(self, plan: PlanContext) -> list[dict[str, Any]]:
        s = self.parse_settings(plan.settings)
        return [
            {
                "dataset": "arena_hard/questions",
                "source": "local",
                "files": {"file": s.questions_file},
                "url": s.questions_url,
            },
            {
                "dataset": f"arena_hard/baseline_answers/{s.baseline_model}",
                "source": "local",
                "files": {"file": s.baseline_answers_file},
                "url": s.baseline_answers_url,
            },
        ]

    def describe(self, plan: PlanContext) -> dict[str, Any]:
        # the key's variable name only: its value never goes into a plan that is printed and committed
        return {"settings": asdict(self.parse_settings(plan.settings))}

    def workload(self, settings: Mapping[str, Any]) -> CellWorkload:
        s = self.parse_settings(settings)
        return tokens.workload(s.limit, s.answer_max_tokens, s.concurrency)

    def node_checks(self, settings: dict[str, Any], node: NodeContext) -> list[Check]:
        """The judge key in a row of its own, then the data (validated without the key)."""
        s = self.parse_settings(settings)
        needs_key = s.judge_base_url != SERVED_JUDGE and s.judge_api_key_env
        key = judge_key_check(node.benchmark, s.judge_api_key_env if needs_key else None, node.environ)
        return [key, data_check(node.benchmark, lambda: self.validate({**settings, "judge_api_key_env": None}))]

    def validate(self, settings: dict[str, Any]) -> None:
        s = ArenaHardSettings.from_dict(settings)
        for key in ("questions_file", "baseline_answers_file"):
            if not Path(getattr(s, key)).is_file():
                raise ConfigError(
                    f"arena_hard: {key}={getattr(s, key)!r}: no such file",
                    hint="run `evalkit prefetch` where there is internet (it downloads the real set), "
                    "or use the demo files under data/arena_hard/demo/",
                )
        s.baseline(s.questions())
        missing = missing_judge_key(s)
        if missing:
            # checked here, before a server starts: otherwise every answer is generated before the judge refuses
            raise ConfigError(
                f"arena_hard: judge_api_key_env={missing!r}: the variable is not set, so the judge at "
                f"{s.judge_base_url} cannot be called",
                hint=f"export {missing}=<the judge's API key> before the sweep (jobs inherit it), or set "
                "settings.judge_api_key_env=null for a judge that needs no key",
            )

    def data_sources(self, ctx: RunContext[ArenaHardSettings]) -> list[DataSource]:
        s = ctx.settings
        return [
            local_source("arena_hard questions", s.questions_file),
            local_source("arena_hard baseline answers", s.baseline_answers_file),
        ]

    def prefetch(self, settings: dict[str, Any]) -> None:
        """Download the questions and baseline answers when missing; check that they belong together."""
        s = ArenaHardSettings.from_dict(settings)
        check: Callable[[Path], int]  # rows in the file, which also proves it parses
        for key, url_key, check in (
            ("questions_file", "questions_url", lambda p: len(read_questions(p))),
            ("baseline_answers_file", "baseline_answers_url", lambda p: len(read_answers(p))),
        ):
            path, url = Path(getattr(s, key)), getattr(s, url_key)
            if path.is_file():
                log.info("arena_hard: %s already present (%d rows)", path, check(path))
                continue
            if not url:
                raise BenchmarkError(f"arena_hard: {key} {path} is missing and {url_key} is not set")
            log.info("arena_hard: downloading %s -> %s", url, path)
            count = download(url, path, check, policy=s.retry_policy())
            log.info("arena_hard: wrote %s (%d rows)", path, count)
        s.baseline(s.questions())

    # -- generate ---------------------------------------------------------------------------------------

    def generate(self, ctx: RunContext[ArenaHardSettings]) -> None:
        if ctx.endpoint is None:
            raise BenchmarkError("arena_hard: generate needs a served model (ctx.endpoint is None)")
        endpoint = ctx.endpoint
        s = ctx.settings
        questions = s.questions()
        out_dir = ctx.work_dir / SUBDIR
        path = out_dir / ANSWER_DIR / f"{_safe_name(endpoint.model)}.jsonl"
        _check_generation_meta(out_dir, s, endpoint)
        answers = read_answers(path) if path.exists() else {}
        todo = [q for q in questions if q.question_id not in answers]
        out = generation.Outputs(TASK, "answers", path, log, phase="answer generation")
        if not generation.pending(out, len(todo), len(questions) - len(todo)):
            return
        budgets = _answer_budgets(todo, endpoint, s)
        order = {q.question_id: i for i, q in enumerate(questions)}
        lock = threading.Lock()
        last_flush = [time.monotonic()]

        def flush() -> None:
            write_answers(path, sorted(answers.values(), key=lambda a: order.get(a.question_id, len(order))))
            last_flush[0] = time.monotonic()

        def one(http: Client, q: Question) -> None:
            body = {
                "model": endpoint.model,
                "messages": q.messages(),
                "max_tokens": budgets[q.question_id],
                "temperature": s.answer_temperature,
            }
            try:
                reply = http.chat(body).value
            except HttpError as exc:
                raise BenchmarkError(f"question {q.question_id}: {exc.what}") from exc
            with lock:
                answers[q.question_id] = Answer(q.question_id, endpoint.model, reply.text, reply.completion_tokens)
                if time.monotonic() - last_flush[0] >= s.checkpoint_every_s:
                    flush()

        def final_flush() -> None:
            with lock:
                flush()

        generation.generate(
            out,
            todo,
            one,
            base_url=endpoint.base_url,
            policy=s.retry_policy(),
            concurrency=s.concurrency,
            finish=final_flush,
        )

    # -- score ------------------------------------------------------------------------------------------

    def score(self, ctx: RunContext[ArenaHardSettings]) -> BenchmarkResult:
        s = ctx.settings
        questions = s.questions()
        baseline = s.baseline(questions)
        out_dir = ctx.work_dir / SUBDIR
        answers_path = _answers_file(out_dir)
        answers = read_answers(answers_path)
        missing = [q.question_id for q in questions if q.question_id not in answers]
        if missing:
            raise BenchmarkError(
                f"arena_hard: {len(missing)} of {len(questions)} question(s) have no answer (first: {missing[0]})",
                log=answers_path,
                hint="run the generate phase again; it resumes where it stopped",
            )
        config = s.judge_config(ctx.endpoint)
        cache = JudgmentCache(s.cache_file(ctx.work_dir, config.model))
        tasks = [
            JudgeTask(q.question_id, q.prompt, baseline[q.question_id].content, answers[q.question_id].content, game, p)
            for q in questions
            for p in range(s.judge_passes)
            for game in (0, 1)
        ]
        with JudgeClient(config) as client:
            judgments, stats = judge_all(tasks, client, cache, s.judge_concurrency)
        failed = [j for j in judgments if j.failure]
        failures_path = out_dir / "judge_failures.jsonl"
        write_jsonl_atomic(failures_path, (_failure_row(j) for j in failed))
        write_jsonl_atomic(out_dir / "judgments.jsonl", _judgment_rows(judgments, answers, s))

        by_pass: list[list[bt.Game]] = [[] for _ in range(s.judge_passes)]
        for j in judgments:
            by_pass[j.pass_index].append(bt.Game(j.game, j.label))
        battles = [bt.battles(games, s.strong_verdict_weight) for games in by_pass]
        result = bt.win_rate(battles, s.bootstrap_rounds, s.bootstrap_seed) if len(failed) < len(judgments) else None
        summary = {
            "win_rate": asdict(result) if result else None,
            "judge": {"model": config.model, "url": config.url, "cache": str(cache.path), **asdict(stats)},
            "answers": str(answers_path),
            "questions": len(questions),
        }
        (out_dir / "score_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        log.info(
            "arena_hard: %d judgments (%d from cache, %d requests sent), %d failed %s",
            len(judgments),
            stats.cache_hits,
            stats.requests_sent,
            len(failed),
            dict(stats.failures),
        )
        if result is None:
            raise _all_failed(failed, s, config, failures_path, cache.path)
        if failed:
            log.warning("arena_hard: %d of %d judgments failed; see %s", len(failed), len(judgments), failures_path)
        low, high = result.ci_low, result.ci_high
        ci = "n/a" if low is None or high is None else f"{low:.1f} to {high:.1f}"
        log.info("arena_hard: win rate %.1f%% (95%% CI %s)", result.value, ci)
        scores = _task_scores(result, len(questions), len(judgments), len(failed))
        samples = _samples(questions, baseline, answers, judgments, s.strong_verdict_weight)
        return BenchmarkResult(scores=scores, samples=samples)


# ------------------------------------------------------------------------------------------------ generation


def _answer_budgets(questions: list[Question], endpoint: Endpoint, s: ArenaHardSettings) -> dict[str, int]:
    """max_tokens per question: answer_max_tokens, capped by the context the prompt leaves (arena-hard does the same
    with its tokenizer option: max_tokens - prompt tokens - 300)."""
    if not s.fit_answer_to_context:
        return {q.question_id: s.answer_max_tokens for q in questions}
    count = _prompt_counter(endpoint.tokenizer)
    budgets = {}
    for q in questions:
        room = endpoint.max_model_len - count(q)
        if room < 16:
            raise BenchmarkError(
                f"arena_hard: question {q.question_id} leaves {room} tokens for the answer in max_model_len="
                f"{endpoint.max_model_len}",
                hint="serve the model with a larger max_model_len",
            )
        budgets[q.question_id] = min(s.answer_max_tokens, room)
    capped = sum(b < s.answer_max_tokens for b in budgets.values())
    if capped:
        log.info(
            "arena_hard: %d answer budget(s) capped below %d by max_model_len=%d",
            capped,
            s.answer_max_tokens,
            endpoint.max_model_len,
        )
    return budgets


def _prompt_counter(tokenizer: str) -> Any:
    def bound(q: Question) -> int:
        return len(q.prompt.encode("utf-8")) + 64  # byte-level BPE: tokens <= bytes; + 64 for the chat template

    if tokenizer.startswith(("/", ".", "~")) and not Path(tokenizer).expanduser().exists():
        log.warning("arena_hard: tokenizer %s does not exist; bounding prompt tokens by UTF-8 bytes", tokenizer)
        return bound
    try:
        from transformers import AutoTokenizer  # heavy; only generation needs it

        tok = AutoTokenizer.from_pretrained(tokenizer)

        def count(q: Question) -> int:
            text = tok.apply_chat_template(q.messages(), add_generation_prompt=True, tokenize=False)
            return len(tok(text, add_special_tokens=False)["input_ids"])

        return count
    except Exception as exc:  # any tokenizer trouble: fall back to a bound, never to no cap
        log.warning("arena_hard: cannot load tokenizer %s (%s); bounding prompt tokens by UTF-8 bytes", tokenizer, exc)
        return bound


def _check_generation_meta(out_dir: Path, s: ArenaHardSettings, endpoint: Endpoint) -> None:
    """Refuse to mix answers generated under different settings in one file."""
    meta = {
        "questions_sha256": sha256_file(Path(s.questions_file)),
        "model": endpoint.model,
        "answer_max_tokens": s.answer_max_tokens,
        "answer_temperature": s.answer_temperature,
        "fit_answer_to_context": s.fit_answer_to_context,
    }
    pin_generation_settings(out_dir / GENERATION_FILE, meta, "arena_hard: existing answers", f"delete {out_dir}")


def _answers_file(out_dir: Path) -> Path:
    files = sorted((out_dir / ANSWER_DIR).glob("*.jsonl"))
    if len(files) != 1:
        raise BenchmarkError(
            f"arena_hard: expected one model answer file in {out_dir / ANSWER_DIR}, found {len(files)}",
            hint="run the generate phase first (one model per cell)",
        )
    return files[0]


# ------------------------------------------------------------------------------------------------ scoring


def _task_scores(result: bt.WinRate, n_questions: int, n_judgments: int, n_failed: int) -> list[TaskScore]:
    scores = [
        TaskScore(TASK, WIN_RATE, result.value, stderr=result.stderr, n_samples=n_questions, is_primary=True),
        TaskScore(TASK, "ci_low", result.ci_low, n_samples=n_questions),
        TaskScore(TASK, "ci_high", result.ci_high, n_samples=n_questions),
        TaskScore(TASK, "judge_failures", float(n_failed), n_samples=n_judgments, higher_is_better=False),
    ]
    scores += [
        TaskScore(TASK, f"win_rate_pass{i + 1}", w, n_samples=n_questions) for i, w in enumerate(result.per_pass)
    ]
    return scores


def _samples(
    questions: list[Question],
    baseline: dict[str, Answer],
    answers: dict[str, Answer],
    judgments: list[Judgment],
    weight: int,
) -> list[SampleRecord]:
    by_question: dict[str, list[Judgment]] = {}
    for j in judgments:
        by_question.setdefault(j.question_id, []).append(j)
    samples = []
    for doc_id, q in enumerate(questions):
        metrics: dict[str, float] = {}
        games = by_question.get(q.question_id, [])
        for j in games:
            if j.label is not None:  # a failed game has no verdict key; judge_failures counts it
                metrics[f"verdict_p{j.pass_index + 1}_g{j.game + 1}"] = bt.verdict_score(j.game, j.label)
        metrics["judge_failures"] = float(sum(j.failure is not None for j in games))
        rows = bt.battles([bt.Game(j.game, j.label) for j in games], weight)
        if rows.size:
            metrics[WIN_FRACTION] = float(rows.mean())  # model's share of this question's (weighted) battles
        samples.append(
            SampleRecord(
                task=TASK,
                doc_id=doc_id,
                prompt_hash=q.prompt_hash(),
                target=baseline[q.question_id].content,
                response=answers[q.question_id].content,
                metrics=metrics,
            )
        )
    return samples


def _judgment_rows(judgments: list[Judgment], answers: dict[str, Answer], s: ArenaHardSettings) -> list[dict[str, Any]]:
    """arena-hard's model_judgment lines (question_id, model, judge, games[score, judgment]) plus the pass index."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for j in judgments:
        row = rows.setdefault(
            (j.question_id, j.pass_index),
            {
                "question_id": j.question_id,
                "model": answers[j.question_id].model_id,
                "judge": s.judge_model,
                "pass": j.pass_index,
                "games": [None, None],
            },
        )
        row["games"][j.game] = {"score": j.label, "judgment": j.judgment, "failure": j.failure}
    return list(rows.values())


def _failure_row(j: Judgment) -> dict[str, Any]:
    return {
        "question_id": j.question_id,
        "pass": j.pass_index,
        "game": j.game,
        "failure": j.failure,
        "error": j.error,
        "judgment_tail": j.judgment[-500:],
        "requests": j.requests,
    }


def _all_failed(
    failed: list[Judgment], s: ArenaHardSettings, config: JudgeConfig, log_path: Path, cache_path: Path
) -> BenchmarkError:
    reasons = Counter(j.failure for j in failed)
    first = failed[0]
    what = (
        f"arena_hard: all {len(failed)} judgments failed ({', '.join(f'{k}: {v}' for k, v in reasons.items())}); "
        f"judge {config.model!r} at {config.url}; first: question {first.question_id}: {first.error}"
    )
    if set(reasons) <= VERDICT_FAILURES:
        hint = (
            "the judge answered but never gave a usable [[A>B]]-style verdict: use a stronger judge model, or raise "
            f"judge_max_tokens / verdict_retries. These failures are cached in {cache_path}; delete it to ask again"
        )
    else:
        key_state = (
            f"${s.judge_api_key_env} is {'set' if config.api_key else 'NOT set'}"
            if s.judge_api_key_env
            else "no API key is sent (judge_api_key_env is null)"
        )
        hint = (
            f"check that {config.url} is up and serves model {config.model!r} ({key_state}), then rerun score: "
            "failed requests are not cached, successful judgments are"
        )
    return BenchmarkError(what, log=log_path, hint=hint)
