"""Golden files for pure renderings (commands, sbatch scripts, recipes): one checker, one way to regenerate."""

from __future__ import annotations

import os
from pathlib import Path

UPDATE = "EVALKIT_UPDATE_GOLDEN"


def check_golden(path: Path, text: str, note: str = "") -> None:
    """Assert `text` equals the golden file at `path`; with EVALKIT_UPDATE_GOLDEN=1, (re)write it instead."""
    if os.environ.get(UPDATE) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    regen = f"{UPDATE}=1 python -m pytest tests/unit && git diff {path}"
    assert path.exists(), f"no golden file {path}; create it: {regen}"
    assert text == path.read_text(), (
        f"rendered text differs from {path}; if the change is intended, regenerate and review the diff:\n  {regen}"
        + (f"\n{note}" if note else "")
    )
