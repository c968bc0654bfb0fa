"""The HumanEval adapter without a model: settings, prompts, generation against a fake server, scoring of
hand-written completions (correct, wrong, hostile) through the real sandbox, and resuming both phases."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from paths import REPO

from evalkit.benchmarks.base import Endpoint, RunContext
from evalkit.benchmarks.humaneval import adapter as he
from evalkit.benchmarks.humaneval.sandbox import Sandbox, SandboxError
from evalkit.core.errors import BenchmarkError, ConfigError
from evalkit.util.http import RetryPolicy

DEMO_PLUS = REPO / "data" / "humaneval_plus_demo.jsonl"


def _sandbox_available() -> bool:
    try:
        Sandbox()
    except SandboxError:
        return False
    return True


needs_sandbox = pytest.mark.skipif(not _sandbox_available(), reason="the code sandbox needs root and namespaces")


# ------------------------------------------------------------------------------------------------ settings


def test_defaults_follow_the_study() -> None:
    s = he.HumanEvalSettings.from_dict({})
    assert (s.dataset, s.n_samples, s.temperature, s.top_p, s.concurrency) == ("humaneval", 50, 0.2, 0.95, 16)
    assert s.problems_path().name == "HumanEval.jsonl.gz" and s.problems_path().is_file()


def test_unknown_keys_name_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="temprature") as err:
        he.HumanEval().validate({"temprature": 0.2})
    assert "temperature" in str(err.value)
    with pytest.raises(ConfigError, match="wall_time"):
        he.HumanEval().validate({"sandbox": {"wall_time": 3}})


@pytest.mark.parametrize(
    "settings",
    [
        {"dataset": "mbpp"},
        {"dataset": "humaneval_plus"},  # needs a local HumanEval+ file
        {"dataset": "humaneval_plus", "problems_file": "/nonexistent.jsonl"},
        {"n_samples": 0},
        {"top_p": 0},
        {"prompt_mode": "fim"},
        {"sandbox": {"memory_bytes": -1}},
    ],
)
def test_invalid_settings(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        he.HumanEval().validate(settings)


def test_wrong_types_and_choices_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"invalid n_samples='many'") as err:
        he.HumanEval().validate({"n_samples": "many"})
    assert "n_samples takes int" in str(err.value)
    with pytest.raises(ConfigError, match=r"dataset='mbpp'.*expected one of \[humaneval, humaneval_plus\]"):
        he.HumanEval().validate({"dataset": "mbpp"})
    with pytest.raises(ConfigError, match=r"sandbox.max_processes=2.5"):
        he.HumanEval().validate({"sandbox": {"max_processes": 2.5}})


def test_sandbox_settings_merge_with_the_adapter_defaults() -> None:
    s = he.HumanEvalSettings.from_dict({"sandbox": {"max_processes": 3}})
    assert s.sandbox.max_processes == 3 and s.sandbox.memory_bytes == 2 << 30


def test_plus_file_loads_with_inputs_and_limit() -> None:
    s = he.HumanEvalSettings.from_dict({"dataset": "humaneval_plus", "problems_file": str(DEMO_PLUS), "limit": 2})
    problems = he.load_problems(s)
    assert [p.index for p in problems] == [0, 1]
    assert problems[1].atol == 1e-6 and problems[0].base_input and problems[0].plus_input


def test_a_human_eval_file_is_not_a_plus_file(tmp_path: Path) -> None:
    s = he.HumanEvalSettings.from_dict({})
    with gzip.open(s.problems_path(), "rt") as f:
        (tmp_path / "he.jsonl").write_text(f.readline())
    plus = he.HumanEvalSettings.from_dict({"dataset": "humaneval_plus", "problems_file": str(tmp_path / "he.jsonl")})
    with pytest.raises(BenchmarkError, match="not a HumanEval"):
        he.load_problems(plus)


# ------------------------------------------------------------------------------------------------ prompts


class FakeTokenizer:
    chat_template = "{{ fake }}"

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool = False) -> str:
        return "<s>" + "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages)


def test_chat_prompt_is_evalplus_make_raw_chat_prompt() -> None:
    utility = pytest.importorskip("evalplus.provider.utility")
    task = 'def f(x):\n    """Return x."""\n'
    tok = FakeTokenizer()
    ours = he.render_chat_prompt(task, tok.apply_chat_template)
    theirs = utility.make_raw_chat_prompt(task, he.INSTRUCTION_PREFIX, he.RESPONSE_PREFIX, tok)
    assert ours == theirs and ours.endswith("```python\n")
    assert he.EOS == utility.EOS
    assert utility.extra_eos_for_direct_completion("humaneval") == he.DIRECT_EXTRA_EOS


def test_instruction_prefixes_are_evalplus_defaults() -> None:
    codegen = pytest.importorskip("evalplus.codegen")
    import inspect

    source = inspect.getsource(codegen.run_codegen)
    assert he.INSTRUCTION_PREFIX in source and he.RESPONSE_PREFIX in source


def test_stop_strings_beyond_the_servers_four_are_applied_client_side() -> None:
    chat = he.PromptPlan("chat", he.EOS + he.CHAT_EXTRA_EOS, str)
    assert chat.server_stop == ["\n```\n", "\nif __name__", "\ndef main(", "\nprint("]
    direct = he.PromptPlan("direct", he.EOS + he.DIRECT_EXTRA_EOS, str)
    assert direct.server_stop == ["\ndef ", "\nclass ", "\nimport ", "\nfrom "]
    text = "    return x\nassert f(1) == 1\ndef main():\n"
    assert he.cut_at_stop(text, direct.stop) == "    return x"
    assert he.cut_at_stop("no stop here", direct.stop) == "no stop here"


def test_solutions_from_direct_and_chat_samples() -> None:
    p = he.Problem(0, "T/0", "def f(x):\n", "f", "", None, None, None)
    assert he.solution_of({"completion": "\treturn x\n", "mode": "direct"}, p) == "def f(x):\n    return x\n"
    assert he.solution_of({"completion": "def f(x):\n\treturn x\n```", "mode": "chat"}, p) == (
        "def f(x):\n    return x\n```"
    )
    assert he.sanitize("Sure!\n```python\ndef f(x):\n    return x\n```\nDone.", "f").strip() == (
        "def f(x):\n    return x"
    )


# ------------------------------------------------------------------------------------------------ generate


@dataclass
class FakeServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    max_in_flight: int = 0
    refusals: list[int] = field(default_factory=list)
    """Statuses to answer the next requests with, one each, before answering normally."""


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """An OpenAI-style /v1/completions endpoint that answers "    return None" after 50 ms."""
    lock = threading.Lock()
    state = {"in_flight": 0}
    server_state = FakeServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                server_state.requests.append(body)
                state["in_flight"] += 1
                server_state.max_in_flight = max(server_state.max_in_flight, state["in_flight"])
            time.sleep(0.05)
            with lock:
                state["in_flight"] -= 1
            # "\nprint(" is one of evalplus's stops that does not fit the server's 4: cut client-side
            text = "    return None\nprint('trailing')\n"
            data = json.dumps({"choices": [{"text": text, "finish_reason": "stop"}]}).encode()
            with lock:
                refusal = server_state.refusals.pop(0) if server_state.refusals else None
            if refusal is not None:
                data = b'{"error": "not now"}'
            self.send_response(refusal or (200 if self.path == "/v1/completions" else 404))
            if refusal == 429:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server_state
    httpd.shutdown()
    httpd.server_close()


def _ctx(work_dir: Path, settings: dict[str, Any], url: str | None = None) -> RunContext[he.HumanEvalSettings]:
    endpoint = Endpoint(base_url=url, model="fake", tokenizer="unused", max_model_len=2048) if url else None
    return RunContext(endpoint=endpoint, work_dir=work_dir, settings=he.HumanEval().parse_settings(settings))


def test_the_phases_check_the_problems_file_that_parsing_leaves_out(tmp_path: Path) -> None:
    """The job's record is parsed without file checks (plans and provenance need none): generate and score, which
    read the file, refuse a missing one with the fix before anything else."""
    missing = tmp_path / "gone.jsonl"
    ctx = _ctx(tmp_path, {"problems_file": str(missing)}, "http://127.0.0.1:9/v1")
    assert ctx.settings.problems_file == str(missing)
    for phase in (he.HumanEval().generate, he.HumanEval().score):
        with pytest.raises(ConfigError, match=re.escape(f"problems_file {missing} does not exist")) as err:
            phase(ctx)
        assert "evalkit prefetch" in (err.value.hint or "")
    assert list(tmp_path.iterdir()) == []  # nothing generated, nothing scored


def test_generate_is_concurrent_evalplus_shaped_and_resumable(tmp_path: Path, fake_server: FakeServer) -> None:
    settings = {"limit": 2, "n_samples": 3, "concurrency": 4, "prompt_mode": "direct"}
    bench = he.HumanEval()
    bench.generate(_ctx(tmp_path, settings, fake_server.url))

    samples_path = tmp_path / he.SAMPLES_FILE
    rows = [json.loads(line) for line in samples_path.read_text().splitlines()]
    assert sorted((r["task_id"], r["sample_index"]) for r in rows) == [
        (t, i) for t in ("HumanEval/0", "HumanEval/1") for i in range(3)
    ]
    assert fake_server.max_in_flight > 1
    body = fake_server.requests[0]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["n"]) == (0.2, 0.95, 768, 1)
    assert len(body["stop"]) == 4 and "\ndef " in body["stop"] and body["add_special_tokens"] is True
    assert all(r["completion"] == "    return None" for r in rows)
    assert body["prompt"].endswith('"""\n') and all(r["mode"] == "direct" for r in rows)

    # A rerun with everything there sends nothing.
    bench.generate(_ctx(tmp_path, settings, fake_server.url))
    assert len(fake_server.requests) == 6

    # A crash mid-write leaves a torn line: it is dropped and only the missing samples are requested.
    lines = samples_path.read_text().splitlines(keepends=True)
    samples_path.write_text("".join(lines[:4]) + lines[4][:10])
    bench.generate(_ctx(tmp_path, settings, fake_server.url))
    assert len(fake_server.requests) == 8
    rows = [json.loads(line) for line in samples_path.read_text().splitlines()]
    assert len({(r["task_id"], r["sample_index"]) for r in rows}) == len(rows) == 6

    with pytest.raises(BenchmarkError, match="temperature"):
        bench.generate(_ctx(tmp_path, {**settings, "temperature": 0.8}, fake_server.url))


