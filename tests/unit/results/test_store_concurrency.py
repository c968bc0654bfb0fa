"""The results store and the job's cell claims under real concurrent processes (no mocks, no monkeypatching).

Writers commit distinct cells while other processes open the store for writing (which recovers) and read it, as
`evalkit status`, planning and job starts do; recovery must leave live writers' staging files alone. The run lock
(`ResultsStore.claim`, used by `evalkit.pipeline.job.claim_cells`) lets exactly one of several racing processes run a
cell.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import evalkit
from evalkit.core.cell import Cell
from evalkit.core.enums import CellState
from evalkit.core.errors import StoreError
from evalkit.core.records import SampleRecord, TaskScore
from evalkit.pipeline.job import JobSummary, claim_cells
from evalkit.results.store import PENDING, Provenance, ResultsStore, RunInfo, new_run_id
from evalkit.util import locks

# the children import the evalkit under test (this worktree), whatever the venv's editable install points at
ENV = {"PYTHONPATH": str(Path(evalkit.__file__).resolve().parent.parent)}

WRITERS, CELLS_PER_WRITER, READERS = 8, 50, 3
N_SCORES, N_SAMPLES = 3, 8

COMMON = f"N_SCORES, N_SAMPLES = {N_SCORES}, {N_SAMPLES}\n" + textwrap.dedent(
    """
    import json, os, sys, time, traceback
    from datetime import datetime, timezone
    from pathlib import Path
    from evalkit.core.cell import Cell
    from evalkit.core.records import SampleRecord, TaskScore
    from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id
    root = Path(sys.argv[1])
    prov = Provenance("0", "0", "0", "0", "/c", "h")
    def cell(fmt, bench):
        return Cell("m", fmt, bench, "s", "hub:x", "f" * 64)
    def report(result):
        # The child's last line, then out without the interpreter's teardown: pyarrow's reader threads can hit
        # std::terminate there, after all work is done ("terminate called without an active exception", exit -6;
        # apache/arrow#34314, open), which once failed this test on a fresh clone with nothing wrong in the store.
        print(json.dumps(result), flush=True)
        sys.stderr.flush()
        os._exit(0)
    def commit(store, c, tag):
        now = datetime.now(timezone.utc)
        scores = [TaskScore(f"t{j}", "acc", float(j), None, 1, is_primary=True) for j in range(N_SCORES)]
        samples = [SampleRecord("t0", j, "h", "a", "b", {"acc": 1.0}) for j in range(N_SAMPLES)]
        store.commit_cell(c, RunInfo(new_run_id(), now, now, tag, prov), scores, samples)
    """
)

WRITER = COMMON + textwrap.dedent(
    """
    w, n = int(sys.argv[2]), int(sys.argv[3])
    ok, errors, store = 0, [], None
    for j in range(n):
        try:
            store = store or ResultsStore.open_for_writing(root)  # inside: an exception here is counted too
            commit(store, cell(f"w{w}", f"b{j}"), f"writer{w}")
            ok += 1
        except Exception:
            errors.append(traceback.format_exc(limit=3))
    report({"ok": ok, "errors": errors})
    """
)

READER = COMMON + textwrap.dedent(
    """
    stop = Path(sys.argv[2])
    loops, errors = 0, []
    print("ready", flush=True)
    while not stop.exists():
        try:
            ResultsStore.open_for_writing(root)  # what a job start does: folders, then recovery
            reader = ResultsStore(root)          # what status / planning / aggregate do
            reader.read_scores()
            reader.read_samples()
            reader.cell_record(cell("w0", "b0"))
            loops += 1
        except Exception:
            errors.append(traceback.format_exc(limit=3))
    report({"loops": loops, "errors": errors})
    """
)


def _spawn(script: str, *args: object, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=stdin,
        text=True,
        env=ENV,
    )


def _report(p: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    """The JSON line a child printed last; its stderr in the failure message when it died instead."""
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0 and out.strip(), f"child exited {p.returncode}:\n{err[-3000:]}"
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def run_scenario(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """8 writers x 50 distinct cells while 3 processes open (recover) and read the store in a loop; returns what
    each writer and each reader reported."""
    stop = root.parent / f"{root.name}.stop"
    readers = [_spawn(READER, root, stop) for _ in range(READERS)]
    writers: list[subprocess.Popen[str]] = []
    try:
        for r in readers:  # the readers are looping before the first commit starts
            assert r.stdout is not None and r.stdout.readline().strip() == "ready"
        writers = [_spawn(WRITER, root, w, CELLS_PER_WRITER) for w in range(WRITERS)]
        wrote = [_report(p) for p in writers]
        stop.touch()
        return wrote, [_report(p) for p in readers]
    finally:  # never leave a child looping behind a failed assertion
        stop.touch()
        for p in readers + writers:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_concurrent_writers_and_openers_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "results"
    wrote, read = run_scenario(root)
    assert [w["errors"] for w in wrote] == [[]] * WRITERS
    assert [r["errors"] for r in read] == [[]] * READERS
    assert sum(w["ok"] for w in wrote) == WRITERS * CELLS_PER_WRITER
    assert all(r["loops"] > 0 for r in read)

    store = ResultsStore(root)
    sc, smp = store.read_scores(), store.read_samples()
    keys = {(f"w{w}", f"b{j}") for w in range(WRITERS) for j in range(CELLS_PER_WRITER)}
    # every cell present once: one run, whole (all its score rows, all its samples, of that same run)
    assert len(sc) == len(keys) * N_SCORES and len(smp) == len(keys) * N_SAMPLES
    runs = sc.groupby(["format", "benchmark"])["run_id"].agg(["nunique", "first", "size"])
    assert set(runs.index) == keys
    assert (runs["nunique"] == 1).all() and (runs["size"] == N_SCORES).all()
    sample_runs = smp.groupby(["format", "benchmark"])["run_id"].agg(["nunique", "first", "size"])
    assert set(sample_runs.index) == keys
    assert (sample_runs["size"] == N_SAMPLES).all() and (sample_runs["nunique"] == 1).all()
    assert (sample_runs["first"] == runs.loc[sample_runs.index, "first"]).all()
    assert all(store.cell_record(Cell("m", f, b, "s", "hub:x", "f" * 64)).state is CellState.DONE for f, b in keys)
    # nothing left staged, and the lock files are not part of either table
    assert not list((root / "scores" / PENDING).iterdir()) and not list((root / "samples" / PENDING).iterdir())
    assert len(list((root / "scores").glob("*.parquet"))) == len(keys)
    assert list((root / ".locks").iterdir())


SAME_CELL = COMMON + textwrap.dedent(
    """
    store = ResultsStore.open_for_writing(root)
    for _ in range(int(sys.argv[2])):
        commit(store, cell("bf16", "same"), "w")
    print(json.dumps({"ok": True}))
    """
)


def test_writers_of_one_cell_take_turns(tmp_path: Path) -> None:
    """Four processes re-commit the same cell: whenever no commit holds the cell's commit lock, its scores and
    samples are of the same run (two interleaved commits would leave one run's scores with another's samples)."""
    root = tmp_path / "results"
    ResultsStore.open_for_writing(root)
    key = Cell("m", "bf16", "same", "s", "hub:x", "f" * 64).key
    writers = [_spawn(SAME_CELL, root, 25) for _ in range(4)]
    checks = 0
    while any(p.poll() is None for p in writers) or checks == 0:
        with locks.exclusive(root / ".locks" / f"{key}.commit"):
            files = [root / d / f"{key}.parquet" for d in ("scores", "samples")]
            if all(f.exists() for f in files):
                runs = [set(pq.read_table(f, columns=["run_id"]).column("run_id").to_pylist()) for f in files]
                assert runs[0] == runs[1] and len(runs[0]) == 1
                checks += 1
        time.sleep(0.005)
    assert [_report(p) for p in writers] == [{"ok": True}] * 4
    assert checks > 0


def test_reading_a_missing_results_folder_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "mistyped" / "results"
    store = ResultsStore(root)
    assert store.read_scores().empty and store.read_samples().empty
    assert store.cell_record(Cell("m", "bf16", "b", "s", "hub:x", "f" * 64)).state is CellState.MISSING
    assert not (tmp_path / "mistyped").exists()


def test_reading_store_refuses_to_write(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    run = RunInfo(new_run_id(), now, now, "log", Provenance("0", "0", "0", "0", "/c", "h"))
    c = Cell("m", "bf16", "b", "s", "hub:x", "f" * 64)
    store = ResultsStore(tmp_path / "results")
    with pytest.raises(StoreError, match=r"read-only(.|\n)*open_for_writing"):
        store.commit_cell(c, run, [TaskScore("t", "acc", 1.0, None, 1, is_primary=True)], [])
    with pytest.raises(StoreError, match="read-only"):
        store.record_failure(c, run, "boom")
    with pytest.raises(StoreError, match="read-only"), store.claim(c):
        pass
    assert not (tmp_path / "results").exists()


HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from evalkit.util import locks
    with locks.exclusive(Path(sys.argv[1])):
        print("held", flush=True)
        sys.stdin.readline()
    """
)


