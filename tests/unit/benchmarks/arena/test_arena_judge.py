"""The Arena-Hard judge against a real local HTTP server speaking OpenAI's chat-completions protocol.

Every failure mode (garbage verdicts, contradictory labels, requests that time out, HTTP 500 / 401) must end as a
counted, reported judge failure or a clear BenchmarkError, never a crash or a silent zero; the cache must make a
re-score send nothing. Requests are counted at the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from arena_fake_openai import MODEL_MARK, FakeOpenAI, Reply, Seen
from paths import REPO

from evalkit.benchmarks.arena.adapter import ArenaHard, ArenaHardSettings
from evalkit.benchmarks.arena.data import Answer, read_questions, write_answers
from evalkit.benchmarks.arena.judge import CONTINUE_PROMPT, parse_verdict
from evalkit.benchmarks.base import RunContext
from evalkit.core.errors import BenchmarkError
from evalkit.core.records import TaskScore

DEMO = REPO / "data" / "arena_hard" / "demo"
QUESTIONS = read_questions(DEMO / "question.jsonl")
N = len(QUESTIONS)
JUDGMENTS = N * 2 * 2  # questions x games x passes
HAIKU = "Write a haiku about autumn rain."


def prefer_model(seen: Seen) -> Reply:
    """A judge that always finds the model's answer significantly better, whichever side it is on."""
    return Reply(
        "The model's answer is better. My final verdict is: " + ("[[A>>B]]" if seen.model_is_a else "[[B>>A]]")
    )


def except_haiku(bad: Reply) -> Callable[[Seen], Reply]:
    return lambda seen: bad if seen.question == HAIKU else prefer_model(seen)


GARBAGE = Reply("Both answers have merits and I like them equally well.")


def settings(server: FakeOpenAI, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "questions_file": str(DEMO / "question.jsonl"),
        "baseline_answers_file": str(DEMO / "model_answer" / "gpt-4-0314.jsonl"),
        "judge_base_url": server.base_url,
        "judge_model": "fake-judge",
        "judge_api_key_env": None,
        "bootstrap_rounds": 10,
        "request_timeout_s": 2.0,
        "http_retries": 1,
        "retry_backoff_s": 0.01,
        "judge_concurrency": 4,
        "cache_dir": str(tmp_path / "cache"),
    } | overrides


def context(tmp_path: Path, settings: dict[str, Any]) -> RunContext[ArenaHardSettings]:
    """A cell whose generate phase is done: the model's answers are on disk; no model server (endpoint=None)."""
    work = tmp_path / "cell"
    answers = [Answer(q.question_id, "m", f"{MODEL_MARK}: my answer to {q.prompt}", 9) for q in QUESTIONS]
    write_answers(work / "arena_hard" / "model_answer" / "m.jsonl", answers)
    return RunContext(endpoint=None, work_dir=work, settings=ArenaHard().parse_settings(settings))


def metric(scores: list[TaskScore], name: str) -> float | None:
    (score,) = [s for s in scores if s.metric == name]
    return score.value


# ------------------------------------------------------------------------------------------ verdict parsing


@pytest.mark.parametrize(
    ("text", "label", "retry", "failure"),
    [
        ("My final verdict is tie: [[A=B]]", "A=B", False, None),
        ("[[B>>A]] ... so, again: [[B>>A]]", "B>>A", False, None),  # the same label twice is one verdict
        ("Assistant B is better.", None, True, "no_verdict"),
        ("[[A>B]] or maybe [[B>A]]", None, False, "inconsistent"),
        ("[[A<B]]", None, False, "unknown_label"),  # the regex captures it; v0.1 has no such verdict
        ("[[]] [[C>D]]", None, True, "no_verdict"),
    ],
)
def test_parse_verdict_follows_arena_hard(text: str, label: str | None, retry: bool, failure: str | None) -> None:
    verdict = parse_verdict(text)
    assert (verdict.label, verdict.retry, verdict.failure) == (label, retry, failure)


# ------------------------------------------------------------------------------------------ judging end to end


