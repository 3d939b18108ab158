"""SIGKILL ``refseg bench run`` subprocesses at >= 5 points, some mid-line; resume to the same metrics."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers_chaos import chaos_row

from bench.samples import read_samples

pytestmark = pytest.mark.slow


def test_killed_runs_resume_to_the_uninterrupted_metrics() -> None:
    row = chaos_row("SIGKILL + resume")
    assert row.survived, (row.problems, row.details["kill_log"])
    assert row.injected >= 5  # SIGKILLs that hit a running bench
    assert row.details["torn_lines"] >= 3 and row.details["repaired"] == row.details["torn_lines"]
    assert row.run_dir is not None
    lines = (row.run_dir / "samples.jsonl").read_bytes().splitlines()
    counts = Counter(json.loads(x)["example_id"] for x in lines)  # every line parses: tears cut off
    assert len(counts) == row.examples and set(counts.values()) == {1}
    got = json.loads((row.run_dir / "summary.json").read_text())
    want = json.loads((row.run_dir.parent / "kill-reference" / "summary.json").read_text())
    assert got["metrics"] == want["metrics"] and got["metrics"]["miou_ci"] is not None
    assert got["counts"]["missing"] == 0 and got["complete"]


def test_kill_hook_tears_the_nth_line_and_kills(tmp_path: Path) -> None:
    code = (
        "import sys; from bench.samples import SampleWriter; from bench.chaos.kill import kill_mid_line\n"
        "from bench.records import SampleRecord\n"
        "hook = kill_mid_line(int(sys.argv[2])) if int(sys.argv[2]) else None\n"
        "w = SampleWriter(sys.argv[1], before_write=hook)\n"
        "for i in range(5):\n"
        "    w.write(SampleRecord(index=i, example_id=f'e{i}', image_id='i', sentence='x' * 50))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), "3"], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    data = (tmp_path / "samples.jsonl").read_bytes()
    assert data.count(b"\n") == 2 and not data.endswith(b"\n") and b'"e2"' in data
    records, torn = read_samples(tmp_path, repair=True)
    assert sorted(records) == ["e0", "e1"] and torn == 1
    assert (tmp_path / "samples.jsonl").read_bytes().endswith(b"\n")
    ok = subprocess.run([sys.executable, "-c", code, str(tmp_path), "0"], timeout=60)
    assert ok.returncode == 0  # without the hook the writer never dies