def test_recovery_skips_keys_a_live_writer_holds(tmp_path: Path) -> None:
    """Staging files of a key whose commit lock another process holds survive recovery; once that process is gone
    (here: killed with SIGKILL, as a crashed writer would be), the next opening removes them."""
    root = tmp_path / "results"
    store = ResultsStore.open_for_writing(root)
    key = Cell("m", "bf16", "b", "s", "hub:x", "f" * 64).key
    staged = [root / d / PENDING / f"{key}__{new_run_id()}.parquet" for d in ("scores", "samples")]
    for f in staged:
        f.write_bytes(b"half a commit")
    with _spawn(HOLD_LOCK, root / ".locks" / f"{key}.commit", stdin=subprocess.PIPE) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        ResultsStore.open_for_writing(root)
        assert all(f.exists() for f in staged)
        holder.send_signal(signal.SIGKILL)
    # leaving `with` waited for the holder and closed its pipes (a ResourceWarning, an error under pytest's filter)
    ResultsStore.open_for_writing(root)
    assert not any(f.exists() for f in staged)
    assert store.read_scores().empty


CLAIMER = COMMON + textwrap.dedent(
    """
    store = ResultsStore.open_for_writing(root)
    with store.claim(cell("bf16", "b")) as mine:
        print("claimed" if mine else "busy", flush=True)
        if mine:
            sys.stdin.readline()  # hold the claim until the test says
    """
)


