"""The results store: two Parquet tables under one directory, committed atomically per cell.

Layout (both are ordinary Parquet datasets: `pd.read_parquet("results/scores")` reads the whole table)::

    results/scores/<model>__<format>__<benchmark>.parquet    one row per task x metric (or one failure row)
    results/samples/<model>__<format>__<benchmark>.parquet   one row per task x document
    results/scores/_pending/, results/samples/_pending/      staging; ignored by Parquet readers ("_" prefix)
    results/.locks/<key>.commit, results/.locks/<key>.run    per-cell locks (evalkit.util.locks), never read as data

Reading (`ResultsStore(root)`: status, planning, aggregate) never writes and never creates anything; a results folder
that does not exist reads as empty. Writing goes through `ResultsStore.open_for_writing(root)` (a job), which makes
the folders and recovers.

Commit protocol for one cell (a job killed at any instant leaves the whole cell or nothing):
  1. write samples to samples/_pending/<key>__<run_id>.parquet (fsync)
  2. write scores to scores/_pending/, fsync, then os.replace onto scores/<key>.parquet  <- the commit point
  3. os.replace the pending samples file onto samples/<key>.parquet
A writer holds the cell key's commit lock through steps 1-3 (and the check of `record_failure`), so two writers of
one key take turns.
Recovery (every time a store is opened for writing): for each key with staging files whose commit lock it can take
without waiting (a held lock means a live writer owns those files: they are left alone), a pending samples file
whose run_id is the committed one is rolled forward (step 3); any other pending file is debris of a killed job and
is deleted. A killed writer's lock is released by the kernel, so its debris is recovered by the next opening.
Running a cell is guarded by a second lock per key, the run lock (`claim`): two sweeps on one results folder never
run the same cell at once.

Reading while others commit: every file is read through one open descriptor (`read_parquet`), so a commit's
`os.replace` cannot mix two files' bytes; each file carries its run id in its metadata, and `read_samples` /
`read_snapshot` pair a cell's samples with its committed scores (between steps 2 and 3, or after a writer was killed
there, the pending samples of the committed run are the cell's samples).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evalkit.core.cell import KEY_SEP, Cell, CellKey
from evalkit.core.enums import CellState, RowStatus
from evalkit.core.errors import StoreError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.results.adaptive import ADAPTIVE_META, AdaptiveRecord
from evalkit.results.schema import (
    ADDED_SCORE_COLUMNS,
    SAMPLES_SCHEMA,
    SCORES_SCHEMA,
    SampleCell,
    SampleRow,
    SampleRun,
    ScoreCell,
    ScoreRow,
    ScoreRun,
    to_table,
)
from evalkit.util import locks
from evalkit.util.files import make_dirs, share

PENDING = "_pending"
LOCKS = ".locks"
RUN_ID_META = b"evalkit.run_id"
"""Key of the Parquet file metadata naming the run a file belongs to (also when it has no rows)."""
SNAPSHOT_WAIT_S = 30.0
"""How long a reader waits for a commit between its steps 2 and 3 to finish (it takes milliseconds)."""


@dataclass(frozen=True)
class Provenance:
    """What produced a run: code and tool versions, the checkpoint, and the resolved config."""

    evalkit_version: str
    evalkit_commit: str
    lm_eval_version: str
    vllm_version: str
    checkpoint_path: str
    config_hash: str
    served_dtype: str | None = None
    """The dtype the server computed in (`ScoreRun.served_dtype`); None where no server ran."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    started_at: datetime
    finished_at: datetime
    log_path: str
    provenance: Provenance
    data_sources: str | None = None
    """The cell's data sources, `evalkit.core.datasources.sources_json` (the job always sets it and data_overridden)."""
    data_overridden: bool | None = None
    """The cell read local data instead of the benchmark's Hub datasets (a demo/smoke benchmark, or local copies)."""