def test_judge_in_both_orders_then_the_cache_answers_a_rescore(tmp_path: Path) -> None:
    with FakeOpenAI(prefer_model).running() as server:
        ctx = context(tmp_path, settings(server, tmp_path))
        result = ArenaHard().score(ctx)
        assert server.count() == JUDGMENTS
        orders = {(r.question, r.model_is_a) for r in server.requests}
        assert len(orders) == N * 2  # every question judged with the model as B (game 1) and as A (game 2)
        assert {r.body["temperature"] for r in server.requests} == {0.0}

        assert metric(result.scores, "win_rate") == 100.0  # the model wins every game strongly
        assert metric(result.scores, "judge_failures") == 0.0
        assert [s.metric for s in result.scores if s.is_primary] == ["win_rate"]
        assert {s.task for s in result.scores} == {"arena_hard"}
        sample = result.samples[0]
        assert sample.doc_id == 0 and sample.target.startswith("A list is mutable") and MODEL_MARK in sample.response
        verdicts = {f"verdict_p{p}_g{g}": 2.0 for p in (1, 2) for g in (1, 2)}  # +2: model significantly better
        assert sample.metrics == verdicts | {"judge_failures": 0.0, "win_fraction": 1.0}

        again = ArenaHard().score(ctx)
        assert server.count() == JUDGMENTS  # zero new requests
        assert again.scores == result.scores
        summary = json.loads((ctx.work_dir / "arena_hard" / "score_summary.json").read_text())
        assert summary["judge"]["cache_hits"] == JUDGMENTS and summary["judge"]["requests_sent"] == 0


def test_a_changed_answer_is_the_only_thing_judged_again(tmp_path: Path) -> None:
    with FakeOpenAI(prefer_model).running() as server:
        ctx = context(tmp_path, settings(server, tmp_path))
        ArenaHard().score(ctx)
        path = ctx.work_dir / "arena_hard" / "model_answer" / "m.jsonl"
        answers = [Answer(q.question_id, "m", f"{MODEL_MARK}: answer", 2) for q in QUESTIONS[:1]]
        lines = path.read_text().splitlines()
        write_answers(path, answers)
        path.write_text(path.read_text() + "\n".join(lines[1:]) + "\n")
        ArenaHard().score(ctx)
        assert server.count() == JUDGMENTS + 4  # one question x 2 games x 2 passes


def test_garbage_verdicts_are_retried_counted_reported_and_cached(tmp_path: Path) -> None:
    with FakeOpenAI(except_haiku(GARBAGE)).running() as server:
        ctx = context(tmp_path, settings(server, tmp_path))
        result = ArenaHard().score(ctx)
        # the haiku's 4 judgments each asked twice (v0.1's continuation), the others once
        assert server.count() == JUDGMENTS - 4 + 4 * 2
        continued = [r for r in server.requests if r.last_user == CONTINUE_PROMPT]
        assert len(continued) == 4 and all(r.question == HAIKU for r in continued)

        assert metric(result.scores, "judge_failures") == 4.0
        assert metric(result.scores, "win_rate") == 100.0  # from the games that did get a verdict
        haiku = result.samples[1]
        assert haiku.metrics == {"judge_failures": 4.0}  # no verdict keys and no win_fraction: nothing made up
        failures = (ctx.work_dir / "arena_hard" / "judge_failures.jsonl").read_text().splitlines()
        assert len(failures) == 4 and all(json.loads(f)["failure"] == "no_verdict" for f in failures)

        ArenaHard().score(ctx)
        assert server.count() == JUDGMENTS + 4  # verdict failures are cached: nothing re-sent


def test_contradictory_labels_fail_without_a_retry(tmp_path: Path) -> None:
    with FakeOpenAI(except_haiku(Reply("[[A>B]]. On reflection, [[B>A]]."))).running() as server:
        result = ArenaHard().score(context(tmp_path, settings(server, tmp_path)))
        assert server.count() == JUDGMENTS
        assert metric(result.scores, "judge_failures") == 4.0


def test_a_continuation_that_gives_a_label_rescues_the_judgment(tmp_path: Path) -> None:
    def judge(seen: Seen) -> Reply:
        return Reply("Final verdict: [[A=B]]") if seen.last_user == CONTINUE_PROMPT else GARBAGE

    with FakeOpenAI(judge).running() as server:
        result = ArenaHard().score(context(tmp_path, settings(server, tmp_path)))
        assert server.count() == 2 * JUDGMENTS
        assert metric(result.scores, "judge_failures") == 0.0
        assert metric(result.scores, "win_rate") == pytest.approx(50.0, abs=1e-6)


