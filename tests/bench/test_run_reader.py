"""A run folder read back for the reports: a stale ``summary.json`` is recomputed."""

from __future__ import annotations

import os
from pathlib import Path

from helpers_runner import run, synthetic

from bench.report.run_reader import load_run


def test_report_recomputes_a_summary_older_than_the_samples(tmp_path: Path) -> None:
    examples, d = synthetic(2), tmp_path / "run"
    run(d, None, examples, limit=2)
    old = (d / "summary.json").read_bytes()
    run(d, None, examples, limit=2)
    # An interrupted invocation: lines were appended, summary.json is the previous one.
    (d / "summary.json").write_bytes(old)
    t = (d / "samples.jsonl").stat().st_mtime_ns
    os.utime(d / "summary.json", ns=(t - 10**9, t - 10**9))
    assert load_run(d).summary.counts.examples == 4
