"""Bad input is refused before a GPU is held: at plan time (`evalkit sweep --dry-run`), before any checkpoint is
resolved or server started, with the key, the value and the fix in the message, and exit code 2 for every
configuration error, Hydra's own included. Each case runs the real CLI in-process."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
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


# ------------------------------------------------------------------------------------------------ issue 19


@pytest.mark.parametrize(
    ("override", "says", "fix"),
    [
        ("retries=-1", "retries=-1 is out of range: it must be >= 0", "set retries to a value >= 0"),
        (
            "cell_concurrency=0",
            "cell_concurrency=0 is out of range: it must be >= 1",
            "(the default is cell_concurrency=2)",
        ),
        ("replicates.k=-1", "replicates.k=-1 is out of range: it must be >= 0", "set replicates.k to a value >= 0"),
        (
            "replicates.concurrency=[8,0]",
            "replicates.concurrency=[8, 0] is out of range: each value must be >= 1",
            "[8,1,16,4]",
        ),
        ("server.port=70000", "server.port=70000 is out of range: it must be >= 0 and <= 65535", "set server.port"),
        ("model.resources.nodes=0", "model.resources.nodes=0 is out of range", "set model.resources.nodes"),
        (
            "server.tensor_parallel_size=-1",
            "server.tensor_parallel_size=-1 would be ignored: each job passes model.tensor_parallel_size",
            "set model.tensor_parallel_size (or model.tp_by_format.<format>) instead",
        ),
        ("server.max_model_len=128", "server.max_model_len=128 would be ignored", "set model.max_model_len instead"),
        (
            "sweep=../../x",
            "sweep='../../x' is not a folder name: the sweep's jobs go to paths.jobs/<sweep>/",
            "no '/', no '..'",
        ),
        (
            "server.host=0.0.0.0",
            "server.host='0.0.0.0' is not a loopback address",
            "a non-loopback host needs an API key (vLLM --api-key)",
        ),
        (
            "hydra.launcher.gpus_per_node=8",
            "hydra.launcher.gpus_per_node=8: evalkit replaces hydra.launcher.gpus_per_node with each job's model "
            "resources, so this override would be ignored",
            "set model.resources.gpus_per_node (or model.resources_by_format.<format>.gpus_per_node) instead",
        ),
    ],
)
def test_values_out_of_range_or_replaced_later_are_refused_at_plan_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, override: str, says: str, fix: str
) -> None:
    """Issue 19 items 3 and 7: each was accepted and ignored (or, retries=-1, made zero attempts and recorded every
    cell failed with an empty error, after the server had started)."""
    code, out = dry_run(capsys, tmp_path, "launcher=slurm", override)
    assert code == 2, out
    assert says in out, out
    assert "next:" in out and fix in out.split("next:", 1)[1], out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "jobs").exists()
    assert not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("override", ["format=bf16,bf16", "benchmark=demo_humaneval,demo_humaneval"])
def test_repeated_values_of_a_swept_key_are_one_job(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, override: str
) -> None:
    """Before: two jobs of the same cells ("2 cell(s); 1 complete" while both were missing)."""
    code, out = dry_run(capsys, tmp_path, override)
    assert code == 0, out
    assert "sweep: 1 job(s), 1 cell(s); 0 complete, 1 to run" in out


def test_a_benchmark_listed_twice_in_a_config_is_refused() -> None:
    from evalkit.core.validate import validate
    from evalkit.pipeline.compose import compose_job
    from evalkit.pipeline.plan import typed

    cfg = typed(compose_job(["benchmark=[demo_humaneval]"]))
    cfg.benchmark = ["demo_humaneval", "demo_humaneval"]
    with pytest.raises(ConfigError, match="names demo_humaneval more than once"):
        validate(cfg)


@pytest.mark.parametrize("key", ["paths.results", "paths.jobs"])
@pytest.mark.parametrize("command", [["sweep", "--dry-run"], ["sweep"], ["run"]])
def test_a_folder_root_cannot_write_is_refused_as_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, key: str, command: list[str]
) -> None:
    """Issue 19 item 5: the check read the permission bits, which root passes; /proc refuses the file anyway (and
    then the sweeper or Hydra failed with a traceback)."""
    paths = {"paths.results": f"{tmp_path}/results", "paths.jobs": f"{tmp_path}/jobs", key: "/proc/forbidden"}
    code, out = run(capsys, *command, *FAST, *(f"{k}={v}" for k, v in paths.items()))
    assert code == 2, out
    assert f"{key}='/proc/forbidden': /proc/forbidden is not writable by this user: creating a file in /proc" in out
    assert "Traceback" not in out


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A temporary folder the ordinary user may write (pytest's tmp_path is root's alone, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="evalkit-test-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ordinary() -> str:
    from users import ordinary_user

    return ordinary_user("evalkit-sbx")


@pytest.mark.parametrize("key", ["paths.results", "paths.jobs"])
def test_a_folder_an_ordinary_user_cannot_reach_is_a_clear_error(ordinary: str, world_tmp: Path, key: str) -> None:
    """Issue 19 item 5: as an ordinary user, /root/x gave a raw PermissionError traceback (rc 1) in sweep and doctor."""
    from users import WORKTREE, evalkit_as

    mine = world_tmp
    paths = {"paths.results": f"{mine}/results", "paths.jobs": f"{mine}/jobs", key: "/root/x"}
    overrides = [*FAST, *(f"{k}={v}" for k, v in paths.items())]
    for command in (["sweep", "--dry-run"], ["sweep"]):
        done = evalkit_as(ordinary, *command, *overrides, cwd=WORKTREE)
        assert done.returncode == 2, done.stderr
        assert f"{key}='/root/x': /root/x is not writable by this user: /root/x: Permission denied" in done.stderr
        assert "Traceback" not in done.stdout + done.stderr
    done = evalkit_as(ordinary, "doctor", *overrides, cwd=WORKTREE)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 1  # the doctor's "not ready", with the row that says why
    assert "/root/x is not writable by this user" in done.stdout


def _scores_with_value_as_text(results: Path) -> None:
    """A results folder whose scores file has every contract column, `value` as a string."""
    from datetime import datetime, timezone

    import pyarrow as pa
    import pyarrow.parquet as pq

    from evalkit.core.cell import Cell
    from evalkit.core.records import SampleRecord, TaskScore
    from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id

    store = ResultsStore.open_for_writing(results)
    now = datetime.now(timezone.utc)
    for fmt in ("bf16", "fp8"):
        run = RunInfo(new_run_id(), now, now, "/log", Provenance("0", "0", "0", "0", "/c", "h"))
        cell = Cell("m", fmt, "b", "s", "hub:x", "f" * 64)
        samples = [SampleRecord("t", i, "h", "a", "b", {"acc": 1.0}) for i in range(3)]
        store.commit_cell(cell, run, [TaskScore("t", "acc", 50.0, None, 3, is_primary=True)], samples)
    path = results / "scores" / "m__fp8__b.parquet"
    table = pq.read_table(path)
    i = table.schema.get_field_index("value")
    pq.write_table(table.set_column(i, "value", pa.array(["fifty"], pa.string())), path)


@pytest.mark.parametrize("command", ["aggregate", "compare", "report"])
def test_a_scores_column_of_the_wrong_type_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    """Issue 19 item 6: a raw ArrowInvalid traceback (rc 1) before."""
    results = tmp_path / "results"
    _scores_with_value_as_text(results)
    code, out = run(capsys, command, "--results", str(results))
    assert code == 2, out
    assert f"{results / 'scores' / 'm__fp8__b.parquet'} does not follow the results contract: value is string, " in out
    assert "the contract says double" in out and "Traceback" not in out
