"""The columns of the results store's two Parquet tables, derived from the records they hold.

A `scores` row is a `TaskScore` between the columns naming its cell and the columns saying how the cell ran; a
`samples` row is a `SampleRecord` between its cell's names and ids. Each table's columns are the fields of its parts,
in order, and each column's Arrow type follows from the field's type hint: a field added to `TaskScore` or
`SampleRecord` is a column without a second edit here. The column order and types are the results contract (files
already written must stay readable): tests/unit/results/test_store.py pins them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import pyarrow as pa

from evalkit.core.enums import RowStatus
from evalkit.core.records import SampleRecord, TaskScore


@dataclass(frozen=True)
class ScoreCell:
    """The columns before a score's own: which cell it belongs to."""

    model: str
    format: str
    benchmark: str
    suite: str


@dataclass(frozen=True)
class ScoreRun:
    """The columns after a score's own: the row's status and what produced it."""

    status: RowStatus
    """"ok" or "failed" (written as the string)."""
    error: str | None
    log_path: str
    cell_id: str
    run_id: str
    started_at: datetime
    finished_at: datetime
    checkpoint: str
    """The cell's `CheckpointRef` as "<source>:<id>"."""
    checkpoint_path: str
    evalkit_version: str
    evalkit_commit: str
    lm_eval_version: str
    vllm_version: str
    config_hash: str
    data_sources: str | None
    """JSON list of what the cell read (evalkit/core/datasources.py `DataSource`): Hub id and revision (or "unpinned"),
    or local path with sha256 and rows. Null in files written before the column existed."""
    data_overridden: bool | None
    """True when the cell ran on local data overrides (demo/smoke data, or local copies of Hub datasets): `aggregate`
    marks such cells. Null in files written before the column existed."""
    served_dtype: str | None
    """The dtype the server computed in: "float32" where a CPU without native bf16 served a bf16 checkpoint
    (server.dtype=cpu_native), the configured server.dtype elsewhere ("auto": the checkpoint's own). Null where no
    server ran, for results made elsewhere, and in files written before the column existed."""


@dataclass(frozen=True)
class ScoreRow:
    """One row of `scores`: a metric of a task of a cell (or, with status "failed", the cell's failure: an empty
    `TaskScore`)."""

    cell: ScoreCell
    score: TaskScore
    run: ScoreRun


@dataclass(frozen=True)
class SampleCell:
    """The columns before a sample's own."""

    model: str
    format: str
    benchmark: str


@dataclass(frozen=True)
class SampleRun:
    """The columns after a sample's own."""

    cell_id: str
    run_id: str


@dataclass(frozen=True)
class SampleRow:
    """One row of `samples`: a document of a task of a cell."""

    cell: SampleCell
    sample: SampleRecord
    run: SampleRun


_TS = pa.timestamp("us", tz="UTC")
_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(), datetime: _TS}


def _arrow_field(name: str, hint: Any) -> pa.Field:
    """The column of a field typed `hint`: `X | None` is nullable, a StrEnum is stored as its strings (YAML, Parquet
    and people read the same text), a `dict[str, float]` is a map."""
    args = typing.get_args(hint)
    nullable = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if nullable else hint
    if typing.get_origin(base) is dict:
        key, value = typing.get_args(base)
        return pa.field(name, pa.map_(_ARROW[key], _ARROW[value]), nullable=nullable)
    if isinstance(base, type) and issubclass(base, StrEnum):
        base = str
    return pa.field(name, _ARROW[base], nullable=nullable)


def _schema(row: type) -> pa.Schema:
    """The columns of a row type: the fields of its parts, in order."""
    columns = []
    parts = typing.get_type_hints(row)
    for part in (parts[f.name] for f in dataclasses.fields(row)):
        hints = typing.get_type_hints(part)
        columns += [_arrow_field(f.name, hints[f.name]) for f in dataclasses.fields(part)]
    return pa.schema(columns)


SCORES_SCHEMA = _schema(ScoreRow)
SAMPLES_SCHEMA = _schema(SampleRow)

ADDED_SCORE_COLUMNS = ("data_sources", "data_overridden", "served_dtype")
"""Columns added to the contract after results were first written: files without them still read (as nulls)."""


def columns(row: ScoreRow | SampleRow) -> dict[str, Any]:
    """A row's values by column name (a map column's dict as the (key, value) pairs Arrow takes)."""
    values: dict[str, Any] = {}
    for part in (getattr(row, f.name) for f in dataclasses.fields(row)):
        for f in dataclasses.fields(part):
            value = getattr(part, f.name)
            values[f.name] = list(value.items()) if isinstance(value, dict) else value
    return values


def to_table(rows: list[ScoreRow] | list[SampleRow], schema: pa.Schema) -> pa.Table:
    """The Arrow table of `rows` (of the row type `schema` was derived from)."""
    table: dict[str, list[Any]] = {name: [] for name in schema.names}
    for row in rows:
        for name, value in columns(row).items():
            table[name].append(value)
    return pa.table(table, schema=schema)
