"""Process lifecycle against a fake server (tests/unit/serve/fake_vllm_server.py): milliseconds, not minutes.
The same paths against real vLLM are in tests/integration/test_serve_real.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from evalkit.core.errors import ServerError
from evalkit.serve import (
    ServerConfig,
    VLLMServer,
    check_compiler,
    client_base_url,
    pick_free_port,
    probe_health,
)
from evalkit.util.procs import group_pids, log_tail

FAKE_DIR = str(Path(__file__).parent)


def fake_cfg(mode: str, **kw: object) -> ServerConfig:
    defaults: dict[str, object] = {
        "module": "fake_vllm_server",
        "device": "gpu",  # no KV-cache space or compiler checks: they are tested on their own
        "served_model_name": "fake",
        "env": {"PYTHONPATH": FAKE_DIR, "FAKE_VLLM_MODE": mode},
        "health_poll_s": 0.02,
        "startup_timeout_s": 10.0,
        "shutdown_timeout_s": 5.0,
    }
    return ServerConfig(**(defaults | kw))  # type: ignore[arg-type]


def test_pick_free_port_is_bindable() -> None:
    port = pick_free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(10_000)) + b"load 10%\rload 100%\n\xff bad utf-8\n\n")
    assert log_tail(log, 3) == "line 9999\nload 100%\n\ufffd bad utf-8"
    assert log_tail(log, 0) == ""
    assert "no log" in log_tail(tmp_path / "missing.log", 5)


def test_client_base_url() -> None:
    assert client_base_url("0.0.0.0", 80) == "http://127.0.0.1:80/v1"
    assert client_base_url("::", 80) == "http://[::1]:80/v1"


def test_missing_compiler_is_named() -> None:
    with pytest.raises(ServerError, match="g\\+\\+"):
        check_compiler({"PATH": "/nonexistent"})


def test_serves_and_stops_the_whole_group(tmp_path: Path) -> None:
    server = VLLMServer(fake_cfg("serve"), tmp_path, log_path=tmp_path / "server.log", max_model_len=77)
    with server:
        ep = server.endpoint
        assert (ep.model, ep.tokenizer, ep.max_model_len) == ("fake", str(tmp_path), 77)
        assert ep.base_url.startswith("http://127.0.0.1:") and ep.base_url.endswith("/v1")
        server.check_alive()
        pgid = server.pid
        assert pgid is not None and len(group_pids(pgid)) == 2  # the server and its "engine core"
    assert group_pids(pgid) == []
    assert server.shutdown_s is not None and server.shutdown_s < 2
    with pytest.raises(ServerError, match="not running"):
        server.check_alive()


def test_crash_fails_fast_with_log_and_rerun_command(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(ServerError) as err, VLLMServer(fake_cfg("crash"), tmp_path, log_path=tmp_path / "s.log"):
        pass
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "exited with code 3 while starting" in msg
    assert "    | ValueError: config.json is not valid JSON" in msg  # the log excerpt, without evalkit's header
    assert f"log: {tmp_path / 's.log'}" in msg
    assert "FAKE_VLLM_MODE=crash" in msg and "-m fake_vllm_server" in msg  # the rerun line


def test_startup_timeout_kills_the_group(tmp_path: Path) -> None:
    server = VLLMServer(fake_cfg("hang", startup_timeout_s=0.2), tmp_path, log_path=tmp_path / "s.log")
    with pytest.raises(ServerError, match=r"did not become healthy within 0\.2 s") as err:
        server.start()
    assert "raise server.startup_timeout_s" in str(err.value)
    assert server.pid is None


def test_death_mid_run_is_detected_and_orphans_are_killed(tmp_path: Path) -> None:
    with VLLMServer(fake_cfg("serve"), tmp_path, log_path=tmp_path / "s.log") as server:
        pgid = server.pid
        assert pgid is not None
        os.kill(pgid, signal.SIGKILL)  # the main process only: its "engine core" is orphaned
        time.sleep(0.1)
        with pytest.raises(ServerError, match=r"killed by SIGKILL .* while serving"):
            server.check_alive()
    assert group_pids(pgid) == []


def test_sigkill_after_shutdown_timeout(tmp_path: Path) -> None:
    server = VLLMServer(fake_cfg("stubborn", shutdown_timeout_s=0.1), tmp_path, log_path=tmp_path / "s.log")
    with server:
        pgid = server.pid
    assert pgid is not None and group_pids(pgid) == []
    assert server.shutdown_s is not None and 0.1 <= server.shutdown_s < 2


def test_exception_in_block_stops_the_server(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), VLLMServer(fake_cfg("serve"), tmp_path, log_path=tmp_path / "s.log") as s:
        pgid = s.pid
        raise KeyboardInterrupt
    assert pgid is not None and group_pids(pgid) == []


def test_fixed_port_in_use_fails_before_launch(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cfg = fake_cfg("serve", port=busy.getsockname()[1])
        with pytest.raises(ServerError, match="already in use"):
            VLLMServer(cfg, tmp_path, log_path=tmp_path / "s.log").start()


def test_sigterm_unwinds_and_stops_the_group(tmp_path: Path) -> None:
    # As in a fresh `evalkit` process: nobody handles SIGTERM yet. (In a full pytest run a session-scoped server of
    # the integration tests may still own the handler; it gets it back afterwards.)
    outer = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with (
            pytest.raises(SystemExit) as exc,
            VLLMServer(fake_cfg("serve"), tmp_path, log_path=tmp_path / "s.log") as s,
        ):
            pgid = s.pid
            os.kill(os.getpid(), signal.SIGTERM)  # what Slurm or `kill` sends to evalkit
            time.sleep(5)  # interrupted by the handler
        assert exc.value.code == 128 + signal.SIGTERM
        assert pgid is not None and group_pids(pgid) == []
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    finally:
        signal.signal(signal.SIGTERM, outer)


def test_config_problems_found_at_start_are_server_errors(tmp_path: Path) -> None:
    cfg = fake_cfg("serve", device="cpu")  # no VLLM_CPU_KVCACHE_SPACE
    with pytest.raises(ServerError, match="VLLM_CPU_KVCACHE_SPACE"):
        VLLMServer(cfg, tmp_path, log_path=tmp_path / "s.log").start()
    with pytest.raises(ServerError, match="does not exist"):
        VLLMServer(fake_cfg("serve"), tmp_path / "missing", log_path=tmp_path / "s.log").start()
    assert not (tmp_path / "s.log").exists()  # nothing was started


@pytest.mark.parametrize(
    ("flags", "want"), [("avx2 fma", "float32"), ("avx2 avx512f avx512_bf16 amx_bf16", "bfloat16")]
)
def test_cpu_server_dtype_is_chosen_on_the_node(tmp_path: Path, flags: str, want: str) -> None:
    """server=cpu's `cpu_native` becomes the dtype this CPU computes natively, in the command and the log."""
    from evalkit.serve.cpu_support import parse_cpuinfo

    cpu = parse_cpuinfo(f"model name\t: Test CPU\nflags\t\t: {flags}\n")
    cfg = fake_cfg("serve", device="cpu", dtype="cpu_native")
    cfg.env["VLLM_CPU_KVCACHE_SPACE"] = "1"
    with VLLMServer(cfg, tmp_path, log_path=tmp_path / "server.log", cpu=cpu) as server:
        assert server.command[server.command.index("--dtype") + 1] == want
    assert f"serving in {want}: this CPU (Test CPU)" in (tmp_path / "server.log").read_text()