def test_claim_exactly_one_of_racing_processes(tmp_path: Path) -> None:
    root = tmp_path / "results"
    ResultsStore.open_for_writing(root)
    racers = [_spawn(CLAIMER, root, stdin=subprocess.PIPE) for _ in range(4)]
    answers = []
    for p in racers:
        assert p.stdout is not None
        answers.append(p.stdout.readline().strip())
    assert sorted(answers) == ["busy", "busy", "busy", "claimed"]
    holder = racers[answers.index("claimed")]
    assert _claim_once(root) == "busy"
    holder.send_signal(signal.SIGKILL)  # a job killed mid-cell: the kernel releases its claim
    for p in racers:
        p.communicate(timeout=30)
    assert _claim_once(root) == "claimed"


def _claim_once(root: Path) -> str:
    p = _spawn(CLAIMER, root, stdin=subprocess.PIPE)
    out, _ = p.communicate("\n", timeout=30)
    return out.strip()


JOB = COMMON + textwrap.dedent(
    """
    import contextlib
    from evalkit.pipeline.job import JobSummary, claim_cells
    me, n = sys.argv[2], int(sys.argv[3])
    store = ResultsStore.open_for_writing(root)
    cells = [cell("bf16", f"b{j}") for j in range(n)]
    planned = {c.key: store.cell_record(c) for c in cells}   # what the job's plan saw
    pending = [c for c in cells if planned[c.key].state.value != "done"]
    print("planned", flush=True)
    sys.stdin.readline()                                       # all jobs start claiming together
    summary = JobSummary(me)
    with contextlib.ExitStack() as held:
        for c in claim_cells(pending, planned, store, held, summary):
            time.sleep(0.01)                                   # "running" the cell
            commit(store, c, me)
            summary.done.append(c.benchmark)
    print(json.dumps({"done": summary.done, "elsewhere": summary.elsewhere, "skipped": summary.skipped}))
    """
)


