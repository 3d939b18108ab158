"""Helpers of the viewer tests: a test client, page text, records and PNG decoding."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from starlette.testclient import TestClient

from bench.viewer import ViewerOptions, create_app


def client_for(run: Path, run_b: Path | None = None) -> TestClient:
    """A test client of the viewer on ``run`` (and ``run_b``), as a loopback browser sees it."""
    app = create_app(ViewerOptions(run=run, run_b=run_b, preload=False))
    return TestClient(app, base_url="http://127.0.0.1")


def text_of(html: str) -> str:
    """The visible text of a page, tags dropped, whitespace squeezed, zero-width break
    opportunities (table headers may wrap after ``/``) removed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).replace("\u200b", "")


def example_ids(html: str) -> list[str]:
    """Example ids of the examples table, in page order."""
    return [unescape(m) for m in re.findall(r'class="ex-link" href="[^"]*">([^<]+)</a>', html)]


def records(run: Path) -> dict[str, dict[str, Any]]:
    """The last record per example id of a run's samples.jsonl."""
    out = {}
    for line in (run / "samples.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        out[rec["example_id"]] = rec
    return out


def png(data: bytes) -> np.ndarray:
    """A PNG's pixels as an array (RGB or RGBA as stored)."""
    return np.asarray(PILImage.open(io.BytesIO(data)))


@contextlib.contextmanager
def serving(run: Path, run_b: Path | None = None) -> Iterator[int]:
    """The viewer served by uvicorn on a free loopback port, in a thread; yields the port."""
    import uvicorn

    app = create_app(ViewerOptions(run=run, run_b=run_b, port=0, preload=False))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def raw_get(port: int, target: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """``GET target`` sent byte for byte (no client-side URL clean-up): ``(status, body)``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
