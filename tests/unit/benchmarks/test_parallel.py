"""run_parallel: every call runs when none fails; the first failure is raised and stops the calls not yet started."""

from __future__ import annotations

import threading

import pytest

from evalkit.benchmarks.parallel import run_parallel


def test_runs_every_call() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        with lock:
            seen.append(i)

    run_parallel([lambda i=i: call(i) for i in range(50)], workers=4)
    assert sorted(seen) == list(range(50))


def test_first_failure_is_raised_and_stops_the_rest() -> None:
    started: list[int] = []
    release = threading.Event()

    def call(i: int) -> None:
        started.append(i)
        if i == 0:
            raise ValueError("request 0 failed")
        release.wait(0.5)  # the other worker's call is still running when call 0 fails

    with pytest.raises(ValueError, match="request 0 failed"):
        try:
            run_parallel([lambda i=i: call(i) for i in range(100)], workers=2)
        finally:
            release.set()
    assert len(started) < 100  # calls queued behind the failure never started
