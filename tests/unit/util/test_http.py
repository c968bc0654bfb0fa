"""The one HTTP client against a real local HTTP server: retries, Retry-After, giving up, timeouts, secrets, threads.

The server answers each request from a script (status, headers, body, delay) and records when each request arrived,
so waits are measured at the server, not assumed.
"""

from __future__ import annotations

import gzip
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from evalkit.benchmarks.parallel import run_parallel
from evalkit.core.errors import BenchmarkError
from evalkit.util.http import Client, HttpError, RetryPolicy, download

FAST = RetryPolicy(retries=3, backoff_s=0.01, timeout_s=5.0)
OK_BODY = {"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = field(default_factory=lambda: OK_BODY)
    """JSON-encoded unless bytes."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    at: float
    path: str
    body: Any
    headers: dict[str, str]


class Server:
    """ThreadingHTTPServer on 127.0.0.1 answering from `script` (one answer per request, then `default`)."""

    def __init__(self, script: list[Answer] | None = None, default: Answer | None = None) -> None:
        self.script = list(script or [])
        self.default = default or Answer()
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _next(self, seen: Seen) -> Answer:
        with self.lock:
            self.seen.append(seen)
            return self.script.pop(0) if self.script else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: Any) -> None:
                answer = server._next(Seen(time.monotonic(), self.path, body, dict(self.headers)))
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def do_POST(self) -> None:
                self._answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

            def do_GET(self) -> None:
                self._answer(None)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> Server:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(script: list[Answer] | None = None, default: Answer | None = None) -> Server:
        servers.append(Server(script, default).__enter__())
        return servers[-1]

    yield start
    for s in servers:
        s.__exit__()


def gaps(server: Server) -> list[float]:
    times = [s.at for s in server.seen]
    return [b - a for a, b in itertools.pairwise(times)]


# ------------------------------------------------------------------------------------------------ retries


def test_429_503_and_a_slow_answer_are_retried_until_200(serve: Callable[..., Server]) -> None:
    server = serve(
        [
            Answer(429, {"error": "rate limited"}, {"Retry-After": "0"}),
            Answer(503, {"error": "overloaded"}),
            Answer(delay_s=1.0),  # longer than the timeout: abandoned, then retried
        ]
    )
    policy = RetryPolicy(retries=3, backoff_s=0.01, timeout_s=0.3)
    with Client(server.url, policy=policy) as http:
        reply = http.chat({"model": "m", "messages": []})
    assert (reply.value.text, reply.attempts) == ("hi", 4)
    assert len(server.seen) == 4 and {s.path for s in server.seen} == {"/v1/chat/completions"}


def test_retry_after_is_honoured(serve: Callable[..., Server]) -> None:
    server = serve([Answer(429, {"error": "slow down"}, {"Retry-After": "0.8"})])
    with Client(server.url, policy=FAST) as http:  # own backoff 10 ms: only Retry-After explains a longer wait
        http.chat({"model": "m", "messages": []})
    (gap,) = gaps(server)
    assert 0.8 <= gap < 5  # the lower bound is the point; the upper one only has to survive a loaded machine


def test_retry_after_in_milliseconds_and_an_unreadable_one(serve: Callable[..., Server]) -> None:
    server = serve([Answer(503, {}, {"retry-after-ms": "600"}), Answer(429, {}, {"Retry-After": "garbage"})])
    with Client(server.url, policy=FAST) as http:
        http.chat({"model": "m", "messages": []})
    first, second = gaps(server)
    assert 0.6 <= first < 5  # OpenAI's retry-after-ms
    assert second < 0.6 <= first  # unreadable header: our own (10 ms) backoff, not a header's wait


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(backoff_s=2.0, max_wait_s=60.0)
    for retry, nominal in [(0, 2.0), (1, 4.0), (2, 8.0), (5, 60.0), (10, 60.0)]:
        waits = [policy.wait_s(retry) for _ in range(200)]
        assert all(nominal / 2 <= w <= nominal for w in waits)
        assert max(waits) - min(waits) > nominal / 4  # jittered, not one value
    assert policy.wait_s(0, retry_after=7.0) == 7.0 and policy.wait_s(0, retry_after=600.0) == 60.0


def test_gives_up_after_the_bounded_attempts_naming_url_status_and_body(serve: Callable[..., Server]) -> None:
    server = serve(default=Answer(503, {"error": "model is overloaded"}))
    with Client(server.url, policy=RetryPolicy(retries=2, backoff_s=0.01)) as http, pytest.raises(HttpError) as info:
        http.complete({"model": "m", "prompt": "x"})
    err = info.value
    assert len(server.seen) == 3
    assert (err.reason, err.status, err.attempts) == ("http_503", 503, 3)
    assert isinstance(err, BenchmarkError)
    msg = str(err)
    assert f"POST {server.url}/completions failed after 3 attempt(s): HTTP 503" in msg
    assert "model is overloaded" in msg and "is up" in msg


def test_a_4xx_is_final_at_once(serve: Callable[..., Server]) -> None:
    server = serve(default=Answer(400, {"error": "unknown field"}))
    with Client(server.url, policy=FAST) as http, pytest.raises(HttpError, match="after 1 attempt") as info:
        http.chat({"model": "m", "messages": []})
    assert len(server.seen) == 1 and info.value.reason == "http_400"
    assert "unknown field" in str(info.value) and "refused the request itself" in str(info.value)


def test_the_timeout_is_named(serve: Callable[..., Server]) -> None:
    server = serve(default=Answer(delay_s=1.0))
    policy = RetryPolicy(retries=1, backoff_s=0.01, timeout_s=0.25)
    with Client(server.url, policy=policy) as http, pytest.raises(HttpError) as info:
        http.chat({"model": "m", "messages": []})
    assert info.value.reason == "timeout" and info.value.attempts == 2 and len(server.seen) == 2
    assert "no answer within 0.25 s" in str(info.value)


def test_a_dead_server_is_a_connection_failure() -> None:
    policy = RetryPolicy(retries=1, backoff_s=0.0)
    with Client("http://127.0.0.1:9/v1", policy=policy) as http, pytest.raises(HttpError, match="cannot reach") as info:
        http.chat({"model": "m", "messages": []})
    assert info.value.reason == "connection" and info.value.attempts == 2


def test_a_malformed_200_is_retried_then_named(serve: Callable[..., Server]) -> None:
    server = serve([Answer(body=b"<html>proxy</html>")], default=Answer(body={"choices": []}))
    policy = RetryPolicy(retries=1, backoff_s=0.01)
    with Client(server.url, policy=policy) as http, pytest.raises(HttpError, match="cannot use") as info:
        http.chat({"model": "m", "messages": []})
    assert info.value.reason == "bad_response" and len(server.seen) == 2


# ------------------------------------------------------------------------------------------------ requests


def test_vllm_fields_pass_through_and_usage_is_read(serve: Callable[..., Server]) -> None:
    body = {
        "model": "m",
        "prompt": "def f():",
        "seed": 1234,
        "add_special_tokens": False,
        "prompt_logprobs": 1,
        "structured_outputs": {"regex": r"\[\[(A|B)\]\]"},
    }
    reply_body = {
        "choices": [{"text": "  return 1", "finish_reason": "length", "prompt_logprobs": [None]}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }
    server = serve(default=Answer(body=reply_body))
    with Client(server.url, policy=FAST) as http:
        reply = http.complete(body)
    assert server.seen[0].body == body
    assert (reply.value.text, reply.value.finish_reason, reply.value.prompt_tokens) == ("  return 1", "length", 5)
    assert reply.value.completion_tokens == 3


def test_the_key_goes_in_the_header_and_never_into_errors(serve: Callable[..., Server]) -> None:
    key = "sk-secret-0123456789"
    server = serve(default=Answer(401, {"error": f"invalid key {key}"}))  # a server that quotes it back
    with Client(server.url, api_key=key, policy=FAST) as http:
        with pytest.raises(HttpError) as info:
            http.chat({"model": "m", "messages": []})
        with pytest.raises(HttpError) as in_query:  # e.g. Azure's ?api-key=: the URL shown loses its query
            http.get_bytes(f"{server.url}/file?api-version=1&api-key={key}")
    assert server.seen[0].headers["Authorization"] == f"Bearer {key}"
    assert key not in str(info.value) and "***" in str(info.value)
    assert server.seen[1].path.endswith(key) and key not in str(in_query.value) and "/v1/file" in str(in_query.value)


def test_one_client_serves_a_thread_pool(serve: Callable[..., Server]) -> None:
    busy = Answer(429, {"error": "busy"}, {"Retry-After": "0.05"})
    server = serve([busy] * 8, default=Answer(delay_s=0.02))
    results: dict[int, str] = {}
    lock = threading.Lock()

    def one(http: Client, i: int) -> None:
        text = http.chat({"model": "m", "messages": [{"role": "user", "content": str(i)}]}).value.text
        with lock:
            results[i] = text

    with Client(server.url, policy=FAST) as http:
        run_parallel([partial(one, http, i) for i in range(32)], 8)
    assert results == dict.fromkeys(range(32), "hi")
    assert len(server.seen) == 32 + 8  # every refused request was sent again, once
    assert {s.body["messages"][0]["content"] for s in server.seen} == {str(i) for i in range(32)}


# ------------------------------------------------------------------------------------------------ downloads


def test_download_checks_then_renames_and_refuses_bad_files(serve: Callable[..., Server], tmp_path: Path) -> None:
    rows = b'{"a": 1}\n{"a": 2}\n'
    server = serve([Answer(body=gzip.compress(rows)), Answer(body=b"not json\n")], default=Answer(404, b"gone"))

    def count(path: Path) -> int:
        return len([json.loads(line) for line in path.read_text().splitlines()])

    dest = tmp_path / "sub" / "rows.jsonl"
    assert download(server.url + "/rows.jsonl.gz", dest, count, decode=gzip.decompress, policy=FAST) == 2
    assert dest.read_bytes() == rows

    with pytest.raises(json.JSONDecodeError):
        download(server.url + "/bad.jsonl", tmp_path / "bad.jsonl", count, policy=FAST)
    with pytest.raises(HttpError, match=r"download of .*/missing\.jsonl failed after 1 attempt\(s\): HTTP 404") as info:
        download(server.url + "/missing.jsonl", tmp_path / "missing.jsonl", count, policy=FAST)
    assert "internet" in str(info.value)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["rows.jsonl"]  # no partial files left
