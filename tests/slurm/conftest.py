"""A real one-node Slurm for the tests marked `slurm`: started once per session, stopped only if we started it.

If $SLURM_CONF already names a cluster that answers, the tests use it and leave it alone. Otherwise
scripts/slurm/start.sh installs (apt, first time only) and starts munged, MariaDB, slurmdbd, slurmctld and slurmd
with all their state under $EVALKIT_SLURM_DIR (default /tmp/evalkit-slurm, as for start.sh, so a cluster started
by hand there is reused), and at the end of the session the daemons this session started, and only those, stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from vllm_cache import shared_vllm_cache  # noqa: F401  (autouse: one vLLM cache per session)

ROOT = Path(__file__).parents[2]
SCRIPTS = ROOT / "scripts" / "slurm"
# start order; stopped in reverse
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")
START_TIMEOUT_S = 900  # the first start installs packages


@dataclass(frozen=True)
class Cluster:
    """The cluster the tests talk to; its client environment is already exported to this process."""

    base: Path | None
    """State directory of a cluster this session manages (None: a cluster found running)."""
    conf: Path


def _running_pids(base: Path) -> dict[str, int]:
    """Daemons of `base` that run now, by the pid files start.sh keeps (checked against /proc/PID/comm)."""
    found = {}
    for name in DAEMONS:
        try:
            pid = int((base / "pids" / f"{name}.pid").read_text())
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                found[name] = pid
        except (OSError, ValueError):
            continue
    return found


def _answers(conf: str) -> bool:
    if shutil.which("sinfo") is None:
        return False
    env = {**os.environ, "SLURM_CONF": conf}
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mixed", "allocated"))


def _stop_only(base: Path, pids: dict[str, int]) -> None:
    """SIGTERM the given daemons (still the same processes) in reverse start order, without touching the others."""
    for name in reversed(DAEMONS):
        pid = pids.get(name)
        if pid is None or _running_pids(base).get(name) != pid:
            continue
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    existing = os.environ.get("SLURM_CONF")
    if existing and _answers(existing):
        yield Cluster(base=None, conf=Path(existing))
        return
    if os.geteuid() != 0:
        pytest.skip("the local Slurm needs root (it installs packages and starts munged/slurmd)")
    base = Path(os.environ.get("EVALKIT_SLURM_DIR", "/tmp/evalkit-slurm"))
    env = {**os.environ, "EVALKIT_SLURM_DIR": str(base)}
    before = _running_pids(base)
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "start.sh")], env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S
    )
    started = {k: v for k, v in _running_pids(base).items() if before.get(k) != v}
    if (base / "log").is_dir():
        (base / "log" / "start.log").write_text(proc.stderr)
    if proc.returncode != 0:
        _stop_only(base, started)
        pytest.fail(
            f"scripts/slurm/start.sh failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}\n"
            f"logs: {base}/log; rerun by hand: EVALKIT_SLURM_DIR={base} bash {SCRIPTS}/start.sh"
        )
    print(f"\nlocal Slurm ready after {time.monotonic() - t0:.1f}s (started: {', '.join(started) or 'none'})")
    conf = base / "etc" / "slurm.conf"
    with pytest.MonkeyPatch.context() as mp:
        # submitit calls sbatch/sacct/scontrol by name; jobs inherit this PATH (the scontrol requeue wrapper)
        mp.setenv("SLURM_CONF", str(conf))
        mp.setenv("PATH", f"{base / 'bin'}{os.pathsep}{os.environ['PATH']}")
        yield Cluster(base=base, conf=conf)
    if not before:
        # every daemon of `base` is ours: stop.sh cancels the jobs, stops them all, reports stray job steps
        subprocess.run(["bash", str(SCRIPTS / "stop.sh")], env=env, capture_output=True, timeout=120, check=False)
        return
    if "slurmctld" in started:
        # our controller, so its jobs are this session's: no job process may outlive it
        ids = subprocess.run(
            ["squeue", "-h", "-o", "%A"],
            env={**env, "SLURM_CONF": str(conf)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(["scancel", *ids], env={**env, "SLURM_CONF": str(conf)}, timeout=60, check=False)
    _stop_only(base, started)
