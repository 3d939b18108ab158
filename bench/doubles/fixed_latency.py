"""A fixed-latency OpenAI-compatible endpoint (a test double): every request answers after the
same delay, with a reply each controller can use, and the server counts what it saw.

``refseg bench scale`` measures how a run's examples per second grow with ``--concurrency``
and workers against a VLM whose latency is fixed; tests check the VLM limits against the
requests the server saw in flight. Served from a child process (:class:`LatencyEndpoint`), so
the server's threads never compete for the measured process's interpreter lock, or from a
thread of this process (``in_process=True``, for tests).

Replies (told apart by the request's system prompt, cheaply: no image is decoded):

- ``ground``: a box around the middle of the picture it was shown (or of 0-1000);
- the VLM refiner: a query the loop has not tried (unique per request);
- agent turns: the ranker first (its name from the warm-start message, else the second tool
  offered), then ``submit`` of the top index the last ranking reported: two calls an example.

``GET /stats`` answers ``{"requests", "in_flight", "max_in_flight", "arrivals"}``
(``arrivals``: seconds since the server started, one per request, in order);
``GET /stats/reset`` answers the same and starts counting afresh (one benchmark cell after
another).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.doubles.replies import Call, Text, ToolCalls, completion_json, request_texts

_SIZE = re.compile(r"Image: (\d+)x(\d+) pixels")
_RANKER = re.compile(r"(\w+) and (\w+) already ran")
MAX_LATENCY_S = 60.0


def _tool_answers(request: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for msg in request.get("messages", []):
        if msg.get("role") == "tool":
            try:
                value = json.loads(msg.get("content") or "{}")
            except ValueError:
                continue
            out.append(value if isinstance(value, dict) else {})
    return out


@dataclass(frozen=True)
class LatencyPolicy:
    """What the endpoint answers (see the module docstring).

    Attributes:
        prompt_tokens: the usage every reply reports as input tokens.
    """

    prompt_tokens: int = 1000

    def __call__(self, request: dict[str, Any]) -> Text | ToolCalls:
        texts = list(request_texts(request))
        system = texts[0] if texts else ""
        if system.startswith("You locate objects"):
            return self._text(json.dumps({"box": self._box(texts, "normalised" in system)}))
        if system.startswith("You help a referring-segmentation"):
            tag = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:8]
            return self._text(json.dumps({"query": f"the object {tag}", "rationale": "fixed latency"}))
        return self._agent_turn(request, texts)

    def _text(self, answer: str) -> Text:
        return Text(answer, prompt_tokens=self.prompt_tokens, completion_tokens=len(answer) // 4 + 1)

    def _box(self, texts: list[str], normalised: bool) -> list[int]:
        shown = next((m for t in texts if (m := _SIZE.search(t))), None)
        w, h = (int(shown.group(1)), int(shown.group(2))) if shown and not normalised else (1000, 1000)
        return [w // 4, h // 4, 3 * w // 4, 3 * h // 4]

    def _agent_turn(self, request: dict[str, Any], texts: list[str]) -> ToolCalls | Text:
        answers = _tool_answers(request)
        ranked = next((a for a in reversed(answers) if a.get("top")), None)
        if answers and ranked is not None:
            call = Call("submit", {"index": int(ranked["top"][0]["index"]), "reason": "fixed latency"})
        else:
            call = Call(self._ranker(request, texts), {})
        tokens = len(json.dumps(call.arguments)) // 4 + 1
        return ToolCalls.of(call, prompt_tokens=self.prompt_tokens, completion_tokens=tokens)

    @staticmethod
    def _ranker(request: dict[str, Any], texts: list[str]) -> str:
        warm = next((m for t in texts if (m := _RANKER.search(t))), None)
        if warm is not None:
            return warm.group(2)
        names = [t.get("function", {}).get("name", "") for t in request.get("tools") or []]
        return names[1] if len(names) > 1 else "submit"


@dataclass
class _Counts:
    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    arrivals: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.arrivals.append(round(time.monotonic() - self.started, 4))

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def as_dict(self, reset: bool = False) -> dict[str, Any]:
        with self.lock:
            seen = {
                "requests": self.requests,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "arrivals": list(self.arrivals),
            }
            if reset:
                self.requests, self.max_in_flight, self.arrivals = 0, self.in_flight, []
            return seen


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 64+ clients connect at once

    def __init__(self, latency_s: float, policy: LatencyPolicy):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency_s = latency_s
        self.policy = policy
        self.counts = _Counts()
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is no error
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        counts = self.server.counts
        counts.enter()
        try:
            t0 = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = json.loads(body) if body else {}
            spec = self.server.policy(request)
            reply = completion_json(spec, counts.requests, request.get("model", "fixed"))
            self.server.stopping.wait(max(0.0, self.server.latency_s - (time.monotonic() - t0)))
            self._send(200, reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            counts.leave()

    def do_GET(self) -> None:
        path = self.path.rstrip("/")
        if path.endswith(("/stats", "/stats/reset")):
            self._send(200, self.server.counts.as_dict(reset=path.endswith("/reset")))
        else:
            self._send(404, {"error": {"message": "POST /v1/chat/completions, GET /stats"}})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LatencyEndpoint:
    """The fixed-latency endpoint; a context manager. ``base_url`` ends in ``/v1``.

    Args:
        latency_s: seconds from a request's arrival to its reply.
        prompt_tokens: input tokens every reply reports.
        in_process: serve from a thread of this process (tests) instead of a child process.
    """

    def __init__(self, latency_s: float = 1.0, *, prompt_tokens: int = 1000, in_process: bool = False):
        if not 0.0 <= latency_s <= MAX_LATENCY_S:
            raise ValueError(f"latency must be between 0 and {MAX_LATENCY_S:g} s, got {latency_s}")
        self.latency_s = latency_s
        self.policy = LatencyPolicy(prompt_tokens)
        self.in_process = in_process
        self.port = 0
        self._server: _Server | None = None
        self._process: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LatencyEndpoint:
        if self.in_process:
            self._server = _Server(self.latency_s, self.policy)
            self.port = int(self._server.server_address[1])
            serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
            serve.daemon = True
            serve.start()
            return self
        cmd = [sys.executable, "-m", "bench.doubles.fixed_latency", "--latency", str(self.latency_s)]
        cmd += ["--prompt-tokens", str(self.policy.prompt_tokens)]
        self._process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the fixed-latency endpoint did not start (it said {line!r})")
        self.port = int(line)
        return self

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """What the server saw: requests, in flight now, the most in flight, arrival times
        (since it started, or since the last reset; ``reset``: count afresh from now)."""
        if self._server is not None:
            return self._server.counts.as_dict(reset)
        url = f"http://127.0.0.1:{self.port}/stats{'/reset' if reset else ''}"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats

    def stop(self) -> None:
        if self._server is not None:
            self._server.stopping.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def __enter__(self) -> LatencyEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve until terminated; the first stdout line is the port."""
    parser = argparse.ArgumentParser(prog="python -m bench.doubles.fixed_latency")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per reply (default 1.0)")
    parser.add_argument("--prompt-tokens", type=int, default=1000, help="usage per reply (default 1000)")
    ns = parser.parse_args(argv)
    server = _Server(ns.latency, LatencyPolicy(ns.prompt_tokens))
    print(server.server_address[1], flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # a terminal's Ctrl-C
        server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
