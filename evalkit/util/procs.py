"""Child processes that cannot outlive evalkit.

Every long-running child (vLLM server, lm-eval, the quantizer) runs in its own process group, so one signal stops
it and everything it forked, and asks Linux to signal it when evalkit dies without cleaning up (kill -9, the OOM
killer, a Slurm node reclaiming the job): a 5 GB server or a harness writing into a cell's folder must not survive
the job that owned it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("evalkit.procs")

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when its parent dies; None where prctl is unavailable.

    The hook only calls prctl (resolved before fork), which is safe between fork and exec. Only the direct child
    gets the signal; it is the leader of its group and stops its own children (vLLM, lm-eval, torch do).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, int(sig))


def log_tail(path: Path, lines: int, max_bytes: int = 256 * 1024) -> str:
    """The last `lines` lines of a log that may be large, partly written, or not valid UTF-8."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            data = f.read()
    except FileNotFoundError:
        return f"(no log at {path})"
    text = data.decode("utf-8", errors="replace")
    # tqdm progress bars rewrite one line with \r; keep only what the terminal would finally show
    shown = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    while shown and not shown[-1].strip():
        shown.pop()
    return "\n".join(shown[-lines:]) if lines > 0 else ""


def kill_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGKILL a child's whole process group (it was started with `start_new_session=True`) and reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        proc.wait()


def _proc_stat(pid: str) -> tuple[str, int] | None:
    """(state, process group) from /proc/<pid>/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name in parentheses may contain spaces
    return fields[0], int(fields[2])


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    if not os.path.isdir("/proc"):  # not Linux: can only tell whether anything is left
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _proc_stat(entry)) is not None and st[1] == pgid and st[0] not in "ZX":
            pids.append(int(entry))
    return pids


def group_rss_bytes(pgid: int) -> int:
    """Summed resident memory of a process group (shared pages count once per process, so an upper bound)."""
    total = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/statm") as f:
            total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_group_gone(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        proc.poll()  # reap the leader, or it stays a zombie
        if proc.returncode is not None and not group_pids(proc.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_process_group(proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    """SIGTERM the whole group (a server or harness then shuts down cleanly), SIGKILL what is left after `timeout_s`.
    Returns the seconds it took. The group id is the leader's pid because it was started in its own session."""
    t0 = time.monotonic()
    _signal_group(proc.pid, signal.SIGTERM)
    if not _wait_group_gone(proc, timeout_s):
        log.warning(
            "process group %d still alive %.0f s after SIGTERM: SIGKILL %s",
            proc.pid,
            timeout_s,
            group_pids(proc.pid),
        )
        _signal_group(proc.pid, signal.SIGKILL)
        if not _wait_group_gone(proc, 10.0):
            log.error("processes %s survived SIGKILL (uninterruptible I/O?)", group_pids(proc.pid))
    return time.monotonic() - t0


def child_groups() -> list[int]:
    """Process groups led by this process's own children: every long-running child evalkit starts (server,
    harnesses, sandbox) leads one (`start_new_session=True`), so a terminal's Ctrl-C never reaches them."""
    me, found = os.getpid(), []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().decode(errors="replace").rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and int(fields[2]) == int(entry) and fields[0] not in "ZX":
                found.append(int(entry))
    return found


def stop_groups(pgids: list[int], timeout_s: float) -> None:
    """`stop_process_group` for groups this process holds no Popen of: SIGTERM all of them at once, SIGKILL what is
    left after `timeout_s` (their leaders, our children, are reaped by whoever waits on them)."""
    for pgid in pgids:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(group_pids(g) for g in pgids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pgid in pgids:
        if group_pids(pgid):
            log.warning("process group %d still alive %.0f s after SIGTERM: SIGKILL", pgid, timeout_s)
            _signal_group(pgid, signal.SIGKILL)
