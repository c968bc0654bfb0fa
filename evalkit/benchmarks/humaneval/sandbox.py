"""Run one untrusted Python program in a throwaway Linux sandbox, as root or as an ordinary user.

The sandbox is Debian's bubblewrap (`bwrap`), which needs no privileges where the kernel allows unprivileged user
namespaces (Debian and Ubuntu defaults, most clusters). Each run gets:

- network: a new network namespace with only a loopback that is down; no route anywhere, no abstract unix sockets
  of the host;
- filesystem: a fresh tmpfs root holding read-only bind mounts of /usr, the interpreter's prefix and the loader
  cache only, a private /proc and a minimal read-only /dev; /root, /home, the project, the host's /tmp and every
  other path simply do not exist; the only writable place is a size-limited tmpfs at /tmp (the working directory,
  also HOME and TMPDIR) that disappears with the run;
- identity: a new user namespace with a random uid/gid per run, no capabilities, `no_new_privs`, and no further
  user namespaces. Run as root, the sandbox first drops to a random host uid and gid with no supplementary groups
  (`setpriv`), so no root process ever runs untrusted code and the kernel enforces RLIMIT_NPROC (it exempts root).
  Run as an ordinary user, the host uid is that user's and the user's own groups stay attached (an unprivileged
  user namespace cannot drop them; they show as gid 65534), which reach nothing: only read-only /usr is visible and
  the other namespaces hide the user's processes, sockets and files;
- processes: new pid, IPC, UTS and cgroup namespaces and a new session; bwrap's init is PID 1, so everything the
  program started dies with it, and with the caller (`--die-with-parent`); RLIMIT_NPROC is counted per user
  namespace (Linux >= 5.14), so it limits this run's processes only, not all processes of the calling user;
- resources: RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_NOFILE and no core dumps, set inside the
  sandbox by util-linux `prlimit` right before the interpreter starts; a wall-clock limit enforced by killing bwrap
  (its PID 1 dies with it); truncated stdout/stderr;
- environment: only a handful of fixed variables (PATH, HOME, TMPDIR, LANG, TZ); nothing of the caller's.

What it does not do: limit the total memory of all processes together (that would need a memory cgroup; the bound
is nproc x address space), filter system calls (no seccomp), or hide kernel-wide information in /proc and uname.
Where bwrap is missing or the kernel refuses user namespaces it raises `SandboxError` naming the cause and the fix,
rather than run anything unsandboxed; `check_available()` is that check, once per process, for planners and
`evalkit doctor`.

`Sandbox.run` runs a program to its end on given stdin bytes; `Sandbox.start` hands it pipe ends instead, so that it
can talk with its caller, or with another sandbox, while it runs (HumanEval's checks: `execution.py`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TypedDict

from evalkit.core.errors import BenchmarkError, ConfigError
from evalkit.util.procs import kill_group

SandboxStatus = Literal["passed", "failed", "timeout", "memory", "signal", "error"]

# uids handed to sandboxed programs: far above any real account, below the 32-bit "(uid_t)-1" sentinel.
_UID_BASE = 0x5E000000
_UID_SPAN = 1 << 24
_SETUP_TIMEOUT_S = 30.0
_DRAIN_AFTER_KILL_S = 2.0
_PROGRAM_PATH = "/evalkit/main.py"
_PR_SET_CHILD_SUBREAPER = 36
# The kernel settings that decide whether an ordinary user may create user namespaces, and the value that forbids it.
_USERNS_SWITCHES = (
    ("/proc/sys/user/max_user_namespaces", "0", "user.max_user_namespaces"),
    ("/proc/sys/kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1", "kernel.apparmor_restrict_unprivileged_userns"),
)
_WAY_OUT = (
    "or score where the sandbox works: generate with split_scoring=true (the GPU job then only generates) and run "
    "`evalkit score <same overrides>` on a node where `evalkit doctor` passes the sandbox check"
)


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
        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ConfigError(f"unknown sandbox limit(s) {unknown}", hint=f"valid keys: {sorted(valid)}")
        try:
            return cls(**values)  # type: ignore[arg-type]  # a config mapping's values: __post_init__ checks them
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
    """User + system CPU seconds of everything that ran in the sandbox (the program and its children); None if
    unknown."""
    detail: str = ""
    """Why the status was chosen when it is not obvious (e.g. which limit was hit)."""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# Runs inside the sandbox; prints "isolated" only if every guarantee the module docstring makes holds.
_PROBE = """
import os, socket
allowed = {"PATH", "HOME", "TMPDIR", "LANG", "TZ", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "PWD"}
problems = []
if 0 in (os.getuid(), os.geteuid(), os.getgid()):
    problems.append("runs as root")
