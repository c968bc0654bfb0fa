"""Run one Slurm client command with a deadline: a controller that is down makes them retry for minutes."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from evalkit.core.errors import SlurmError

TIMEOUT_S = 60.0


def run(
    argv: Sequence[str], *, input: str | None = None, timeout: float = TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run `argv`; return the finished process whatever its exit code. Raises SlurmError if it cannot run."""
    try:
        return subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise SlurmError(f"{argv[0]} not found", hint="run where Slurm's client commands are on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(
            f"`{shlex.join(argv)}` did not answer within {timeout:.0f} s",
            hint="check that slurmctld is up (`scontrol ping`)",
        ) from exc
