"""The Arena-Hard-Auto v0.1 judge: chat requests (`evalkit.util.http`), arena-hard's verdict parsing, a judgment cache.

One judgment = one game (baseline as A, or swapped) of one question in one judging pass. As in arena-hard's
`gen_judgment.py`: the conversation is the judge system prompt + the filled template; when the reply carries no
`[[...]]` label the conversation continues with "continue your judgment and finish by outputting a final verdict
label" (`verdict_retries` times; v0.1 allows 1), and the label is parsed from all replies joined.

Failures are values, never exceptions: a judgment that ends without a usable label, or whose requests kept timing
out or failing (after the retries of `evalkit.util.http`), is returned with `failure` set so the caller counts and
reports it.
Verdict failures are cached like verdicts (a temperature-0 judge would repeat them); transport failures are not, so
the next run retries them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from evalkit.benchmarks.arena.bradley_terry import LABELS
from evalkit.benchmarks.parallel import run_parallel
from evalkit.util.files import JsonLineError, read_jsonl
from evalkit.util.hashing import sha256_text
from evalkit.util.http import Client, HttpError, RetryPolicy
from evalkit.util.locks import exclusive

log = logging.getLogger(__name__)

# arena-hard-auto config/judge_config.yaml (v0.1), verbatim.
SYSTEM_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the "
    "user prompt displayed below. You will be given assistant A's answer and assistant B's answer. Your job is to "
    "evaluate which assistant's answer is better.\n\nBegin your evaluation by generating your own answer to the "
    "prompt. You must provide your answers before judging any answers.\n\nWhen evaluating the assistants' answers, "
    "compare both assistants' answers with your answer. You must identify and correct any mistakes or inaccurate "
    "information.\n\nThen consider if the assistant's answers are helpful, relevant, and concise. Helpful means the "
    "answer correctly responds to the prompt or follows the instructions. Note when user prompt has any ambiguity or "
    "more than one interpretation, it is more helpful and appropriate to ask for clarifications or more information "
    "from the user than providing an answer based on assumptions. Relevant means all parts of the response closely "
    "connect or are appropriate to what is being asked. Concise means the response is clear and not verbose or "
    "excessive.\n\nThen consider the creativity and novelty of the assistant's answers when needed. Finally, identify "
    "any missing important information in the assistants' answers that would be beneficial to include when "
    "responding to the user prompt.\n\nAfter providing your explanation, you must output only one of the following "
    "choices as your final verdict with a label:\n\n1. Assistant A is significantly better: [[A>>B]]\n2. Assistant A "
    "is slightly better: [[A>B]]\n3. Tie, relatively the same: [[A=B]]\n4. Assistant B is slightly better: "
    '[[B>A]]\n5. Assistant B is significantly better: [[B>>A]]\n\nExample output: "My final verdict is tie: '
    '[[A=B]]".'
)
PROMPT_TEMPLATE = (
    "<|User Prompt|>\n{question_1}\n\n<|The Start of Assistant A's Answer|>\n{answer_1}\n<|The End of Assistant A's "
    "Answer|>\n\n<|The Start of Assistant B's Answer|>\n{answer_2}\n<|The End of Assistant B's Answer|>"
)
TEMPLATE_FIELDS = frozenset({"question_1", "answer_1", "answer_2"})
VERDICT_PATTERN = r"\[\[([AB<>=]+)\]\]"
CONTINUE_PROMPT = "continue your judgment and finish by outputting a final verdict label"

VERDICT_FAILURES = frozenset({"no_verdict", "inconsistent", "unknown_label"})
"""The judge answered but gave no usable label: cached, since a deterministic judge would say the same again."""
# Transport failures ("timeout", "connection", "bad_response", "http_<status>": HttpError.reason) are everything
# else: never cached.
_FAILURE_TEXT = {
    "no_verdict": "no [[...]] verdict label in the judge's reply",
    "inconsistent": "several different verdict labels in the judge's reply",
    "unknown_label": f"the verdict label is none of {', '.join(LABELS)}",
}


# ------------------------------------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class Verdict:
    """What one judgment text says."""

    label: str | None
    retry: bool
    """True when no label was found: arena-hard then asks the judge to continue."""
    failure: str | None
    """None, "no_verdict", "inconsistent" (several different labels) or "unknown_label"."""


def parse_verdict(judgment: str, pattern: re.Pattern[str] | str = VERDICT_PATTERN) -> Verdict:
    """arena-hard's `get_score`: one distinct label -> it; none -> retry; several different ones -> no verdict."""
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    found = {m.strip("\n") for m in regex.findall(judgment) if m != ""}
    if not found:
        return Verdict(None, True, "no_verdict")
    if len(found) > 1:
        return Verdict(None, False, "inconsistent")
    (label,) = found
    # v0.1's show_result turns anything but the five labels into no battle; we say so instead of dropping silently.
    return Verdict(label, False, None) if label in LABELS else Verdict(None, False, "unknown_label")


