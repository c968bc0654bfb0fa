"""A results folder shared by a group (README, "Shared results folders"): two ordinary users of one group, each with
the usual umask 022, commit to one store, the second re-committing the first one's cell. Before, the first user's
lock files (0644) and folders (0755) made the second one's commit fail with a bare PermissionError."""

from __future__ import annotations

import grp
import json
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from users import as_user, ordinary_user

from evalkit.core.cell import Cell
from evalkit.core.enums import CellState
from evalkit.results.store import ResultsStore

GROUP = "evalkit-share"
USERS = ("evalkit-sbx", "evalkit-sbx2")

COMMIT = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime, timezone
    from pathlib import Path
    from evalkit.core.cell import Cell
    from evalkit.core.records import SampleRecord, TaskScore
    from evalkit.results.store import Provenance, ResultsStore, RunInfo, new_run_id
    root, who = Path(sys.argv[1]), sys.argv[2]
    store = ResultsStore.open_for_writing(root)
    for bench in sys.argv[3:]:
        now = datetime.now(timezone.utc)
        run = RunInfo(new_run_id(), now, now, who, Provenance("0", "0", "0", "0", "/c", "h"))
        scores = [TaskScore("t", "acc", 50.0, None, 2, is_primary=True)]
        samples = [SampleRecord("t", i, "h", "a", who, {"acc": 1.0}) for i in range(2)]
        store.commit_cell(Cell("m", "bf16", bench, "s", "hub:x", "f" * 64), run, scores, samples)
    print(json.dumps({"read": len(ResultsStore(root).read_samples())}))
    """
)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder as a group shares it: owned by the group, setgid, group-writable (what the README says to do)."""
    for user in USERS:
        ordinary_user(user, GROUP)
    top = Path(tempfile.mkdtemp(prefix="evalkit-shared-", dir="/tmp"))
    top.chmod(0o755)
    results = top / "results"
    results.mkdir()
    shutil.chown(results, group=GROUP)
    results.chmod(0o2775)
    yield results
    shutil.rmtree(top, ignore_errors=True)


def commit_as(user: str, results: Path, *benchmarks: str) -> subprocess.CompletedProcess[str]:
    # the usual umask: files 0644 and folders 0755 unless evalkit shares them
    script = f'umask 022; exec {sys.executable} -c "$0" "$@"'
    return as_user(user, "sh", "-c", script, COMMIT, str(results), user, *benchmarks, cwd=Path("/"))


def test_two_users_of_one_group_commit_to_one_store(shared_folder: Path) -> None:
    first = commit_as(USERS[0], shared_folder, "a", "b")
    assert first.returncode == 0, first.stderr[-3000:]
    second = commit_as(USERS[1], shared_folder, "a", "c")  # re-commits the first user's cell a
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(second.stdout)["read"] == 6

    samples = ResultsStore(shared_folder).read_samples()
    assert samples.groupby("benchmark")["response"].agg(set).to_dict() == {
        "a": {USERS[1]},
        "b": {USERS[0]},
        "c": {USERS[1]},
    }
    store = ResultsStore(shared_folder)
    assert store.cell_record(Cell("m", "bf16", "a", "s", "hub:x", "f" * 64)).state is CellState.DONE
    # what evalkit created is the group's: folders setgid and group-writable, lock files group-writable
    group = grp.getgrnam(GROUP).gr_gid
    for path in shared_folder.rglob("*"):
        st = path.stat()
        assert st.st_gid == group, path
        if path.is_dir():
            assert st.st_mode & (stat.S_ISGID | stat.S_IWGRP) == stat.S_ISGID | stat.S_IWGRP, path
        elif path.suffix in (".commit", ".run"):
            assert st.st_mode & stat.S_IWGRP, path
