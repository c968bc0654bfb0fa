"""What a cell's lm-eval runs keep across an interrupted job, so a requeued or re-launched job resumes where it stopped.

A run (one `lm-eval run` invocation: its name and argv; a suite's part, or later a chunk of a task's documents) is
the unit. Two things are kept per run, in the cell's progress folder (`RunContext.progress_dir`, named by the cell's
id, removed by the job once the cell is committed):

- `done.json`, written by the harness process the moment the run ends well and its outputs read back complete
  (`parse.read_run_outputs`, the reader `score` uses): the size and sha256 of every output file. A later attempt
  skips the run only if every file is still there with that content; anything else (no marker, an interrupted
  run's partial output, a file changed since) runs it again from a fresh folder.
- lm-eval's own response cache (`--use_cache`: `CachingLM`, an sqlite file committed after every response), so a
  run interrupted half-way sends only the requests it has no answer for. A cached answer is the very object the
  server's response was parsed into, so the run's samples are those of an uninterrupted run (on a server that
  answers a request the same way whatever else it batches with it; vLLM on CPU does not, see ENVIRONMENT.md).

Both are keyed by the run's identity (`run_key`): its argv without the server's address (which changes with every
server start), the task files evalkit generated for it, and lm-eval's version. A run whose identity changed starts
over, its cache discarded: lm-eval's cache keys hold the request text only, not the settings (such as `max_length`)
that decide what the server is asked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from evalkit.core.cell import stable_hash
from evalkit.core.errors import BenchmarkError
from evalkit.util.files import write_text_atomic
from evalkit.util.hashing import sha256_file

log = logging.getLogger("evalkit.lm_eval")

CACHE_TABLE = "unnamed"
"""sqlitedict's default table, where lm-eval's CachingLM keeps the responses."""


def run_key(argv: list[str], task_files: Mapping[str, str]) -> str:
    """The identity of a run (pure but for lm-eval's installed version): what decides the requests it sends and the
    answers it keeps. The server's URL is left out (a requeued job serves the same checkpoint on another port or
    node); everything else in the argv counts."""
    argv = list(argv)
    if "--model_args" in argv:
        i = argv.index("--model_args") + 1
        model_args = json.loads(argv[i])
        model_args.pop("base_url", None)
        argv[i] = json.dumps(model_args, sort_keys=True)
    try:
        harness = metadata.version("lm-eval")
    except metadata.PackageNotFoundError:
        harness = "unknown"
    return stable_hash({"argv": argv, "task_files": dict(task_files), "lm_eval": harness})[:16]


@dataclass(frozen=True)
class RunProgress:
    """Where one run's progress is kept: `<cell progress folder>/<run name>/<run key>/`."""

    folder: Path
    """The run's own folder under the cell's progress folder (named by the run's key)."""

    @classmethod
    def of(cls, progress_dir: Path, name: str, key: str) -> RunProgress:
        """The run's progress, keeping nothing of the same run under another identity."""
        own = progress_dir / name
        if own.is_dir():
            for old in own.iterdir():
                if old.name != key:
                    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        return cls(own / key)

    @property
    def marker(self) -> Path:
        return self.folder / "done.json"

    @property
    def cache(self) -> Path:
        """lm-eval's `--use_cache` argument; it appends `_rank<r>.db`."""
        return self.folder / "cache"

    def cached_requests(self) -> int:
        """Responses lm-eval's cache holds for this run (0 when there is none or it cannot be read). Opened for
        writing: a harness killed in a commit leaves a journal that only a writer can roll back (as lm-eval will)."""
        total = 0
        for db in self.folder.glob(f"{self.cache.name}_rank*.db"):
            try:
                with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
                    total += conn.execute(f'SELECT COUNT(*) FROM "{CACHE_TABLE}"').fetchone()[0]
            except sqlite3.Error:
                continue
        return total

    def is_done(self, run_dir: Path) -> bool:
        """The run finished under this identity and its outputs are still exactly what was checked then."""
        try:
            files = json.loads(self.marker.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not files:
            return False
        for rel, want in files.items():
            path = run_dir / rel
            if not path.is_file() or path.stat().st_size != want["bytes"] or sha256_file(path) != want["sha256"]:
                log.warning("    run output %s changed since its run finished: the run starts over", path)
                return False
        return True

    def mark_done(self, run_dir: Path) -> bool:
        """Record a finished run whose outputs read back complete; False (and nothing recorded) when they do not,
        so the next attempt runs it again and `score` reports what is wrong."""
        from evalkit.benchmarks.lm_eval.parse import RunFiles, read_run_outputs

        try:
            read_run_outputs(RunFiles(run_dir))
        except BenchmarkError as err:
            log.warning("    run %s finished but its outputs do not read back: %s", run_dir.name, err.message)
            return False
        output = run_dir / "output"
        files: dict[str, Any] = {
            str(p.relative_to(run_dir)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(output.rglob("*"))
            if p.is_file()
        }
        write_text_atomic(self.marker, json.dumps({"files": files}, indent=1) + "\n")
        return True

    def to_json(self) -> dict[str, Any]:
        return {"folder": str(self.folder)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunProgress:
        return cls(Path(d["folder"]))