# ------------------------------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class JudgeConfig:
    """Where and how to ask the judge."""

    base_url: str
    """OpenAI-compatible base URL, e.g. "https://api.openai.com/v1"; requests go to <base_url>/chat/completions."""
    model: str
    api_key: str | None = field(default=None, repr=False)
    temperature: float = 0.0
    max_tokens: int = 4096
    system_prompt: str = SYSTEM_PROMPT
    prompt_template: str = PROMPT_TEMPLATE
    verdict_pattern: str = VERDICT_PATTERN
    verdict_retries: int = 1
    """Continuations asked for when a reply carries no label (arena-hard v0.1: 2 attempts in all)."""
    extra_body: dict[str, Any] | None = None
    """Further request fields sent as they are (e.g. vLLM's `structured_outputs`); None for the protocol."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Timeout and retries of each request (the project's one policy; see `evalkit.util.http`)."""

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def settings_hash(self) -> str:
        """Everything besides the model and the inputs that shapes a judgment's outcome."""
        parts = [self.system_prompt, self.prompt_template, self.verdict_pattern, self.temperature, self.max_tokens]
        parts.append(self.verdict_retries)
        if self.extra_body:  # only when set, so caches of judgments made without it keep their keys
            parts.append(json.dumps(self.extra_body, sort_keys=True))
        return sha256_text(json.dumps(parts))


@dataclass(frozen=True)
class JudgeTask:
    """One game to judge."""

    question_id: str
    question: str
    baseline: str
    """The baseline model's answer."""
    answer: str
    """The evaluated model's answer."""
    game: int
    """0: baseline shown as assistant A; 1: swapped."""
    pass_index: int
    """0-based judging pass (the study judged everything twice)."""

    def user_prompt(self, template: str) -> str:
        a, b = (self.baseline, self.answer) if self.game == 0 else (self.answer, self.baseline)
        return template.format(question_1=self.question, answer_1=a, answer_2=b)

    def key(self, config: JudgeConfig) -> str:
        """Cache key: question (id and text), both answers, judge model, judge prompt/settings, game, pass."""
        parts = [
            self.question_id,
            sha256_text(self.question),
            sha256_text(self.answer),
            sha256_text(self.baseline),
            config.model,
            config.settings_hash(),
            self.game,
            self.pass_index,
        ]
        return sha256_text(json.dumps(parts))


