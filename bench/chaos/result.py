"""A scorecard row's result, and the checks every row makes on its run folder."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.episode import StopReason
from bench.samples import SAMPLES

STOP_REASONS = frozenset(reason.value for reason in StopReason)


@dataclass
class RowResult:
    """One scorecard row: what was injected and what the run folder shows afterwards.

    Attributes:
        fault: the row's name.
        injected: faults injected (bad replies served, kills, bad inputs, ...).
        detected: how many of them the run's own summary (or logs) counted.
        examples: examples the run should hold.
        lost: examples with no record.
        duplicated: examples with more than one record.
        fallback: examples that stopped with ``fallback``.
        failed: examples recorded as failed (with a reason).
        exit_code: the run's exit code (last invocation).
        secrets: files of the row holding a planted secret (must be 0).
        seconds: wall time of the row.
        problems: every check that did not hold (empty when the row survived).
        run_dir: the run folder, for tests that look deeper.
        details: row-specific extras (summary faults, stop reasons, ...).
    """

    fault: str
    injected: int = 0
    detected: int = 0
    examples: int = 0
    lost: int = 0
    duplicated: int = 0
    fallback: int = 0
    failed: int = 0
    exit_code: int = 0
    secrets: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    run_dir: Path | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def survived(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicated == 0 and self.secrets == 0

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def record_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Every parseable line of ``samples.jsonl`` (duplicates kept: they are what we count)."""
    path = run_dir / SAMPLES
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("example_id"), str):
            out.append(rec)
    return out


def account(
    row: RowResult, run_dir: Path, expected_ids: Sequence[str], exit_code: int
) -> list[dict[str, Any]]:
    """Fill lost / duplicated / failed / fallback from the run folder; check the basics."""
    lines = record_lines(run_dir)
    counts = Counter(r["example_id"] for r in lines)
    expected = set(expected_ids)
    row.run_dir = run_dir
    row.examples = len(expected)
    row.lost = len(expected - set(counts))
    row.duplicated = sum(1 for eid, n in counts.items() if n > 1)
    row.exit_code = exit_code
    last = {r["example_id"]: r for r in lines}
    recs = [last[e] for e in expected_ids if e in last]
    row.failed = sum(1 for r in recs if r.get("failed"))
    row.fallback = sum(1 for r in recs if r.get("stop_reason") == "fallback")
    stray = set(counts) - expected
    row.check(not stray, f"{len(stray)} record(s) of unknown examples")
    bad_stop = [r["example_id"] for r in recs if r.get("stop_reason") not in STOP_REASONS]
    row.check(not bad_stop, f"{len(bad_stop)} record(s) without a known stop reason")
    no_reason = [r["example_id"] for r in recs if r.get("failed") and not r.get("error")]
    row.check(not no_reason, f"{len(no_reason)} failed record(s) without an error")
    want_exit = 1 if (row.failed or row.lost) else 0
    row.check(exit_code == want_exit, f"exit code {exit_code}, expected {want_exit}")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    counted = summary["counts"]
    row.check(
        counted["examples"] == len(recs) and counted["failed"] == row.failed,
        f"summary counts {counted} disagree with samples.jsonl",
    )
    row.details["summary_faults"] = summary.get("faults", {})
    row.details["stop_reasons"] = summary.get("stop_reasons", {})
    return recs


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` (``{}`` when it holds something else)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
