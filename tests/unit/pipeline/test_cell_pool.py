"""The pool that overlaps a job's cells: never more than N at once, a drain before a cell that needs the server to
itself, a server failure in any cell ends the loop, Ctrl-C does not wait for whole cells."""

from __future__ import annotations

import threading
import time

import pytest

from evalkit.core.errors import ServerError
from evalkit.pipeline.cell_pool import CellPool


def test_at_most_size_cells_run_at_once_and_drain_waits_for_all() -> None:
    running, peak, finished = 0, 0, []
    lock = threading.Lock()

    def cell(i: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
            finished.append(i)

    with CellPool(2) as pool:
        for i in range(6):
            pool.wait_for_slot()
            pool.submit(cell, i)
        pool.drain()
        assert sorted(finished) == list(range(6))  # drain returned only after every cell
    assert peak == 2


def test_size_one_runs_cells_one_after_another() -> None:
    order: list[str] = []

    def cell(i: int) -> None:
        order.append(f"start {i}")
        time.sleep(0.02)
        order.append(f"end {i}")

    with CellPool(1) as pool:
        for i in range(3):
            pool.wait_for_slot()
            pool.submit(cell, i)
    assert order == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]


def test_a_server_failure_in_a_cell_ends_the_loop() -> None:
    started: list[int] = []

    def cell(i: int) -> None:
        started.append(i)
        if i == 0:
            raise ServerError("server died")
        time.sleep(0.05)

    with pytest.raises(ServerError, match="server died"), CellPool(1) as pool:
        for i in range(4):
            pool.wait_for_slot()
            pool.submit(cell, i)
    assert started == [0]  # the next cell waited for the slot, then saw the failure and started nothing


def test_interrupt_does_not_wait_for_running_cells() -> None:
    interrupted = threading.Event()
    release = threading.Event()

    def cell(_: int) -> None:
        release.wait(10)

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt), CellPool(2, on_interrupt=interrupted.set) as pool:
        pool.wait_for_slot()
        pool.submit(cell, 0)
        raise KeyboardInterrupt
    assert interrupted.is_set() and time.monotonic() - t0 < 5
    release.set()
