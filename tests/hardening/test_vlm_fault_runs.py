"""VLM faults in agent bench runs (>= 20 examples, concurrency 8) against the scripted server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from helpers_chaos import chaos_row

from bench.chaos import STOP_REASONS, VLM_FAULTS
from bench.summary import trace_faults


@pytest.mark.slow
@pytest.mark.parametrize("fault", VLM_FAULTS, ids=[f.name for f in VLM_FAULTS])
def test_every_example_recorded_once_and_faults_counted(fault) -> None:  # type: ignore[no-untyped-def]
    row = chaos_row(fault.name)
    assert row.survived, row.problems
    assert row.examples >= 20 and row.injected > 0
    assert row.run_dir is not None
    lines = [json.loads(x) for x in (row.run_dir / "samples.jsonl").read_text().splitlines()]
    counts = Counter(r["example_id"] for r in lines)
    assert len(counts) == row.examples and set(counts.values()) == {1}  # none lost, none twice
    assert all(r["stop_reason"] in STOP_REASONS for r in lines)
    for r in lines:  # a VLM call that failed for good ends the episode with "fallback"
        if (r["costs"].get("vlm") or {}).get("errors"):
            assert r["stop_reason"] == "fallback" and not r["failed"]
    summary = json.loads((row.run_dir / "summary.json").read_text())
    assert summary["faults"]["fallbacks"] == summary["stop_reasons"].get("fallback", 0) == row.fallback
    if fault.exact:
        assert row.detected == row.injected
    else:
        assert row.detected >= 1
    assert row.exit_code == (1 if summary["counts"]["failed"] else 0)


@pytest.mark.slow
def test_specific_rows_show_their_fault() -> None:
    assert chaos_row("endless tool calls").details["stop_reasons"] == {"max_iter": 34}
    row = chaos_row("429 + Retry-After")
    limited = row.details["summary_faults"]
    assert limited["vlm_errors_by_status"]["429"] == row.injected and limited["vlm_retries"] > 0
    assert chaos_row("wrong finish_reason").fallback > 0  # two replies without a call: fall back


def test_trace_faults_counts_each_kind(tmp_path: Path) -> None:
    events = [
        {"event": "vlm_call", "error": "HTTP 429", "status": 429, "retry_in_s": 0.1},
        {"event": "vlm_call", "error": "timed out", "status": None, "retry_in_s": None},
        {"event": "vlm_call", "error": None, "status": 200},
        {"event": "tool_call", "rejected": True, "error": "unknown tool"},
        {"event": "tool_call", "error": None},
        {"event": "turn", "finish_reason": "length"},
        {"event": "turn", "finish_reason": "tool_calls"},
    ]
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + '\n{"event": "vlm_call", "err')
    got = trace_faults(path)
    assert got == {
        "vlm_attempt_errors": 2,
        "vlm_retries": 1,
        "vlm_errors_by_status": {"429": 1, "none": 1},
        "rejected_tool_calls": 1,
        "odd_finish_reasons": 1,
        "refused_tool_calls": 0,
        "episode_timeouts": 0,
    }
    assert trace_faults(tmp_path / "absent.jsonl")["vlm_attempt_errors"] == 0
