"""Safe by default: loopback only, no path from a request, no traversal, strict headers, no keys."""

from __future__ import annotations

import json
from pathlib import Path

from helpers_viewer import client_for, raw_get, serving
from starlette.testclient import TestClient

from bench.viewer import ViewerOptions
from bench.viewer.app import SECURITY_HEADERS

PLANTED = "sk-planted-viewer-key-0123456789"

TRAVERSALS = [
    "/static/../samples.jsonl",
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/samples.jsonl",
    "/static/..%2f..%2fapp.py",
    "/static/%2e%2e%2fapp.py",
    "/img/a/..%2f..%2fsamples.jsonl.png?id=scene-0:1:3",
    "/img/a/pred.png?id=../../samples.jsonl",
    "/example?id=../../../etc/passwd",
    "/result/0/..%2f..%2fsamples.jsonl.png",
    "/samples.jsonl",
    "/config.json",
    "/trace.jsonl",
]


def test_defaults_bind_the_loopback() -> None:
    options = ViewerOptions(run=Path("."))
    assert options.host == "127.0.0.1" and options.port == 7860 and options.loopback
    assert "*" not in options.allowed_hosts()
    assert ViewerOptions(run=Path("."), host="0.0.0.0").allowed_hosts() == ["*"]  # a deliberate choice


def test_no_path_traversal_over_a_real_socket(made_runs: dict[str, Path]) -> None:
    secret_bits = [(made_runs["loop"] / "samples.jsonl").read_bytes()[:40], b"root:", b"import "]
    with serving(made_runs["loop"]) as port:
        answers = {target: raw_get(port, target) for target in TRAVERSALS}
    for target, (status, body) in answers.items():
        assert status in (400, 404), (target, status)
        assert not any(bit in body for bit in secret_bits), target


def test_static_assets_are_served_from_the_package(loop_client: TestClient) -> None:
    assert "layer-toggle" in loop_client.get("/static/viewer.js").text
    assert loop_client.get("/static/viewer.css").headers["content-type"].startswith("text/css")


def test_foreign_host_names_are_refused(made_runs: dict[str, Path]) -> None:
    with serving(made_runs["loop"]) as port:
        assert raw_get(port, "/", host="127.0.0.1")[0] == 200
        assert raw_get(port, "/", host="localhost")[0] == 200
        assert raw_get(port, "/", host="evil.example")[0] == 400  # DNS rebinding


def test_every_response_carries_the_security_headers(loop_client: TestClient) -> None:
    for target in ("/", "/example?id=scene-0:1:3", "/img/a/pred.png?id=scene-0:1:3", "/nope"):
        response = loop_client.get(target)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (target, name)
    page = loop_client.get("/").text
    assert "<script>" not in page and " style=" not in page  # the policy forbids inline code


def test_keys_in_run_files_are_redacted_on_every_page(runs: dict[str, Path]) -> None:
    folder = runs["loop"]
    config = json.loads((folder / "config.json").read_text())
    config["results"]["vlm"] = {"base_url": "http://127.0.0.1:9/v1", "api_key": PLANTED}
    (folder / "config.json").write_text(json.dumps(config))
    lines = (folder / "trace.jsonl").read_text().splitlines()
    for i, line in enumerate(lines):
        ev = json.loads(line)
        if ev.get("sample_id") == "scene-0:1:3" and ev.get("tool") == "refine_query":
            ev["args"]["hint"] = f"Bearer {PLANTED}"
            lines[i] = json.dumps(ev)
    (folder / "trace.jsonl").write_text("\n".join(lines) + "\n")
    with client_for(folder) as client:
        pages = [client.get("/").text, client.get("/example", params={"id": "scene-0:1:3"}).text]
    assert all(PLANTED not in page for page in pages)
    assert "[REDACTED]" in pages[0] and "[REDACTED]" in pages[1]
