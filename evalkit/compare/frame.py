"""The samples table as the compare package reads it: Arrow, so 10M documents stay cheap (no Python object per
row). Metric values come out of the `metrics` map column vectorised; strings become dictionary codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from evalkit.core.errors import CompareError
from evalkit.results.schema import SAMPLES_SCHEMA
from evalkit.results.store import read_parquet

COLUMNS = ["model", "format", "benchmark", "task", "doc_id", "prompt_hash", "response", "metrics"]
"""The part of the samples contract (evalkit/results/schema.py SAMPLES_SCHEMA) a comparison reads."""


def read_samples(results: Path) -> pa.Table:
    """The committed samples of a results directory (staging files under `_pending/` are not read)."""
    files = sorted((results / "samples").glob("*.parquet"))
    if not files:
        raise CompareError(
            f"no samples under {results / 'samples'}",
            hint="compare needs per-document rows: run the grid with `evalkit sweep`, or point --results at it",
        )
    tables = []
    for f in files:
        try:
            tables.append(read_parquet(f, columns=COLUMNS))  # one descriptor: safe against a commit's rename
        except Exception as exc:  # pyarrow raises several types for truncated / foreign files
            raise CompareError(
                f"samples file {f} is unreadable or lacks the columns {COLUMNS} ({type(exc).__name__}: {exc})",
                hint=f"move it aside (mv {f} {f}.corrupt) and re-run that cell",
            ) from exc
    return pa.concat_tables(tables, promote_options="permissive")


def as_table(samples: pa.Table | pd.DataFrame) -> pa.Table:
    """Arrow samples from either form (a DataFrame as `ResultsStore.read_samples` returns it)."""
    if isinstance(samples, pa.Table):
        return samples
    schema = pa.schema([SAMPLES_SCHEMA.field(c).with_nullable(True) for c in COLUMNS])
    return pa.Table.from_pandas(samples[COLUMNS], schema=schema, preserve_index=False)


def codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Integer codes and their labels for a string column."""
    enc = pc.dictionary_encode(column.combine_chunks())
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


class MetricMap:
    """The `metrics` map column, flattened once; `values(key)` is one float per document (NaN where absent)."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        arr = column.combine_chunks()
        offsets = arr.offsets.to_numpy()
        start, end = int(offsets[0]), int(offsets[-1])
        self._keys = arr.keys.slice(start, end - start)
        self._items = arr.items.slice(start, end - start).to_numpy(zero_copy_only=False)
        self._row = np.repeat(np.arange(len(arr)), np.diff(offsets))
        self.n = len(arr)
        self.keys = set(pc.unique(self._keys).to_pylist())

    def values(self, key: str) -> np.ndarray:
        out = np.full(self.n, np.nan)
        hit = pc.equal(self._keys, key).to_numpy(zero_copy_only=False)
        out[self._row[hit]] = self._items[hit]
        return out
