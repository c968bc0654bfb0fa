"""Run a suite's lm-eval runs one after another in one Python process.

Why: each `lm-eval run` process spends ~10 s starting (imports, task indexing, tokenizer load) while the served
model waits idle; a leaderboard suite is 6-7 runs. Here lm-eval starts once per suite. Each run is still lm-eval's
own command line (`HarnessCLI` parsing the exact argv its `command.sh` holds for a rerun by hand), so a run's settings,
outputs and results are those of the separate command; only the process is shared.

    python -m evalkit.benchmarks.lm_eval.runner BATCH.json

BATCH.json: {"runs": [{"name", "argv" (the full `python -m lm_eval run ...` argv), "dir", "log", "status",
"progress" (optional)}]}. For each run, in order: the process's stdout and stderr (file descriptors 1 and 2, so tqdm,
logging and native code alike) go to the run's log, the working directory is the run's folder, and when the run ends
its `status` file gets {"exit": 0 or 1, "seconds": wall time}, and a run that ended well is recorded as done in its
`progress` (`progress.RunProgress`) at once, so a job killed in a later run of the batch keeps it. The first failing
run ends the batch (exit code 1), its traceback at the end of its own log; runs after it get no status.

lm-eval re-reads its ~15k task YAML files for every run (`TaskIndex.build`, 6-9 s here, most of a small run's time);
within a batch the files do not change, so each folder's index is built once and every run gets a fresh copy
(`_reuse_task_index`).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.benchmarks.lm_eval.progress import RunProgress

LM_EVAL_PREFIX = ("-m", "lm_eval")
"""A run's argv is `<python> -m lm_eval run ...`; the runner executes what follows the prefix in-process."""


@dataclass(frozen=True)
class BatchRun:
    """One run of a batch, as the adapter writes it and the runner reads it."""

    name: str
    argv: list[str]
    dir: Path
    log: Path
    status: Path
    progress: RunProgress | None = None
    """Where the run is recorded as done once it ends well (None: nothing is kept for a later attempt)."""

    def to_json(self) -> dict[str, Any]:
        paths = {"dir": str(self.dir), "log": str(self.log), "status": str(self.status)}
        progress = {"progress": self.progress.to_json()} if self.progress is not None else {}
        return {"name": self.name, "argv": self.argv, **paths, **progress}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BatchRun:
        progress = RunProgress.from_json(d["progress"]) if d.get("progress") else None
        paths = Path(d["dir"]), Path(d["log"]), Path(d["status"])
        return cls(str(d["name"]), [str(a) for a in d["argv"]], *paths, progress)


@dataclass(frozen=True)
class RunStatus:
    exit: int
    seconds: float


def write_batch(path: Path, runs: list[BatchRun]) -> None:
    path.write_text(json.dumps({"runs": [r.to_json() for r in runs]}, indent=1) + "\n", encoding="utf-8")


def read_status(run: BatchRun) -> RunStatus | None:
    """A finished run's status; None when the run did not finish (not reached, or the process died in it)."""
    try:
        d = json.loads(run.status.read_text(encoding="utf-8"))
        return RunStatus(int(d["exit"]), float(d["seconds"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lm_eval_args(argv: list[str]) -> list[str]:
    """The lm-eval arguments of a rendered run argv (what follows `<python> -m lm_eval`)."""
    if tuple(argv[1:3]) != LM_EVAL_PREFIX:
        raise ValueError(f"not an lm-eval command: {argv[:4]}")
    return argv[3:]


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Point fds 1 and 2 at `log` for the duration; the batch's own output comes back afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def _reuse_task_index() -> None:
    """Build each task folder's index once per process: lm-eval's `TaskIndex.build` merges per-folder indexes (later
    folders override earlier ones), so caching per folder and merging the same way gives the index it would build.
    Each run gets an unpickled copy: entries are mutable. Private lm-eval API (pinned version): where it is not
    there, runs index as lm-eval does."""
    try:
        from lm_eval.tasks._index import TaskIndex
    except ImportError:
        return
    original = TaskIndex.build
    per_folder: dict[tuple[str, bool], bytes] = {}

    def build(paths: Any, *, resolve_includes: bool = True) -> dict[str, Any]:
        index: dict[str, Any] = {}
        for root in paths:
            key = (str(Path(root).resolve()), resolve_includes)
            if key not in per_folder:
                per_folder[key] = pickle.dumps(original([root], resolve_includes=resolve_includes))
            index.update(pickle.loads(per_folder[key]))
        return index

    TaskIndex.build = staticmethod(build)
    logging.getLogger(__name__).debug("task index reused across runs")


def run_one(run: BatchRun) -> int:
    """Execute one run with lm-eval's CLI in this process; 0 on success."""
    from lm_eval._cli import HarnessCLI

    parser = HarnessCLI()
    with _output_to(run.log):
        os.chdir(run.dir)
        try:
            args = parser._parser.parse_args(lm_eval_args(run.argv))
            parser.execute(args)
            return 0
        except SystemExit as exc:  # argparse and lm-eval's own checks exit
            code = exc.code if isinstance(exc.code, int) else 1
            if code:
                traceback.print_exc()
            return code
        except Exception:
            traceback.print_exc()
            return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m evalkit.benchmarks.lm_eval.runner BATCH.json", file=sys.stderr)
        return 2
    runs = [BatchRun.from_json(r) for r in json.loads(Path(args[0]).read_text(encoding="utf-8"))["runs"]]
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    t_import = time.monotonic()
    from lm_eval.utils import setup_logging

    setup_logging()
    _reuse_task_index()
    print(f"lm-eval imported in {time.monotonic() - t_import:.1f} s; {len(runs)} run(s)", flush=True)
    for i, run in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {run.name}: log {run.log}", flush=True)
        t0 = time.monotonic()
        code = run_one(run)
        seconds = time.monotonic() - t0
        run.status.write_text(json.dumps({"exit": code, "seconds": round(seconds, 3)}) + "\n", encoding="utf-8")
        print(f"[{i}/{len(runs)}] {run.name}: exit {code} in {seconds:.1f} s", flush=True)
        if code == 0 and run.progress is not None and run.progress.mark_done(run.dir):
            print(f"[{i}/{len(runs)}] {run.name}: recorded as done in {run.progress.marker}", flush=True)
        if code:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
