"""The multi-node bootstrap (evalkit/serve/ray_cluster.sh) with a real Ray head and a real Ray worker.

Both "nodes" are processes on this machine: the worker launcher, which is `srun` on a cluster, is replaced through
EVALKIT_RAY_LAUNCH_WORKERS by a local `ray start --address=<head> --block`. The server is the fake vLLM
(tests/unit/serve/fake_vllm_server.py), run by VLLMServer exactly as a multi-node job runs vLLM; at start-up it asks
the cluster at RAY_ADDRESS how many nodes are alive, which is what vLLM's Ray backend would find. Ray is kept small
for 2 shared cores: one CPU per node, 100 MB object stores, no dashboard, its files under the test's temp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalkit.core.errors import ServerError
from evalkit.serve import ServerConfig, VLLMServer, pick_free_port, port_in_use
from evalkit.serve.ray_cluster import SCRIPT, RayCluster, bootstrap_env

pytestmark = pytest.mark.integration

FAKE_DIR = str(Path(__file__).parents[1] / "unit" / "serve")
RAY = Path(sys.executable).parent / "ray"
SMALL = "--num-cpus=1 --object-store-memory=100000000"
WORKER_DELAY_S = 6
"""The worker joins this long after the head is up: a bootstrap that did not wait would start the server first."""


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """A short temp dir (Ray's socket paths must fit 107 bytes); whatever happens, no Ray process outlives the test."""
    path = Path(tempfile.mkdtemp(prefix="ek-ray-", dir="/tmp"))
    try:
        yield path
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=60)
        shutil.rmtree(path, ignore_errors=True)


def server_cfg(tmp: Path, port: int, launch_workers: str, nodes_file: Path) -> ServerConfig:
    return ServerConfig(
        module="fake_vllm_server",
        device="gpu",  # no KV-cache or compiler checks: the server is the fake
        served_model_name="fake",
        health_poll_s=0.2,
        startup_timeout_s=120.0,
        shutdown_timeout_s=45.0,  # room for the bootstrap's `ray stop` after SIGTERM
        env={
            "PYTHONPATH": FAKE_DIR,
            "FAKE_VLLM_MODE": "serve",
            "FAKE_VLLM_RAY_NODES_FILE": str(nodes_file),
            "EVALKIT_RAY_HEAD_IP": "127.0.0.1",
            "EVALKIT_RAY_HEAD_ARGS": f"{SMALL} --temp-dir={tmp}/ray",
            "EVALKIT_RAY_LAUNCH_WORKERS": launch_workers,
        },
    )


def local_worker(delay_s: int) -> str:
    # the second "node": its own raylet, with the per-node ports Ray would otherwise share with the head's
    return (
        f'sleep {delay_s}; exec "$EVALKIT_RAY_BIN_TEST" start --address="$EVALKIT_RAY_HEAD" --block {SMALL} '
        "--dashboard-agent-listen-port=0 --metrics-export-port=0 --disable-usage-stats"
    )


def test_server_starts_only_once_both_nodes_joined(ray_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_RAY_BIN_TEST", str(RAY))
    port, nodes_file = pick_free_port(), ray_tmp / "nodes.json"
    cluster = RayCluster(nodes=2, gpus=0, worker_log=ray_tmp / "ray-workers.log", port=port, timeout_s=90)
    cfg = server_cfg(ray_tmp, port, local_worker(WORKER_DELAY_S), nodes_file)
    server = VLLMServer(cfg, ray_tmp, log_path=ray_tmp / "server.log", pipeline_parallel_size=2, ray_cluster=cluster)
    with server:
        # the head's GCS is up while the server runs; the server found both nodes when it started
        assert port_in_use("127.0.0.1", port)
        seen = json.loads(nodes_file.read_text())
        assert seen["alive_nodes"] == 2
        assert seen["argv"][seen["argv"].index("--pipeline-parallel-size") + 1] == "2"
        assert seen["argv"][seen["argv"].index("--distributed-executor-backend") + 1] == "ray"
        assert server.command[:2] == ["bash", str(SCRIPT)]
    log = (ray_tmp / "server.log").read_text()
    assert log.index("cluster ready") < log.index("fake vLLM: mode=serve"), log
    assert "2 of 2 node(s)" in log and "Ray cluster stopped" in log
    # stopping the server stopped the Ray cluster: the head's port is closed again
    deadline = time.monotonic() + 15
    while port_in_use("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not port_in_use("127.0.0.1", port)


def test_worker_that_never_joins_fails_with_its_log_named(ray_tmp: Path) -> None:
    port, nodes_file = pick_free_port(), ray_tmp / "nodes.json"
    worker_log = ray_tmp / "ray-workers.log"
    cluster = RayCluster(nodes=2, gpus=0, worker_log=worker_log, port=port, timeout_s=5)
    # a launcher that stays up but whose worker never joins (an unreachable head port looks the same)
    cfg = server_cfg(ray_tmp, port, "echo 'srun: waiting for resources'; sleep 600", nodes_file)
    t0 = time.monotonic()
    with pytest.raises(ServerError) as err:
        VLLMServer(cfg, ray_tmp, log_path=ray_tmp / "server.log", ray_cluster=cluster).start()
    elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert "Ray cluster incomplete, not complete after 5 s: 1 of 2 node(s)" in msg
    assert f"workers' log: {worker_log}" in msg and "srun: waiting for resources" in worker_log.read_text()
    assert not nodes_file.exists() and "fake vLLM" not in (ray_tmp / "server.log").read_text()  # never started
    # the bootstrap's own 5 s gave up, not the server's start-up timeout (the head's start-up and `ray stop` take
    # 10-60 s on 2 shared cores, depending on the load)
    assert elapsed < cfg.startup_timeout_s, elapsed


def test_default_launcher_is_srun_on_the_other_nodes(ray_tmp: Path) -> None:
    """The srun line a real job runs (no Slurm here: an `srun` on PATH records its arguments and fails, as srun does
    when the allocation has no node left); the bootstrap then stops at once instead of waiting out its timeout."""
    bin_dir = ray_tmp / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(f'#!/bin/sh\necho "$@" > {ray_tmp}/srun.argv\necho "srun: error: no nodes left"\nexit 1\n')
    srun.chmod(0o755)
    port, marker = pick_free_port(), ray_tmp / "served"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURMD_NODENAME": "gpu017",  # Slurm's name for the head's node
        "EVALKIT_RAY_HEAD_IP": "127.0.0.1",
        "EVALKIT_RAY_HEAD_ARGS": f"{SMALL} --temp-dir={ray_tmp}/ray",
        "EVALKIT_RAY_WORKER_ARGS": "--num-gpus=8",
        **bootstrap_env(RayCluster(3, 24, ray_tmp / "ray-workers.log", port=port, timeout_s=300), sys.executable),
    }
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), "touch", str(marker)], env=env, capture_output=True, text=True)
    assert proc.returncode == 3 and not marker.exists()
    assert time.monotonic() - t0 < 300  # not the 300 s timeout: the launcher's exit ended the wait
    assert "the worker launcher exited: 1 of 3 node(s), 0 of 24 GPU(s)" in proc.stderr
    assert "srun: error: no nodes left" in (ray_tmp / "ray-workers.log").read_text()
    assert (ray_tmp / "srun.argv").read_text().split() == [
        "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--exclude=gpu017", "--overlap", "--kill-on-bad-exit=1",
        str(RAY), "start", f"--address=127.0.0.1:{port}", "--block", "--num-gpus=8",
    ]  # fmt: skip