def test_explicit_cpu_dtype_wins_and_cpu_native_is_refused_on_gpus(tmp_path: Path) -> None:
    from evalkit.serve.cpu_support import parse_cpuinfo

    cfg = fake_cfg("serve", device="cpu", dtype="bfloat16")
    cfg.env["VLLM_CPU_KVCACHE_SPACE"] = "1"
    with VLLMServer(cfg, tmp_path, log_path=tmp_path / "a.log", cpu=parse_cpuinfo("flags : avx2\n")) as server:
        assert server.command[server.command.index("--dtype") + 1] == "bfloat16"
    with pytest.raises(ServerError, match="cpu_native"):
        VLLMServer(fake_cfg("serve", dtype="cpu_native"), tmp_path, log_path=tmp_path / "b.log").start()


def test_a_checkpoint_this_cpu_cannot_compute_is_refused_before_the_server_starts(tmp_path: Path) -> None:
    from evalkit.serve.cpu_support import parse_cpuinfo

    ct = {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"type": "int", "num_bits": 4}}}}
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": ct}))
    cfg = fake_cfg("serve", device="cpu", dtype="cpu_native")
    cfg.env |= {"VLLM_CPU_KVCACHE_SPACE": "1", "EVALKIT_CPU_W4A16_MATMUL": ""}  # the plugin switched off
    server = VLLMServer(cfg, tmp_path, log_path=tmp_path / "server.log", cpu=parse_cpuinfo("model name : EPYC\n"))
    with pytest.raises(ServerError, match="cannot serve W4A16 checkpoints: _C_AVX2 has no cpu_gemm_wna16") as err:
        server.start()
    assert "EVALKIT_CPU_W4A16_MATMUL=fp32" in (err.value.hint or "")
    assert not (tmp_path / "server.log").exists()  # nothing was started


class _Models(BaseHTTPRequestHandler):
    """/health answers 200, /v1/models lists one model, anything else 404."""

    def do_GET(self) -> None:
        body = {"/health": b"", "/v1/models": json.dumps({"data": [{"id": "other"}]}).encode()}.get(self.path)
        self.send_response(404 if body is None else 200)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


def test_probe_health_names_what_is_wrong() -> None:
    """One attempt per probe through the project's HTTP client: a dead port, another model, a wrong path."""
    assert probe_health(f"http://127.0.0.1:{pick_free_port()}/v1", "fake")[1].startswith("no answer (cannot reach")
    server = HTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert probe_health(base + "/v1", "other") == ({"id": "other"}, "")
        assert probe_health(base + "/v1", "fake") == (None, "/v1/models lists ['other'], not 'fake'")
        assert probe_health(base + "/nowhere/v1", None) == (None, f"HTTP 404 from {base}/nowhere/health")
    finally:
        server.shutdown()
        server.server_close()
