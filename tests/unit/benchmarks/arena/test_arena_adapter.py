"""The Arena-Hard adapter's settings, generate phase (resumable, arena-hard's answer format) and prefetch, against a
real local HTTP server speaking OpenAI's protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from arena_fake_openai import FakeOpenAI, Reply, Seen
from paths import REPO

from evalkit.benchmarks.arena.adapter import ArenaHard, ArenaHardSettings
from evalkit.benchmarks.arena.data import read_answers, read_questions
from evalkit.benchmarks.base import Endpoint, RunContext
from evalkit.core.errors import BenchmarkError, ConfigError

DEMO = REPO / "data" / "arena_hard" / "demo"
QUESTIONS = DEMO / "question.jsonl"
BASELINE = DEMO / "model_answer" / "gpt-4-0314.jsonl"


def answer_everything(seen: Seen) -> Reply:
    return Reply(f"An answer to: {seen.question}")


def gen_context(server: FakeOpenAI, work: Path, **overrides: Any) -> RunContext[ArenaHardSettings]:
    endpoint = Endpoint(base_url=server.base_url, model="org/model-x", tokenizer="/nonexistent", max_model_len=4096)
    s = {
        "questions_file": str(QUESTIONS),
        "baseline_answers_file": str(BASELINE),
        "concurrency": 3,
        "http_retries": 1,
        "retry_backoff_s": 0.01,
    } | overrides
    return RunContext(endpoint=endpoint, work_dir=work, settings=ArenaHard().parse_settings(s))


# ------------------------------------------------------------------------------------------ settings


def test_defaults_follow_arena_hard_v01() -> None:
    s = ArenaHardSettings()
    assert (s.answer_temperature, s.answer_max_tokens, s.judge_temperature, s.judge_max_tokens) == (
        0.0,
        4096,
        0.0,
        4096,
    )
    assert (s.baseline_model, s.judge_passes, s.strong_verdict_weight, s.bootstrap_rounds) == ("gpt-4-0314", 2, 3, 100)
    assert s.verdict_retries == 1 and s.judge_system_prompt.startswith("Please act as an impartial judge")
    assert s.concurrency > 1 and s.judge_concurrency > 1


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"judge_modle": "x"}, r"(?s)unknown setting 'judge_modle'.*did you mean judge_model\? valid keys"),
        ({"judge_prompt_template": "{question_1} {answer_1}"}, "must use exactly the fields"),
        ({"judge_api_key_env": "sk-proj-abc123"}, "NAME of an environment variable"),
        ({"judge_passes": 0}, "judge_passes"),
        ({"judge_base_url": "api.openai.com"}, "http"),
        ({"limit": 0}, "limit"),
        ({"judge_passes": "two"}, r"(?s)invalid judge_passes='two'.*judge_passes takes int"),
        ({"judge_extra_body": "structured"}, r"judge_extra_body='structured'"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ArenaHard().validate({"questions_file": str(QUESTIONS), "baseline_answers_file": str(BASELINE)} | overrides)


def test_validate_points_at_prefetch_when_the_real_set_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as info:
        ArenaHard().validate({"questions_file": str(tmp_path / "question.jsonl")})
    assert "evalkit prefetch" in str(info.value)


def test_validate_rejects_baseline_answers_that_do_not_cover_the_questions(tmp_path: Path) -> None:
    partial = tmp_path / "gpt-4-0314.jsonl"
    partial.write_text("".join(BASELINE.read_text().splitlines(keepends=True)[:2]))
    with pytest.raises(BenchmarkError, match="no baseline answer for 4 question"):
        ArenaHard().validate({"questions_file": str(QUESTIONS), "baseline_answers_file": str(partial)})


# ------------------------------------------------------------------------------------------ generate


def test_generate_writes_arena_hard_answers_and_resumes(tmp_path: Path) -> None:
    with FakeOpenAI(answer_everything).running() as server:
        ctx = gen_context(server, tmp_path / "cell", fit_answer_to_context=False)
        ArenaHard().generate(ctx)
        assert server.count() == 6
        body = server.requests[0].body
        assert body["temperature"] == 0.0 and body["max_tokens"] == 4096 and body["model"] == "org/model-x"
        assert [m["role"] for m in body["messages"]] == ["user"]  # no system prompt, as arena-hard for open models

        path = tmp_path / "cell" / "arena_hard" / "model_answer" / "org_model-x.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["question_id"] for r in rows] == [q.question_id for q in read_questions(QUESTIONS)]
        assert set(rows[0]) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        turn = rows[0]["choices"][0]["turns"][0]
        assert rows[0]["choices"] == [{"index": 0, "turns": [turn]}]
        assert turn == {"content": "An answer to: " + read_questions(QUESTIONS)[0].prompt, "token_len": 7}
        assert rows[0]["model_id"] == "org/model-x"

        ArenaHard().generate(ctx)  # nothing left to do
        assert server.count() == 6
        path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))  # lose one answer
        ArenaHard().generate(ctx)
        assert server.count() == 7
        assert len(read_answers(path)) == 6

        with pytest.raises(BenchmarkError, match="different \\['answer_max_tokens'\\]"):
            changed = gen_context(server, tmp_path / "cell", fit_answer_to_context=False, answer_max_tokens=64)
            ArenaHard().generate(changed)


def test_generate_caps_answers_to_the_context_left(tmp_path: Path) -> None:
    with FakeOpenAI(answer_everything).running() as server:
        ctx = gen_context(server, tmp_path / "cell", limit=2)
        small = Endpoint(server.base_url, "m", "/nonexistent", max_model_len=1000)
        ctx = RunContext(endpoint=small, work_dir=ctx.work_dir, settings=ctx.settings)
        ArenaHard().generate(ctx)
        # no tokenizer at /nonexistent: the prompt is bounded by its UTF-8 bytes + 64 for the template
        budgets = sorted(r.body["max_tokens"] for r in server.requests)
        prompts = read_questions(QUESTIONS)[:2]
        assert budgets == sorted(1000 - len(q.prompt.encode()) - 64 for q in prompts)


def test_a_failing_server_stops_generation_with_a_resumable_error(tmp_path: Path) -> None:
    def flaky(seen: Seen) -> Reply:
        return Reply(raw="overloaded", status=503) if "haiku" in seen.question else answer_everything(seen)

    with FakeOpenAI(flaky).running() as server:
        ctx = gen_context(server, tmp_path / "cell", fit_answer_to_context=False, concurrency=1)
        with pytest.raises(BenchmarkError, match="HTTP 503") as info:
            ArenaHard().generate(ctx)
        assert "rerun generate to resume" in str(info.value)
        path = next((tmp_path / "cell" / "arena_hard" / "model_answer").glob("*.jsonl"))
        assert len(read_answers(path)) >= 1  # what was answered before the failure is kept


def test_score_without_answers_says_to_generate(tmp_path: Path) -> None:
    s = ArenaHard().parse_settings({"questions_file": str(QUESTIONS), "baseline_answers_file": str(BASELINE)})
    ctx = RunContext(None, tmp_path / "cell", s)
    with pytest.raises(BenchmarkError, match="run the generate phase"):
        ArenaHard().score(ctx)


# ------------------------------------------------------------------------------------------ prefetch


def test_prefetch_downloads_missing_files_and_checks_them(tmp_path: Path) -> None:
    files = {"/question.jsonl": QUESTIONS.read_text(), "/gpt-4-0314.jsonl": BASELINE.read_text()}

    def serve(seen: Seen) -> Reply:
        return Reply(raw=files.get(seen.path, ""), status=200 if seen.path in files else 404)

    with FakeOpenAI(serve).running() as server:
        root = server.base_url.removesuffix("/v1")
        s = {
            "questions_file": str(tmp_path / "v0.1" / "question.jsonl"),
            "questions_url": root + "/question.jsonl",
            "baseline_answers_file": str(tmp_path / "v0.1" / "model_answer" / "gpt-4-0314.jsonl"),
            "baseline_answers_url": root + "/gpt-4-0314.jsonl",
        }
        ArenaHard().prefetch(s)
        assert len(read_questions(s["questions_file"])) == 6
        ArenaHard().prefetch(s)  # present: checked, not downloaded again
        assert server.count() == 2
        ArenaHard().validate(s | {"judge_api_key_env": None})  # the judge key is not what this test is about

        with pytest.raises(BenchmarkError, match=r"download of .*/missing\.jsonl failed"):
            ArenaHard().prefetch(
                s | {"questions_file": str(tmp_path / "q2.jsonl"), "questions_url": root + "/missing.jsonl"}
            )
        assert not (tmp_path / "q2.jsonl").exists()


def test_served_judge_uses_the_cells_endpoint_and_refuses_without_one() -> None:
    from evalkit.benchmarks.arena.adapter import ArenaHardSettings
    from evalkit.benchmarks.base import Endpoint
    from evalkit.core.errors import ConfigError

    s = ArenaHardSettings.from_dict(
        {
            "questions_file": "data/arena_hard/demo/question.jsonl",
            "baseline_answers_file": "data/arena_hard/demo/model_answer/gpt-4-0314.jsonl",
            "judge_base_url": "served",
            "judge_model": "served",
            "judge_api_key_env": None,
        }
    )
    ep = Endpoint("http://127.0.0.1:9/v1", "/ckpt/demo", "/ckpt/demo", 4096)
    cfg = s.judge_config(ep)
    assert (cfg.base_url, cfg.model) == (ep.base_url, ep.model)
    with pytest.raises(ConfigError, match="without a server"):
        s.judge_config(None)
