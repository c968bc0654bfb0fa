"""Child-process stages: exit status, peak RSS, a rerunnable command at the top of the log, readable log tails."""

from __future__ import annotations

import sys
from pathlib import Path

from evalkit.checkpoints.runner import render_command, run_stage, thread_env


def test_success_reports_time_and_peak_rss(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "stage.log"
    code = "import os; b = bytearray(200 * 1024 * 1024); print('threads', os.environ['OMP_NUM_THREADS'])"
    run = run_stage([sys.executable, "-c", code], log, thread_env(3))
    assert run.ok and run.returncode == 0 and run.describe_exit() == "exit code 0"
    assert run.peak_rss_mb is not None and run.peak_rss_mb > 200
    text = log.read_text()
    assert "threads 3" in text
    assert text.splitlines()[1] == f"# {run.command}"
    assert "OMP_NUM_THREADS=3" in run.command and "TOKENIZERS_PARALLELISM=false" in run.command
    assert "OMP_WAIT_POLICY=PASSIVE" in run.command


def test_failure_and_signals_are_reported_not_raised(tmp_path: Path) -> None:
    assert run_stage([sys.executable, "-c", "raise SystemExit(7)"], tmp_path / "a.log", {}).returncode == 7
    killed = run_stage([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 9)"], tmp_path / "b.log", {})
    assert killed.returncode == -9 and killed.describe_exit() == "killed by SIGKILL"


def test_timeout_kills_the_child(tmp_path: Path) -> None:
    run = run_stage([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "t.log", {}, timeout_s=1)
    assert run.returncode == -9 and run.wall_time_s < 30


def test_log_is_appended_not_truncated(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    run_stage([sys.executable, "-c", "print('first')"], log, {})
    run_stage([sys.executable, "-c", "print('second')"], log, {})
    assert "first" in log.read_text() and "second" in log.read_text()


def test_command_is_shell_quoted() -> None:
    assert (
        render_command(["py", "-c", "print('a b')"], {"B": "2", "A": "x y"})
        == "A='x y' B=2 py -c 'print('\"'\"'a b'\"'\"')'"
    )
