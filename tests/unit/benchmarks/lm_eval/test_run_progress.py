"""What a cell's lm-eval runs keep across an interrupted job (progress.py) and how `generate` resumes from it.
No lm-eval process, no server: run outputs are fixtures captured from real demo runs."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest
from lm_eval_conf import CATALOG, ENDPOINT
from paths import FIXTURES

from evalkit.benchmarks.base import RunContext
from evalkit.benchmarks.lm_eval.adapter import LmEvalSuite
from evalkit.benchmarks.lm_eval.command import render_command
from evalkit.benchmarks.lm_eval.progress import CACHE_TABLE, RunProgress, run_key
from evalkit.benchmarks.lm_eval.settings import LmEvalRun, LmEvalSuiteSettings

RUNS = [LmEvalRun(name="gsm8k", tasks=["gsm8k_llama"]), LmEvalRun(name="hellaswag", tasks=["hellaswag"])]
SETTINGS = LmEvalSuiteSettings(runs=RUNS)


def _argv(run: LmEvalRun, root: Path, endpoint=ENDPOINT) -> list[str]:
    return render_command(run, SETTINGS, endpoint=endpoint, output_dir=root / run.name / "output", python="py")


def _finished(run_dir: Path, fixture: str) -> None:
    """A run folder as lm-eval leaves it after a run that ended well."""
    shutil.copytree(FIXTURES / "lm_eval" / fixture, run_dir / "output")


def test_the_servers_address_is_not_part_of_a_runs_identity(tmp_path: Path) -> None:
    """A requeued job serves the same checkpoint on another node and port: its runs are the same runs."""
    from dataclasses import replace

    moved = replace(ENDPOINT, base_url="http://node7:8123/v1")
    assert run_key(_argv(RUNS[0], tmp_path), {}) == run_key(_argv(RUNS[0], tmp_path, moved), {})
    # anything else that decides the requests does count: a setting, the generated task files
    shorter = replace(RUNS[0], max_length=2048)
    assert run_key(_argv(shorter, tmp_path), {}) != run_key(_argv(RUNS[0], tmp_path), {})
    assert run_key(_argv(RUNS[0], tmp_path), {"t.yaml": "a"}) != run_key(_argv(RUNS[0], tmp_path), {"t.yaml": "b"})


def test_a_run_counts_as_done_only_with_complete_unchanged_outputs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    progress = RunProgress.of(tmp_path / "progress", "gsm8k", "k1")
    _finished(run_dir, "v1_gsm8k")
    samples = next(run_dir.glob("**/samples_*.jsonl"))
    full = samples.read_text()
    # an interrupted run's partial output: the results file without its samples is not a finished run
    samples.unlink()
    assert not progress.mark_done(run_dir) and not progress.marker.exists()
    samples.write_text(full)
    assert progress.mark_done(run_dir) and progress.is_done(run_dir)
    # a file changed after the run finished (same size, other content), or a truncated one: run again
    samples.write_text(full.replace('"doc_id": 0', '"doc_id": 9'))
    assert not progress.is_done(run_dir)
    samples.write_text(full[: len(full) // 2])
    assert not progress.is_done(run_dir)
    # the same run under another identity keeps nothing of the old one (its cache included)
    samples.write_text(full)
    assert RunProgress.of(tmp_path / "progress", "gsm8k", "k1").is_done(run_dir)
    other = RunProgress.of(tmp_path / "progress", "gsm8k", "k2")
    assert not other.is_done(run_dir) and not progress.folder.exists()


def test_cached_requests_are_counted_from_lm_evals_cache(tmp_path: Path) -> None:
    progress = RunProgress(tmp_path)
    assert progress.cached_requests() == 0
    with sqlite3.connect(tmp_path / "cache_rank0.db") as conn:  # the table sqlitedict makes for lm-eval
        conn.execute(f'CREATE TABLE "{CACHE_TABLE}" (key TEXT PRIMARY KEY, value BLOB)')
        conn.executemany(f'INSERT INTO "{CACHE_TABLE}" VALUES (?, ?)', [("a", b"1"), ("b", b"2"), ("c", b"3")])
    assert progress.cached_requests() == 3


def _ctx(tmp_path: Path) -> RunContext[LmEvalSuiteSettings]:
    settings = LmEvalSuite().parse_settings({"runs": [vars(r) for r in RUNS]})
    return RunContext(ENDPOINT, tmp_path / "cell", settings, progress_dir=tmp_path / "cell" / "progress" / "id1")


def _mark(ctx: RunContext[LmEvalSuiteSettings], run: LmEvalRun, fixture: str) -> None:
    root = ctx.work_dir / "lm_eval"
    assert ctx.progress_dir is not None
    _finished(root / run.name, fixture)
    assert RunProgress.of(ctx.progress_dir, run.name, run_key(_argv(run, root), {})).mark_done(root / run.name)


def test_generate_skips_finished_runs_and_resumes_the_rest_from_the_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = _ctx(tmp_path)
    _mark(ctx, RUNS[0], "v1_gsm8k")
    adapter = LmEvalSuite(catalog=lambda: CATALOG, python="py")
    # every run done: nothing starts (the interpreter "py" does not exist), the outputs stay for `score`
    _mark(ctx, RUNS[1], "v1_hellaswag")
    with caplog.at_level(logging.INFO, logger="evalkit.lm_eval"):
        adapter.generate(ctx)
    assert "resuming cell: 2 of 2 runs done, 0 cached requests" in caplog.text
    assert {s.task for s in adapter.score(ctx).samples} == {"gsm8k_llama", "hellaswag"}

    # the second run's output changed since: it alone runs again, from a fresh folder, with lm-eval's cache
    hellaswag = ctx.work_dir / "lm_eval" / "hellaswag"
    next(hellaswag.glob("**/samples_*.jsonl")).write_text("")
    with pytest.raises(FileNotFoundError):  # the batch is handed to "py", which is not there
        adapter.generate(ctx)
    batch = json.loads((ctx.work_dir / "lm_eval" / "batch.json").read_text())["runs"]
    assert [r["name"] for r in batch] == ["hellaswag"]
    assert batch[0]["argv"][-2] == "--use_cache" and batch[0]["argv"][-1].startswith(str(ctx.progress_dir))
    assert "--use_cache" not in (hellaswag / "command.sh").read_text()  # the command to rerun by hand
    assert not (hellaswag / "output").exists()
