"""The one HTTP client: every OpenAI-compatible call (answers, judgments, code samples) and the one download helper.

One retry policy for all of them: timeouts, connection errors, 5xx, 408/409/425/429 and a 200 whose body is not
what the protocol says are retried, a bounded number of times, with exponential backoff and jitter; a server's
Retry-After is honoured. Any other status is final at once (the request itself is wrong: a bad key, an unknown model).
When a request gives up, `HttpError` names the URL, the status or the timeout, the attempts and an excerpt of the last
body. The API key travels only in the Authorization header: errors and logs show URLs without their query string and
bodies with the key masked.

Built on httpx rather than the `openai` package: our requests are plain JSON carrying vLLM's own fields (`seed`,
`add_special_tokens`, `prompt_logprobs`, `structured_outputs`), which httpx sends as they are, and the retry policy
must be ours (attempts counted per judgment, a backoff a test can shorten, Retry-After honoured in full), while
openai's is fixed (0.5-8 s) and reports no attempts. An `httpx.Client` is documented as shareable between threads, so
one `Client` serves a whole thread pool (`evalkit.benchmarks.parallel`) over one connection pool.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from evalkit.core.errors import BenchmarkError

log = logging.getLogger(__name__)
# httpx logs every request at INFO: thousands of lines per cell that drown the ones explaining a failure (our own
# retries and failures are logged here, with their reason)
logging.getLogger("httpx").setLevel(logging.WARNING)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
"""Besides every 5xx: statuses that say "not now" rather than "never"."""
BODY_EXCERPT = 300
"""Characters of a failed response's body quoted in errors."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long one attempt may take and how often and when a failed one is tried again."""

    retries: int = 5
    """Further attempts after the first (so at most retries + 1 requests)."""
    backoff_s: float = 2.0
    """Nominal wait before the first retry; doubles for each next one. The wait is drawn between half of it and
    all of it, so that many threads failing together do not come back together."""
    max_wait_s: float = 60.0
    """No wait is longer, a server's Retry-After included."""
    timeout_s: float = 600.0
    """Seconds one attempt may wait to connect, to send, or for the next bytes of the answer."""

    def wait_s(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number `retry` (0-based); the server's Retry-After wins when it gives one."""
        if retry_after is not None:
            return min(self.max_wait_s, max(0.0, retry_after))
        nominal = min(self.max_wait_s, self.backoff_s * 2.0**retry)
        return nominal / 2 + random.uniform(0.0, nominal / 2)


class HttpError(BenchmarkError):
    """A request that failed for good: a final status, or retries used up."""

    def __init__(
        self,
        what: str,
        *,
        url: str,
        reason: str,
        status: int | None,
        attempts: int,
        body: str,
        hint: str,
        detail: str = "",
    ) -> None:
        super().__init__(what, hint=hint)
        self.url = url
        """Without its query string (it may carry a key)."""
        self.reason = reason
        """"timeout", "connection", "bad_response" (a 2xx the caller could not read) or "http_<status>"."""
        self.status = status
        self.attempts = attempts
        """Requests sent, the failed last one included."""
        self.body = body
        """Excerpt of the last response's body, the key masked; "" when there was none."""
        self.detail = detail
        """What went wrong with the last attempt, in a few words ("cannot reach the server (ConnectError: ...)")."""

    def with_hint(self, hint: str) -> HttpError:
        """The same failure with the caller's advice on what to do next."""
        return HttpError(
            self.what,
            url=self.url,
            reason=self.reason,
            status=self.status,
            attempts=self.attempts,
            body=self.body,
            hint=hint,
            detail=self.detail,
        )


@dataclass(frozen=True)
class Reply(Generic[T]):
    """A successful request: what `parse` made of the body, and how many requests it took."""

    value: T
    attempts: int


@dataclass(frozen=True)
class Generation:
    """The first choice of a chat or text completion."""

    text: str
    """The message content (chat) or the text (completions); "" when the server sent null."""
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int | None
    """None when the server reports no usage."""


def chat_generation(data: Any) -> Generation:
    """`/chat/completions`' reply; raises KeyError/TypeError/IndexError when it is not one."""
    choice = data["choices"][0]
    return _generation(data, choice["message"]["content"], choice)


def text_generation(data: Any) -> Generation:
    """`/completions`' reply; raises KeyError/TypeError/IndexError when it is not one."""
    choice = data["choices"][0]
    return _generation(data, choice["text"], choice)


def _generation(data: Any, text: Any, choice: Any) -> Generation:
    if text is not None and not isinstance(text, str):
        raise TypeError(f"the generated text is a {type(text).__name__}")
    usage = data.get("usage") or {}
    completion = usage.get("completion_tokens")
    return Generation(
        text=text or "",
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(completion) if completion is not None else None,
    )


@dataclass(frozen=True)
class _Failure:
    """One attempt that went wrong."""

    reason: str
    status: int | None
    detail: str
    body: str = ""
    final: bool = False
    """The server refused the request itself: no retry."""
    retry_after: float | None = None


class Client:
    """JSON requests to an OpenAI-compatible server at `base_url` (".../v1"), retried by `policy`; thread-safe.

    Close it (or use it as a context manager) to release its connections.
    """

    def __init__(self, base_url: str = "", *, api_key: str | None = None, policy: RetryPolicy | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self._api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # pool=None: a thread waiting for a free connection is queued, not failed; the timeout is per attempt.
        timeout = httpx.Timeout(self.policy.timeout_s, pool=None)
        self._http = httpx.Client(headers=headers, timeout=timeout, follow_redirects=True)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        """`path` under the base URL; an absolute URL stays as it is."""
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def chat(self, body: dict[str, Any]) -> Reply[Generation]:
        """POST `body` (sent as it is, vLLM's extra fields included) to `chat/completions`."""
        return self.post("chat/completions", body, chat_generation)

    def complete(self, body: dict[str, Any]) -> Reply[Generation]:
        """POST `body` to the text-completions endpoint `completions`."""
        return self.post("completions", body, text_generation)

    def post(self, path: str, body: dict[str, Any], parse: Callable[[Any], T]) -> Reply[T]:
        """POST `body` as JSON; `parse(json)` turns the reply into a value (raising KeyError, IndexError, TypeError
        or ValueError when the body is not what the protocol says, which counts as a failed attempt)."""
        return self._request("POST", self.url(path), body, lambda resp: parse(resp.json()))

    def get(self, path: str, parse: Callable[[Any], T]) -> Reply[T]:
        """GET a JSON document; `parse(json)` as for `post`."""
        return self._request("GET", self.url(path), None, lambda resp: parse(resp.json()))

    def get_bytes(self, url: str) -> Reply[bytes]:
        """GET `url` (under the base URL unless absolute), with the same retries."""
        return self._request("GET", self.url(url), None, lambda resp: resp.content)

    def _request(
        self, method: str, url: str, body: dict[str, Any] | None, parse: Callable[[httpx.Response], T]
    ) -> Reply[T]:
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(method, url, body, parse)
            if not isinstance(outcome, _Failure):
                return Reply(outcome, attempt)
            if outcome.final or attempt > self.policy.retries:
                raise self._error(method, url, outcome, attempt)
            retries, wait = self.policy.retries, self.policy.wait_s(attempt - 1, outcome.retry_after)
            log.info("%s %s: %s; retry %d/%d in %.1f s", method, _redacted(url), outcome.detail, attempt, retries, wait)
            time.sleep(wait)

    def _attempt(
        self, method: str, url: str, body: dict[str, Any] | None, parse: Callable[[httpx.Response], T]
    ) -> T | _Failure:
        """One request: the parsed value, or what went wrong."""
        try:
            resp = self._http.request(method, url, json=body)
        except httpx.TimeoutException:
            return _Failure("timeout", None, f"no answer within {self.policy.timeout_s:g} s")
        except httpx.TransportError as exc:
            return _Failure("connection", None, f"cannot reach the server ({type(exc).__name__}: {exc})")
        status = resp.status_code
        if not resp.is_success:
            # any status but 5xx and the "not now" ones says the request itself is wrong: a retry cannot fix it
            final = status < 500 and status not in RETRYABLE_STATUS
            retry_after = None if final else _retry_after(resp.headers)
            return _Failure(f"http_{status}", status, f"HTTP {status}", self._excerpt(resp.text), final, retry_after)
        try:
            return parse(resp)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            detail = f"answered {status} with a body it cannot use ({exc!r})"
            return _Failure("bad_response", status, detail, self._excerpt(resp.text))

    def _excerpt(self, text: str) -> str:
        # a server may quote the key back (some echo the Authorization header in their 401 page)
        masked = text.replace(self._api_key, "***") if self._api_key else text
        return masked[:BODY_EXCERPT]

    def _error(self, method: str, url: str, failure: _Failure, attempts: int) -> HttpError:
        shown = _redacted(url)
        action = "download of" if method == "GET" else method
        what = f"{action} {shown} failed after {attempts} attempt(s): {failure.detail}"
        if failure.body:
            what += f": {failure.body!r}"
        if failure.final:
            hint = "the server refused the request itself (check the model name, the API key, the request fields)"
        else:
            hint = f"check that the server behind {shown} is up and answering, then run again"
        return HttpError(
            what,
            url=shown,
            reason=failure.reason,
            status=failure.status,
            attempts=attempts,
            body=failure.body,
            hint=hint,
            detail=failure.detail,
        )


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds a 429/503 asks us to wait: `retry-after-ms` (OpenAI's), or Retry-After in seconds or as a date."""
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return when.timestamp() - time.time()
    except (TypeError, ValueError):
        return None  # unreadable: fall back to our own backoff


def _redacted(url: str) -> str:
    """`url` without credentials or query string (either may hold a key)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def download(
    url: str,
    dest: Path,
    check: Callable[[Path], int],
    *,
    decode: Callable[[bytes], bytes] | None = None,
    policy: RetryPolicy | None = None,
) -> int:
    """Fetch `url` to `dest`: the body (through `decode`, e.g. gzip.decompress) goes to a temporary file beside
    `dest`, `check(temporary path) -> rows` accepts it (or raises), then one rename puts it in place, so `dest` is
    never half-written or unchecked. Returns what `check` counted. Needs internet (prefetch)."""
    with Client(policy=policy or RetryPolicy(retries=3, timeout_s=120.0)) as http:
        try:
            content = http.get_bytes(url).value
        except HttpError as exc:
            raise exc.with_hint(f"prefetch needs internet access; or copy the file to {dest} by hand") from None
    try:
        data = decode(content) if decode else content
    except (OSError, ValueError, EOFError) as exc:  # e.g. gzip.BadGzipFile: an error page instead of the file
        raise BenchmarkError(f"download of {_redacted(url)}: the body cannot be decoded ({exc})") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        count = check(Path(tmp))
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
