"""lm-eval command rendering (golden files). No lm-eval import, no network."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from golden import check_golden
from lm_eval_conf import ENDPOINT, SUITES, settings_of
from paths import GOLDEN

from evalkit.benchmarks.lm_eval.command import render_command, render_model_args
from evalkit.benchmarks.lm_eval.settings import LmEvalRun, LmEvalSuiteSettings, parse_settings


def _render_suite(suite: str) -> str:
    settings = parse_settings(settings_of(suite))
    blocks = []
    for run in settings.runs:
        argv = render_command(
            run,
            settings,
            endpoint=ENDPOINT,
            output_dir=Path("/work/cell/lm_eval") / run.name / "output",
            include_path=Path("/work/cell/lm_eval") / run.name / "tasks",
            seed=1234,
            python="python",
        )
        assert not any("\n" in a for a in argv)
        blocks.append(f"# run: {run.name}\n" + "\n".join(argv) + "\n")
    return "\n".join(blocks)


@pytest.mark.parametrize("suite", SUITES)
def test_rendered_commands_match_golden(suite: str) -> None:
    got = _render_suite(suite)
    check_golden(GOLDEN / f"lm_eval_{suite}.args", got)


def test_chat_runs_send_token_ids_without_an_extra_bos() -> None:
    settings = parse_settings(settings_of("leaderboard_v1"))
    by_name = {r.name: r for r in settings.runs}
    chat = render_model_args(by_name["gsm8k"], settings, ENDPOINT, 1234)
    assert chat["base_url"] == "http://127.0.0.1:8000/v1/completions"
    assert chat["tokenized_requests"] is True and chat["tokenizer_backend"] == "huggingface"
    assert chat["add_bos_token"] is False
    plain = render_model_args(by_name["hellaswag"], settings, ENDPOINT, 1234)
    assert plain["add_bos_token"] is True


def test_requests_go_out_concurrently_by_default() -> None:
    settings = LmEvalSuiteSettings(runs=[LmEvalRun(name="r", tasks=["hellaswag"])])
    assert render_model_args(settings.runs[0], settings, ENDPOINT, 1)["num_concurrent"] >= 8


def test_demo_cap_and_gen_kwargs_merge() -> None:
    run = LmEvalRun(name="r", tasks=["gsm8k_llama"], gen_kwargs={"temperature": 0}, demo_max_gen_toks=64)
    argv = render_command(run, LmEvalSuiteSettings(runs=[run]), endpoint=ENDPOINT, output_dir=Path("/o"))
    assert argv[argv.index("--gen_kwargs") + 1] == '{"max_gen_toks": 64, "temperature": 0}'
    assert "--include_path" not in argv and "--num_fewshot" not in argv and "--apply_chat_template" not in argv


def test_ruler_runs_pass_lengths_and_the_served_checkpoints_tokenizer() -> None:
    settings = parse_settings(settings_of("ruler"))
    lengths = [n for r in settings.runs for n in r.max_seq_lengths]
    assert lengths == [4096, 8192, 16384, 32768, 65536, 131072] and all(r.tasks == ["ruler"] for r in settings.runs)
    run = settings.runs[-1]
    for model in ("local-completions", "local-chat-completions"):
        argv = render_command(replace(run, model=model), settings, endpoint=ENDPOINT, output_dir=Path("/o"))
        metadata = json.loads(argv[argv.index("--metadata") + 1])
        assert metadata == {"max_seq_lengths": run.max_seq_lengths, "tokenizer": "/models/ckpt"}
    plain = LmEvalRun(name="r", tasks=["hellaswag"])
    assert "--metadata" not in render_command(plain, settings, endpoint=ENDPOINT, output_dir=Path("/o"))


def test_derived_timeout_follows_the_runs_work() -> None:
    """A derived timeout covers a full queue of the run's largest requests at the slowest rates, so lm-eval waits for
    a slow CPU server instead of re-sending requests it is still working on (issue 18)."""
    run = LmEvalRun(name="r", tasks=["gsm8k_llama"], max_length=4096, demo_max_gen_toks=128)
    settings = LmEvalSuiteSettings(
        runs=[run], num_concurrent=32, request_timeout_s=None, slowest_prefill_tokens_per_s=50,
        slowest_decode_steps_per_s=0.5,
    )  # fmt: skip
    assert render_model_args(run, settings, ENDPOINT, 1)["timeout"] == 32 * 4096 // 50 + 1 + 128 * 2
    bigger = replace(settings, num_concurrent=64)
    assert (
        render_model_args(run, bigger, ENDPOINT, 1)["timeout"]
        > render_model_args(run, settings, ENDPOINT, 1)["timeout"]
    )
    fixed = replace(settings, request_timeout_s=600)
    assert render_model_args(run, fixed, ENDPOINT, 1)["timeout"] == 600


@pytest.mark.parametrize("suite", [s for s in SUITES if s.startswith("demo_")])
def test_demo_timeouts_are_derived_and_not_retried(suite: str) -> None:
    settings = parse_settings(settings_of(suite))
    assert settings.request_timeout_s is None and settings.max_retries == 1
    for run in settings.runs:  # at least the 600 s that timed out on the AVX2 machine
        assert render_model_args(run, settings, ENDPOINT, 1)["timeout"] > 600
