"""Writing files all-or-nothing: readers (and a rerun after `kill -9`) see the old content or the new, never a torn
file. Every derived table (aggregate, compare, perf, report) and every small state file goes through `write_atomic`.
Directories built whole (checkpoints) use `evalkit.checkpoints.atomic`; Parquet cells use the store.

Reading the JSON-lines files those writers and appenders leave is `read_jsonl`: the one reader, which names the file
and line of a broken row, and on request tolerates what a killed appender leaves (a torn last line).

Also the folder rules of a results folder shared by a group (README, "Shared results folders"): inside a setgid
folder, the folders and lock files evalkit creates are group-writable, so another member of the group can commit.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Replace `path` with what `write(tmp)` writes to a temporary path beside it, in one rename.

    The temporary file is unique to this call (two processes or threads may write the same table at once: the last
    rename wins, whole) and fsynced before the rename, so a crash right after it cannot leave an empty file. `write`
    gets a path, so any writer fits: `write_atomic(p, lambda t: frame.to_parquet(t, index=False))`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        # mkstemp makes 0600; a table is as readable as any file this user writes (umask decides)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o666 & ~umask) | (0o060 if _group_rw(path.parent) else 0))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """`write_atomic` of a UTF-8 text."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _group_rw(directory: Path) -> bool:
    """Whether `directory` is a group's shared folder: setgid (files created in it take its group) and
    group-writable. Then what evalkit creates in it is group-writable too, whatever the creator's umask."""
    try:
        mode = directory.stat().st_mode
    except OSError:
        return False
    return bool(mode & stat.S_ISGID) and bool(mode & stat.S_IWGRP)


def make_dirs(path: Path) -> None:
    """`mkdir -p` that keeps a shared folder shared: folders created under a setgid, group-writable folder are made
    group-writable and setgid too (mkdir alone gives 0755 under the usual umask 022, locking the group out)."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        if _group_rw(created.parent):
            share(created)


def share(path: Path) -> None:
    """Make a file or folder this process created group-writable when its folder is shared (see `_group_rw`)."""
    if not _group_rw(path.parent):
        return
    with contextlib.suppress(PermissionError):  # another user's file, already shared by its creator
        mode = path.stat().st_mode
        extra = stat.S_IRWXG | stat.S_ISGID if stat.S_ISDIR(mode) else stat.S_IRGRP | stat.S_IWGRP
        if mode & extra != extra:
            os.chmod(path, stat.S_IMODE(mode) | extra)


class JsonLineError(ValueError):
    """A line of a JSON-lines file that is not JSON."""

    def __init__(self, path: Path | str, lineno: int, error: json.JSONDecodeError) -> None:
        self.path = path
        self.lineno = lineno
        """1-based, counting blank lines."""
        self.error = error
        """json's own error (its `msg` says what is wrong)."""
        super().__init__(f"{path} line {lineno} is not JSON: {error}")


def read_jsonl(
    path: Path,
    *,
    on_bad_line: Callable[[JsonLineError], None] | None = None,
    cut_torn_tail: bool = False,
) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON-lines file (gzipped when its name ends in .gz), read as
    the caller consumes them.

    A line that is not JSON raises `JsonLineError`, unless `on_bad_line` takes it (a cache that redoes what it cannot
    read). `cut_torn_tail`, for a file this process appends to: a last line without its newline (an appender killed
    mid-write) is cut off the file before reading, so the next append starts on a line of its own."""
    if cut_torn_tail:
        _cut_torn_tail(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        yield from parse_jsonl(lines, path, on_bad_line)


def parse_jsonl(
    lines: Iterable[str], where: Path | str, on_bad_line: Callable[[JsonLineError], None] | None = None
) -> Iterator[tuple[int, Any]]:
    """`read_jsonl` of lines already read (`where` names them in errors)."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            error = JsonLineError(where, lineno, exc)
            if on_bad_line is None:
                raise error from exc
            on_bad_line(error)
            continue
        yield lineno, value


def _cut_torn_tail(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
        log.warning("dropped a torn last line of %s (a writer was killed mid-line)", path)
