"""Writing small files all-or-nothing: readers (and a rerun after `kill -9`) see the old content or the new, never
a torn file. Directories built whole (checkpoints) use `evalkit.checkpoints.atomic`; Parquet cells use the store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename, through a temporary file unique to this call (threads of one process
    may write the same path at once), fsynced first so a crash right after the rename cannot leave it empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
