"""Bad input is refused before a GPU is held: at plan time (`evalkit sweep --dry-run`), before any checkpoint is
resolved or server started, with the key, the value and the fix in the message, and exit code 2 for every
configuration error, Hydra's own included. Each case runs the real CLI in-process."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from evalkit.cli import main
from evalkit.core.config import ModelConfig, ResourcesConfig
from evalkit.core.errors import ConfigError
from evalkit.core.resources import job_resources

# demo_humaneval validates quickly (no lm-eval task index to load); the checks under test do not depend on it
FAST = ["benchmark=demo_humaneval"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def dry_run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *overrides: str) -> tuple[int, str]:
    paths = [f"paths.results={tmp_path / 'results'}", f"paths.jobs={tmp_path / 'jobs'}"]
    return run(capsys, "sweep", "--dry-run", *FAST, *paths, *overrides)


@pytest.mark.parametrize("tp", ["-1", "0"])
def test_tensor_parallel_below_one_is_refused_at_plan_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tp: str
) -> None:
    code, out = dry_run(capsys, tmp_path, f"model.tensor_parallel_size={tp}")
    assert code == 2
    assert f"model.tensor_parallel_size={tp} is not a tensor-parallel size" in out
    assert "next: set model.tensor_parallel_size=1" in out
    assert not (tmp_path / "results").exists()  # refused before the store was opened


def test_tensor_parallel_below_one_for_one_format_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = dry_run(capsys, tmp_path, "+model.tp_by_format.bf16=0")
    assert code == 2 and "model.tp_by_format.bf16=0" in out


@pytest.mark.parametrize("tp", [-1, 0])
def test_slurm_resources_refuse_tensor_parallel_below_one(tp: int) -> None:
    """Before: -1 planned pipeline parallel -1 and 0 raised a bare ZeroDivisionError."""
    model = ModelConfig(name="m", family="f", size="8B", tensor_parallel_size=tp)
    model.resources = ResourcesConfig(gpus_per_node=8, nodes=2)
    with pytest.raises(ConfigError, match=rf"model.tensor_parallel_size={tp} must be >= 1"):
        job_resources(model, "bf16")


def test_unset_judge_key_is_refused_before_any_answer_is_generated(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVALKIT_TEST_JUDGE_KEY", raising=False)
    settings = "benchmarks.demo_arena_hard.settings"
    code, out = dry_run(
        capsys,
        tmp_path,
        "benchmark=demo_arena_hard",
        f"{settings}.judge_base_url=https://api.openai.com/v1",
        f"{settings}.judge_api_key_env=EVALKIT_TEST_JUDGE_KEY",
    )
    assert code == 2
    assert "judge_api_key_env='EVALKIT_TEST_JUDGE_KEY': the variable is not set" in out
    assert "export EVALKIT_TEST_JUDGE_KEY=" in out

    monkeypatch.setenv("EVALKIT_TEST_JUDGE_KEY", "sk-test")
    code, out = dry_run(
        capsys,
        tmp_path,
        "benchmark=demo_arena_hard",
        f"{settings}.judge_base_url=https://api.openai.com/v1",
        f"{settings}.judge_api_key_env=EVALKIT_TEST_JUDGE_KEY",
    )
    assert code == 0, out


def test_missing_local_checkpoint_is_refused_at_plan_time(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-checkpoint"
    code, out = dry_run(capsys, tmp_path, "model.checkpoints.bf16.source=path", f"model.checkpoints.bf16.id={missing}")
    assert code == 2
    assert f"model.checkpoints.bf16.id='{missing}' (source: path) does not exist" in out
    assert "save_pretrained" in out


def test_local_checkpoint_base_of_a_recipe_is_checked_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = dry_run(
        capsys, tmp_path, "format=fp8", "model.checkpoints.bf16.source=path", f"model.checkpoints.bf16.id={tmp_path}"
    )
    assert code == 2 and "is not a checkpoint directory (no config.json)" in out


def test_unwritable_results_folder_is_a_config_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for cmd in (["sweep", "--dry-run"], ["sweep"], ["run"]):
        code, out = run(capsys, *cmd, *FAST, f"paths.results={blocker}/results", f"paths.jobs={tmp_path}/jobs")
        assert code == 2, cmd
        assert f"paths.results='{blocker}/results': {blocker} is not a directory" in out
        assert "Traceback" not in out


@pytest.mark.skipif(os.getuid() == 0, reason="root can write anywhere")
def test_read_only_results_folder_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    code, out = run(capsys, "sweep", *FAST, f"paths.results={ro}/results", f"paths.jobs={tmp_path}/jobs")
    assert code == 2 and "is not writable by this user" in out


def test_aggregate_on_a_mistyped_folder_creates_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    wrong = tmp_path / "resluts"
    code, out = run(capsys, "aggregate", "--results", str(wrong))
    assert code == 2 and f"--results {wrong}: no such directory" in out
    assert not wrong.exists()

    wrong.mkdir()
    (wrong / "notes.txt").write_text("")
    code, out = run(capsys, "aggregate", "--results", str(wrong))
    assert code == 2 and "no scores/ folder (found: notes.txt)" in out
    assert sorted(p.name for p in wrong.iterdir()) == ["notes.txt"]


def test_aggregate_names_tables_left_at_the_top_level(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    row = {"model": "m", "format": "bf16", "suite": "s", "task": "t", "metric": "acc", "value": 50.0}
    pd.DataFrame([row | {"is_primary": True, "status": "done"}]).to_parquet(tmp_path / "my_table.parquet")
    code, out = run(capsys, "aggregate", "--results", str(tmp_path))
    assert code == 2
    assert "found 1 Parquet file(s) at the top level (my_table.parquet)" in out
    assert f"move them to {tmp_path / 'scores'}/" in out
    assert not (tmp_path / "scores").exists()


@pytest.mark.parametrize(("override", "named"), [("+servr.port=8000", "servr"), ("+server.prot=8000", "server.prot")])
def test_keys_not_in_the_schema_are_refused_even_with_plus(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, override: str, named: str
) -> None:
    code, out = dry_run(capsys, tmp_path, override)
    assert code == 2
    assert f"unknown config key(s) {named} " in out
    assert "valid keys" in out and ("port" in out if named == "server.prot" else "server" in out)


def test_hydra_node_stays_allowed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = dry_run(capsys, tmp_path, "hydra.job.name=probe")
    assert code == 0, out


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("model=no-such-model", "Could not find 'model/no-such-model'"),  # composition error, lists the choices
        ("servr.port=1", "Could not override 'servr.port'"),  # unknown key without +
        ("model.tensor_parallel_size=two", "model.tensor_parallel_size=two"),  # wrong type
        ("format=bf16,", "cannot parse overrides"),  # override syntax
    ],
)
@pytest.mark.parametrize("command", [["sweep", "--dry-run"], ["run"], ["status"], ["doctor"]])
def test_hydra_errors_exit_2_like_evalkit_errors(
    capsys: pytest.CaptureFixture[str], override: str, says: str, command: list[str]
) -> None:
    code, out = run(capsys, *command, *FAST, override)
    assert code == 2
    assert "evalkit: error:" in out and says in out
    assert "Traceback" not in out


def test_status_reads_without_the_run_time_checks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The judge key guards a run; `evalkit status` on a login node without it still reports."""
    monkeypatch.delenv("EVALKIT_TEST_JUDGE_KEY", raising=False)
    settings = "benchmarks.demo_arena_hard.settings"
    code, out = run(
        capsys,
        "status",
        "benchmark=demo_arena_hard",
        f"{settings}.judge_base_url=https://api.openai.com/v1",
        f"{settings}.judge_api_key_env=EVALKIT_TEST_JUDGE_KEY",
        f"paths.results={tmp_path / 'results'}",
        f"paths.jobs={tmp_path / 'jobs'}",
    )
    assert code == 0, out
    assert "demo_arena_hard" in out and "missing" in out