# An ordinary user's groups cannot be dropped in a user namespace (setgroups is denied): they appear as the
# overflow gid 65534, or as the run's own gid for the user's primary group. Any other group is a leak.
if set(os.getgroups()) - {os.getgid(), 65534}:
    problems.append("has supplementary groups")
if int(open("/proc/self/status").read().split("CapEff:")[1].split()[0], 16):
    problems.append("has capabilities")
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
for secret in ("/root/.ssh", "/home", "/work"):
    if os.path.exists(secret):
        problems.append(secret + " visible")
# PID 1 is bwrap's init, with the environment bwrap was given: it must be as clean as ours.
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    with open("/proc/" + pid + "/environ", "rb") as f:
        keys = {item.split(b"=")[0].decode() for item in f.read().split(b"\\0") if item}
    if keys - allowed:
        problems.append("unexpected environment in pid " + pid)
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


def _tool(name: str) -> str | None:
    """A system tool by absolute path, found on PATH like any command the user types."""
    return shutil.which(name)


def _userns_diagnosis() -> tuple[str, str] | None:
    """(setting, value) of the kernel setting that forbids unprivileged user namespaces on this node, if one does."""
    for path, forbidding, name in _USERNS_SWITCHES:
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value == forbidding:
            return name, value
    return None


def _setup_error(what: str, detail: str = "") -> SandboxError:
    switch = _userns_diagnosis()
    if switch:
        name, value = switch
        cause = f"unprivileged user namespaces are disabled on this node ({name} = {value})"
        hint = f"ask the node's admins to allow them (sysctl {name}); "
    else:
        cause = detail or "unknown cause"
        hint = "check that bwrap runs as this user (`bwrap --unshare-all --unshare-user --ro-bind / / true`); "
    return SandboxError(
        f"{what}: {cause}",
        hint=hint + _WAY_OUT + (f"; bwrap said: {detail[-500:]!r}" if detail and switch else ""),
    )


def _unreadable_by_others(path: str) -> str | None:
    """The first folder on the way to `path` that other users cannot enter (e.g. a pyenv under root's 0700 home)."""
    for folder in [*reversed(Path(path).parents), Path(path)]:
        if folder.is_dir() and not os.stat(folder).st_mode & 0o001:
            return str(folder)
    return None


