"""Privileged init of one sandbox run; executed as a script by `evalkit.sandbox`, never imported.

It runs as root with `python -I -S` (standard library only) and:

1. reads the program (and the program's stdin) from its own stdin, sized by the JSON config in argv[1];
2. `unshare`s new mount, network, pid, IPC, UTS and cgroup namespaces and forks: the child is PID 1 of the
   new pid namespace, so when it exits the kernel kills every process left in the namespace (fork bombs);
3. builds a minimal root: an empty tmpfs holding read-only bind mounts of /usr, the interpreter's prefix and
   the loader cache only, a private /proc, a tmpfs /dev with a few device nodes, and a size-limited tmpfs
   scratch at /tmp (the only writable place, owned by the sandbox uid); then chroots into it;
4. forks the program with rlimits, no capabilities, `no_new_privs` and a dedicated uid, waits for it, and
   reports its exit status and CPU time as JSON lines on the status fd.

Any failure before the program starts is reported as a `setup_error` event; the caller raises instead of
running anything unsandboxed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import signal
import stat
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

# Where the new root is assembled. /tmp is only covered inside our private mount namespace.
NEW_ROOT = "/tmp"
# (name, major, minor) of the character devices a Python program may reasonably open.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9))

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    ret = _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(ret, f"mount {source} -> {target} ({fstype or 'bind'})")


def _bind_ro(source: str, target: str) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    # Not MS_REC: sub-mounts below the source stay invisible instead of appearing writable.
    _mount(source, target, None, MS_BIND)
    # A bind mount takes the read-only flag only through a second, remounting call.
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _build_root(cfg: dict, program: bytes, stdin_data: bytes) -> None:
    uid = cfg["uid"]
    # Nothing we mount may propagate back to the host's mount namespace.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("evalkit-root", NEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, f"size={cfg['root_bytes']},mode=0755")
    for path in ("/usr", *cfg["ro_paths"]):
        _bind_ro(path, NEW_ROOT + path)
    # Merged-/usr systems have /bin, /lib, /lib64 as symlinks into /usr; older ones have real directories.
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            os.symlink(os.readlink(top), NEW_ROOT + top)
        elif os.path.isdir(top):
            _bind_ro(top, NEW_ROOT + top)
    if os.path.exists("/etc/ld.so.cache"):
        _bind_ro("/etc/ld.so.cache", NEW_ROOT + "/etc/ld.so.cache")
    os.makedirs(NEW_ROOT + "/etc", exist_ok=True)
    with open(NEW_ROOT + "/etc/passwd", "w") as f:
        f.write(f"root:x:0:0:root:/nonexistent:/bin/false\nsandbox:x:{uid}:{uid}:sandbox:/tmp:/bin/false\n")
    with open(NEW_ROOT + "/etc/group", "w") as f:
        f.write(f"root:x:0:\nsandbox:x:{uid}:\n")

    dev = NEW_ROOT + "/dev"
    os.makedirs(dev)
    _mount("evalkit-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name, major, minor in DEVICES:
        os.mknod(f"{dev}/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(f"{dev}/{name}", 0o666)  # mknod applies the umask
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{dev}/{name}")
    # Read-only but not nodev: the device nodes above must stay openable.
    _mount(None, dev, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)

    os.makedirs(NEW_ROOT + "/proc")
    # A proc of the new pid namespace: the program sees only its own processes; hidepid hides init's.
    _mount("proc", NEW_ROOT + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")

    os.makedirs(NEW_ROOT + "/evalkit")
    with open(NEW_ROOT + "/evalkit/main.py", "wb") as f:
        f.write(program)
    os.chmod(NEW_ROOT + "/evalkit/main.py", 0o444)
    # The program's stdin is a root-only file opened before the uid switch: the program can read it once
    # through fd 0 but cannot reopen it by path.
    with open(NEW_ROOT + "/evalkit/stdin", "wb") as f:
        f.write(stdin_data)
    os.chmod(NEW_ROOT + "/evalkit/stdin", 0o400)

    os.makedirs(NEW_ROOT + "/tmp")
    _mount(
        "evalkit-scratch",
        NEW_ROOT + "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        f"size={cfg['scratch_bytes']},mode=0700,uid={uid},gid={uid}",
    )
    # Everything assembled: the root tmpfs itself becomes read-only too.
    _mount(None, NEW_ROOT, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(NEW_ROOT)
    os.chdir("/tmp")


def _exec_program(cfg: dict, stdin_fd: int, err_w: int) -> None:
    """In the forked child: drop everything, then exec. Never returns."""
    try:
        os.dup2(stdin_fd, 0)
        os.close(stdin_fd)
        lim = cfg["limits"]
        resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu"], lim["cpu"] + 1))
        resource.setrlimit(resource.RLIMIT_AS, (lim["as"], lim["as"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["fsize"], lim["fsize"]))
        resource.setrlimit(resource.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim["nofile"], lim["nofile"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        uid = cfg["uid"]
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        # Leaving uid 0 for a non-zero uid clears every capability (no keep-caps was set).
        os.setresuid(uid, uid, uid)
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        if os.getuid() == 0 or os.geteuid() == 0:
            raise SetupError("still uid 0 after setresuid")
        os.execve(cfg["python"], [cfg["python"], "-I", "-S", "-B", "/evalkit/main.py"], cfg["env"])
    except BaseException as exc:  # report anything: the parent must not mistake it for a program failure
        os.write(err_w, f"{type(exc).__name__}: {exc}".encode()[:4000])
    os._exit(127)


def _init(cfg: dict, program: bytes, stdin_data: bytes, status_fd: int) -> int:
    """PID 1 of the new pid namespace."""

    def emit(event: dict) -> None:
        os.write(status_fd, (json.dumps(event) + "\n").encode())

    # If the outer helper is killed (the caller's wall-time limit), take the whole namespace down with it.
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    try:
        _build_root(cfg, program, stdin_data)
        stdin_fd = os.open("/evalkit/stdin", os.O_RDONLY)
    except (OSError, SetupError) as exc:
        emit({"event": "setup_error", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        os.close(status_fd)
        _exec_program(cfg, stdin_fd, err_w)
    os.close(err_w)
    os.close(stdin_fd)
    exec_error = os.read(err_r, 4096)  # EOF on a successful exec (close-on-exec)
    os.close(err_r)
    if exec_error:
        os.waitpid(pid, 0)
        emit({"event": "setup_error", "error": "starting the program failed: " + exec_error.decode(errors="replace")})
        return 1
    emit({"event": "started"})
    while True:
        # As PID 1 we also reap orphans (a fork bomb's children) until the program itself exits.
        try:
            wpid, status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if wpid != pid:
            continue
        event: dict = {"event": "exit", "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}
        if os.WIFSIGNALED(status):
            event["signal"] = os.WTERMSIG(status)
        else:
            event["returncode"] = os.WEXITSTATUS(status)
        emit(event)
        # Returning ends PID 1: the kernel kills whatever the program left running in the namespace.
        return 0


def main() -> int:
    cfg = json.loads(sys.argv[1])
    status_fd = cfg["status_fd"]
    data = sys.stdin.buffer.read()
    program, stdin_data = data[: cfg["program_bytes"]], data[cfg["program_bytes"] :]
    if os.geteuid() != 0:
        os.write(status_fd, json.dumps({"event": "setup_error", "error": "the sandbox needs root"}).encode() + b"\n")
        return 1
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        msg = f"unshare(mount, net, pid, ipc, uts, cgroup namespaces): {os.strerror(err)} (errno {err})"
        os.write(status_fd, json.dumps({"event": "setup_error", "error": msg}).encode() + b"\n")
        return 1
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _init(cfg, program, stdin_data, status_fd)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(status_fd, json.dumps({"event": "setup_error", "error": repr(exc)}).encode() + b"\n")
        os._exit(code)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status) if status else 0
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno == errno.ECHILD:
                return 1
            raise


if __name__ == "__main__":
    sys.exit(main())
