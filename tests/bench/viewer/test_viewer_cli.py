"""``refseg view``: the real command serves on the loopback and stops on Ctrl-C; bad folders are one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.cli import main

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_refseg_view_serves_until_interrupted(made_runs: dict[str, Path]) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "bench.cli", "view", str(made_runs["loop"]), str(made_runs["oneshot"]),
           "--port", str(port), "--no-preload"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        deadline, page = time.monotonic() + 60, None
        while page is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
            except httpx.TransportError:
                time.sleep(0.2)
        assert page is not None and page.status_code == 200 and "RUN_B" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_taken_port_is_one_line(made_runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["view", str(made_runs["loop"]), "--port", str(port), "--no-preload"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing"], "no such folder"),
        (["{tmp}/empty"], "not a bench run folder (no samples.jsonl or config.json) nor a segment output"),
        (["{run}", "{tmp}/segment"], "RUN_B compares two bench runs"),
        (["{run}", "--port", "70000"], "--port must be between 0 and 65535"),
    ],
)
def test_bad_folders_and_options_are_one_line(
    args: list[str],
    message: str,
    made_runs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "segment").mkdir()
    (tmp_path / "segment" / "result.json").write_text("{}")
    argv = [a.format(run=made_runs["loop"], tmp=tmp_path) for a in args]
    assert main(["view", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