def test_racing_jobs_run_each_cell_exactly_once(tmp_path: Path) -> None:
    """Three jobs planned on the same 20 missing cells (two sweeps started at once, and a third), released together:
    each cell is committed by exactly one of them; the others report it running elsewhere or done meanwhile."""
    root, n = tmp_path / "results", 20
    ResultsStore.open_for_writing(root)
    jobs = [_spawn(JOB, root, f"job{i}", n, stdin=subprocess.PIPE) for i in range(3)]
    for p in jobs:
        assert p.stdout is not None and p.stdout.readline().strip() == "planned"
    for p in jobs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    reports = [_report(p) for p in jobs]
    done = [b for r in reports for b in r["done"]]
    assert sorted(done) == sorted(f"b{j}" for j in range(n))  # every cell run, none twice
    for r in reports:
        assert sorted(r["done"] + r["elsewhere"] + r["skipped"]) == sorted(f"b{j}" for j in range(n))
    sc = ResultsStore(root).read_scores()
    assert len(sc) == n * N_SCORES and (sc.groupby("benchmark")["run_id"].nunique() == 1).all()
    by_job = sc.groupby("benchmark")["log_path"].first().to_dict()
    assert all(by_job[b] == f"job{i}" for i, r in enumerate(reports) for b in r["done"])


def test_claim_cells_skips_held_and_done_meanwhile_keeps_forced(tmp_path: Path) -> None:
    """In one job: a cell held by another process is left to it, one committed since planning is not re-run, one
    that was already done at planning (a forced re-run) is still claimed, and the claims end with the job."""
    root = tmp_path / "results"
    store = ResultsStore.open_for_writing(root)
    held_c, meanwhile, forced, free = (Cell("m", "bf16", b, "s", "hub:x", "f" * 64) for b in "abcd")
    now = datetime.now(timezone.utc)
    prov = Provenance("0", "0", "0", "0", "/c", "h")

    def commit(c: Cell) -> None:
        scores = [TaskScore("t", "acc", 1.0, None, 1, is_primary=True)]
        samples = [SampleRecord("t", 0, "h", "a", "b", {"acc": 1.0})]
        store.commit_cell(c, RunInfo(new_run_id(), now, now, "log", prov), scores, samples)

    commit(forced)
    planned = {c.key: store.cell_record(c) for c in (held_c, meanwhile, forced, free)}
    commit(meanwhile)  # another process finished it after this job planned
    other = _spawn(HOLD_LOCK, root / ".locks" / f"{held_c.key}.run", stdin=subprocess.PIPE)
    assert other.stdout is not None and other.stdout.readline().strip() == "held"
    summary = JobSummary("m.bf16")
    with contextlib.ExitStack() as held:
        mine = claim_cells([held_c, meanwhile, forced, free], planned, store, held, summary)
        assert mine == [forced, free]
        assert summary.elsewhere == ["a"] and summary.skipped == ["b"]
        with locks.try_exclusive(root / ".locks" / f"{free.key}.run") as got:
            assert not got  # held by this job until it ends
    with locks.try_exclusive(root / ".locks" / f"{free.key}.run") as got:
        assert got
    other.communicate("\n", timeout=30)


def measure(root: Path, pythonpath: str | None, old_api: bool) -> dict[str, int]:
    """The scenario's counts, for comparing store implementations (see the __main__ block)."""
    global WRITER, READER
    if pythonpath:
        ENV["PYTHONPATH"] = pythonpath
    if old_api:  # before open_for_writing, opening the store was `ResultsStore(root)` (which recovered)
        WRITER, READER = (s.replace("ResultsStore.open_for_writing(", "ResultsStore(") for s in (WRITER, READER))
    wrote, read = run_scenario(root)
    reader = _spawn(
        "import sys, json; from evalkit.results.store import ResultsStore; s = ResultsStore(sys.argv[1]);"
        "sc, smp = s.read_scores(), s.read_samples();"
        "runs = sc.groupby(['format', 'benchmark'])['run_id'].first();"
        "got = smp.groupby(['format', 'benchmark'])['run_id'].agg(['first', 'size']);"
        "whole = [k for k, r in runs.items() if k in got.index and got.loc[k, 'first'] == r"
        f" and got.loc[k, 'size'] == {N_SAMPLES}];"
        "print(json.dumps({'cells_in_scores': len(runs), 'cells_whole': len(whole)}))",
        root,
    )
    final = _report(reader)
    return {
        "commits_ok": sum(w["ok"] for w in wrote),
        "writer_exceptions": sum(len(w["errors"]) for w in wrote),
        "reader_exceptions": sum(len(r["errors"]) for r in read),
        **final,
        "cells_in_scores_without_their_samples": final["cells_in_scores"] - final["cells_whole"],
    }


