"""The generation marker: a cell's folder holds `.generated.json` once its generation finished (phase=generate, or
split scoring), so a later `evalkit score` scores it without the server. It names the cell id (other settings never
score this generation) and when the generation started, which says whether it is newer than the cell's committed
run (a forced re-generation of a done cell awaits scoring too)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from evalkit.core.cell import Cell
from evalkit.core.enums import CellState
from evalkit.results.store import CellRecord, Provenance
from evalkit.util.files import write_text_atomic

GENERATED = ".generated.json"


def write_marker(work_dir: Path, cell: Cell, prov: Provenance, started: datetime) -> None:
    marker = {"cell_id": cell.cell_id, "started_at": started.isoformat(), "provenance": asdict(prov)}
    write_text_atomic(work_dir / GENERATED, json.dumps(marker))


def clear_marker(work_dir: Path) -> None:
    """A generation starts: the folder's previous one is no longer there to score."""
    (work_dir / GENERATED).unlink(missing_ok=True)


def read_marker(work_dir: Path, cell: Cell) -> dict[str, Any] | None:
    """The marker of this cell's finished generation; None if there is none or it is another cell id's."""
    try:
        marker: dict[str, Any] = json.loads((work_dir / GENERATED).read_text())
    except (OSError, ValueError):
        return None
    return marker if marker.get("cell_id") == cell.cell_id else None


def awaits_scoring(work_dir: Path, cell: Cell, record: CellRecord) -> bool:
    """A done cell whose folder holds a generation started after its committed run finished: `evalkit score`
    must score that generation rather than call the cell complete."""
    if record.state is not CellState.DONE or record.finished_at is None:
        return False
    marker = read_marker(work_dir, cell)
    return marker is not None and datetime.fromisoformat(marker["started_at"]) > record.finished_at
