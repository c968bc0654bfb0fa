"""Produce a cache directory all-or-nothing: build it under a temporary name, rename it into place when complete.

A run killed at any point (even `kill -9`) leaves at most a `.tmp-*` directory, never a directory under the final
name, so "the final directory exists" means "the checkpoint is complete". Leftover temporaries of dead processes are
removed the next time the same entry is produced. A lock file serialises producers of one entry (two jobs of the
same model x format starting together), so the second waits and then finds the first one's result.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evalkit.util.locks import exclusive

TMP_PREFIX = ".tmp-"
LOCK_DIR = ".locks"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_dirs(final: Path) -> list[Path]:
    """Temporary directories (of any process) that would become `final`."""
    return sorted(final.parent.glob(f"{TMP_PREFIX}{final.name}.*"))


def clear_incomplete(final: Path) -> list[Path]:
    """Delete temporaries of `final` whose producing process is gone, and `final` itself if it is there but was
    not completed (only possible when someone deleted its manifest by hand); returns what was removed.
    Call it holding `entry_lock(final)` after checking that `final` is not complete."""
    removed = []
    if final.exists():
        shutil.rmtree(final)
        removed.append(final)
    for tmp in temp_dirs(final):
        pid_part = tmp.name[len(TMP_PREFIX) + len(final.name) + 1 :].split(".", 1)[0]
        if pid_part.isdigit() and _pid_alive(int(pid_part)) and int(pid_part) != os.getpid():
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


def sweep_dead_temps(root: Path) -> list[Path]:
    """Delete every temporary under `root` whose producing process is gone, whatever entry it was for (a killed
    run of a recipe that has since changed would otherwise leave its temporary forever)."""
    removed = []
    for tmp in root.glob(f"{TMP_PREFIX}*") if root.is_dir() else []:
        parts = tmp.name.rsplit(".", 2)
        if len(parts) == 3 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside `final`; rename it to `final` if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary directory is removed and the exception propagates.
    The temporary lives in the same parent so the rename is atomic (same filesystem).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TMP_PREFIX}{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def entry_lock(final: Path) -> Iterator[None]:
    """Exclusive lock for producing `final` (blocks until the holder finishes; released if the holder dies)."""
    with exclusive(final.parent / LOCK_DIR / f"{final.name}.lock"):
        yield
