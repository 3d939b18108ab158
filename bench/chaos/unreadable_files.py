"""The ``unreadable run files`` row: ``config.json`` and ``summary.json`` that cannot be read.

A run's small JSON files are damaged in the ways a disk, an editor or a copy can damage them:
bytes that are not UTF-8, 10,000 nested brackets. Then: a resume with other options is
refused in one line (the CLI, exit 2); a resume with the same options goes through and writes
``config.json`` again (the result lines say which configuration made them); ``bench report``
rebuilds a damaged ``summary.json`` (it is derived); the viewer starts and serves its pages.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.chaos.result import RowResult, account, read_json, record_lines
from bench.chaos.runs import OfflineRun, run_offline
from bench.report.run_reader import load_runs
from bench.samples import CONFIG, SUMMARY

NOT_UTF8 = b'\xff\xfe{"results": \x80\x81}'
TOO_DEEP = b"[" * 10_000 + b"]" * 10_000


def refused_resume(run_dir: Path) -> str:
    """``refseg bench run`` (a child process) with another controller on the run folder:
    ``exit CODE: STDERR``."""
    argv = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline", "--no-cache"]
    argv += ["--quiet", "--bootstrap", "0", "--device", "cpu", "--controller", "loop", "--out", str(run_dir)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv], capture_output=True, text=True, timeout=300
    )
    return f"exit {proc.returncode}: {proc.stderr.strip()}"


def viewer_pages(run_dir: Path) -> list[int]:
    """Status codes of the run page and the first example page of a viewer on ``run_dir``."""
    from starlette.testclient import TestClient

    from bench.viewer.app import create_app
    from bench.viewer.options import ViewerOptions

    app = create_app(ViewerOptions(run=run_dir, preload=False))
    with TestClient(app, base_url="http://127.0.0.1") as client:  # a loopback browser
        first = client.get("/")
        ids = [r["example_id"] for r in record_lines(run_dir)]
        example = client.get("/example", params={"id": ids[0]}) if ids else first
        return [first.status_code, example.status_code]


def _damaged_config(row: RowResult, workdir: Path, name: str, damage: bytes) -> None:
    run = OfflineRun(workdir / f"{name}-run", None, n=1, episode={"controller": "oneshot"}, limit=5)
    ids = run_offline(run).example_ids
    (run.run_dir / CONFIG).write_bytes(damage)
    said = refused_resume(run.run_dir)
    one_line = said.startswith("exit 2: refseg: error:") and "\n" not in said
    row.check(one_line, f"{name} config.json, other options: {said[:300]!r}")
    finish = run_offline(OfflineRun(run.run_dir, None, n=1, episode=run.episode))  # same options
    sub = RowResult(name)
    account(sub, run.run_dir, ids, finish.exit_code)
    rewritten = "results" in read_json(run.run_dir / CONFIG)
    row.check(rewritten and not sub.problems, f"{name} config.json, same options: {sub.problems}")
    row.injected += 1
    row.detected += one_line and rewritten
    row.lost, row.duplicated, row.examples = (
        row.lost + sub.lost,
        row.duplicated + sub.duplicated,
        row.examples + sub.examples,
    )


def _damaged_summary(row: RowResult, workdir: Path) -> None:
    run = OfflineRun(workdir / "summary-run", None, n=1, episode={"controller": "oneshot"})
    run_offline(run)
    (run.run_dir / SUMMARY).write_bytes(NOT_UTF8)
    pages = viewer_pages(run.run_dir)
    row.check(pages == [200, 200], f"the viewer answered {pages} with a non-UTF-8 summary.json")
    rebuilt = load_runs([run.run_dir])[0].summary.counts.examples
    row.check(bool(rebuilt), "bench report did not rebuild the damaged summary.json")
    (run.run_dir / CONFIG).write_bytes(NOT_UTF8)
    config_pages = viewer_pages(run.run_dir)
    row.check(config_pages == [200, 200], f"the viewer answered {config_pages} with a non-UTF-8 config.json")
    row.injected += 2
    row.detected += (pages == [200, 200] and bool(rebuilt)) + (config_pages == [200, 200])


def unreadable_files_row(workdir: Path, seed: int = 0) -> RowResult:
    """Non-UTF-8 and deeply nested config.json and summary.json: one line or carried on."""
    row = RowResult("unreadable run files")
    t0 = time.perf_counter()
    _damaged_config(row, workdir, "not-utf8", NOT_UTF8)
    _damaged_config(row, workdir, "too-deep", TOO_DEEP)
    _damaged_summary(row, workdir)
    row.check(row.detected == row.injected, f"{row.detected} of {row.injected} damaged files handled")
    row.seconds = time.perf_counter() - t0
    return row
