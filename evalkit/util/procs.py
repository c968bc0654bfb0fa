"""Child processes that cannot outlive evalkit.

Every long-running child (vLLM server, lm-eval, the quantizer) runs in its own process group, so one signal stops
it and everything it forked, and asks Linux to signal it when evalkit dies without cleaning up (kill -9, the OOM
killer, a Slurm node reclaiming the job): a 5 GB server or a harness writing into a cell's folder must not survive
the job that owned it.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Callable

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
