"""The hostile-sample suite again, as an ordinary user: cluster jobs are not root, and the sandbox must hold there.

CI runs as root, so a fixture creates the user (`evalkit-sbx`, idempotent) and runs the hostile suite
(test_sandbox_hostile.py beside this file) as that user with the project's venv. Run by an ordinary user already, the
hostile suite itself is the non-root run and this module skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import evalkit
from evalkit.benchmarks.humaneval.sandbox import SandboxError, _setup_error

pytestmark = pytest.mark.sandbox

USER = "evalkit-sbx"
PROJECT_DIR = Path(evalkit.__file__).resolve().parents[1]
HOSTILE = "tests/unit/benchmarks/humaneval/test_sandbox_hostile.py"


def as_user(*argv: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # runuser rather than su/sudo: it never asks for a password and keeps no terminal; `env -i` so that nothing of
    # root's environment reaches the user's process.
    env_args = [f"{k}={v}" for k, v in env.items()]
    cmd = ["runuser", "-u", USER, "--", "env", "-i", *env_args, *argv]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ordinary_user() -> str:
    """The unprivileged account the suite runs as; created here when missing (CI containers start with root only)."""
    if os.geteuid() != 0:
        pytest.skip("already an ordinary user: test_sandbox_hostile.py itself is the non-root run")
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        # --system: no aging, no mail spool; no home: HOME is a temporary folder of the run
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
    return USER


@pytest.fixture(scope="module")
def readable_project(ordinary_user: str) -> Iterator[Path]:
    """The project as the user can read it: the checkout itself when it can (paths under root's home cannot),
    else a copy of what the suite needs in a world-readable temporary folder."""
    probe = as_user("test", "-r", str(PROJECT_DIR / HOSTILE), cwd=Path("/"), env={"PATH": "/usr/bin:/bin"})
    if probe.returncode == 0:
        yield PROJECT_DIR
        return
    copy = Path(tempfile.mkdtemp(prefix="evalkit-sbx-project-", dir="/tmp"))
    try:
        shutil.copytree(PROJECT_DIR / "evalkit", copy / "evalkit", ignore=shutil.ignore_patterns("__pycache__"))
        (copy / "tests" / "unit").mkdir(parents=True)
        shutil.copy(PROJECT_DIR / HOSTILE, copy / HOSTILE)
        shutil.copy(PROJECT_DIR / "pyproject.toml", copy / "pyproject.toml")
        subprocess.run(["chmod", "-R", "a+rX", str(copy)], check=True)
        yield copy
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_hostile_samples_are_contained_for_an_ordinary_user(ordinary_user: str, readable_project: Path) -> None:
    python = str(PROJECT_DIR / ".venv" / "bin" / "python")
    if not Path(python).exists():
        python = sys.executable
    scratch = Path(tempfile.mkdtemp(prefix="evalkit-sbx-home-", dir="/tmp"))
    try:
        shutil.chown(scratch, user=ordinary_user)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(scratch),
            "TMPDIR": str(scratch),  # pytest's tmp_path lives here
            "PYTHONPATH": str(readable_project),  # this checkout's evalkit before the venv's editable install
            "LANG": "C.UTF-8",
        }
        usable = as_user(python, "-c", "import evalkit, pytest; print(evalkit.__file__)", cwd=scratch, env=env)
        assert usable.returncode == 0, (
            f"the project venv is not usable by {ordinary_user}: {usable.stderr.strip()[-500:]}\n"
            "build it from an interpreter every user can run: `make install PYTHON=/usr/bin/python3`"
        )
        assert usable.stdout.strip().startswith(str(readable_project)), usable.stdout
        run = as_user(
            python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", HOSTILE, cwd=readable_project, env=env
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # A suite that skipped (no sandbox for this user) would exit 0 too: every test must have run and passed.
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", HOSTILE],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    expected = sum("::" in line for line in collected.stdout.splitlines())  # parametrized cases counted one by one
    assert expected > 0, collected.stdout[-2000:]
    assert summary.startswith(f"{expected} passed") and "skipped" not in summary, run.stdout[-3000:]


def test_a_node_without_user_namespaces_is_named_with_the_setting_and_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel setting cannot be changed in a test: its /proc file is replaced by one that reads as disabled.
    switch = tmp_path / "max_user_namespaces"
    switch.write_text("0\n")
    monkeypatch.setattr(
        "evalkit.benchmarks.humaneval.sandbox._USERNS_SWITCHES", ((str(switch), "0", "user.max_user_namespaces"),)
    )
    err = _setup_error("the code sandbox could not be set up", "bwrap: No permissions to create new namespace")
    assert isinstance(err, SandboxError)
    assert "user.max_user_namespaces = 0" in err.message
    assert "evalkit score" in err.message and "split_scoring=true" in err.message
    assert "No permissions to create new namespace" in err.message


def test_root_refuses_an_interpreter_other_users_cannot_run() -> None:
    # Root's sandbox runs the interpreter as a fresh uid: one under a 0700 folder (pyenv in root's home) cannot start.
    if os.geteuid() != 0:
        pytest.skip("root only: an ordinary user's sandbox runs as that user")
    private = Path(tempfile.mkdtemp(prefix="evalkit-private-", dir="/tmp"))  # mode 0700, under a world-open /tmp
    try:
        python = private / Path(os.path.realpath(sys.executable)).name
        shutil.copy(os.path.realpath(sys.executable), python)
        code = (
            "from evalkit.benchmarks.humaneval.sandbox import Sandbox\n"
            "try:\n    Sandbox()\nexcept Exception as exc:\n    print(exc)\n"
        )
        env = {"PYTHONPATH": str(PROJECT_DIR), "PATH": os.environ["PATH"]}
        out = subprocess.run([str(python), "-c", code], env=env, capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(private)
    assert f"other users cannot enter {private}\n" in out.stdout, out.stdout + out.stderr
    assert "PYTHON=/usr/bin/python3" in out.stdout