def test_generate_waits_out_429_and_503(
    tmp_path: Path, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy server (429 with Retry-After, then 503) delays a sample; it does not fail the cell."""
    fake_server.refusals = [429, 503]
    monkeypatch.setattr(he, "HTTP_RETRY", RetryPolicy(retries=2, backoff_s=0.01))
    he.HumanEval().generate(_ctx(tmp_path, {"limit": 1, "n_samples": 1, "prompt_mode": "direct"}, fake_server.url))
    assert len(fake_server.requests) == 3
    (row,) = [json.loads(line) for line in (tmp_path / he.SAMPLES_FILE).read_text().splitlines()]
    assert row["completion"] == "    return None"


def test_generate_reports_a_dead_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(he, "HTTP_RETRY", RetryPolicy(retries=2, backoff_s=0.0))
    settings = {"limit": 1, "n_samples": 1, "prompt_mode": "direct", "request_timeout_s": 1}
    with pytest.raises(BenchmarkError, match="generation failed") as info:
        he.HumanEval().generate(_ctx(tmp_path, settings, "http://127.0.0.1:9/v1/"))
    msg = str(info.value)
    assert "http://127.0.0.1:9/v1/completions failed after 3 attempt(s): cannot reach the server" in msg
    assert "rerun generate to resume" in msg


# ------------------------------------------------------------------------------------------------ score


def _write_samples(work_dir: Path, completions: dict[str, list[str]], mode: str = "chat") -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    with (work_dir / he.SAMPLES_FILE).open("w") as f:
        for task_id, texts in completions.items():
            for i, text in enumerate(texts):
                row = {
                    "task_id": task_id,
                    "sample_index": i,
                    "completion": text,
                    "mode": mode,
                    "prompt_hash": f"h-{task_id}",
                }
                f.write(json.dumps(row) + "\n")


# Hostile code goes inside the entry point (with a return): evalplus's sanitizer drops top-level statements and
# functions without a return statement.
FORK_BOMB = (
    "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
    "            pass\n    return 0\n"
)
EARLY_EXIT = "    import os\n    os._exit(0)\n    return 0\n"


@pytest.mark.sandbox
@needs_sandbox
def test_score_human_eval_correct_wrong_hostile(tmp_path: Path) -> None:
    settings = {"limit": 2, "n_samples": 3}
    problems = he.load_problems(he.HumanEvalSettings.from_dict(settings))
    completions = {}
    for p in problems:
        correct = "```python\n" + p.prompt + p.canonical_solution + "```\n"
        wrong = p.prompt + "    return None\n```"
        hostile = p.prompt + (FORK_BOMB if p.index == 0 else EARLY_EXIT)
        completions[p.task_id] = [correct, wrong, hostile]
    _write_samples(tmp_path, completions)

    result = he.HumanEval().score(_ctx(tmp_path, settings))
    assert [(s.task, s.metric, s.is_primary) for s in result.scores] == [("humaneval", "pass@1", True)]
    assert result.scores[0].value == pytest.approx(100 / 3) and result.scores[0].n_samples == 2
    assert [(r.task, r.doc_id) for r in result.samples] == [("humaneval", 0), ("humaneval", 1)]
    for record, p in zip(result.samples, problems, strict=True):
        assert record.metrics["pass@1"] == pytest.approx(1 / 3)
        assert record.prompt_hash == f"h-{p.task_id}" and record.target == p.canonical_solution
        assert f"def {p.entry_point}(" in record.response and "```" not in record.response

    # Scoring again reuses every stored result: nothing is executed.
    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("re-executed")

    he.hx.run_base_test, saved = boom, he.hx.run_base_test  # type: ignore[assignment]
    try:
        again = he.HumanEval().score(_ctx(tmp_path, settings))
    finally:
        he.hx.run_base_test = saved
    assert again.scores == result.scores


@pytest.mark.sandbox
@needs_sandbox
def test_score_humaneval_plus_reports_both_tasks(tmp_path: Path) -> None:
    settings = {"dataset": "humaneval_plus", "problems_file": str(DEMO_PLUS), "limit": 2, "n_samples": 2}
    problems = he.load_problems(he.HumanEvalSettings.from_dict(settings))
    wv = problems[1]
    completions = {
        # problem 0: one correct, one case-sensitive (fails the base input "AEIOU xyz oo")
        problems[0].task_id: [
            problems[0].prompt + problems[0].canonical_solution,
            problems[0].prompt + "    return sum(1 for i, c in enumerate(text) if c in 'aeiou' and "
            "(i == 0 or text[i-1] not in 'aeiou'))\n",
        ],
        # problem 1: rounding to 3 digits passes the base inputs, not the plus inputs; the second loops forever
        wv.task_id: [
            wv.prompt + "    return round(sum(v * w for v, w in zip(values, weights)) / sum(weights), 3)\n",
            wv.prompt + "    while True:\n        pass\n    return 0.0\n",
        ],
    }
    _write_samples(tmp_path, completions)
    result = he.HumanEval().score(_ctx(tmp_path, settings))
    scores = {(s.task, s.metric): s.value for s in result.scores}
    rows = {
        (r["task_id"], r["sample_index"]): (r["base_status"], r["plus_status"])
        for r in map(json.loads, (tmp_path / he.RESULTS_FILE).read_text().splitlines())
    }
    assert rows[(problems[0].task_id, 0)] == ("pass", "pass")
    assert rows[(wv.task_id, 0)] == ("pass", "fail")
    assert rows[(wv.task_id, 1)] == ("timeout", "skipped")
    assert rows[(problems[0].task_id, 1)] == ("fail", "skipped")
    assert scores[("humaneval", "pass@1")] == pytest.approx(100 * (1 / 2 + 1 / 2) / 2)
    assert scores[("humaneval_plus", "pass@1")] == pytest.approx(100 * (0.5 + 0.0) / 2)
    assert {r.task for r in result.samples} == {"humaneval", "humaneval_plus"} and len(result.samples) == 4
    assert (tmp_path / he.GROUNDTRUTH_FILE).is_file()


def test_score_refuses_incomplete_generation(tmp_path: Path) -> None:
    _write_samples(tmp_path, {"HumanEval/0": ["x"]})
    with pytest.raises(BenchmarkError, match="fewer than 2 samples"):
        he.HumanEval().score(_ctx(tmp_path, {"limit": 1, "n_samples": 2}))


def test_pass_at_k_scores_only_where_n_allows() -> None:
    scores = he._task_scores("humaneval", [(10, 5), (10, 0)])
    assert [(s.metric, s.is_primary) for s in scores] == [("pass@1", True), ("pass@10", False)]
    assert scores[0].value == pytest.approx(25.0) and scores[1].value == pytest.approx(50.0)
    assert scores[0].stderr == pytest.approx(25.0)
