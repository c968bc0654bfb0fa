"""lm-eval command rendering (golden files) and settings validation. No lm-eval import, no network."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from golden import check_golden
from paths import GOLDEN, REPO

from evalkit.benchmarks.base import Endpoint, RunContext
from evalkit.benchmarks.lm_eval.offline import TaskEntry
from evalkit.benchmarks.lm_eval.suite import (
    LmEvalRun,
    LmEvalSuite,
    LmEvalSuiteSettings,
    parse_settings,
    render_command,
    render_model_args,
    validate_settings,
)
from evalkit.core.errors import ConfigError

SUITES = ["leaderboard_v1", "leaderboard_v2", "demo_leaderboard_v1", "demo_leaderboard_v2", "ruler", "demo_ruler"]
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
    check_golden(GOLDEN / f"lm_eval_{suite}.args", got)


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
    for suite in ("leaderboard_v1", "leaderboard_v2", "ruler"):
        runs = parse_settings(_settings(suite)).runs
        assert all(r.demo_max_gen_toks is None and r.demo_samples_per_length is None for r in runs)


def test_demo_configs_match_the_protocol_except_tasks_and_cap() -> None:
    for suite in ("leaderboard_v1", "leaderboard_v2"):
        full, demo = parse_settings(_settings(suite)), parse_settings(_settings(f"demo_{suite}"))
        assert [r.name for r in full.runs] == [r.name for r in demo.runs]
        for f, d in zip(full.runs, demo.runs, strict=True):
            assert {**vars(d), "tasks": f.tasks, "demo_max_gen_toks": None} == vars(f), d.name
        assert (full.num_concurrent, full.request_timeout_s) == (demo.num_concurrent, demo.request_timeout_s)


def test_ruler_runs_pass_lengths_and_the_served_checkpoints_tokenizer() -> None:
    settings = parse_settings(_settings("ruler"))
    lengths = [n for r in settings.runs for n in r.max_seq_lengths]
    assert lengths == [4096, 8192, 16384, 32768, 65536, 131072] and all(r.tasks == ["ruler"] for r in settings.runs)
    run = settings.runs[-1]
    for model in ("local-completions", "local-chat-completions"):
        argv = render_command(replace(run, model=model), settings, endpoint=ENDPOINT, output_dir=Path("/o"))
        metadata = json.loads(argv[argv.index("--metadata") + 1])
        assert metadata == {"max_seq_lengths": run.max_seq_lengths, "tokenizer": "/models/ckpt"}
    plain = LmEvalRun(name="r", tasks=["hellaswag"])
    assert "--metadata" not in render_command(plain, settings, endpoint=ENDPOINT, output_dir=Path("/o"))


def test_demo_ruler_matches_the_protocol_except_tasks_lengths_and_caps() -> None:
    full, demo = parse_settings(_settings("ruler")), parse_settings(_settings("demo_ruler"))
    (d,) = demo.runs
    assert d.demo_samples_per_length is not None and set(d.tasks) <= {"niah_single_1", "ruler_vt", "ruler_cwe"}
    for f in full.runs:  # the protocol splits lengths over runs (memory); the demo's are small enough for one
        assert {**vars(d), "name": f.name, "tasks": f.tasks, "max_seq_lengths": f.max_seq_lengths,
                "max_length": f.max_length, "demo_samples_per_length": None} == vars(f)  # fmt: skip
    assert full.ruler_data_dir == demo.ruler_data_dir


def test_ruler_lengths_beyond_the_servers_context_fail_before_lm_eval_starts(tmp_path: Path) -> None:
    small = replace(ENDPOINT, max_model_len=8192)
    ctx = RunContext(endpoint=small, work_dir=tmp_path, settings=_settings("ruler"))
    with pytest.raises(ConfigError) as err:
        LmEvalSuite(catalog=lambda: CATALOG, python="/nonexistent").generate(ctx)
    assert "RULER lengths [16384, 32768, 65536, 131072] exceed the server's max_model_len 8192" in err.value.message
    assert not (tmp_path / "lm_eval").exists()


# ---------------------------------------------------------------------------------------------- validation

CATALOG = {
    "hellaswag": TaskEntry("hellaswag", "task", None, output_type="multiple_choice"),
    "gsm8k_llama": TaskEntry("gsm8k_llama", "task", None, output_type="generate_until"),
    "grp": TaskEntry("grp", "group", None, members=("hellaswag", "gsm8k_llama")),
    "niah_single_1": TaskEntry("niah_single_1", "task", None, output_type="generate_until"),
    "ruler_vt": TaskEntry("ruler_vt", "task", None, output_type="generate_until"),
    "ruler": TaskEntry("ruler", "group", None, members=("niah_single_1", "ruler_vt")),
}


def _run(**kw: object) -> dict:
    return {"runs": [{"name": "r", "tasks": ["hellaswag"], **kw}]}


def _ruler_run(name: str, tasks: list[str], lengths: list[int]) -> dict:
    return {"name": name, "tasks": tasks, "max_seq_lengths": lengths}


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
        (_run(tasks=["ruler"]), "RULER tasks (niah_single_1, ruler_vt) need max_seq_lengths"),
        (_run(tasks=["ruler_vt", "hellaswag"], max_seq_lengths=[1024]), "but the run also has hellaswag"),
        (_run(tasks=["ruler"], max_seq_lengths=[4096, 8192]), "max_seq_lengths [8192] exceed the run's max_length"),
        (_run(tasks=["ruler"], max_seq_lengths=["4096"]), "max_seq_lengths=['4096'] should be list[int]"),
        (_run(demo_samples_per_length=5), "demo_samples_per_length applies to RULER runs"),
        (_run(tasks=["ruler"], max_seq_lengths=[1024], demo_samples_per_length=0), "must be >= 1"),
        (
            {"runs": [_ruler_run("a", ["ruler"], [1024]), _ruler_run("b", ["ruler_vt"], [1024, 2048])]},
            "RULER task ruler_vt runs at length 1024 in both run 'a' and run 'b'",
        ),
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
