"""Run one checkpoint stage (conversion, quantization) as a child process with its own log.

A child process because the stages need other environments (.venv-quant) or would leave gigabytes of torch state in
the job runner. The child's output goes to a log file that starts with the command to rerun it by hand; its wall
time and peak RSS are measured; if the caller is interrupted, the child's whole process group is killed.
"""

from __future__ import annotations

import os
import resource
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit.core.errors import CheckpointError
from evalkit.util.procs import die_with_parent, kill_group

TAIL_LINES = 25


@dataclass(frozen=True)
class StageRun:
    """Outcome of one child process."""

    returncode: int
    """Exit code; negative = killed by that signal."""
    wall_time_s: float
    peak_rss_mb: float | None
    """Peak resident set size of the child, MiB (from wait4's rusage; Linux reports KiB)."""
    command: str
    """Shell-quoted command line, with the environment variables that were set for it."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe_exit(self) -> str:
        if self.returncode < 0:
            try:
                return f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        return f"exit code {self.returncode}"


def thread_env(threads: int) -> dict[str, str]:
    """Environment that pins math libraries to `threads` threads (torch reads OMP_NUM_THREADS at import)."""
    if threads < 1:
        raise CheckpointError(f"threads must be >= 1, got {threads}")
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "TOKENIZERS_PARALLELISM": "false",
        # Idle OpenMP threads sleep instead of spinning. Measured on the shared 2-core box (W8A8 GPTQ, demo model,
        # one other busy process): 2 threads took 6:10 and 412 s of CPU spinning, PASSIVE 1:44 and 92 s, with a
        # bit-identical checkpoint.
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def render_command(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """`VAR=value ... cmd args` as one could paste it into a shell."""
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    return f"{assigns} {shlex.join(argv)}".strip()


def run_stage(
    argv: Sequence[str], log_path: Path, extra_env: Mapping[str, str], timeout_s: float | None = None
) -> StageRun:
    """Run `argv` with `extra_env` added, stdout+stderr appended to `log_path`; return how it ended.

    Never raises for a failing child (the caller decides what a failure means), except on timeout, where the child
    is killed and the run reported with returncode -SIGKILL.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = render_command(argv, extra_env)
    env = {**os.environ, **extra_env}
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} rerun by hand with:\n# {command}\n")
        log.flush()
        started = time.monotonic()
        # own session: on interruption we kill the whole group (tokenizer / dataloader helpers included)
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        try:
            status, rusage = _wait(proc, timeout_s, started)
        except BaseException:
            kill_group(proc)
            raise
    elapsed = time.monotonic() - started
    returncode = os.waitstatus_to_exitcode(status) if status is not None else -signal.SIGKILL
    peak = rusage.ru_maxrss / 1024 if rusage is not None and rusage.ru_maxrss else None
    return StageRun(returncode=returncode, wall_time_s=round(elapsed, 2), peak_rss_mb=peak, command=command)


def _wait(
    proc: subprocess.Popen[bytes], timeout_s: float | None, started: float
) -> tuple[int, resource.struct_rusage] | tuple[None, None]:
    # wait4 (not Popen.wait) because it returns this child's own rusage, hence its peak RSS
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, rusage
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            kill_group(proc)
            return None, None
        time.sleep(0.2)
