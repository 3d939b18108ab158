"""Undecodable lines in samples.jsonl (a byte that is not UTF-8, NULs before a record)
are skipped with a note naming their line, their examples redone; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_chaos import chaos_row

from bench.cli import main

RUN = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline", "--controller"]
RUN += ["oneshot", "--no-cache", "--quiet", "--bootstrap", "0", "--device", "cpu"]


def test_resume_report_and_viewer_skip_undecodable_lines_and_redo_them() -> None:
    row = chaos_row("undecodable result lines")
    assert row.survived, row.problems
    assert row.injected == row.detected == 3 and row.lost == 0 and row.duplicated == 0


@pytest.mark.slow
def test_cli_run_and_report_name_the_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main([*RUN, "--out", str(out)]) == 0
    samples = out / "samples.jsonl"
    with samples.open("ab") as fh:
        fh.write(b"\x80abc\n")
    bad = samples.read_bytes().count(b"\n")
    capsys.readouterr()
    assert main([*RUN, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"line(s) {bad} of samples.jsonl" in err and "Traceback" not in err
    assert main(["bench", "report", str(out)]) == 0
    assert f"line(s) {bad} of samples.jsonl" in capsys.readouterr().err
