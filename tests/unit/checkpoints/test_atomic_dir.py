"""All-or-nothing cache directories: rename on success, nothing under the final name on failure, cleanup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.checkpoints.atomic import atomic_dir, clear_incomplete, entry_lock, sweep_dead_temps, temp_dirs


def test_success_renames_into_place(tmp_path: Path) -> None:
    final = tmp_path / "cache" / "entry"
    with atomic_dir(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".tmp-entry.")
        (tmp / "weights").write_text("w")
        assert not final.exists()
    assert (final / "weights").read_text() == "w"
    assert temp_dirs(final) == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_leaves_nothing(tmp_path: Path, exc: BaseException) -> None:
    final = tmp_path / "entry"
    with pytest.raises(type(exc)), atomic_dir(final) as tmp:
        (tmp / "half").write_text("x")
        raise exc
    assert not final.exists() and temp_dirs(final) == []


def test_clear_incomplete_removes_dead_producers_temps_and_manifestless_entries(tmp_path: Path) -> None:
    final = tmp_path / "entry"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_tmp = tmp_path / f".tmp-entry.{dead.stdout.strip()}.abcd1234"
    dead_tmp.mkdir()
    live_tmp = tmp_path / ".tmp-entry.1.abcd1234"  # pid 1 is alive: its producer may still be writing
    live_tmp.mkdir()
    final.mkdir()  # an entry someone emptied of its manifest by hand
    assert sorted(clear_incomplete(final)) == sorted([final, dead_tmp])
    assert live_tmp.exists() and not final.exists()


def test_lock_can_be_taken_again_after_release(tmp_path: Path) -> None:
    final = tmp_path / "entry"
    with entry_lock(final):
        pass
    with entry_lock(final):
        assert (tmp_path / ".locks" / "entry.lock").exists()


def test_sweep_removes_dead_temps_of_any_entry(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old_recipe_tmp = tmp_path / f".tmp-model--w8a8--0123456789abcdef.{dead.stdout.strip()}.abcd1234"
    old_recipe_tmp.mkdir()
    live = tmp_path / ".tmp-model--w4a16--fedcba9876543210.1.abcd1234"
    live.mkdir()
    keep = tmp_path / "model--fp8_dynamic--0000000000000000"
    keep.mkdir()
    assert sweep_dead_temps(tmp_path) == [old_recipe_tmp]
    assert live.exists() and keep.exists()
    assert sweep_dead_temps(tmp_path / "missing") == []