def test_every_judgment_garbage_raises_a_clear_error(tmp_path: Path) -> None:
    with FakeOpenAI(lambda seen: GARBAGE).running() as server:
        ctx = context(tmp_path, settings(server, tmp_path, verdict_retries=0))
        with pytest.raises(BenchmarkError) as info:
            ArenaHard().score(ctx)
        assert server.count() == JUDGMENTS
        msg = str(info.value)
        assert f"all {JUDGMENTS} judgments failed (no_verdict: {JUDGMENTS})" in msg
        assert server.base_url + "/chat/completions" in msg and "fake-judge" in msg
        assert str(ctx.work_dir / "arena_hard" / "judge_failures.jsonl") in msg
        assert "stronger judge" in msg

        with pytest.raises(BenchmarkError, match="all 24 judgments failed"):
            ArenaHard().score(ctx)  # the cached failures answer the re-score: same error, no request
        assert server.count() == JUDGMENTS
        summary = json.loads((ctx.work_dir / "arena_hard" / "score_summary.json").read_text())
        assert summary["win_rate"] is None and summary["judge"]["cache_hits"] == JUDGMENTS


def test_timeouts_are_retried_with_backoff_counted_and_not_cached(tmp_path: Path) -> None:
    with FakeOpenAI(except_haiku(Reply("[[A=B]]", delay_s=1.0))).running() as server:
        ctx = context(tmp_path, settings(server, tmp_path, request_timeout_s=0.3))
        result = ArenaHard().score(ctx)
        assert server.count() == JUDGMENTS - 4 + 4 * 2  # each timed-out request sent twice (http_retries=1)
        assert metric(result.scores, "judge_failures") == 4.0
        assert result.samples[1].metrics == {"judge_failures": 4.0}
        failure = json.loads((ctx.work_dir / "arena_hard" / "judge_failures.jsonl").read_text().splitlines()[0])
        assert failure["failure"] == "timeout" and "within 0.3 s" in failure["error"]

        ArenaHard().score(ctx)  # transport failures are not cached: only the haiku's 4 judgments go out again
        assert server.count() == JUDGMENTS + 4 + 4 * 2


def test_http_500_everywhere_is_retried_then_a_clear_error(tmp_path: Path) -> None:
    with FakeOpenAI(lambda seen: Reply(raw='{"error": "boom"}', status=500)).running() as server:
        ctx = context(tmp_path, settings(server, tmp_path, http_retries=2))
        with pytest.raises(BenchmarkError) as info:
            ArenaHard().score(ctx)
        assert server.count() == JUDGMENTS * 3
        msg = str(info.value)
        assert f"(http_500: {JUDGMENTS})" in msg and "HTTP 500" in msg and server.base_url in msg
        assert "is up" in msg and "judge_failures.jsonl" in msg


def test_http_401_is_not_retried_and_names_the_key_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALKIT_TEST_JUDGE_KEY", raising=False)

    def judge(seen: Seen) -> Reply:
        if seen.authorization != "Bearer sk-test-123":
            return Reply(raw='{"error": "invalid api key"}', status=401)
        return prefer_model(seen)

    with FakeOpenAI(judge).running() as server:
        ctx = context(tmp_path, settings(server, tmp_path, judge_api_key_env="EVALKIT_TEST_JUDGE_KEY"))
        with pytest.raises(BenchmarkError, match=r"\$EVALKIT_TEST_JUDGE_KEY is NOT set"):
            ArenaHard().score(ctx)
        assert server.count() == JUDGMENTS  # a 4xx is final: one request per judgment

        monkeypatch.setenv("EVALKIT_TEST_JUDGE_KEY", "sk-test-123")
        result = ArenaHard().score(ctx)
        assert metric(result.scores, "win_rate") == 100.0
        assert "sk-test-123" not in (ctx.work_dir / "arena_hard" / "score_summary.json").read_text()


def test_a_malformed_200_is_a_counted_failure(tmp_path: Path) -> None:
    with FakeOpenAI(except_haiku(Reply(raw="<html>proxy error</html>"))).running() as server:
        result = ArenaHard().score(context(tmp_path, settings(server, tmp_path, http_retries=0)))
        assert metric(result.scores, "judge_failures") == 4.0
        assert server.count() == JUDGMENTS
