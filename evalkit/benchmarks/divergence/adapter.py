"""The `divergence` benchmark: the next-token distributions of a fixed prompt set, for comparing formats token by
token (`evalkit.compare.token_divergence`).

Phases (see `evalkit.benchmarks.base`):
- `generate` (needs the served model): each prompt is tokenized here, with the checkpoint's tokenizer, and sent as
  token ids to `/v1/completions` with `prompt_logprobs=top_k`, `max_tokens=1`: one forward pass per prompt, and every
  format sees exactly the same tokens (the tokenizer is the same for all formats of a model; sending ids keeps any
  server-side re-tokenization out). The top-k per position goes to `<work_dir>/divergence/topk.jsonl`.
- `score` (no server): one sample row per prompt (`evalkit.benchmarks.divergence.names`) and one score row with
  the number of prompts and positions. There is no score of its own: a divergence cell means something only
  against the baseline's, so nothing is primary and the recovery tables leave it out.

Prompts: the Arena-Hard questions (rendered with the chat template, as the arena cells send them), then held-out
text (`held_out_file`, JSON lines with `id` and `text`, tokenized as plain text).
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.benchmarks.arena.adapter import ARENA_HARD_COMMIT
from evalkit.benchmarks.arena.data import read_questions, write_jsonl_atomic
from evalkit.benchmarks.base import (
    BenchmarkBase,
    BenchmarkResult,
    PlanContext,
    RunContext,
    pin_generation_settings,
)
from evalkit.benchmarks.divergence import tokens
from evalkit.benchmarks.divergence.names import TopK, prompt_hash
from evalkit.benchmarks.parallel import run_parallel
from evalkit.core.datasources import DataSource, local_source, read_rows
from evalkit.core.errors import BenchmarkError, ConfigError
from evalkit.core.records import Endpoint, SampleRecord, TaskScore
from evalkit.core.workload import CellWorkload
from evalkit.util.hashing import sha256_file
from evalkit.util.http import Client, RetryPolicy, download

log = logging.getLogger(__name__)

TASK = "divergence"
SUBDIR = "divergence"
OUTPUT_FILE = "topk.jsonl"
GENERATION_FILE = "generation.json"


@dataclass(frozen=True)
class DivergenceSettings:
    """The `settings` of a divergence benchmark section. Relative paths are from where evalkit runs (the repo)."""

    questions_file: str = "data/arena_hard/v0.1/question.jsonl"
    # arena-hard's question.jsonl (the prompts the arena cells answer); demo: data/arena_hard/demo/question.jsonl.
    questions_url: str | None = (
        f"https://raw.githubusercontent.com/lmarena/arena-hard-auto/{ARENA_HARD_COMMIT}/data/arena-hard-v0.1/question.jsonl"
    )
    # Where `prefetch` downloads questions_file from when it is missing (None: never download).
    held_out_file: str | None = "data/divergence/held_out.jsonl"
    # JSON lines {"id", "text"}: text no benchmark prompts with, scored as plain text. None: questions only.
    top_k: int = 20
    # Next-token candidates stored per position (vLLM's default --max-logprobs is 20).
    max_prompt_tokens: int | None = None
    # Positions scored per prompt, from the start; None: as many as the server's context allows (max_model_len - 1).
    concurrency: int = 8
    # Requests in flight at once.
    request_timeout_s: float = 600.0
    # Seconds before one request is abandoned and retried.
    http_retries: int = 3
    # Retries of a request after a timeout, connection error, 5xx or 429, with exponential backoff.
    limit: int | None = None
    # Demo only: the first `limit` questions. Never set it for reported numbers.

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> DivergenceSettings:
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - valid)
        if unknown:
            close = [m for k in unknown for m in difflib.get_close_matches(k, valid, n=1)]
            guess = f"did you mean {', '.join(close)}? " if close else ""
            raise ConfigError(f"divergence: unknown setting(s) {unknown}", hint=f"{guess}valid keys: {sorted(valid)}")
        s = cls(**settings)
        for key in ("top_k", "concurrency"):
            if not isinstance(getattr(s, key), int) or getattr(s, key) < 1:
                raise ConfigError(f"divergence: invalid {key}={getattr(s, key)!r}: must be an integer >= 1")
        for key in ("max_prompt_tokens", "limit"):
            value = getattr(s, key)
            if value is not None and (not isinstance(value, int) or value < 2):
                raise ConfigError(f"divergence: invalid {key}={value!r}: must be an integer >= 2 or null")
        return s

    def files(self) -> list[tuple[str, str]]:
        out = [("arena_hard questions", self.questions_file)]
        return out + ([("divergence held-out text", self.held_out_file)] if self.held_out_file else [])


@dataclass(frozen=True)
class Prompt:
    doc_id: int
    source: str
    """"<question_id>" or "held_out:<id>"."""
    text: str
    chat: bool
    """Render with the chat template (a question) or tokenize as it is (held-out text)."""


def prompts(s: DivergenceSettings) -> list[Prompt]:
    questions = read_questions(s.questions_file)
    questions = questions[: s.limit] if s.limit else questions
    out = [Prompt(i, q.question_id, q.prompt, True) for i, q in enumerate(questions)]
    if s.held_out_file:
        for row in read_rows(Path(s.held_out_file)):
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "id" not in row:
                raise BenchmarkError(f"divergence: {s.held_out_file}: every line needs an 'id' and a 'text'")
            out.append(Prompt(len(out), f"held_out:{row['id']}", row["text"], False))
    return out


class Divergence(BenchmarkBase[DivergenceSettings]):
    """Adapter `divergence` (see the module docstring)."""

    def parse_settings(self, settings: Mapping[str, Any]) -> DivergenceSettings:
        return DivergenceSettings.from_dict(dict(settings))

    def planned_sources(self, plan: PlanContext) -> list[dict[str, Any]]:
        d = self.parse_settings(plan.settings)
        out: list[dict[str, Any]] = [
            {
                "dataset": "arena_hard/questions",
                "source": "local",
                "files": {"file": d.questions_file},
                "url": d.questions_url,
            }
        ]
        if d.held_out_file:
            out.append({"dataset": "divergence/held_out", "source": "local", "files": {"file": d.held_out_file}})
        return out

    def workload(self, settings: Mapping[str, Any]) -> CellWorkload:
        s = self.parse_settings(settings)
        return tokens.workload(s.limit, s.concurrency, bool(s.held_out_file))

    def validate(self, settings: dict[str, Any]) -> None:
        s = DivergenceSettings.from_dict(settings)
        for what, path in s.files():
            if not Path(path).is_file():
                raise ConfigError(
                    f"divergence: {what} {path!r}: no such file",
                    hint="run `evalkit prefetch` where there is internet (it downloads the Arena-Hard questions), "
                    "or use the demo files (benchmark=demo_divergence)",
                )
        prompts(s)

    def data_sources(self, ctx: RunContext[DivergenceSettings]) -> list[DataSource]:
        return [local_source(what, path) for what, path in ctx.settings.files()]

    def prefetch(self, settings: dict[str, Any]) -> None:
        s = DivergenceSettings.from_dict(settings)
        path = Path(s.questions_file)
        if path.is_file():
            return
        if not s.questions_url:
            raise BenchmarkError(f"divergence: questions_file {path} is missing and questions_url is not set")
        count = download(s.questions_url, path, lambda p: len(read_questions(p)))
        log.info("divergence: wrote %s (%d questions)", path, count)

    def generate(self, ctx: RunContext[DivergenceSettings]) -> None:
        if ctx.endpoint is None:
            raise BenchmarkError("divergence: generate needs a served model (ctx.endpoint is None)")
        endpoint = ctx.endpoint
        s = ctx.settings
        out_dir = ctx.work_dir / SUBDIR
        pinned = {
            "model": endpoint.model,
            "top_k": s.top_k,
            "max_prompt_tokens": s.max_prompt_tokens,
            "limit": s.limit,
            **{f"sha256 {what}": sha256_file(Path(path)) for what, path in s.files()},
        }
        pin_generation_settings(out_dir / GENERATION_FILE, pinned, "divergence: stored logprobs", f"delete {out_dir}")
        todo = prompts(s)
        token_ids = _tokenize(todo, endpoint, s)
        client = _PromptLogprobs(endpoint, s)
        rows: dict[int, dict[str, Any]] = {}

        def one(p: Prompt) -> None:
            topk = client.top_k(token_ids[p.doc_id], p.source)
            rows[p.doc_id] = {
                "doc_id": p.doc_id,
                "source": p.source,
                "prompt_hash": prompt_hash(token_ids[p.doc_id]),
                "positions": int(topk.ids.shape[0]),
                "topk": topk.encode(),
            }

        started = time.monotonic()
        try:
            run_parallel([partial(one, p) for p in todo], s.concurrency)
        except Exception as exc:
            raise BenchmarkError(
                f"divergence: prompt logprobs failed: {exc}", hint="check the server log, then rerun the cell"
            ) from exc
        finally:
            client.http.close()
        write_jsonl_atomic(out_dir / OUTPUT_FILE, (rows[p.doc_id] for p in todo))
        log.info(
            "divergence: %d prompts, %d positions, top-%d, in %.1f s",
            len(todo),
            sum(r["positions"] for r in rows.values()),
            s.top_k,
            time.monotonic() - started,
        )

    def score(self, ctx: RunContext[DivergenceSettings]) -> BenchmarkResult:
        s = ctx.settings
        path = ctx.work_dir / SUBDIR / OUTPUT_FILE
        if not path.is_file():
            raise BenchmarkError(f"divergence: {path} is missing", hint="run the generate phase first")
        rows = read_rows(path)
        expected = prompts(s)
        if [r["source"] for r in rows] != [p.source for p in expected]:
            raise BenchmarkError(
                f"divergence: {path} holds {len(rows)} prompts that are not the configured {len(expected)}",
                log=path,
                hint=f"delete {path.parent} and rerun the cell",
            )
        samples = [
            SampleRecord(
                task=TASK,
                doc_id=int(r["doc_id"]),
                prompt_hash=str(r["prompt_hash"]),
                target=str(r["source"]),
                response=str(r["topk"]),
                metrics={"positions": float(r["positions"])},
            )
            for r in rows
        ]
        positions = sum(int(r["positions"]) for r in rows)
        scores = [
            TaskScore(TASK, "prompts", float(len(rows)), n_samples=len(rows)),
            TaskScore(TASK, "positions", float(positions), n_samples=len(rows)),
        ]
        return BenchmarkResult(scores=scores, samples=samples)


def _tokenize(todo: list[Prompt], endpoint: Endpoint, s: DivergenceSettings) -> dict[int, list[int]]:
    """Token ids per prompt, cut to the positions the settings and the server's context allow."""
    from transformers import AutoTokenizer  # heavy; only generation needs it

    try:
        tok = AutoTokenizer.from_pretrained(endpoint.tokenizer)
    except Exception as exc:
        raise BenchmarkError(
            f"divergence: cannot load the tokenizer {endpoint.tokenizer}: {exc}",
            hint="the served checkpoint's directory must hold its tokenizer files",
        ) from exc
    cap = endpoint.max_model_len - 1  # the one generated token needs a slot
    if s.max_prompt_tokens is not None:
        cap = min(cap, s.max_prompt_tokens)
    out = {}
    for p in todo:
        if p.chat:
            text = tok.apply_chat_template(
                [{"role": "user", "content": p.text}], add_generation_prompt=True, tokenize=False
            )
            ids = tok(text, add_special_tokens=False)["input_ids"]
        else:
            ids = tok(p.text)["input_ids"]
        if len(ids) < 2:
            raise BenchmarkError(f"divergence: prompt {p.source} has {len(ids)} token(s); at least 2 are needed")
        out[p.doc_id] = [int(i) for i in ids[:cap]]
    return out


