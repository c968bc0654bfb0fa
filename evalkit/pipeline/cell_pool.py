"""Cells of one job overlapping against its server, at most N at once (`EvalkitConfig.cell_concurrency`).

Why not a bare ThreadPoolExecutor: the job's loop must wait for a free slot before it starts the next cell (so the
progress line and the server's liveness check come when the cell really starts), wait for every cell before one
that needs the server to itself, and stop at the first server failure: a `ServerError` raised in any cell ends the
job's loop (`_serve_and_run` records it for the cells still pending). Every other error is handled inside the cell
(`_attempt` records it), so a cell's thread raises only what concerns the whole job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")


class CellPool:
    def __init__(self, size: int, on_interrupt: Callable[[], None] = lambda: None) -> None:
        self._on_interrupt = on_interrupt
        """Called when the job's loop ends by KeyboardInterrupt / SystemExit: the running cells must then record
        nothing (job.STOPPING); they end as the server stops under them."""
        self._size = max(1, size)
        self._pool = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="cell")
        self._slots = threading.BoundedSemaphore(self._size)
        self._futures: list[Future[None]] = []

    def submit(self, fn: Callable[[T], None], item: T) -> None:
        """Run `fn(item)` on a free slot (call `wait_for_slot` first)."""
        future = self._pool.submit(fn, item)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def wait_for_slot(self) -> None:
        """Block until fewer than `size` cells run; raise a finished cell's job-level error."""
        self._slots.acquire()
        self._raise_failed()

    def drain(self) -> None:
        """Block until every submitted cell has finished; raise a job-level error of any."""
        wait(self._futures)
        self._raise_failed()

    def _raise_failed(self) -> None:
        for future in self._futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                exc = future.exception()
                assert exc is not None
                raise exc

    def __enter__(self) -> CellPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and not issubclass(kind, Exception):  # Ctrl-C: do not wait for whole cells
            self._on_interrupt()
            self._pool.shutdown(wait=False, cancel_futures=True)
            return
        if kind is None:  # the loop submitted every cell: all of them run
            self._pool.shutdown(wait=True)
            self._raise_failed()
            return
        # a server failure: cells already running finish (their failures are recorded), cells not started do not
        self._pool.shutdown(wait=True, cancel_futures=True)
