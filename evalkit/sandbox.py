"""Run one untrusted Python program in a throwaway Linux sandbox.

Isolation (set up by `evalkit/_sandbox_init.py`, which runs as root):

- network: a new network namespace with only a loopback that is down; no route anywhere, no abstract unix sockets
  of the host;
- filesystem: a chroot into a fresh tmpfs root that holds read-only bind mounts of /usr, the interpreter's prefix
  and the loader cache only; /root, /home, the project, the host's /tmp and every other path simply do not exist;
  the only writable place is a size-limited tmpfs at /tmp (the working directory, also HOME and TMPDIR) that
  disappears with the run;
- identity: a random uid/gid of its own per run (not root, not `nobody`, shared with no other process), no
  supplementary groups, no capabilities, `no_new_privs` (setuid binaries cannot raise privileges);
- processes: new pid, IPC, UTS and cgroup namespaces; the sandbox's init is PID 1, so everything the program
  started dies with it; RLIMIT_NPROC counts only this run's processes thanks to the dedicated uid;
- resources: RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NOFILE, no core dumps, a wall-clock limit enforced by
  killing the sandbox's process group, and truncated stdout/stderr;
- environment: only a handful of fixed variables (PATH, HOME, TMPDIR, LANG, TZ); nothing of the caller's.

What it does not do: limit the total memory of all processes together (that would need a memory cgroup; the bound
is nproc x address space), filter system calls (no seccomp), or hide kernel-wide information in /proc and uname.
It needs root (euid 0) and namespace support; when either is missing it raises `SandboxError` rather than run
anything unsandboxed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from evalkit.errors import BenchmarkError

SandboxStatus = Literal["passed", "failed", "timeout", "memory", "signal", "error"]

_INIT_SCRIPT = Path(__file__).with_name("_sandbox_init.py")
# uids handed to sandboxed programs: far above any real account, below the 32-bit "(uid_t)-1" sentinel.
_UID_BASE = 0x5E000000
_UID_SPAN = 1 << 24
_SETUP_TIMEOUT_S = 30.0
_DRAIN_AFTER_KILL_S = 2.0


class SandboxError(BenchmarkError):
    """The sandbox itself could not be set up; nothing was executed."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run. Pure configuration, safe to build from a config dict."""

    wall_time_s: float = 10.0
    """Wall-clock seconds from program start until the whole sandbox is killed."""
    cpu_time_s: int = 10
    """RLIMIT_CPU seconds (SIGXCPU, then SIGKILL one second later)."""
    memory_bytes: int = 1 << 30
    """RLIMIT_AS per process; allocations beyond it fail with MemoryError."""
    max_processes: int = 8
    """RLIMIT_NPROC for the run's own uid (threads count too); stops fork bombs."""
    file_size_bytes: int = 16 << 20
    """RLIMIT_FSIZE: largest file the program may write."""
    scratch_bytes: int = 64 << 20
    """Size of the writable tmpfs at /tmp (all files together)."""
    open_files: int = 256
    """RLIMIT_NOFILE."""
    max_output_bytes: int = 64 << 10
    """stdout and stderr are each cut to this many bytes; the rest is read and dropped."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be positive, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> SandboxLimits:
        """Build from a config mapping; unknown keys are an error that lists the valid ones."""
        from evalkit.errors import ConfigError

        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ConfigError(f"unknown sandbox limit(s) {unknown}", hint=f"valid keys: {sorted(valid)}")
        try:
            return cls(**values)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid sandbox limits: {exc}") from exc


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run did."""

    status: SandboxStatus
    """passed: exit code 0. failed: non-zero exit. timeout: wall or CPU limit hit. memory: died of MemoryError.
    signal: killed by another signal (e.g. SIGXFSZ, SIGSEGV). error: the sandbox lost track of the program."""
    exit_code: int | None
    """Exit code when the program exited normally, else None."""
    signal: int | None
    """Terminating signal number when the program was killed (by the kernel or the wall-time limit), else None."""
    stdout: str
    """First `max_output_bytes` of stdout, decoded as UTF-8 with replacement."""
    stderr: str
    """First `max_output_bytes` of stderr, decoded likewise."""
    stdout_truncated: bool
    stderr_truncated: bool
    wall_time_s: float
    """Seconds from sandbox start to the end of the run, setup included."""
    cpu_time_s: float | None
    """User + system CPU seconds of the program process (not its children); None if unknown."""
    detail: str = ""
    """Why the status was chosen when it is not obvious (e.g. which limit was hit)."""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# Runs inside the sandbox; prints "isolated" only if every guarantee the module docstring makes holds.
