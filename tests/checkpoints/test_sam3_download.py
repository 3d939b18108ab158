"""``refseg weights download sam3`` against a local server that speaks the hub's protocol:
a gated repository says how to pass a token (and never shows it), the download is checked
against the hub's sha256 (the LFS ETag), a corrupt one is deleted."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.cli import main
from checkpoints.errors import DownloadError
from checkpoints.hub import download_sam3

COMMIT = "a" * 40
FILES = {"config.json": b'{"model_type": "sam3_video"}', "model.safetensors": b"weights " * 1000}
SECRET = "hf_thisIsNotARealTokenButASecret"


class FakeHub:
    """Serves ``facebook/sam3``'s two files; ``gated`` answers 401/403 with the hub's error code."""

    def __init__(self, gated: bool = False, lie_about_sha: bool = False):
        self.gated, self.lie = gated, lie_about_sha
        self.tokens: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.answer(body=False)

            def do_GET(self) -> None:
                self.answer(body=True)

            def answer(self, body: bool) -> None:
                hub.tokens.append(self.headers.get("authorization", ""))
                name = self.path.rsplit("/", 1)[-1]
                if hub.gated:
                    self.send_response(401 if not self.headers.get("authorization") else 403)
                    self.send_header("X-Error-Code", "GatedRepo")
                    self.send_header("X-Error-Message", "Access to model facebook/sam3 is restricted.")
                    self.end_headers()
                    return
                data = FILES[name]
                sha = hashlib.sha256(b"other bytes" if hub.lie else data).hexdigest()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{sha}"' if name.endswith(".safetensors") else '"gitsha"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(Path(request.getfixturevalue("tmp_path")) / "hf-home"))
    server = FakeHub(**getattr(request, "param", {}))
    yield server
    server.close()


def test_the_weights_download_and_match_the_hubs_sha256(hub: FakeHub, tmp_path: Path) -> None:
    path = download_sam3(tmp_path, endpoint=hub.url)
    assert path == tmp_path / "sam3" / "model.safetensors"
    assert path.read_bytes() == FILES["model.safetensors"]
    assert (tmp_path / "sam3" / "config.json").read_bytes() == FILES["config.json"]


@pytest.mark.parametrize("hub", [{"lie_about_sha": True}], indirect=True)
def test_a_download_that_does_not_match_is_deleted(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="corrupt"):
        download_sam3(tmp_path, endpoint=hub.url)
    assert not (tmp_path / "sam3" / "model.safetensors").exists()


@pytest.mark.parametrize("hub", [{"gated": True}], indirect=True)
def test_a_gated_repository_says_how_to_pass_a_token(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no token stored by `hf auth login`
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(DownloadError) as without:
        download_sam3(tmp_path, endpoint=hub.url)
    message = str(without.value)
    assert "gated" in message and "HF_TOKEN" in message and "--token" in message
    assert "https://huggingface.co/facebook/sam3" in message
    with pytest.raises(DownloadError) as given:
        download_sam3(tmp_path, endpoint=hub.url, token=SECRET)
    assert "the token from --token has no access" in str(given.value) and SECRET not in str(given.value)
    assert f"Bearer {SECRET}" in hub.tokens  # the token went to the hub, and only there
    monkeypatch.setenv("HF_TOKEN", SECRET)  # the CLI passes no token: the environment gives it
    with pytest.raises(DownloadError) as from_env:
        download_sam3(tmp_path, endpoint=hub.url)
    message = str(from_env.value)
    assert "the token from HF_TOKEN has no access" in message and "set HF_TOKEN" not in message
    assert SECRET not in message


def test_the_cli_says_it_in_one_line_without_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (
        main(["weights", "download", "sam3", "--dest", str(tmp_path), "--token", SECRET])
        == DownloadError.exit_code
    )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot reach the hub" in err and SECRET not in err
    main(["weights", "list", "--dest", str(tmp_path)])
    assert "sam3/model.safetensors" in capsys.readouterr().out