class _PromptLogprobs:
    """`/v1/completions` with token ids as the prompt and `prompt_logprobs`: the top-k at every prompt position."""

    def __init__(self, endpoint: Endpoint, s: DivergenceSettings) -> None:
        self.model = endpoint.model
        self.s = s
        self.http = Client(endpoint.base_url, policy=RetryPolicy(retries=s.http_retries, timeout_s=s.request_timeout_s))

    def top_k(self, token_ids: list[int], source: str) -> TopK:
        body = {
            "model": self.model,
            "prompt": token_ids,
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": self.s.top_k,
        }
        reply = self.http.post("completions", body, lambda js: js["choices"][0]["prompt_logprobs"])
        return _parse(reply.value, self.s.top_k, source)


def _parse(prompt_logprobs: list[dict[str, dict[str, Any]] | None], k: int, source: str) -> TopK:
    """vLLM gives, per position after the first, {token id: {logprob, rank}} holding the top-k by rank and the prompt's
    own token (rank > k when it is not among them); keep the top-k, ordered by rank."""
    positions = prompt_logprobs[1:]
    ids = np.empty((len(positions), k), dtype=np.int64)
    lps = np.empty((len(positions), k))
    for t, entry in enumerate(positions):
        ranked = sorted(((v["rank"], int(tid), float(v["logprob"])) for tid, v in (entry or {}).items()))[:k]
        if len(ranked) < k:
            raise BenchmarkError(f"divergence: prompt {source} position {t + 1}: {len(ranked)} logprobs, expected {k}")
        ids[t] = [r[1] for r in ranked]
        lps[t] = [r[2] for r in ranked]
    return TopK(ids, lps)
