"""Results of different configurations never mix, however config.json fares;
a disk that fills while results are written is one line, a non-zero exit, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_chaos import chaos_row

from agent.tracing import Tracer
from bench.cli import main

RUN = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline"]
RUN += ["--no-cache", "--quiet", "--bootstrap", "0", "--device", "cpu", "--limit", "4"]


def test_a_resume_with_another_config_is_refused_without_config_json() -> None:
    row = chaos_row("resume with other config")
    assert row.survived, row.problems
    assert row.injected == row.detected == 2


@pytest.mark.slow
def test_cli_refuses_another_controller_after_config_json_is_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main([*RUN, "--controller", "oneshot", "--out", str(out)]) == 1  # 4 of 20 done
    (out / "config.json").unlink()  # what "unreadable config" used to suggest
    capsys.readouterr()
    assert main([*RUN, "--controller", "loop", "--out", str(out)]) == 2
    assert "another configuration" in capsys.readouterr().err
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and {r["stop_reason"] for r in lines} == {"oneshot"}
    assert main([*RUN, "--controller", "oneshot", "--out", str(out)]) == 1  # same config: resumes
    assert json.loads((out / "config.json").read_text())["results"]["episode"]["controller"] == "oneshot"


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_run_resumes() -> None:
    row = chaos_row("full disk on results")
    assert row.survived, row.problems
    assert row.detected == 1 and row.details["kept"] > 0
    assert any("No space left" in line or "too large" in line for line in row.details["stderr"])


def test_the_trace_starts_on_a_fresh_line_after_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_bytes(b'{"event": "tool_call", "args": {"x": "torn by a full di')
    with Tracer(path, run_id="next") as tracer:
        tracer.event("episode_start", sample_id="s1")
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["event"] == "episode_start"
