"""The harness process that runs a suite's lm-eval runs (runner.py): its task index reuse gives the index lm-eval
builds, a failing run ends the batch with its status and traceback in its own log, and the argv is lm-eval's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.benchmarks.lm_eval import runner
from evalkit.benchmarks.lm_eval.runner import BatchRun, lm_eval_args, read_status, write_batch


def _task(folder: Path, name: str, dataset: str, tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ntag: {tag}\ndataset_path: {dataset}\noutput_type: generate_until\n"
        "doc_to_text: q\ndoc_to_target: a\n"
    )


def test_reused_task_index_equals_lm_evals_and_later_folders_still_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lm_eval.tasks._index import TaskIndex

    _task(tmp_path / "a", "t1", "hub/one", "tag_a")
    _task(tmp_path / "a", "t2", "hub/two", "tag_a")
    _task(tmp_path / "b", "t1", "local/override", "tag_b")  # an include path replacing t1
    folders = [tmp_path / "a", tmp_path / "b"]

    def summary(index: dict) -> dict:
        return {k: (e.kind, e.yaml_path, e.cfg and e.cfg.get("dataset_path"), sorted(e.tags)) for k, e in index.items()}

    expected = summary(TaskIndex.build(folders))
    monkeypatch.setattr(TaskIndex, "build", TaskIndex.build)  # undone after the test
    runner._reuse_task_index()
    first = TaskIndex.build(folders)
    assert summary(first) == expected and expected["t1"][2] == "local/override"
    first["t2"].tags.add("mutated by a run")  # each run gets its own copy
    _task(tmp_path / "a", "t3", "hub/three", "tag_a")  # cached: a batch's folders do not change while it runs
    assert summary(TaskIndex.build(folders)) == expected


def test_a_failing_run_ends_the_batch_with_its_status_and_traceback(tmp_path: Path) -> None:
    runs = []
    for name in ("bad", "never"):
        (tmp_path / name).mkdir()
        argv = [sys.executable, "-m", "lm_eval", "run", "--no-such-flag"]  # lm-eval's own parser refuses it
        runs.append(BatchRun(name, argv, tmp_path / name, tmp_path / name / "lm_eval.log", tmp_path / name / "s.json"))
    write_batch(tmp_path / "batch.json", runs)
    proc = subprocess.run(
        [sys.executable, "-m", runner.__name__, str(tmp_path / "batch.json")], capture_output=True, text=True
    )
    assert proc.returncode == 1
    bad = read_status(runs[0])
    assert bad is not None and bad.exit == 2  # argparse's exit code, as the command would give
    assert read_status(runs[1]) is None  # not reached
    assert "--no-such-flag" in runs[0].log.read_text()  # the harness's own message, in the run's log
    assert "[1/2] bad: exit" in proc.stdout and json.loads((tmp_path / "batch.json").read_text())["runs"][1]


def test_only_lm_eval_commands_run() -> None:
    assert lm_eval_args(["/py", "-m", "lm_eval", "run", "--tasks", "x"]) == ["run", "--tasks", "x"]
    with pytest.raises(ValueError):
        lm_eval_args(["/py", "-c", "import os"])
