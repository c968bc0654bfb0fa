"""The one log-tail reader and the one process-group killer every subprocess of evalkit goes through."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from evalkit.util.procs import group_pids, kill_group, log_tail, stop_process_group


def test_tail_folds_progress_bars(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    log.write_text("start\n" + "".join(f"\rbar {i}%" for i in range(0, 101, 10)) + "\nValueError: real problem\n")
    assert log_tail(log, 25) == "start\nbar 100%\nValueError: real problem"
    assert log_tail(log, 1) == "ValueError: real problem"
    assert "no log" in log_tail(tmp_path / "none.log", 5)


def _group_with_a_grandchild() -> subprocess.Popen[bytes]:
    sleeper = "import time; time.sleep(60)"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {sleeper!r}]); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 10
    while len(group_pids(proc.pid)) < 2:
        assert time.monotonic() < deadline, "the grandchild never started"
        time.sleep(0.05)
    return proc


def test_kill_group_takes_the_grandchildren_too() -> None:
    proc = _group_with_a_grandchild()
    kill_group(proc)
    deadline = time.monotonic() + 5
    while group_pids(proc.pid):
        assert time.monotonic() < deadline, f"survivors: {group_pids(proc.pid)}"
        time.sleep(0.05)
    assert proc.returncode is not None


def test_stop_process_group_ends_a_group_that_ignores_nothing() -> None:
    proc = _group_with_a_grandchild()
    took = stop_process_group(proc, 5.0)
    assert group_pids(proc.pid) == [] and took < 5.0