_PROBE = """
import os, socket
problems = []
if 0 in (os.getuid(), os.geteuid(), os.getgid()) or os.getgroups():
    problems.append("runs as root or with supplementary groups")
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1).close()
    problems.append("network reachable")
except OSError:
    pass
for directory in ("/", "/usr", "/etc", "/dev", "/evalkit"):
    try:
        open(os.path.join(directory, "evalkit-probe"), "w").close()
        problems.append(directory + " writable")
    except OSError:
        pass
for secret in ("/root/.ssh", "/home", "/work", "/proc/1/environ"):
    if os.path.exists(secret):
        problems.append(secret + " visible")
if set(os.environ) - {"PATH", "HOME", "TMPDIR", "LANG", "TZ", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED"}:
    problems.append("unexpected environment")
open("/tmp/evalkit-probe", "w").close()
print("; ".join(problems) or "isolated")
"""


def _interpreter() -> tuple[str, str]:
    """The real (non-venv) interpreter and its prefix: the only Python the sandbox can see."""
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    return exe, os.path.realpath(sys.base_prefix)


def _program_env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


class Sandbox:
    """Runs programs under fixed `SandboxLimits`. Thread-safe: each `run` is an independent process tree."""

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._python, prefix = _interpreter()
        self._ro_paths = [] if prefix.startswith("/usr/") else [prefix]
        if os.geteuid() != 0:
            raise SandboxError(
                "the code sandbox needs root (it creates namespaces, mounts and switches to a dedicated uid)",
                hint="run the scoring step as root (e.g. inside the job's container); it never runs code unsandboxed",
            )

    def verify(self) -> None:
        """Run a probe that checks the isolation from inside; raise `SandboxError` if any of it is missing.

        Cheap (one run); call it once before executing many untrusted programs.
        """
        result = self.run(_PROBE)
        if result.status != "passed" or result.stdout.strip() != "isolated":
            raise SandboxError(
                f"the code sandbox is not isolated as it should be: {result.stdout.strip() or result.status}",
                hint=f"nothing untrusted was run; probe stderr: {result.stderr[-500:]!r}",
            )

    def run(self, program: str, stdin: bytes = b"") -> SandboxResult:
        """Execute `program` (Python source) with `stdin`; never raises for anything the program does."""
        lim = self.limits
        uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
        program_bytes = program.encode()
        status_r, status_w = os.pipe()
        cfg = {
            "uid": uid,
            "status_fd": status_w,
            "python": self._python,
            "ro_paths": self._ro_paths,
            "program_bytes": len(program_bytes),
            # the root tmpfs holds the program, its stdin and a few small files
            "root_bytes": len(program_bytes) + len(stdin) + (4 << 20),
            "scratch_bytes": lim.scratch_bytes,
            "env": _program_env(),
            "limits": {
                "cpu": max(1, int(lim.cpu_time_s)),
                "as": lim.memory_bytes,
                "fsize": lim.file_size_bytes,
                "nproc": lim.max_processes,
                "nofile": lim.open_files,
            },
        }
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                [self._python, "-I", "-S", "-B", str(_INIT_SCRIPT), json.dumps(cfg)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_w,),
                env={"LANG": "C.UTF-8"},  # the init script needs nothing of ours either
                cwd="/",
                start_new_session=True,  # its own process group, so one killpg reaches the whole tree
            )
        finally:
            os.close(status_w)
        try:
            return self._supervise(proc, status_r, program_bytes + stdin, start)
        finally:
            os.close(status_r)
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

    def _supervise(self, proc: subprocess.Popen[bytes], status_r: int, payload: bytes, start: float) -> SandboxResult:
        lim = self.limits
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(payload)  # the init reads all of it before doing anything else
            proc.stdin.close()
        except BrokenPipeError:
            pass
        outputs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        truncated = dict.fromkeys(outputs, False)
        status_buf = bytearray()
        events: list[dict] = []
        sel = selectors.DefaultSelector()
        for fd in (*outputs, status_r):
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        deadline = start + _SETUP_TIMEOUT_S
        killed_for: str | None = None
        open_fds = len(outputs) + 1
        while open_fds:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                if killed_for is None:
                    started = any(e["event"] == "started" for e in events)
                    killed_for = "wall" if started else "setup"
                    _kill_group(proc)
                    deadline = time.monotonic() + _DRAIN_AFTER_KILL_S
                    continue
                break  # pipes still open after the kill and the drain period: give up on them
            for key, _ in sel.select(timeout):
                fd = int(key.fd)
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    open_fds -= 1
                    continue
                if fd == status_r:
                    status_buf += chunk
                    while b"\n" in status_buf:
                        line, _, rest = status_buf.partition(b"\n")
                        status_buf = bytearray(rest)
                        event = json.loads(line)
                        events.append(event)
                        if event["event"] == "started" and killed_for is None:
                            deadline = time.monotonic() + lim.wall_time_s
                    continue
                buf = outputs[fd]
                room = lim.max_output_bytes - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(chunk) > room:
                    truncated[fd] = True
        sel.close()
        if killed_for is not None or proc.poll() is None:
            _kill_group(proc)
        try:
            proc.wait(timeout=_DRAIN_AFTER_KILL_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
        wall = time.monotonic() - start
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        stdout = outputs[out_fd].decode(errors="replace")
        stderr = outputs[err_fd].decode(errors="replace")

        setup_errors = [e["error"] for e in events if e["event"] == "setup_error"]
        if setup_errors or killed_for == "setup":
            raise SandboxError(
                "the code sandbox could not be set up: " + ("; ".join(setup_errors) or "setup timed out"),
                hint="the sandbox needs root and Linux namespaces (mount, net, pid); nothing was executed. "
                + (f"init stderr: {stderr[-500:]!r}" if stderr else ""),
            )
        exits = [e for e in events if e["event"] == "exit"]
        exit_event = exits[0] if exits else None
        status, detail = _classify(exit_event, killed_for, stderr, lim)
        return SandboxResult(
            status=status,
            exit_code=exit_event.get("returncode") if exit_event else None,
            signal=(exit_event.get("signal") if exit_event else (signal.SIGKILL if killed_for else None)),
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=truncated[out_fd],
            stderr_truncated=truncated[err_fd],
            wall_time_s=wall,
            cpu_time_s=exit_event.get("cpu_s") if exit_event else None,
            detail=detail,
        )


def _classify(
    exit_event: dict | None, killed_for: str | None, stderr: str, lim: SandboxLimits
) -> tuple[SandboxStatus, str]:
    if killed_for == "wall":
        return "timeout", f"wall-time limit of {lim.wall_time_s:g}s"
    if exit_event is None:
        return "error", "the sandbox init ended without reporting the program's exit"
    sig = exit_event.get("signal")
    if sig is not None:
        cpu = exit_event.get("cpu_s") or 0.0
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim.cpu_time_s):
            return "timeout", f"CPU-time limit of {lim.cpu_time_s}s"
        if sig == signal.SIGXFSZ:
            return "signal", f"file-size limit of {lim.file_size_bytes} bytes (SIGXFSZ)"
        return "signal", f"killed by {signal.Signals(sig).name}"
    if exit_event["returncode"] == 0:
        return "passed", ""
    # The last traceback line names the exception; RLIMIT_AS surfaces as MemoryError.
    tail = stderr.rstrip().rsplit("\n", 1)[-1]
    if tail.startswith("MemoryError"):
        return "memory", f"address-space limit of {lim.memory_bytes} bytes"
    return "failed", tail[:200]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the init's process group; the namespace's PID 1 dies with it, and with it every program process."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
