"""A scripted, local OpenAI-compatible chat-completions server (a test double; no network).

Serves ``POST /v1/chat/completions`` on ``127.0.0.1`` (a free port) from a background
thread, replying with real OpenAI response JSON, so tests drive the real ``openai``
client over real HTTP. What it answers is scripted: a queue of reply specs, then an
optional policy ``(request_json) -> spec`` for everything after the queue.

Specs: :class:`Text`, :class:`ToolCalls` (one or several; arguments as a dict or a raw,
possibly malformed string; any name, known or not), :class:`Status` (429 with
``Retry-After``, 500, 401, ...), :class:`Slow` (sleep, then another spec), :class:`Reset`
(close the socket with no response), :class:`Truncated` (a cut JSON body),
:class:`EmptyChoices`, :class:`Raw`. ``Text(finish_reason="weird")`` gives odd finish
reasons; :func:`endless_tool_calls` is a policy that never stops calling a tool.

Bounded by design: at most ``max_requests`` are scripted (later ones get HTTP 500),
sleeps are capped and wake up when the server stops, the serving thread is a daemon
and the server shuts itself down after ``max_lifetime_s``.

Example::

    with ScriptedServer([Status(429, retry_after=0.2), Text("hi")]) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x")
        ...
        assert len(srv.requests) == 2

A test double (see :mod:`bench.doubles`): tests import it from here, and ``python -m
bench.chaos`` injects its faults through it; no product module imports it.
"""

from __future__ import annotations

import collections
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bench.doubles.replies import (
    MAX_SLEEP_S,
    Call,
    EmptyChoices,
    Policy,
    Raw,
    Reset,
    Slow,
    Spec,
    Status,
    Text,
    ToolCalls,
    Truncated,
    completion_json,
    endless_tool_calls,
)

__all__ = [
    "MAX_SLEEP_S",
    "Call",
    "EmptyChoices",
    "Policy",
    "Raw",
    "RecordedRequest",
    "Reset",
    "ScriptedServer",
    "Slow",
    "Spec",
    "Status",
    "Text",
    "ToolCalls",
    "Truncated",
    "completion_json",
    "endless_tool_calls",
]