class Sandbox:
    """Runs programs under fixed `SandboxLimits`. Thread-safe: each `run` is an independent process tree."""

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._python, prefix = _interpreter()
        self._ro_paths = [] if prefix.startswith("/usr/") or prefix == "/usr" else [prefix]
        bwrap, prlimit = _tool("bwrap"), _tool("prlimit")
        if bwrap is None:
            raise SandboxError(
                "the code sandbox needs bubblewrap (bwrap), which is not installed on this node",
                hint="`apt-get install bubblewrap` (Debian/Ubuntu; `dnf install bubblewrap` on RHEL) or ask the "
                f"admins; {_WAY_OUT}",
            )
        if prlimit is None:
            raise SandboxError(
                "the code sandbox needs util-linux `prlimit`, which is not on this node",
                hint=f"`apt-get install util-linux` or ask the admins; {_WAY_OUT}",
            )
        self._bwrap, self._prlimit = bwrap, prlimit
        self._setpriv = _tool("setpriv") if os.geteuid() == 0 else None
        blocked = (_unreadable_by_others(self._python) or _unreadable_by_others(prefix)) if os.geteuid() == 0 else None
        if blocked:
            raise SandboxError(
                f"run as root, the code sandbox runs {self._python} as a fresh uid, but other users cannot enter "
                f"{blocked}",
                hint="build the venv from an interpreter every user can run (`make install PYTHON=/usr/bin/python3`)",
            )
        if os.geteuid() == 0 and self._setpriv is None:
            raise SandboxError(
                "run as root, the code sandbox drops to a fresh uid with util-linux `setpriv`, which is missing",
                hint=f"`apt-get install util-linux`, or run scoring as an ordinary user; {_WAY_OUT}",
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

    def command(self, uid: int, program_fd: int, status_fd: int) -> list[str]:
        """The argv of one run (bwrap reads the program from `program_fd`, reports on `status_fd`)."""
        lim = self.limits
        cmd: list[str] = []
        if self._setpriv is not None:
            # root: untrusted code never runs as host root, and RLIMIT_NPROC (which exempts root) applies
            cmd += [self._setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        cmd += [self._bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
        cmd += ["--new-session", "--uid", str(uid), "--gid", str(uid), "--json-status-fd", str(status_fd)]
        cmd += ["--ro-bind", "/usr", "/usr"]
        for path in self._ro_paths:
            cmd += ["--ro-bind", path, path]
        # Merged-/usr systems have /bin, /lib, /lib64 as symlinks into /usr; older ones have real directories.
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                cmd += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                cmd += ["--ro-bind", top, top]
        cmd += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
        cmd += ["--size", str(lim.scratch_bytes), "--perms", "0700", "--tmpfs", "/tmp", "--chdir", "/tmp"]
        cmd += ["--perms", "0444", "--ro-bind-data", str(program_fd), _PROGRAM_PATH, "--remount-ro", "/"]
        cpu = max(1, int(lim.cpu_time_s))
        cmd += [
            "--",
            self._prlimit,
            f"--cpu={cpu}:{cpu + 1}",
            f"--as={lim.memory_bytes}",
            f"--fsize={lim.file_size_bytes}",
            f"--nproc={lim.max_processes}",
            f"--nofile={lim.open_files}",
            "--core=0",
            "--",
            self._python,
            "-I",
            "-S",
            "-B",
            _PROGRAM_PATH,
        ]
        return cmd

    def run(self, program: str, stdin: bytes = b"") -> SandboxResult:
        """Execute `program` (Python source) with `stdin`; never raises for anything the program does."""
        return self.start(program, stdin=stdin).wait()

    def start(self, program: str, stdin: bytes | int = b"", stdout: int | None = None) -> SandboxRun:
        """Start `program`; `SandboxRun.wait` supervises it to its end.

        `stdin` is either the bytes to read or a file descriptor, and `stdout` a file descriptor (default: captured,
        like stderr), so that a program can talk with its caller, or with another sandbox, while it runs (pipe ends).
        Descriptors passed here belong to the sandbox: they are closed here once it holds them."""
        uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
        # memfds, not pipes: bwrap copies the program whole, and the program reads stdin at its own pace, so no
        # size can block a writer here.
        program_fd = _memfd("evalkit-program", program.encode())
        stdin_fd = stdin if isinstance(stdin, int) else _memfd("evalkit-stdin", stdin)
        status_r, status_w = os.pipe()
        _become_subreaper()
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                self.command(uid, program_fd, status_w),
                stdin=stdin_fd,
                stdout=subprocess.PIPE if stdout is None else stdout,
                stderr=subprocess.PIPE,
                pass_fds=(status_w, program_fd),
                env=_program_env(),  # bwrap's PID 1 and the program see this and nothing of ours
                cwd="/",
                start_new_session=True,  # its own process group, so one killpg reaches bwrap
            )
        except BaseException:
            os.close(status_r)
            raise
        finally:
            for fd in (status_w, program_fd, stdin_fd, *(() if stdout is None else (stdout,))):
                os.close(fd)
        return SandboxRun(self.limits, proc, status_r, start)


class SandboxRun:
    """One program running in a sandbox (`Sandbox.start`). `wait` in one thread; `kill` from any thread."""

    def __init__(self, limits: SandboxLimits, proc: subprocess.Popen[bytes], status_r: int, start: float) -> None:
        self.limits = limits
        self._proc = proc
        self._status_r = status_r
        self._start = start
        self._lock = threading.Lock()
        self._ended = False

    def kill(self) -> None:
        """Kill the whole sandbox now; `wait` then reports it killed by SIGKILL. No-op once it has ended."""
        with self._lock:
            if not self._ended:  # after that its process group may be reaped, and the id reused
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self._proc.pid, signal.SIGKILL)  # no reaping here: `wait` does it, with rusage

    def wait(self) -> SandboxResult:
        """Supervise the run to its end (limits, output caps) and say what it did; never raises for anything the
        program does."""
        proc = self._proc
        try:
            return self._supervise(proc, self._status_r, self._start)
        finally:
            with self._lock:
                self._ended = True  # from here on `kill` leaves the process group alone (reaped, its id reusable)
            os.close(self._status_r)
            if proc.poll() is None:
                kill_group(proc)
                proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

    def _supervise(self, proc: subprocess.Popen[bytes], status_r: int, start: float) -> SandboxResult:
        lim = self.limits
        assert proc.stderr is not None
        # stdout is not ours to read when the caller gave the program a descriptor of its own for it
        pipes = [p for p in (proc.stdout, proc.stderr) if p is not None]
        outputs = {pipe.fileno(): bytearray() for pipe in pipes}
        truncated = dict.fromkeys(outputs, False)
        status_buf = bytearray()
        events: list[dict[str, int]] = []  # bwrap's --json-status-fd lines: {"child-pid": n}, {"exit-code": n}
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
                    started = any("child-pid" in e for e in events)
                    killed_for = "wall" if started else "setup"
                    kill_group(proc)
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
                        if "child-pid" in event and killed_for is None:
                            deadline = time.monotonic() + lim.wall_time_s
                    continue
                buf = outputs[fd]
                room = lim.max_output_bytes - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(chunk) > room:
                    truncated[fd] = True
        sel.close()
        if killed_for is not None:
            kill_group(proc)
        with self._lock:
            self._ended = True  # every pipe is closed: bwrap has exited or is exiting
        init_pid = next((int(e["child-pid"]) for e in events if "child-pid" in e), None)
        cpu_s, _ = _reap(proc, init_pid)  # no poll() before: it would reap bwrap and lose its rusage
        wall = time.monotonic() - start
        out_fd, err_fd = (proc.stdout.fileno() if proc.stdout else None), proc.stderr.fileno()
        stdout = outputs[out_fd].decode(errors="replace") if out_fd is not None else ""
        stderr = outputs[err_fd].decode(errors="replace")

        if killed_for == "setup" or not any("child-pid" in e for e in events):
            raise _setup_error("the code sandbox could not be set up", stderr.strip() or "setup timed out")
        exit_code = next((e["exit-code"] for e in events if "exit-code" in e), None)
        exit_event = None if exit_code is None else _exit_event(exit_code, cpu_s)
        status, detail = _classify(exit_event, killed_for, stderr, lim)
        return SandboxResult(
            status=status,
            exit_code=exit_event.get("returncode") if exit_event else None,
            signal=(exit_event.get("signal") if exit_event else (signal.SIGKILL if killed_for else None)),
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=truncated.get(out_fd, False) if out_fd is not None else False,
            stderr_truncated=truncated[err_fd],
            wall_time_s=wall,
            cpu_time_s=exit_event.get("cpu_s") if exit_event else None,
            detail=detail,
        )


_checked: list[SandboxError | None] = []
_checked_lock = threading.Lock()


def check_available() -> None:
    """Raise `SandboxError` (what is missing, and the fix) unless untrusted code can be run isolated here, as this
    user. Runs the isolation probe once per process; later calls repeat its verdict."""
    with _checked_lock:
        if not _checked:
            try:
                Sandbox().verify()
                _checked.append(None)
            except SandboxError as exc:
                _checked.append(exc)
    error = _checked[0]
    if error is not None:
        raise SandboxError(error.what, log=error.log, hint=error.hint)


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _reap(proc: subprocess.Popen[bytes], init_pid: int | None) -> tuple[float | None, int | None]:
    """Wait for bwrap (it has exited or been killed: its status pipe is closed), then for the sandbox's PID 1, and
    return (CPU seconds of everything that ran in the sandbox, bwrap's exit status).

    bwrap exits as soon as its PID 1 reports the program's exit, without reaping PID 1; as our child subreaper's
    orphan, PID 1 is reaped here, at once (not whenever the node's init gets to it) and with its rusage, which
    includes the program's (it reaped the program). Popen.wait() would discard the rusage."""
    cpu: float | None = None
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
    except ChildProcessError:  # already reaped by Popen's own bookkeeping
        proc.wait()
    if init_pid is not None:
        with contextlib.suppress(ChildProcessError):  # not our orphan: the subreaper flag could not be set
            _, _, usage = os.wait4(init_pid, 0)
            cpu = (cpu or 0.0) + usage.ru_utime + usage.ru_stime
    return cpu, proc.returncode


_subreaper_set = False


def _become_subreaper() -> None:
    """Make this process the reaper of the sandboxes' orphaned PID 1s (see `_reap`). Orphans of other children of
    this process are re-parented here too instead of to init; none of evalkit's code waits for "any child", so
    they only wait here as zombies until the process ends."""
    global _subreaper_set
    if not _subreaper_set:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper_set = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


class _ExitEvent(TypedDict, total=False):
    """How the program ended: exactly one of `signal` and `returncode`, and its CPU time."""

    cpu_s: float | None
    signal: int
    returncode: int


def _exit_event(code: int, cpu_s: float | None) -> _ExitEvent:
    """bwrap reports a program killed by signal N as exit code 128 + N, like a shell."""
    event: _ExitEvent = {"cpu_s": cpu_s}
    if code > 128 and code - 128 in signal.valid_signals():
        event["signal"] = code - 128
    else:
        event["returncode"] = code
    return event


def _classify(
    exit_event: _ExitEvent | None, killed_for: str | None, stderr: str, lim: SandboxLimits
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
