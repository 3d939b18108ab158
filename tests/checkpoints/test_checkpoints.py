"""Checkpoint registry and download, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from checkpoints.download import download_checkpoint
from checkpoints.registry import (
    KNOWN_CHECKPOINTS,
    SAM_MODEL_TYPES,
    CheckpointInfo,
    cached_sha256,
    lookup,
    sam_checkpoint_info,
)
from tools.errors import ConfigError, DownloadError

PAYLOAD = os.urandom(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """A tiny file server: ``/file.bin`` serves PAYLOAD, ``/short.bin`` lies about its length."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                if self.path == "/file.bin":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(PAYLOAD)))
                    self.end_headers()
                    self.wfile.write(PAYLOAD)
                elif self.path == "/short.bin":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(PAYLOAD) * 2))
                    self.end_headers()
                    self.wfile.write(PAYLOAD)
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    self.send_error(404)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture()
def server() -> Iterator[_Server]:
    srv = _Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


def _info(url: str, sha256: str | None = PAYLOAD_SHA, size: int | None = None) -> CheckpointInfo:
    return CheckpointInfo("test_file", "test", "tiny", "tiny.pth", url, sha256, size)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- registry -------------------------------------------------------------------------------


def test_registry_has_the_official_sam_files() -> None:
    assert SAM_MODEL_TYPES == ("vit_b", "vit_l", "vit_h")
    b = KNOWN_CHECKPOINTS["sam_vit_b"]
    assert b.filename == "sam_vit_b_01ec64.pth"
    assert b.url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    assert b.size == 375_042_383
    for info in KNOWN_CHECKPOINTS.values():
        assert info.url.endswith("/" + info.filename)
        assert info.sha256 is not None and len(info.sha256) == 64
        int(info.sha256, 16)  # hex


@pytest.mark.parametrize(
    "name", ["vit_b", "sam_vit_b", "sam:vit_b", "sam/vit_b", "SAM_VIT_B", "sam_vit_b_01ec64.pth", "sam"]
)
def test_lookup_accepts_every_spelling(name: str) -> None:
    assert lookup(name).name == "sam_vit_b"


def test_lookup_other_types_and_unknown() -> None:
    assert lookup("vit_h").filename == "sam_vit_h_4b8939.pth"
    assert sam_checkpoint_info("vit_l").filename == "sam_vit_l_0b3195.pth"
    assert lookup("default").model_type == "vit_h"
    with pytest.raises(ConfigError, match="known checkpoints: sam_vit_b"):
        lookup("vit_x")
    with pytest.raises(ConfigError, match="vit_b, vit_l, vit_h"):
        sam_checkpoint_info("resnet")


def test_cached_sha256_follows_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    assert cached_sha256(path) == hashlib.sha256(b"abc").hexdigest()
    path.write_bytes(b"abcd")  # new size: must not serve the stale hash
    assert cached_sha256(path) == hashlib.sha256(b"abcd").hexdigest()


# -- download -------------------------------------------------------------------------------


def test_download_places_verified_file_and_skips_when_present(server: _Server, tmp_path: Path) -> None:
    info = _info(server.url("/file.bin"))
    path = download_checkpoint(info, tmp_path / "ck", progress=False)
    assert path == tmp_path / "ck" / "tiny.pth"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.pth"]  # no .part left
    assert server.requests == ["/file.bin"]
    # Present and verified: no second request.
    assert download_checkpoint(info, tmp_path / "ck", progress=False) == path
    assert server.requests == ["/file.bin"]


def test_download_replaces_a_corrupt_existing_file(server: _Server, tmp_path: Path) -> None:
    (tmp_path / "tiny.pth").write_bytes(b"half a file")
    path = download_checkpoint(_info(server.url("/file.bin")), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/file.bin"]


def test_wrong_sha256_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    info = _info(server.url("/file.bin"), sha256="0" * 64)
    with pytest.raises(DownloadError, match="sha256") as err:
        download_checkpoint(info, tmp_path, progress=False)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_registered_sha_is_enforced_for_a_mirror_url(server: _Server, tmp_path: Path) -> None:
    # A mirror serving other bytes must not become sam_vit_b_01ec64.pth.
    with pytest.raises(DownloadError, match="not the official one"):
        download_checkpoint("vit_b", tmp_path, url=server.url("/file.bin"), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_one_clear_line(tmp_path: Path) -> None:
    info = _info(f"http://127.0.0.1:{_closed_port()}/file.bin")
    with pytest.raises(DownloadError) as err:
        download_checkpoint(info, tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot reach 127.0.0.1")
    assert "tiny.pth" in message and "machine with internet" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_truncated_transfer(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_checkpoint(_info(server.url("/missing.bin")), tmp_path, progress=False)
    with pytest.raises(DownloadError):
        download_checkpoint(_info(server.url("/short.bin"), sha256=None), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_size_is_checked_when_no_sha_is_known(server: _Server, tmp_path: Path) -> None:
    info = _info(server.url("/file.bin"), sha256=None, size=len(PAYLOAD) + 1)
    with pytest.raises(DownloadError, match="bytes, expected"):
        download_checkpoint(info, tmp_path, progress=False)
    ok = _info(server.url("/file.bin"), sha256=None, size=len(PAYLOAD))
    assert download_checkpoint(ok, tmp_path, progress=False).stat().st_size == len(PAYLOAD)


def test_unwritable_destination(server: _Server, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DownloadError, match="cannot write"):
        download_checkpoint(_info(server.url("/file.bin")), blocker / "sub", progress=False)
