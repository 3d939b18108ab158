"""A hub data set that cannot be reached is one line on stderr: the hub clients' retry
warnings (``huggingface_hub``, ``datasets``) are kept off while it loads."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.data.parquet import hub_logs_quiet

REPO = Path(__file__).resolve().parents[2]


def test_hub_client_warnings_are_off_while_loading_and_restored_after(
    capsys: pytest.CaptureFixture[str],
) -> None:
    retries = logging.getLogger("huggingface_hub.utils._http")
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger("huggingface_hub").addHandler(handler)
    try:
        with hub_logs_quiet():
            retries.warning("Retrying in 1s [Retry 1/5].")
            logging.getLogger("datasets.load").warning("Using the latest cached version")
        assert capsys.readouterr().err == ""
        retries.warning("after")
        assert "after" in capsys.readouterr().err  # the levels are restored
    finally:
        logging.getLogger("huggingface_hub").removeHandler(handler)


@pytest.mark.slow  # the hub client retries a refused connection for ~25 s before giving up
def test_an_unreachable_hub_data_set_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{closed}", HF_HOME=str(tmp_path / "hf"))
    argv = ["bench", "run", "--dataset", "moondream/refcoco-m", "--n", "1", "--toolset", "offline"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv, "--no-cache", "--out", str(tmp_path / "run")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("refseg: error: cannot load 'moondream/refcoco-m'")
