"""Settings of the lm-eval suite: schema errors (OmegaConf), semantic checks, the shipped configs. No lm-eval
import, no network."""

from __future__ import annotations

import pytest
from lm_eval_conf import CATALOG, SUITES, settings_of

from evalkit.benchmarks.lm_eval.settings import parse_settings, validate_settings
from evalkit.core.errors import ConfigError


def test_protocol_configs_have_no_demo_settings() -> None:
    for suite in ("leaderboard_v1", "leaderboard_v2", "ruler"):
        runs = parse_settings(settings_of(suite)).runs
        assert all(r.demo_max_gen_toks is None and r.demo_samples_per_length is None for r in runs)


def test_demo_configs_match_the_protocol_except_tasks_and_cap() -> None:
    for suite in ("leaderboard_v1", "leaderboard_v2"):
        full, demo = parse_settings(settings_of(suite)), parse_settings(settings_of(f"demo_{suite}"))
        assert [r.name for r in full.runs] == [r.name for r in demo.runs]
        for f, d in zip(full.runs, demo.runs, strict=True):
            assert {**vars(d), "tasks": f.tasks, "demo_max_gen_toks": None} == vars(f), d.name
        # the demo's timeouts follow its runs' work on CPUs of any speed (test_command.py); concurrency is the study's
        assert full.num_concurrent == demo.num_concurrent


def test_demo_ruler_matches_the_protocol_except_tasks_lengths_and_caps() -> None:
    full, demo = parse_settings(settings_of("ruler")), parse_settings(settings_of("demo_ruler"))
    (d,) = demo.runs
    assert d.demo_samples_per_length is not None and set(d.tasks) <= {"niah_single_1", "ruler_vt", "ruler_cwe"}
    for f in full.runs:  # the protocol splits lengths over runs (memory); the demo's are small enough for one
        assert {**vars(d), "name": f.name, "tasks": f.tasks, "max_seq_lengths": f.max_seq_lengths,
                "max_length": f.max_length, "demo_samples_per_length": None} == vars(f)  # fmt: skip
    assert full.ruler_data_dir == demo.ruler_data_dir


# ---------------------------------------------------------------------------------------------- validation


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
    validate_settings(settings_of(suite), None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # OmegaConf would convert these without a word; a quoted value in a config is a typo
        (_run(apply_chat_template="yes"), "settings.runs[0].apply_chat_template='yes' should be bool"),
        ({"ruler_data_dir": 5, **_run()}, "settings.ruler_data_dir=5 should be str"),
        # a merge error that names no key: the key is found all the same
        (_run(gen_kwargs=[1]), "settings.runs[0].gen_kwargs=[1] should be dict[str, Any]"),
        ({"runs": [{"name": "r", "tasks": ["hellaswag"]}, {"name": "s", "tasks": {"a": 1}}]}, "runs[1].tasks="),
        ({"runs": ["hellaswag"]}, "settings.runs[0] must be a mapping"),
    ],
)
def test_schema_errors_name_the_key_and_type(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(raw)
    assert message in err.value.message


def test_settings_come_typed_from_a_dictconfig_with_interpolations() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"shots": 5, "s": {"num_concurrent": "${shots}", **_run(num_fewshot="${shots}")}})
    settings = parse_settings(cfg.s)
    assert settings.num_concurrent == 5 and settings.runs[0].num_fewshot == 5
    assert settings.runs[0].gen_kwargs == {} and settings.runs[0].tasks == ["hellaswag"]
