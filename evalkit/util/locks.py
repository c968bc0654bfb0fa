"""Advisory locks between processes: the one lock primitive of the project (`fcntl.flock` on a lock file).

flock suits every use here: the kernel releases a lock when its holder dies (even by `kill -9`), so a lock never
outlives its owner and nobody needs time thresholds or stale-lock cleanup; and two opens of the same file conflict
even inside one process, so threads are excluded as well. Lock files are never deleted: removing one while another
process waits on it would let a third process lock a new file of the same name, and both would think they hold it.
On NFS, Linux emulates flock with POSIX locks, which exclude processes but not two opens within one process: the
store relies only on exclusion between processes (one job per process). Lustre needs the `flock` mount option.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from evalkit.util.files import make_dirs, share


def _open(path: Path) -> int:
    """The lock file's descriptor. flock needs no write access: a lock file another user created (0644 under umask
    022) is opened read-only, so members of a group share a results folder's locks (README, "Shared results
    folders"); a new one in a shared folder is made group-writable anyway."""
    make_dirs(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR)
        except PermissionError:
            return os.open(path, os.O_RDONLY)
    share(path)
    return fd


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the lock on `path` (created if missing), waiting for the current holder to finish."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


@contextlib.contextmanager
def try_exclusive(path: Path) -> Iterator[bool]:
    """Take the lock on `path` if nobody holds it: yields True (held until the block ends) or False (held elsewhere;
    nothing is waited for)."""
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)
