"""The scorecard: the whole matrix (rows shared with the other hardening tests) and its CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers_chaos import chaos_row

from bench.chaos import RowResult, format_table, row_names, scorecard_exit_code
from bench.cli import main


@pytest.mark.slow  # every row: Ray clusters, killed subprocesses, minutes in all
def test_full_scorecard_every_row_survived() -> None:
    rows = [chaos_row(name) for name in row_names()]
    table = format_table(rows)
    print(table)  # the scorecard, as CI shows it (pytest -s)
    assert len(rows) == 34 and scorecard_exit_code(rows) == 0, table
    assert all(r.lost == 0 and r.duplicated == 0 and r.secrets == 0 and r.injected > 0 for r in rows)
    assert table.splitlines()[0].split(" | ")[:5] == [
        "fault                      ",
        "injected",
        "detected",
        "survived",
        "examples",
    ]


def test_exit_code_is_non_zero_when_anything_is_lost_or_duplicated() -> None:
    ok = RowResult("fine", injected=3, examples=20)
    assert scorecard_exit_code([ok]) == 0
    assert scorecard_exit_code([ok, RowResult("lossy", lost=1)]) == 1
    assert scorecard_exit_code([ok, RowResult("twice", duplicated=2)]) == 1
    assert scorecard_exit_code([RowResult("bad", problems=["summary counted 0 of 3 faults"])]) == 1
    assert scorecard_exit_code([ok, RowResult("leaky", secrets=1)]) == 1
    assert scorecard_exit_code([]) == 1
    assert "NO" in format_table([RowResult("lossy", lost=1)])


@pytest.mark.slow
def test_module_entry_point_prints_the_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--rows", "unknown tool name", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "unknown tool name" in proc.stdout and "| yes" in proc.stdout
    assert "0 lost, 0 duplicated, 0 secrets" in proc.stdout


def test_refseg_bench_chaos_is_registered(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", "chaos", "--list"]) == 0
    assert capsys.readouterr().out.split("\n")[: len(row_names())] == row_names()


def test_an_unknown_row_is_a_one_line_error_before_any_row_runs(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", "chaos", "--rows", "planted key", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("refseg: error: unknown scorecard row(s): 'planted key';") and "\n" not in err
    assert "--list" in err and not any(tmp_path.iterdir())  # nothing ran