@dataclass(frozen=True)
class Judgment:
    """The outcome of one game."""

    key: str
    question_id: str
    game: int
    pass_index: int
    judge_model: str
    label: str | None
    """One of the five v0.1 labels; None when the judgment failed."""
    failure: str | None = None
    """None on success; a verdict failure (see VERDICT_FAILURES) or a transport one (timeout, connection,
    bad_response, http_<status>)."""
    error: str = ""
    """Human-readable detail of the failure."""
    judgment: str = ""
    """The judge's replies, joined as arena-hard joins them."""
    requests: int = 0
    """HTTP requests this judgment took (retries included)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    """Read from the cache in this run (no request sent)."""

    @property
    def cacheable(self) -> bool:
        return self.failure is None or self.failure in VERDICT_FAILURES

    def record(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("cached")
        return row

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> Judgment:
        names = set(cls.__dataclass_fields__) - {"cached"}
        return cls(**{k: v for k, v in row.items() if k in names}, cached=True)


@dataclass
class _Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class JudgeClient:
    """Judges games over HTTP; thread-safe (one `evalkit.util.http.Client` shared by the judging threads).
    Close it, or use it as a context manager."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self._pattern = re.compile(config.verdict_pattern)
        self._http = Client(config.base_url, api_key=config.api_key, policy=config.retry)

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._http.close()

    def judge(self, task: JudgeTask, key: str | None = None) -> Judgment:
        cfg = self.config
        conv = [
            {"role": "system", "content": cfg.system_prompt},
            {"role": "user", "content": task.user_prompt(cfg.prompt_template)},
        ]
        usage = _Usage()
        text = ""

        def result(label: str | None, failure: str | None, error: str) -> Judgment:
            return Judgment(
                key=key or task.key(cfg),
                question_id=task.question_id,
                game=task.game,
                pass_index=task.pass_index,
                judge_model=cfg.model,
                label=label,
                failure=failure,
                error=error,
                judgment=text,
                requests=usage.requests,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
            )

        verdict = Verdict(None, True, "no_verdict")
        for _ in range(1 + cfg.verdict_retries):
            try:
                reply = self._complete(conv, usage)
            except HttpError as exc:
                return result(None, exc.reason, exc.what)
            text += "\n" + reply
            verdict = parse_verdict(text, self._pattern)
            conv.append({"role": "assistant", "content": reply})
            if not verdict.retry:
                break
            conv.append({"role": "user", "content": CONTINUE_PROMPT})
        return result(verdict.label, verdict.failure, _FAILURE_TEXT.get(verdict.failure or "", ""))

    def _complete(self, messages: list[dict[str, str]], usage: _Usage) -> str:
        """One chat completion (retried by the client's policy); raises HttpError when it gives up."""
        cfg = self.config
        body = {
            "model": cfg.model,
            "messages": messages,
            "temperature": cfg.temperature,
            "max_tokens": cfg.max_tokens,
            **(cfg.extra_body or {}),
        }
        try:
            reply = self._http.chat(body)
        except HttpError as exc:
            usage.requests += exc.attempts
            raise
        usage.requests += reply.attempts
        usage.prompt_tokens += reply.value.prompt_tokens
        usage.completion_tokens += reply.value.completion_tokens or 0
        return reply.value.text


# ------------------------------------------------------------------------------------------------ cache


class JudgmentCache:
    """Judgments by key, in one append-only JSONL file shared by runs (and by processes: appends are locked)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, Judgment] = {}
        self.skipped_lines = 0
        if path.exists():
            torn: list[JsonLineError] = []  # lines torn by a killed writer: their judgments are redone
            for _, row in read_jsonl(path, on_bad_line=torn.append):
                try:
                    self._entries[row["key"]] = Judgment.from_record(row)
                except (ValueError, KeyError, TypeError):
                    self.skipped_lines += 1
            self.skipped_lines += len(torn)
            if self.skipped_lines:
                log.warning("judge cache %s: ignored %d unreadable line(s)", path, self.skipped_lines)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Judgment | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, judgment: Judgment) -> None:
        if not judgment.cacheable:
            return
        line = json.dumps(judgment.record(), ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # other cells of the sweep may append to the same file: the file itself is their lock
            with exclusive(self.path), self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
            self._entries[judgment.key] = judgment


# ------------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class JudgeStats:
    """What one run of `judge_all` cost."""

    judgments: int
    cache_hits: int
    requests_sent: int
    prompt_tokens: int
    completion_tokens: int
    failures: dict[str, int]
    """Failure reason -> count, over all judgments (cached ones included)."""
    seconds: float


def judge_all(
    tasks: Sequence[JudgeTask], client: JudgeClient, cache: JudgmentCache, concurrency: int
) -> tuple[list[Judgment], JudgeStats]:
    """Judge every task (cache first), `concurrency` requests in flight; results in task order."""
    start = time.monotonic()
    keys = [t.key(client.config) for t in tasks]
    results: list[Judgment | None] = [cache.get(k) for k in keys]
    todo = [i for i, r in enumerate(results) if r is None]
    log.info(
        "judge %s: %d judgments, %d from cache, %d to ask",
        client.config.model,
        len(tasks),
        len(tasks) - len(todo),
        len(todo),
    )

    def one(i: int) -> None:
        judgment = client.judge(tasks[i], keys[i])
        cache.put(judgment)
        results[i] = judgment

    # judge() returns failures as values; anything raised here is a bug and stops the run
    run_parallel([partial(one, i) for i in todo], concurrency)
    done = [r for r in results if r is not None]
    fresh = [r for r in done if not r.cached]
    stats = JudgeStats(
        judgments=len(done),
        cache_hits=len(done) - len(fresh),
        requests_sent=sum(r.requests for r in fresh),
        prompt_tokens=sum(r.prompt_tokens for r in fresh),
        completion_tokens=sum(r.completion_tokens for r in fresh),
        failures=dict(Counter(r.failure for r in done if r.failure)),
        seconds=time.monotonic() - start,
    )
    return done, stats
