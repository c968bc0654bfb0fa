"""Ctrl-C on a real sweep (issue 19 item 9), as a terminal delivers it: SIGINT to the sweep's process group while
two cells run against a real vLLM server. One line per cell left pending, no traceback, nothing recorded, and the
server and the harnesses gone promptly. Before: a KeyboardInterrupt traceback, and the server needed SIGKILL after
its 30 s shutdown grace (the harnesses, in their own process groups, kept their connections open)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHES = ["demo_leaderboard_v1", "demo_leaderboard_v2"]

pytestmark = pytest.mark.integration


def _restore_sigint() -> None:
    # as a terminal's foreground job has it (a background job of a script would inherit SIGINT ignored)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_leaves_cells_pending_with_one_line_each_and_stops_the_server(tmp_path: Path) -> None:
    where = [f"paths.results={tmp_path / 'results'}", f"paths.jobs={tmp_path / 'jobs'}", "sweep=ctrlc"]
    grid = ["format=bf16", f"benchmark={','.join(BENCHES)}", "cell_concurrency=2", "retries=0"]
    job_dir = tmp_path / "jobs" / "ctrlc" / "smollm2-135m-instruct.bf16"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalkit.cli", "sweep", *grid, *where],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_restore_sigint,
    )
    try:
        deadline = time.monotonic() + 900
        while len(list(job_dir.rglob("lm_eval.log"))) < len(BENCHES):  # both harnesses are generating
            assert proc.poll() is None, f"evalkit exited before the cells started:\n{proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "the cells never started"
            time.sleep(1)
        time.sleep(5)
        server_log = (job_dir / "server.log").read_text()
        server = int(re.search(r"APIServer pid=(\d+)", server_log).group(1))  # type: ignore[union-attr]
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        exited = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, err[-3000:]
    for bench in BENCHES:  # the job's log lines reach the terminal through Hydra's console handler (stdout)
        assert (out + err).count(f"{bench} interrupted by the job's stop; left pending") == 1, (out + err)[-3000:]
    assert "unfinished cells stay pending" in err
    # stopped promptly: no SIGKILL after the shutdown grace
    assert exited < 25, f"evalkit took {exited:.0f} s to exit after Ctrl-C"
    print(f"evalkit exited {exited:.1f} s after Ctrl-C")
    assert "SIGKILL" not in out + err
    with pytest.raises(ProcessLookupError):
        os.kill(server, 0)
    leftovers = subprocess.run(["pgrep", "-f", str(job_dir)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes of the interrupted sweep survive: {leftovers}"
    scores = tmp_path / "results" / "scores"
    assert not scores.exists() or pd.read_parquet(scores).empty  # nothing recorded: both cells pending
