"""Item 5: a run file that is not UTF-8, nested too deeply or too large is one line (or, where
it is derived or vouched for by the result lines, rebuilt), never a traceback: on resume, in
``bench report`` and when the viewer starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_chaos import chaos_row

from bench.chaos.runs import OfflineRun, run_offline
from bench.chaos.unreadable_files import NOT_UTF8, TOO_DEEP, viewer_pages
from bench.cli import main
from bench.report.run_reader import load_runs
from bench.samples import CONFIG, SUMMARY, read_json
from tools.errors import ConfigError

RUN = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline", "--no-cache"]
RUN += ["--quiet", "--bootstrap", "0", "--device", "cpu"]


@pytest.mark.parametrize("damage", [NOT_UTF8, TOO_DEEP], ids=["not-utf8", "too-deep"])
def test_a_damaged_run_file_is_one_config_error(tmp_path: Path, damage: bytes) -> None:
    (tmp_path / CONFIG).write_bytes(damage)
    with pytest.raises(ConfigError) as info:
        read_json(tmp_path / CONFIG)
    assert str(tmp_path / CONFIG) in str(info.value) and "\n" not in str(info.value)


def test_a_run_file_over_the_size_limit_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bench.json_file.MAX_RUN_FILE_BYTES", 1000)
    (tmp_path / SUMMARY).write_text('{"pad": "' + "x" * 2000 + '"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="over the limit"):
        read_json(tmp_path / SUMMARY)


@pytest.mark.slow
def test_a_non_utf8_config_json_is_one_line_on_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main([*RUN, "--controller", "oneshot", "--out", str(out)]) == 0
    (out / CONFIG).write_bytes(NOT_UTF8)
    capsys.readouterr()
    code = main([*RUN, "--controller", "loop", "--out", str(out)])  # other options: refused
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("refseg: error:") and "\n" not in err
    assert main([*RUN, "--controller", "oneshot", "--out", str(out)]) == 0  # same options: resumes
    assert "results" in (read_json(out / CONFIG) or {})


def test_report_and_viewer_carry_on_over_a_damaged_summary(tmp_path: Path) -> None:
    run = OfflineRun(tmp_path / "run", None, n=1, episode={"controller": "oneshot"})
    run_offline(run)
    (run.run_dir / SUMMARY).write_bytes(NOT_UTF8)
    assert viewer_pages(run.run_dir) == [200, 200]
    assert load_runs([run.run_dir])[0].summary.counts.examples > 0  # rebuilt: it is derived
    (run.run_dir / CONFIG).write_bytes(TOO_DEEP)
    assert viewer_pages(run.run_dir) == [200, 200]


@pytest.mark.slow  # a whole scorecard row (runs, child processes)
def test_unreadable_run_files_row_survives() -> None:
    row = chaos_row("unreadable run files")
    assert row.survived, row.problems
    assert row.injected == row.detected == 4