@dataclass
class RecordedRequest:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: dict[str, Any] | None
    t: float

    def text_parts(self) -> list[str]:
        """Every text part of every message (string contents and ``type: text`` parts)."""
        return [t for kind, t in self._parts() if kind == "text"]

    def image_urls(self) -> list[str]:
        """Every ``image_url.url`` in the messages."""
        return [t for kind, t in self._parts() if kind == "image"]

    def _parts(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for msg in (self.json or {}).get("messages", []):
            content = msg.get("content")
            if isinstance(content, str):
                out.append(("text", content))
            elif isinstance(content, list):
                for part in content:
                    if part.get("type") == "text":
                        out.append(("text", part.get("text", "")))
                    elif part.get("type") == "image_url":
                        out.append(("image", part.get("image_url", {}).get("url", "")))
        return out


class ScriptedServer:
    """Local OpenAI-compatible server replying from a script; use as a context manager.

    Args:
        replies: specs answered in order, one per request.
        policy: called with the request JSON once the queue is empty.
        max_requests: requests beyond this get HTTP 500 (a runaway client cannot loop forever).
        max_lifetime_s: the server shuts itself down after this many seconds.
        models: served on ``GET /v1/models`` (none: that is a 404, as on servers without it).
    """

    def __init__(
        self,
        replies: Iterable[Spec] = (),
        policy: Policy | None = None,
        *,
        max_requests: int = 200,
        max_lifetime_s: float = 120.0,
        models: Iterable[str] = (),
    ):
        self.models = list(models)
        self._queue: collections.deque[Spec] = collections.deque(replies)
        self.policy = policy
        self.max_requests = max_requests
        self.max_lifetime_s = max_lifetime_s
        self.requests: list[RecordedRequest] = []
        self.unscripted = 0  # requests that found neither a queued spec nor a policy
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        server = self

        class Handler(_Handler):
            scripted = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()  # wakes sleeping Slow replies
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("ScriptedServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ---------------------------------------------------------------------

    def push(self, *specs: Spec) -> None:
        """Append specs to the reply queue."""
        with self._lock:
            self._queue.extend(specs)

    @property
    def pending(self) -> int:
        """Queued specs not yet answered."""
        with self._lock:
            return len(self._queue)

    def _next(self, request: RecordedRequest) -> tuple[int, Spec]:
        with self._lock:
            self.requests.append(request)
            self._counter += 1
            n = self._counter
            if n > self.max_requests:
                return n, Status(500, f"ScriptedServer: over max_requests={self.max_requests}")
            if self._queue:
                return n, self._queue.popleft()
        if self.policy is not None:
            return n, self.policy(request.json or {})
        with self._lock:
            self.unscripted += 1
        return n, Status(500, "ScriptedServer: no reply scripted for this request")


class _QuietServer(ThreadingHTTPServer):
    """No traceback on stderr when a client drops its connection (a run that stops closes
    its pool with requests in flight); other handler errors still print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints (and httpx's pool) use
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    scripted: ScriptedServer

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        request = RecordedRequest(
            "POST",
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            payload if isinstance(payload, dict) else None,
            time.monotonic(),
        )
        n, spec = self.scripted._next(request)
        if not urlsplit(self.path).path.rstrip("/").endswith("/chat/completions"):
            spec = Status(404, f"ScriptedServer serves /v1/chat/completions, not {self.path}")
        try:
            self._answer(spec, n, request)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up (e.g. it timed out)

    def do_GET(self) -> None:
        models = self.scripted.models
        if models and urlsplit(self.path).path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in models]
            self._send(200, {"object": "list", "data": data})
            return
        self._send(404, {"error": {"message": "only POST /v1/chat/completions"}})

    def _answer(self, spec: Spec, n: int, request: RecordedRequest) -> None:
        model = (request.json or {}).get("model", "scripted-model")
        if isinstance(spec, Slow):
            self.scripted._stopped.wait(min(spec.seconds, MAX_SLEEP_S))
            if self.scripted._stopped.is_set():
                self.close_connection = True
                return
            self._answer(spec.then or Text("slow reply"), n, request)
        elif isinstance(spec, Text | ToolCalls):
            self._send(200, completion_json(spec, n, model))
        elif isinstance(spec, EmptyChoices):
            body = completion_json(Text(""), n, model)
            body["choices"] = []
            self._send(200, body)
        elif isinstance(spec, Status):
            headers = dict(spec.headers)
            if spec.retry_after is not None:
                headers["Retry-After"] = str(spec.retry_after)
            error = {"message": spec.message, "type": _error_type(spec.code), "code": spec.code}
            self._send(spec.code, {"error": error}, headers)
        elif isinstance(spec, Reset):
            self._reset()
        elif isinstance(spec, Truncated):
            data = json.dumps(completion_json(spec.spec, n, model)).encode()
            cut = data[: max(1, int(len(data) * spec.keep))]
            if spec.short_read:
                self._send_bytes(200, cut, {}, content_length=len(data))
                self._reset()
            else:
                self._send_bytes(200, cut, {})
        elif isinstance(spec, Raw):
            self._send(spec.status, spec.body, spec.headers)
        else:  # pragma: no cover - a typo in a test
            self._send(500, {"error": {"message": f"ScriptedServer: unknown spec {spec!r}"}})

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST instead of an orderly FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else None
        if data is None:
            data = json.dumps(body).encode()
        self._send_bytes(status, data, headers or {})

    def _send_bytes(
        self, status: int, data: bytes, headers: dict[str, str], content_length: int | None = None
    ) -> None:
        self.send_response(status)
        if not any(k.lower() == "content-type" for k in headers):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) if content_length is None else content_length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def _error_type(code: int) -> str:
    if code == 429:
        return "rate_limit_error"
    if code >= 500:
        return "server_error"
    return "invalid_request_error"
