"""What a report shows, read from a results folder: the scores, the comparisons (computed here with
`evalkit.compare`), and the side tables other parts of evalkit write when they ran (divergence, similarity, perf,
noise floor). A table that is absent stays None, with the reason, so its section can say so."""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from evalkit.compare import CompareSettings, compare
from evalkit.compare.frame import read_samples
from evalkit.compare.sequential import adaptive_subsets, early_stop_notes
from evalkit.core.errors import EvalkitError
from evalkit.results.store import ResultsStore, read_parquet

COMPARISONS = "comparisons.parquet"
"""`evalkit compare`'s own output in results/compare/; recomputed here, so not read as a side table."""


@dataclass(frozen=True)
class ReportInputs:
    results: str
    """The results folder, as the page names it."""
    scores: pd.DataFrame
    """The scores table (results contract), ok and failed rows."""
    comparisons: pd.DataFrame | None = None
    """`evalkit.compare.compare`'s table, or None when it could not be computed (`compare_error` says why)."""
    compare_error: str | None = None
    compare_notes: list[str] = field(default_factory=list)
    compare_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Other tables in results/compare/ by file stem (token divergence, text similarity, noise floor, ...)."""
    perf_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Tables in results/perf/ by file stem (latency-throughput, cost, recommendation)."""
    settings: CompareSettings = field(default_factory=CompareSettings)
    host: str = "unknown"
    """The machine the report was written on (the runs' own hardware comes from the perf tables, when present)."""
    generated_at: str = ""


def _side_tables(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """Every Parquet table of a folder (a file, or a dataset folder of files), by name; staging (`_*`) left out."""
    found: dict[str, pd.DataFrame] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")) or path.name in skip:
            continue
        if path.is_file() and path.suffix == ".parquet":  # one descriptor: a table replaced meanwhile reads whole
            found[path.name.removesuffix(".parquet")] = read_parquet(path).to_pandas()
        elif path.is_dir() and any(path.glob("*.parquet")):
            found[path.name] = pd.read_parquet(path)
    return found


def load_inputs(results: Path, settings: CompareSettings | None = None) -> ReportInputs:
    """Read a results folder for the report. A comparison that cannot be made (no samples, no baseline) is not an
    error of the report: its sections say why."""
    settings = settings or CompareSettings()
    store = ResultsStore(results)
    scores = store.read_scores()
    # adaptive cells stopped early hold part of their baseline's documents: compared on those, and named
    adaptive = store.adaptive_records()
    subsets = adaptive_subsets(adaptive, dict(zip(scores["benchmark"], scores["suite"], strict=True)))
    settings = dataclasses.replace(settings, subsets=settings.subsets | subsets)
    comparisons: pd.DataFrame | None = None
    error: str | None = None
    notes: list[str] = []
    ok = scores[scores["status"] == "ok"]
    if ok.empty:
        error = "no completed cells in the scores table"
    else:
        try:
            comparisons, notes = compare(read_samples(results), ok, settings)
        except EvalkitError as exc:
            error = exc.message
    notes += early_stop_notes(adaptive)
    return ReportInputs(
        results=str(results),
        scores=scores,
        comparisons=comparisons,
        compare_error=error,
        compare_notes=notes,
        compare_tables=_side_tables(results / "compare", skip=(COMPARISONS,)),
        perf_tables=_side_tables(results / "perf"),
        settings=settings,
        host=f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, {platform.platform(terse=True)})",
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
