"""lm-eval command rendering (golden files) and settings validation. No lm-eval import, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from evalkit.benchmarks.base import Endpoint
from evalkit.benchmarks.lm_eval_suite import (
    LmEvalRun,
    LmEvalSuiteSettings,
    parse_settings,
    render_command,
    render_model_args,
    validate_settings,
)
from evalkit.errors import ConfigError
from evalkit.offline import TaskEntry

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
SUITES = ["leaderboard_v1", "leaderboard_v2", "demo_leaderboard_v1", "demo_leaderboard_v2"]
ENDPOINT = Endpoint(
    base_url="http://127.0.0.1:8000/v1", model="served-model", tokenizer="/models/ckpt", max_model_len=4096
)


def _settings(suite: str) -> dict:
    return yaml.safe_load((REPO / "conf" / "benchmarks" / f"{suite}.yaml").read_text())["settings"]


def _render_suite(suite: str) -> str:
    settings = parse_settings(_settings(suite))
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
    path = GOLDEN / f"lm_eval_{suite}.args"
    if os.environ.get("EVALKIT_UPDATE_GOLDEN") == "1":
        path.write_text(got)
    assert path.is_file(), f"missing golden file {path}; create it with EVALKIT_UPDATE_GOLDEN=1 pytest {__file__}"
    assert got == path.read_text(), (
        f"rendered lm-eval commands for {suite} differ from {path}. If the change is intended, regenerate with "
        f"EVALKIT_UPDATE_GOLDEN=1 pytest {__file__} and review the diff."
    )


def test_chat_runs_send_token_ids_without_an_extra_bos() -> None:
    settings = parse_settings(_settings("leaderboard_v1"))
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


def test_protocol_configs_have_no_demo_settings() -> None:
    for suite in ("leaderboard_v1", "leaderboard_v2"):
        assert all(r.demo_max_gen_toks is None for r in parse_settings(_settings(suite)).runs)


def test_demo_configs_match_the_protocol_except_tasks_and_cap() -> None:
    for suite in ("leaderboard_v1", "leaderboard_v2"):
        full, demo = parse_settings(_settings(suite)), parse_settings(_settings(f"demo_{suite}"))
        assert [r.name for r in full.runs] == [r.name for r in demo.runs]
        for f, d in zip(full.runs, demo.runs, strict=True):
            assert {**vars(d), "tasks": f.tasks, "demo_max_gen_toks": None} == vars(f), d.name
        assert (full.num_concurrent, full.request_timeout_s) == (demo.num_concurrent, demo.request_timeout_s)


# ---------------------------------------------------------------------------------------------- validation

CATALOG = {
    "hellaswag": TaskEntry("hellaswag", "task", None, output_type="multiple_choice"),
    "gsm8k_llama": TaskEntry("gsm8k_llama", "task", None, output_type="generate_until"),
    "grp": TaskEntry("grp", "group", None, members=("hellaswag", "gsm8k_llama")),
}


def _run(**kw: object) -> dict:
    return {"runs": [{"name": "r", "tasks": ["hellaswag"], **kw}]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"runs": []}, "settings.runs is empty"),
        ({"runz": []}, "settings.runz: unknown key"),
        (_run(pork=1), "settings.runs[0].pork: unknown key"),
        (_run(model="vllm"), "settings.runs[0].model='vllm' is not supported"),
        (_run(num_fewshot="5"), "settings.runs[0].num_fewshot='5' should be int | null"),
        (_run(tasks="hellaswag"), "settings.runs[0].tasks='hellaswag' should be list[str]"),
        (_run(max_length=True), "settings.runs[0].max_length=True should be int"),
        (_run(fewshot_as_multiturn=True), "fewshot_as_multiturn needs apply_chat_template"),
        (_run(apply_chat_template=True, add_bos_token=True), "doubles the BOS"),
        (_run(name="a b"), "is not a usable file name"),
        (_run(tasks=["hellaswg"]), "unknown lm-eval task 'hellaswg'"),
        (_run(model="local-chat-completions", apply_chat_template=True, tasks=["grp"]), "chat completions cannot"),
        ({"runs": [{"name": "r", "tasks": ["hellaswag"]}] * 2}, "is used twice"),
        ({"num_concurrent": 0, **_run()}, "settings.num_concurrent=0 must be >= 1"),
    ],
)
def test_validate_names_the_bad_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_settings(raw, CATALOG)
    assert message in err.value.message


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        validate_settings(_run(max_lenght=4096), CATALOG)
    assert "max_length" in (err.value.hint or "")


def test_unknown_task_suggests_close_names() -> None:
    with pytest.raises(ConfigError) as err:
        validate_settings(_run(tasks=["hellaswg"]), CATALOG)
    assert "hellaswag" in (err.value.hint or "")


@pytest.mark.parametrize("suite", SUITES)
def test_shipped_configs_are_valid(suite: str) -> None:
    validate_settings(_settings(suite), None)
