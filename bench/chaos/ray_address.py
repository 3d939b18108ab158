"""The ``Ray address`` row: ``--ray-address`` pointing at something that is not a Ray cluster.

``refseg bench run --engine ray --ray-address HOST:PORT`` (the CLI, in a child process) at a
web server, at a listener that accepts and never answers, and at a closed port. ``ray.init``
retries such an address forever; each must be one line on stderr, exit 2, well within a
minute (the child is killed at :data:`DEADLINE_S`, which fails the row).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.chaos.result import RowResult

DEADLINE_S = 60.0


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<html>not ray</html>")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def web_server() -> Iterator[int]:
    """An HTTP/1 server on a free local port (what a mistyped port often reaches)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A socket that accepts connections and never sends a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_at(address: str, run_dir: Path) -> tuple[int | None, str, float]:
    """``refseg bench run --engine ray --ray-address ADDRESS``: exit code (``None``: killed at
    the deadline), stderr and seconds."""
    argv = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline", "--quiet"]
    argv += [
        "--no-cache",
        "--device",
        "cpu",
        "--engine",
        "ray",
        "--ray-address",
        address,
        "--out",
        str(run_dir),
    ]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.cli", *argv], capture_output=True, text=True, timeout=DEADLINE_S
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return None, err, time.perf_counter() - t0
    return proc.returncode, proc.stderr, time.perf_counter() - t0


def ray_address_row(workdir: Path, seed: int = 0) -> RowResult:
    """A web server, a silent listener, a closed port at --ray-address: one line each, fast."""
    row = RowResult("Ray address")
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    with web_server() as web, silent_listener() as silent:
        targets = {"web server": web, "silent listener": silent, "closed port": closed_port()}
        for name, port in targets.items():
            code, err, took = bench_at(f"127.0.0.1:{port}", workdir / name.replace(" ", "-"))
            seconds[name] = round(took, 1)
            lines = err.strip().splitlines()
            one_line = code == 2 and len(lines) == 1 and lines[0].startswith("refseg: error:")
            row.injected += 1
            row.detected += one_line
            row.check(one_line, f"{name}: exit {code} after {took:.0f} s, stderr {err[-300:]!r}")
    row.details["seconds_to_error"] = seconds
    row.seconds = time.perf_counter() - t0
    return row
