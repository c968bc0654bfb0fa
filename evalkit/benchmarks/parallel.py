"""Run a benchmark's independent requests (answers, samples, sandboxed executions) on a thread pool, failing fast.

Every call is I/O-bound (an HTTP request or a child process), so threads are enough. The first call that raises stops
the calls not started yet; calls already running finish (their results are checkpointed by the caller), and the
exception is raised in the caller's thread for it to wrap in an error that names its log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait


def run_parallel(calls: Sequence[Callable[[], object]], workers: int) -> None:
    """Run `calls` on `workers` threads; re-raise the first exception after cancelling the calls not yet started."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(call) for call in calls]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future in finished and future.exception() is not None:
                for other in futures:
                    other.cancel()
                exc = future.exception()
                assert exc is not None
                raise exc