if __name__ == "__main__":
    # python tests/unit/results/test_store_concurrency.py RESULTS_DIR [EVALKIT_PARENT_DIR --old-api]
    # e.g. the store before issue 7: git archive 5d424c5 evalkit | tar -x -C /tmp/old && ... RESULTS /tmp/old --old-api
    print(json.dumps(measure(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None, "--old-api" in sys.argv)))


RECOMMITTER = COMMON + textwrap.dedent(
    """
    store, stop, n = ResultsStore.open_for_writing(root), Path(sys.argv[2]), 0
    while not stop.exists():
        for bench in ("b0", "b1"):
            # run n has 1 + n % 3 scores and 1 + n % 7 samples, so files differ in size and layout from run to run
            now = datetime.now(timezone.utc)
            scores = [TaskScore(f"t{j}", "acc", float(j), None, 1, is_primary=True) for j in range(1 + n % 3)]
            samples = [SampleRecord("t0", j, "h", "a", f"run{n}" * j, {"acc": 1.0}) for j in range(1 + n % 7)]
            store.commit_cell(cell("bf16", bench), RunInfo(new_run_id(), now, now, f"run{n}", prov), scores, samples)
            n += 1
    report({"commits": n})
    """
)

SNAPSHOT_READER = COMMON + textwrap.dedent(
    """
    stop = Path(sys.argv[2])
    reads, errors, mixed = 0, [], 0
    print("ready", flush=True)
    while not stop.exists():
        try:
            reader = ResultsStore(root)  # the real read path: status, planning, aggregate, compare
            for bench in ("b0", "b1"):
                reader.cell_record(cell("bf16", bench))
            whole = [reader.read_scores(), reader.read_samples(), *reader.read_snapshot()]
            runs = [t.groupby("benchmark")["log_path" if "log_path" in t else "run_id"].agg(set) for t in whole]
            for table, by_bench in zip(whole, runs):  # one run per cell per table, with that run's row count
                for bench, ids in by_bench.items():
                    rows = table[table["benchmark"] == bench]
                    n = int(next(iter(ids))[3:]) if "log_path" in table else None
                    if len(ids) != 1 or (n is not None and len(rows) != 1 + n % 3):
                        errors.append(f"torn {bench}: {ids} {len(rows)} rows")
            # the snapshot: each cell's samples are of its scores' run
            scores, samples = whole[2], whole[3]
            by_cell = [t.groupby("benchmark")["run_id"].agg(set).to_dict() for t in (scores, samples)]
            if by_cell[0] != by_cell[1]:
                mixed += 1
            reads += 1
        except Exception:
            errors.append(traceback.format_exc(limit=3))
    report({"reads": reads, "errors": errors[:3], "n_errors": len(errors), "mixed": mixed})
    """
)


def test_reads_never_race_a_commit(tmp_path: Path) -> None:
    """Two processes read the store through its real read path while another process re-commits two cells as fast as
    it can: no read fails (`pq.read_table(path)` opened a file twice, so a commit's rename in between gave ~4% of
    reads 'unreadable ... Couldn't deserialize thrift'), and a snapshot never pairs one run's scores with another
    run's samples."""
    root = tmp_path / "results"
    stop = tmp_path / "stop"
    ResultsStore.open_for_writing(root)
    writer = _spawn(RECOMMITTER, root, stop)
    readers = [_spawn(SNAPSHOT_READER, root, stop) for _ in range(2)]
    try:
        for r in readers:
            assert r.stdout is not None and r.stdout.readline().strip() == "ready"
        time.sleep(12)
        stop.touch()
        wrote, read = _report(writer), [_report(r) for r in readers]
    finally:
        stop.touch()
        for p in [writer, *readers]:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert wrote["commits"] > 100
    assert all(r["reads"] > 20 for r in read), read
    assert [(r["n_errors"], r["errors"]) for r in read] == [(0, [])] * 2
    assert [r["mixed"] for r in read] == [0, 0]
