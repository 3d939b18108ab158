"""The benchmark commands run from ``refseg bench`` and print their figures."""

from __future__ import annotations

import re

import pytest

from bench.cli import main


@pytest.mark.slow
def test_viewer_benchmark_prints_first_byte_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "viewer", "--n", "30", "--repeat", "2"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("run page")]
    assert len(lines) == 2  # a finished run and a live one
    for line in lines:
        assert "30 examples" in line
        figures = dict(re.findall(r"(\w+) ([0-9.]+) ms", line))
        assert set(figures) == {"open", "first", "warm", "filtered", "example", "appended"}
        assert all(float(v) > 0 for v in figures.values())


@pytest.mark.parametrize("workers", ["x,1", "0", ""])
def test_engines_benchmark_rejects_bad_workers(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "engines", "--workers", workers]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--workers" in err and "1,2" in err
