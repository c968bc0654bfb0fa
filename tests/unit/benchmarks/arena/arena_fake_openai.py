"""A real HTTP server speaking OpenAI's /v1/chat/completions, with scripted replies, for the Arena-Hard tests.

`FakeOpenAI(reply)` serves on 127.0.0.1 in a thread; `reply(body) -> Reply` decides each answer (status, content,
delay). Every request is recorded (`requests`, thread-safe), so tests count what the client really sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_MARK = "MODEL-ANSWER"
"""Every scripted model answer contains this, so a scripted judge can tell which side the model is on."""


@dataclass(frozen=True)
class Reply:
    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    raw: str | None = None
    """Send this body verbatim instead of a chat completion."""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    path: str
    body: dict[str, Any]
    authorization: str | None

    @property
    def is_judge(self) -> bool:
        return self.body["messages"][0]["role"] == "system"

    @property
    def question(self) -> str:
        """The question of a judge request (from the template) or of an answer request."""
        if not self.is_judge:
            return str(self.body["messages"][0]["content"])
        user = str(self.body["messages"][1]["content"])
        return user.split("<|User Prompt|>\n", 1)[1].split("\n\n<|The Start of Assistant A's Answer|>", 1)[0]

    @property
    def model_is_a(self) -> bool:
        user = str(self.body["messages"][1]["content"])
        a_section = user.split("<|The Start of Assistant A's Answer|>", 1)[1].split("<|The End of Assistant A", 1)[0]
        return MODEL_MARK in a_section

    @property
    def last_user(self) -> str:
        return str([m for m in self.body["messages"] if m["role"] == "user"][-1]["content"])


class FakeOpenAI:
    def __init__(self, reply: Callable[[Seen], Reply]) -> None:
        self.reply = reply
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen = Seen(self.path, body, self.headers.get("Authorization"))
                with server._lock:
                    server.requests.append(seen)
                r = server.reply(seen)
                if r.delay_s:
                    time.sleep(r.delay_s)
                payload = r.raw if r.raw is not None else json.dumps(completion(r.content))
                data = payload.encode()
                try:
                    self.send_response(r.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in r.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def do_GET(self) -> None:  # for prefetch: serve a file given by the reply function
                seen = Seen(self.path, {"messages": [{"role": "user", "content": ""}]}, None)
                with server._lock:
                    server.requests.append(seen)
                r = server.reply(seen)
                data = (r.raw or "").encode()
                self.send_response(r.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def count(self, judge: bool | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if judge is None or r.is_judge == judge)

    @contextmanager
    def running(self) -> Iterator[FakeOpenAI]:
        self._thread.start()
        try:
            yield self
        finally:
            self._httpd.shutdown()
            self._httpd.server_close()


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107},
    }
