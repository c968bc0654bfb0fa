"""Waiting for something outside the test process (a Slurm job, a file, a server) without ever hanging."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(what: str, check: Callable[[], Any], timeout: float = 120.0, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy and return that; fail after `timeout` seconds, naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
