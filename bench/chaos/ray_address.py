"""The ``Ray address`` row: ``--ray-address`` pointing at something that is not a Ray cluster.

``refseg bench run --engine ray --ray-address HOST:PORT`` (the CLI, in a child process) at a
web server, at a listener that accepts and never answers, at a closed port, at an HTTP/2
listener that answers the preface and then nothing, and at a gRPC service that is not Ray's
GCS (every call: UNIMPLEMENTED, as a raylet or the Ray Client port answers the GCS's calls).
``ray.init`` retries such an address forever or for many lines; each must be one line on
stderr, exit 2, well within a minute (the child is killed at :data:`DEADLINE_S`, which fails
the row).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
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


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame: 24-bit length, type, flags, stream id, payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: bytes, value: bytes) -> bytes:
    """An HPACK header, literal without indexing, new name, no Huffman coding (short strings)."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


_SETTINGS, _PING, _HEADERS = 4, 6, 1
_ACK, _END_STREAM_AND_HEADERS = 0x1, 0x1 | 0x4
# A gRPC "trailers-only" reply: ":status: 200" (HPACK static entry 8), then the gRPC status.
_UNIMPLEMENTED_REPLY = (
    b"\x88"
    + _literal(b"content-type", b"application/grpc")
    + _literal(b"grpc-status", b"12")
    + _literal(b"grpc-message", b"unknown service")
)


def _exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _h2_silent(conn: socket.socket) -> None:
    """Read the preface, answer with SETTINGS, then read and say nothing more."""
    with conn, contextlib.suppress(OSError):
        conn.recv(65536)
        conn.sendall(_frame(_SETTINGS, 0, 0))
        while conn.recv(65536):
            pass


def _grpc_unimplemented(conn: socket.socket) -> None:
    """A gRPC server with no services: every call ends UNIMPLEMENTED."""
    with conn, contextlib.suppress(OSError):
        _exactly(conn, 24)  # the client's preface
        conn.sendall(_frame(_SETTINGS, 0, 0))
        while True:
            head = _exactly(conn, 9)
            kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            payload = _exactly(conn, int.from_bytes(head[:3], "big"))
            if kind in (_SETTINGS, _PING) and not flags & _ACK:
                conn.sendall(_frame(kind, _ACK, 0, payload if kind == _PING else b""))
            elif kind == _HEADERS:
                conn.sendall(_frame(_HEADERS, _END_STREAM_AND_HEADERS, stream, _UNIMPLEMENTED_REPLY))


@contextlib.contextmanager
def _serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A local port whose every connection ``handle`` serves on its own thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def accept() -> None:
        with contextlib.suppress(OSError):  # the socket closed: done
            while True:
                conn, _ = sock.accept()
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def h2_silent_listener() -> contextlib.AbstractContextManager[int]:
    """A port that answers HTTP/2's preface with SETTINGS, then stays silent."""
    return _serving(_h2_silent)


def grpc_unimplemented_server() -> contextlib.AbstractContextManager[int]:
    """A port with a gRPC server that is not Ray's GCS: every call is UNIMPLEMENTED."""
    return _serving(_grpc_unimplemented)


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
    """A web server, a silent listener, a closed port, a silent HTTP/2 listener and a gRPC
    service that is not the GCS at --ray-address: one line each, fast."""
    row = RowResult("Ray address")
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    with (
        web_server() as web,
        silent_listener() as silent,
        h2_silent_listener() as h2,
        grpc_unimplemented_server() as grpc,
    ):
        targets = {
            "web server": web,
            "silent listener": silent,
            "closed port": closed_port(),
            "silent HTTP/2 listener": h2,
            "gRPC service not the GCS": grpc,
        }
        for name, port in targets.items():
            code, err, took = bench_at(f"127.0.0.1:{port}", workdir / name.replace(" ", "-").replace("/", ""))
            seconds[name] = round(took, 1)
            lines = err.strip().splitlines()
            one_line = code == 2 and len(lines) == 1 and lines[0].startswith("refseg: error:")
            row.injected += 1
            row.detected += one_line
            row.check(one_line, f"{name}: exit {code} after {took:.0f} s, stderr {err[-300:]!r}")
    row.details["seconds_to_error"] = seconds
    row.seconds = time.perf_counter() - t0
    return row
