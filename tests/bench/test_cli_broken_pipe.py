"""``refseg ... | head``: when the reader goes away the command stops quietly, exit 0."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="needs Linux pipes (F_SETPIPE_SZ)")
def test_a_closed_pipe_is_not_an_error() -> None:
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)  # smaller than the output: the writer must wait
    command = [sys.executable, "-m", "bench.cli", "bench", "schema", "trace"]  # ~24 KB of JSON
    proc = subprocess.Popen(command, stdout=writer, stderr=subprocess.PIPE)
    os.close(writer)
    with os.fdopen(reader, "rb") as out:
        first = out.read(16)  # like `head -c 16`, then gone
    _, err = proc.communicate(timeout=60)
    assert first.startswith(b"{")
    assert proc.returncode == 0 and err.decode() == ""