@dataclass(frozen=True)
class CellRecord:
    """What the store knows of one cell key."""

    state: CellState
    cell_id: str | None = None
    run_id: str | None = None
    error: str | None = None
    log_path: str | None = None
    finished_at: datetime | None = None
    adaptive: AdaptiveRecord | None = None
    """An adaptive variant cell's progress (its scores file's metadata); None for every other cell."""


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_parquet(table: pa.Table, path: Path) -> None:
    with open(path, "wb") as fh:
        pq.write_table(table, fh)
        fh.flush()
        os.fsync(fh.fileno())
    share(path)


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A Parquet file read through one open descriptor. `pq.read_table(path)` opens the path more than once (footer,
    then pages): a commit's `os.replace` in between would pair one file's footer with another's pages. An open
    descriptor keeps reading the file it opened, whatever is renamed onto its path meanwhile."""
    with open(path, "rb") as fh:
        return pq.ParquetFile(fh).read(columns=columns)


def _run_id(table: pa.Table) -> str | None:
    """The run a file belongs to: its metadata (files written since it exists), else its first row, else unknown."""
    meta: dict[bytes, bytes] = table.schema.metadata or {}
    if RUN_ID_META in meta:
        return meta[RUN_ID_META].decode()
    if "run_id" in table.column_names and table.num_rows:
        return str(table.column("run_id")[0])
    return None


class ResultsStore:
    """Reads and writes the two tables. Safe against kills at any instant and against concurrent processes: readers
    see whole cells, writers of one cell key take turns, recovery leaves live writers' files alone.

    `ResultsStore(root)` only reads; `ResultsStore.open_for_writing(root)` may also write."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.scores_dir = self.root / "scores"
        self.samples_dir = self.root / "samples"
        self._writable = False

    @classmethod
    def open_for_writing(cls, root: Path | str) -> ResultsStore:
        """The store a job writes to: folders created, what killed writers left behind recovered."""
        store = cls(root)
        try:
            for d in (store.scores_dir / PENDING, store.samples_dir / PENDING, store.root / LOCKS):
                make_dirs(d)  # group-writable inside a shared (setgid) folder
            store._writable = True
            store.recover()
        except PermissionError as exc:
            raise StoreError(
                f"cannot write the results folder {store.root}: permission denied on {exc.filename}",
                hint="set paths.results to a folder you can write (evalkit sweep ... paths.results=DIR); a folder "
                "shared by a group must be setgid and group-writable (README, 'Shared results folders')",
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot create the results folder {store.root} ({exc.strerror})",
                hint="set paths.results to a folder you can write (evalkit sweep ... paths.results=DIR)",
            ) from exc
        return store

    def _lock_path(self, key: CellKey, kind: str) -> Path:
        return self.root / LOCKS / f"{key.encode()}.{kind}"

    def _check_writable(self, what: str) -> None:
        if not self._writable:
            raise StoreError(
                f"{what} on the results store {self.root}, which was opened read-only",
                hint="open it with ResultsStore.open_for_writing(root) (a bug in the caller: please report it)",
            )

    # ---------------------------------------------------------------- writing
    @contextlib.contextmanager
    def claim(self, cell: Cell) -> Iterator[bool]:
        """Take the cell's run lock if no other process holds it: yields True (this process may run the cell; the
        lock is held until the block ends, or until the process dies) or False (it is running elsewhere: skip it).
        Re-read `cell_record` after a True: the holder before may have just committed the cell."""
        self._check_writable(f"claiming cell {cell.key}")
        with locks.try_exclusive(self._lock_path(cell.key, "run")) as mine:
            yield mine

    def commit_cell(
        self,
        cell: Cell,
        run: RunInfo,
        scores: Iterable[TaskScore],
        samples: Iterable[SampleRecord],
        adaptive: AdaptiveRecord | None = None,
    ) -> None:
        """Replace the cell's rows (both tables) with these, atomically. `adaptive`: an adaptive cell's progress,
        committed with its rows (a cell whose rule has not finished then reads as PARTIAL)."""
        score_rows = [_score_row(cell, run, s) for s in scores]
        if not score_rows:
            raise StoreError(f"cell {cell.key} produced no scores; refusing to commit an empty result")
        sample_rows = [_sample_row(cell, run, s) for s in samples]
        self._check_writable(f"committing cell {cell.key}")
        with locks.exclusive(self._lock_path(cell.key, "commit")):
            self._commit(
                cell.key,
                run.run_id,
                to_table(score_rows, SCORES_SCHEMA),
                to_table(sample_rows, SAMPLES_SCHEMA),
                {ADAPTIVE_META: adaptive.to_json().encode()} if adaptive is not None else {},
            )

    def record_failure(self, cell: Cell, run: RunInfo, error: str) -> None:
        """Record a failed cell (one row, status "failed", with the error and log path).

        A successful result of the same cell id is never overwritten by a failure, nor an adaptive cell's committed
        chunks (the next run resumes from them): a failed re-run loses nothing.
        """
        self._check_writable(f"recording the failure of cell {cell.key}")
        with locks.exclusive(self._lock_path(cell.key, "commit")):  # the check and the write as one step
            if self.cell_record(cell).state not in (CellState.DONE, CellState.PARTIAL):
                self._record_failure(cell, run, error)

    def _record_failure(self, cell: Cell, run: RunInfo, error: str) -> None:
        # the failure row's metric columns are an empty score's
        row = _score_row(cell, run, TaskScore(task="", metric="", value=None), RowStatus.failed, error)
        self._commit(cell.key, run.run_id, to_table([row], SCORES_SCHEMA), to_table([], SAMPLES_SCHEMA))

    def _commit(
        self, key: CellKey, run_id: str, scores: pa.Table, samples: pa.Table, extra: dict[bytes, bytes] | None = None
    ) -> None:
        """Steps 1-3 of the commit protocol; the caller holds the key's commit lock. `extra`: more metadata of the
        scores file (an adaptive cell's progress)."""
        pending_samples = self._pending_samples(key, run_id)
        pending_scores = self.scores_dir / PENDING / pending_samples.name
        meta = {RUN_ID_META: run_id.encode()}  # so a reader pairs the two files, even when samples has no rows
        _write_parquet(samples.replace_schema_metadata(meta), pending_samples)
        _write_parquet(scores.replace_schema_metadata({**meta, **(extra or {})}), pending_scores)
        os.replace(pending_scores, self._scores_file(key))  # commit point
        _fsync_dir(self.scores_dir)
        os.replace(pending_samples, self._samples_file(key))
        _fsync_dir(self.samples_dir)

    def recover(self) -> None:
        """Finish or discard what killed commits left in the staging directories, key by key, skipping keys whose
        commit lock is held: their staging files belong to a writer that is alive."""
        self._check_writable("recovering")
        staged = [*(self.scores_dir / PENDING).glob("*.parquet"), *(self.samples_dir / PENDING).glob("*.parquet")]
        for key in sorted({k for p in staged if (k := _key_of(p)) is not None}, key=CellKey.encode):
            with locks.try_exclusive(self._lock_path(key, "commit")) as mine:
                if mine:
                    self._recover_key(key)

    def _recover_key(self, key: CellKey) -> None:
        """Under the key's commit lock: listed again, since the writer that held it before may have finished."""
        for leftover in (self.scores_dir / PENDING).glob("*.parquet"):
            if _key_of(leftover) == key:
                leftover.unlink(missing_ok=True)
        for pending in (self.samples_dir / PENDING).glob("*.parquet"):
            if _key_of(pending) != key:
                continue
            run_id = pending.stem.rpartition(KEY_SEP)[2]
            committed = self._scores_file(key)
            if committed.exists() and self._run_id_of(committed) == run_id:
                os.replace(pending, self._samples_file(key))
                _fsync_dir(self.samples_dir)
            else:
                pending.unlink(missing_ok=True)

    def _pending_samples(self, key: CellKey, run_id: str) -> Path:
        return self.samples_dir / PENDING / f"{key.encode()}{KEY_SEP}{run_id}.parquet"

    def _scores_file(self, key: CellKey) -> Path:
        return self.scores_dir / f"{key.encode()}.parquet"

    def _samples_file(self, key: CellKey) -> Path:
        return self.samples_dir / f"{key.encode()}.parquet"

    def _run_id_of(self, scores_file: Path) -> str | None:
        return _run_id(self._read_file(scores_file, columns=["run_id"]))

    # ---------------------------------------------------------------- reading
    def cell_record(self, cell: Cell) -> CellRecord:
        path = self._scores_file(cell.key)
        try:
            table = self._read_file(path, columns=["cell_id", "run_id", "status", "error", "log_path", "finished_at"])
        except FileNotFoundError:
            return CellRecord(CellState.MISSING)
        first = table.slice(0, 1).to_pylist()[0]
        adaptive = _adaptive_of(table)
        if first["cell_id"] != cell.cell_id:
            state = CellState.STALE
        elif first["status"] == RowStatus.ok:
            state = CellState.DONE if adaptive is None or adaptive.finished else CellState.PARTIAL
        else:
            state = CellState.FAILED
        return CellRecord(
            state,
            cell_id=first["cell_id"],
            run_id=first["run_id"],
            error=first["error"],
            log_path=first["log_path"],
            finished_at=first["finished_at"],
            adaptive=adaptive,
        )

    def read_cell(self, key: CellKey) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """One committed cell's scores and samples, as one snapshot (`read_snapshot`); None when it has no rows."""
        pair = self._cell_snapshot(key, self._scores_file(key))
        if pair is None:
            return None
        (sf, st), (pf, pt) = pair
        samples = [self._conform(pf, pt, SAMPLES_SCHEMA, None)] if pt is not None else []
        return self._frame([self._conform(sf, st, SCORES_SCHEMA, None)]), self._frame(samples, SAMPLES_SCHEMA)

    def adaptive_records(self) -> dict[CellKey, AdaptiveRecord]:
        """Every committed adaptive cell's progress, by key (what compare, aggregate and the report name)."""
        out: dict[CellKey, AdaptiveRecord] = {}
        for key, path in self._keys():
            if key is None:
                continue
            try:
                found = _adaptive_of(self._read_file(path, columns=["run_id"]))
            except FileNotFoundError:
                continue
            if found is not None:
                out[key] = found
        return out

    def _read_file(self, path: Path, columns: list[str] | None = None) -> pa.Table:
        """`read_parquet`; FileNotFoundError passes (a missing cell, or a pending file already renamed), a permission
        problem says so, and only what pyarrow cannot parse is called unreadable."""
        try:
            return read_parquet(path, columns)
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise StoreError(
                f"cannot read the results file {path}: permission denied",
                hint="ask its owner to make the results folder readable to you, or point paths.results / --results "
                "at a folder you can read",
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot read the results file {path} ({exc.strerror or exc})") from exc
        except Exception as exc:  # pyarrow raises several types for truncated / foreign files
            raise StoreError(
                f"results file {path} is unreadable ({type(exc).__name__}: {exc})",
                hint=f"move it aside (mv {path} {path}.corrupt) and re-run the sweep: the cell will be recomputed",
            ) from exc

    def read_scores(self, required: Iterable[str] | None = None) -> pd.DataFrame:
        """The scores table. `required`: the columns a reader needs (default: the whole contract); other contract
        columns missing from a file (a hand-entered table) come back as nulls."""
        return self._frame([self._conform(f, t, SCORES_SCHEMA, required) for f, t in self._committed_scores()])

    def read_samples(self) -> pd.DataFrame:
        """The samples table: each cell's samples of the run its committed scores hold (see `read_snapshot`)."""
        return self.read_snapshot()[1]

    def read_snapshot(self, required: Iterable[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Scores and samples as one snapshot: every cell's samples belong to the run of its scores, though writers
        commit meanwhile. A cell read between a commit's steps 2 and 3 is read again (or its committed run's
        pending samples are read, which is what recovery would roll forward)."""
        scores, samples = [], []
        for key, path in self._keys():
            pair = self._cell_snapshot(key, path)
            if pair is None:
                continue
            (sf, st), (pf, pt) = pair
            scores.append(self._conform(sf, st, SCORES_SCHEMA, required))
            if pt is not None:
                samples.append(self._conform(pf, pt, SAMPLES_SCHEMA, None))
        for f in sorted(self.samples_dir.glob("*.parquet")):  # samples without a scores file (hand-made tables)
            key = _committed_key(f)
            if key is None or not self._scores_file(key).exists():
                with contextlib.suppress(FileNotFoundError):
                    samples.append(self._conform(f, self._read_file(f), SAMPLES_SCHEMA, None))
        return self._frame(scores, SCORES_SCHEMA), self._frame(samples, SAMPLES_SCHEMA)

    def _keys(self) -> list[tuple[CellKey | None, Path]]:
        return [(_committed_key(f), f) for f in sorted(self.scores_dir.glob("*.parquet"))]

    def _committed_scores(self) -> Iterator[tuple[Path, pa.Table]]:
        for f in sorted(self.scores_dir.glob("*.parquet")):
            with contextlib.suppress(FileNotFoundError):  # committed files are only replaced, never removed
                yield f, self._read_file(f)

    def _cell_snapshot(
        self, key: CellKey | None, scores_file: Path
    ) -> tuple[tuple[Path, pa.Table], tuple[Path, pa.Table | None]] | None:
        deadline = time.monotonic() + SNAPSHOT_WAIT_S
        while True:
            try:
                scores = self._read_file(scores_file)
            except FileNotFoundError:
                return None
            if key is None:  # not a cell's file name (a hand-made table): no samples belong to it
                return (scores_file, scores), (scores_file, None)
            run = _run_id(scores)
            for candidate in (self._samples_file(key), self._pending_samples(key, run or "")):
                try:
                    samples = self._read_file(candidate)
                except FileNotFoundError:
                    continue
                if run is None or _run_id(samples) in (run, None):
                    return (scores_file, scores), (candidate, samples)
            if not self._samples_file(key).exists() and not any(
                (self.samples_dir / PENDING).glob(f"{key.encode()}{KEY_SEP}*.parquet")
            ):
                return (scores_file, scores), (scores_file, None)  # a cell committed without a samples file
            if time.monotonic() > deadline:
                raise StoreError(
                    f"cell {key}: its scores ({scores_file}, run {run}) and samples stay from different runs",
                    hint="a commit did not finish: open the store for writing (any `evalkit sweep` on it) to recover",
                )
            time.sleep(0.01)  # a commit between its steps 2 and 3: its samples land in a moment

    def _conform(self, f: Path, t: pa.Table, schema: pa.Schema, required: Iterable[str] | None) -> pa.Table:
        """One file's table in the contract's columns and types, or a StoreError naming what differs."""
        need = set(schema.names if required is None else required) - set(ADDED_SCORE_COLUMNS)
        t = t.replace_schema_metadata(None)
        missing = [n for n in schema.names if n not in t.column_names]
        if need & set(missing):
            raise StoreError(
                f"{f} does not follow the results contract: missing columns {sorted(need & set(missing))}",
                hint="see evalkit/results/store.py (SCORES_SCHEMA / SAMPLES_SCHEMA) for the contract",
            )
        for name in missing:
            t = t.append_column(schema.field(name).with_nullable(True), pa.nulls(t.num_rows, schema.field(name).type))
        t = t.select(schema.names)
        relaxed = pa.schema([f.with_nullable(True) for f in schema])
        try:
            return t.cast(relaxed)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            wrong = [
                f"{n} is {t.schema.field(n).type}, the contract says {schema.field(n).type}"
                for n in schema.names
                if not t.schema.field(n).type.equals(schema.field(n).type)
            ]
            raise StoreError(
                f"{f} does not follow the results contract: {'; '.join(wrong) or exc}",
                hint="rewrite the file with the contract's column types (evalkit/results/store.py SCORES_SCHEMA / "
                f"SAMPLES_SCHEMA), or move it aside (mv {f} {f}.bad)",
            ) from exc

    @staticmethod
    def _frame(tables: list[pa.Table], schema: pa.Schema = SCORES_SCHEMA) -> pd.DataFrame:
        if not tables:
            empty: pd.DataFrame = schema.empty_table().to_pandas()
            return empty
        frame: pd.DataFrame = pa.concat_tables(tables).to_pandas()
        return frame


def _adaptive_of(table: pa.Table) -> AdaptiveRecord | None:
    raw = (table.schema.metadata or {}).get(ADAPTIVE_META)
    return AdaptiveRecord.from_json(raw) if raw is not None else None


def _committed_key(path: Path) -> CellKey | None:
    """The cell key of a committed file `<key>.parquet`; None for a file of another name (a hand-made table)."""
    try:
        return CellKey.decode(path.stem)
    except ValueError:
        return None


def _key_of(pending: Path) -> CellKey | None:
    """The cell key of a staging file `<key>__<run_id>.parquet` (run ids hold no "__"); None for a file this store
    did not stage (it is left alone)."""
    try:
        return CellKey.decode(pending.stem.rpartition(KEY_SEP)[0])
    except ValueError:
        return None


def _score_run(cell: Cell, run: RunInfo, status: RowStatus, error: str | None) -> ScoreRun:
    p = run.provenance
    return ScoreRun(
        status=status,
        error=error,
        log_path=run.log_path,
        cell_id=cell.cell_id,
        run_id=run.run_id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        checkpoint=str(cell.checkpoint),
        checkpoint_path=p.checkpoint_path,
        evalkit_version=p.evalkit_version,
        evalkit_commit=p.evalkit_commit,
        lm_eval_version=p.lm_eval_version,
        vllm_version=p.vllm_version,
        config_hash=p.config_hash,
        data_sources=run.data_sources,
        data_overridden=run.data_overridden,
        served_dtype=p.served_dtype,
    )


def _score_row(
    cell: Cell, run: RunInfo, s: TaskScore, status: RowStatus = RowStatus.ok, error: str | None = None
) -> ScoreRow:
    where = ScoreCell(model=cell.model, format=cell.format, benchmark=cell.benchmark, suite=cell.suite)
    return ScoreRow(where, s, _score_run(cell, run, status, error))


def _sample_row(cell: Cell, run: RunInfo, s: SampleRecord) -> SampleRow:
    where = SampleCell(model=cell.model, format=cell.format, benchmark=cell.benchmark)
    return SampleRow(where, s, SampleRun(cell_id=cell.cell_id, run_id=run.run_id))


def cell_rows(
    cell: Cell, run: RunInfo, scores: Iterable[TaskScore], samples: Iterable[SampleRecord]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scores and samples frames `commit_cell` would commit (as `read_snapshot` reads them back): what an
    adaptive job decides on before it commits a chunk."""
    score_rows = [_score_row(cell, run, s) for s in scores]
    sample_rows = [_sample_row(cell, run, s) for s in samples]
    return (
        to_table(score_rows, SCORES_SCHEMA).to_pandas(),
        to_table(sample_rows, SAMPLES_SCHEMA).to_pandas(),
    )
