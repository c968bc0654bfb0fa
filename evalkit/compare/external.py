"""Runs made elsewhere: lm-eval `--log_samples` folders (a baseline and its variants) written into a results store
in the contract's form, so `evalkit compare` pairs them document by document like its own cells. Each folder is one
format of one model; every folder's tasks form one suite, `lm_eval`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from evalkit.benchmarks.lm_eval.external import lm_eval_version, read_log_samples
from evalkit.core.cell import Cell, CheckpointRef
from evalkit.core.enums import CheckpointSource
from evalkit.core.errors import CompareError, EvalkitError
from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id

SUITE = "lm_eval"
MODEL = "external"


def label_of(folder: Path) -> str:
    """A format label from a folder name: what the comparison's lines show."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.resolve().name) or "run"


def store_from_runs(folders: Sequence[Path], baseline: str, out: Path) -> ResultsStore:
    """A results store under `out` holding the runs: the first folder as format `baseline`, the others under their
    folder names. CompareError naming the folder when one is not an lm-eval --log_samples output."""
    if len(folders) < 2:
        raise CompareError(
            f"--lm-eval-runs needs a baseline folder and at least one variant folder (got {len(folders)})",
            hint="evalkit compare --lm-eval-runs BASELINE_DIR VARIANT_DIR [VARIANT_DIR ...]",
        )
    labels = [baseline] + [label_of(f) for f in folders[1:]]
    if len(set(labels)) < len(labels):
        raise CompareError(f"--lm-eval-runs: two folders give the same label ({labels})", hint="rename a folder")
    store = ResultsStore.open_for_writing(out)
    for folder, label in zip(folders, labels, strict=True):
        try:
            scores, samples = read_log_samples(folder)
        except EvalkitError as err:
            raise CompareError(
                f"--lm-eval-runs {folder}: {err.message}",
                hint="pass the --output_path folder of an lm-eval run made with --log_samples",
            ) from err
        if not samples:
            raise CompareError(f"--lm-eval-runs {folder}: no samples files", hint="re-run lm-eval with --log_samples")
        now = datetime.now(timezone.utc)
        cell = Cell(MODEL, label, SUITE, SUITE, CheckpointRef(CheckpointSource.path, str(folder.resolve())), "0" * 64)
        prov = Provenance("external", "external", lm_eval_version(folder), "unknown", str(folder.resolve()), "external")
        store.commit_cell(cell, RunInfo(new_run_id(), now, now, str(folder.resolve()), prov), scores, samples)
    return store
